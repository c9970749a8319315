"""Fuzz: mutated real models never crash, hang or print a traceback; exit codes stay 0/1/2."""
from __future__ import annotations

import signal

import numpy as np
import pytest

from tflc.cli.main import main


def _mutations(data: bytes, n: int, seed: int):
    rng = np.random.default_rng(seed)
    for i in range(n):
        d = bytearray(data)
        kind = i % 4
        if kind == 0:                       # flip a few random bytes
            for pos in rng.integers(0, len(d), size=int(rng.integers(1, 8))):
                d[pos] = int(rng.integers(0, 256))
        elif kind == 1:                     # truncate
            d = d[: int(rng.integers(8, len(d)))]
        elif kind == 2:                     # overwrite a word with a large value (offsets!)
            pos = int(rng.integers(0, len(d) - 4)) & ~3
            d[pos:pos + 4] = int(rng.choice([0x7FFFFFFF, 0xFFFFFFFF, 0x10000, len(d)])).to_bytes(4, "little")
        else:                               # zero a region
            pos = int(rng.integers(0, len(d)))
            d[pos:pos + int(rng.integers(1, 64))] = bytes(min(64, len(d) - pos))
        yield i, bytes(d)


class _Timeout(Exception):
    pass


def _alarm(*_):
    raise _Timeout()


def _check(capsys, argv, seconds=60):
    old = signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(seconds)
    try:
        rc = main(argv)
    except _Timeout:
        pytest.fail(f"hang: {argv}")
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)
    _, err = capsys.readouterr()
    assert rc in (0, 1, 2), (rc, err)
    assert "Traceback" not in err
    assert len([ln for ln in err.splitlines() if ln.strip()]) <= 1, err
    return rc


@pytest.fixture(params=["example", "stateful_counter", "shared"])
def seed_model(request, example_model, zoo):
    if request.param == "example":
        return example_model
    if request.param == "stateful_counter":
        return zoo("stateful_counter")
    from conftest import shared_model_paths
    paths = shared_model_paths()
    if not paths:
        pytest.skip("no ../shared models")
    return min(paths, key=lambda p: p.stat().st_size)


def test_fuzz_inspect(seed_model, tmp_path, capsys):
    data = seed_model.read_bytes()
    codes = []
    for i, mutated in _mutations(data, 120, seed=1):
        p = tmp_path / f"m{i}.tflite"
        p.write_bytes(mutated)
        codes.append(_check(capsys, ["inspect", str(p)]))
    assert 2 in codes            # the fuzzer does reach the error paths


def test_fuzz_optimize(seed_model, tmp_path, capsys):
    data = seed_model.read_bytes()
    out = tmp_path / "out.tflite"
    for i, mutated in _mutations(data, 24, seed=2):
        p = tmp_path / f"m{i}.tflite"
        p.write_bytes(mutated)
        rc = _check(capsys, ["optimize", str(p), "-o", str(out), "-O0", "--steps", "1"])
        if rc != 0:
            assert not out.exists()
        out.unlink(missing_ok=True)
