"""Shared fixtures: converter-built models (built once, cached) and the real models of ../shared."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

#: every test also fails if a pass writes an IR field directly (tests/ir_write_guard.py)
pytest_plugins = ["ir_write_guard"]

REPO = Path(__file__).resolve().parents[1]
SHARED_MODELS = Path(os.environ.get("TFLC_SHARED_MODELS", REPO.parent / "shared" / "models"))


def shared_model_paths() -> list[Path]:
    return sorted(SHARED_MODELS.glob("*.tflite")) if SHARED_MODELS.is_dir() else []


def pytest_generate_tests(metafunc):
    # `shared_model` parametrizes over ../shared/models (absent on a fresh machine: then one skip).
    if "shared_model" in metafunc.fixturenames:
        paths = shared_model_paths()
        metafunc.parametrize("shared_model", paths or [None], ids=[p.stem for p in paths] or ["no-shared-models"],
                             indirect=True)


def pytest_collection_modifyitems(session, config, items):
    # The QAT tests import tensorflow-model-optimization, which switches the process's tf.keras to
    # Keras 2 for good: run them after every test that builds a model with the converter, so that
    # the test zoo is built with Keras 3 whatever the order or the cache.
    items.sort(key=lambda item: item.nodeid.startswith("tests/test_qat.py"))


@pytest.fixture
def shared_model(request):
    if request.param is None:
        pytest.skip(f"no real models at {SHARED_MODELS} (they are optional; converter-built models are tested)")
    return request.param


@pytest.fixture(scope="session")
def zoo(tmp_path_factory):
    """``zoo(name) -> Path``: a converter-built model, cached across runs (TFLC_MODEL_CACHE)."""
    from tflc.testing import zoo as z
    cache = os.environ.get("TFLC_MODEL_CACHE")

    def get(name: str) -> Path:
        return z.build(name, cache_dir=cache)
    return get


@pytest.fixture
def example_model() -> Path:
    p = REPO / "examples" / "mobilenet_tiny.tflite"
    assert p.exists(), "examples/mobilenet_tiny.tflite is committed with the repository"
    return p
