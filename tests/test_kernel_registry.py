"""tflc.kernels: registering kernels for custom codes, by call and by entry point."""
from __future__ import annotations

import warnings
from importlib import metadata

import numpy as np
import pytest

import tflc.kernels as K
from tflc.kernels import registry


@pytest.fixture
def clean_registry(monkeypatch):
    """An empty registry for the test (the real one comes back afterwards)."""
    monkeypatch.setattr(registry, "_REGISTRY", {})
    monkeypatch.setattr(registry, "_ORIGIN", {})
    monkeypatch.setattr(registry, "_loaded", False)
    monkeypatch.setattr(registry, "_own_loaded", True)      # without tflc's own TFLC_* kernels
    monkeypatch.setattr(registry.metadata, "entry_points", lambda group=None: [])   # nor installed plug-ins
    return registry


def test_register_lookup_unregister(clean_registry):
    def double(inputs, options):
        return [inputs[0] * 2]
    k = K.register("MyOp", double)
    assert isinstance(k, K.PythonKernel) and k.fn is double and K.lookup("MyOp") is k
    assert K.registered() == {"MyOp": "tflc.kernels.register"}
    with pytest.raises(ValueError, match="already registered for custom code 'MyOp'"):
        K.register("MyOp", double)
    k2 = K.register("MyOp", K.PythonKernel(double, output_shapes=lambda shapes, opts: shapes), replace=True)
    assert K.lookup("MyOp") is k2 and k2.output_shapes is not None
    K.unregister("MyOp")
    K.unregister("MyOp")                     # forgetting twice is no error
    assert K.lookup("MyOp") is None and K.registered() == {}


def test_tflc_kernels_load_on_the_first_lookup_of_a_tflc_code(monkeypatch):
    monkeypatch.setattr(registry, "_REGISTRY", {})
    monkeypatch.setattr(registry, "_ORIGIN", {})
    monkeypatch.setattr(registry, "_own_loaded", False)
    assert K.lookup("NotTflc") is None and not registry._own_loaded     # other codes never load them
    from tflc.kernels.library import KERNELS
    assert K.lookup("TFLC_LUT8") is KERNELS["TFLC_LUT8"]
    assert {c: o for c, o in K.registered().items() if c.startswith("TFLC_")} == {c: "tflc" for c in KERNELS}


def test_the_installed_package_ships_mediapipes_face_kernels(monkeypatch):
    """tflc's own entry points (pyproject) register the worked example, so every command runs
    face_landmark_with_attention without a line of code."""
    monkeypatch.setattr(registry, "_REGISTRY", {})
    monkeypatch.setattr(registry, "_ORIGIN", {})
    monkeypatch.setattr(registry, "_loaded", False)
    from tflc.kernels import mediapipe_face as MF
    for code, kernel in MF.KERNELS.items():
        assert K.lookup(code) is kernel
        assert K.registered()[code] != "tflc.kernels.register"


def test_bad_kernels_and_codes_are_refused(clean_registry):
    with pytest.raises(TypeError, match="callable"):
        K.register("MyOp", 42)
    with pytest.raises(ValueError, match="custom code"):
        K.register("", lambda i, o: i)
    with pytest.raises(ValueError, match="custom code"):
        K.register(" MyOp", lambda i, o: i)
    with pytest.raises(TypeError, match="function address"):
        K.NativeKernel(invoke=0)
    assert K.lookup("MyOp") is None


def _ep(name: str, value: str) -> metadata.EntryPoint:
    return metadata.EntryPoint(name=name, value=value, group=K.ENTRY_POINT_GROUP)


def test_entry_points_add_kernels_and_a_broken_one_is_skipped(clean_registry, monkeypatch):
    eps = [_ep("NegOp", "numpy:negative"), _ep("Broken", "no_such_module_for_tflc:fn"), _ep("NotAKernel", "math:pi")]
    monkeypatch.setattr(registry.metadata, "entry_points",
                        lambda group=None: [e for e in eps if e.group == group])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert K.lookup("NegOp").fn is np.negative
    assert K.lookup("Broken") is None and K.lookup("NotAKernel") is None
    text = " ".join(str(w.message) for w in caught)
    assert "skipping kernel plug-in 'Broken'" in text and "skipping kernel plug-in 'NotAKernel'" in text
    # a kernel registered in code takes precedence over a package's
    K.register("NegOp", np.positive)
    assert K.lookup("NegOp").fn is np.positive


def test_kernels_sit_below_the_runtime():
    """kernels/ is imported by the runtime, never the reverse (checked here too, without lint-imports)."""
    import ast
    from pathlib import Path
    for path in (Path(K.__file__).parent).glob("*.py"):
        tree = ast.parse(path.read_text())
        names = [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
        names += [n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
        assert not [m for m in names if m.startswith(("tflc.runtime", "ai_edge_litert"))], path
