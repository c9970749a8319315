"""--quantize auto (also --quantize with no mode): every mode tried and measured in LiteRT, the fastest
whose every output keeps the target SQNR written, every candidate reported."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tflc.cli.main import main
from tflc.errors import UsageError
from tflc.quantize_auto import DEFAULT_TARGET_DB, MODES, parse_auto

MODEL = Path(__file__).resolve().parents[1] / "examples" / "mobilenet_tiny.tflite"


def _calibration(tmp_path) -> str:
    from tflc.runtime import Session
    d = Session(MODEL.read_bytes()).interp.get_input_details()[0]
    x = np.random.default_rng(0).uniform(-1, 1, (16, *d["shape"])).astype(np.float32)   # sample, then the input
    path = tmp_path / "cal.npz"
    np.savez(path, x)
    return str(path)


def _run(capsys, *argv):
    rc = main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


def test_auto_keeps_the_fastest_mode_within_the_target(tmp_path, capsys):
    out = tmp_path / "auto.tflite"
    rc, text, err = _run(capsys, "optimize", str(MODEL), "-o", str(out), "-O1", "--quantize",
                         "--calibration", _calibration(tmp_path), "--min-sqnr", "15", "--json")
    assert rc == 0, err
    auto = json.loads(text)["auto"]
    assert auto["target_db"] == 15.0 and [c["mode"] for c in auto["candidates"]] == list(MODES)
    ok = [c for c in auto["candidates"] if not c["error"] and (c["identical"] or c["min_sqnr_db"] >= 15)
          and c["verdict"] != "slower"]
    assert ok, auto
    faster = [c for c in ok if c["verdict"] == "faster"]
    # the fastest of those faster beyond noise; else (a ratio inside the noise decides nothing) the most accurate
    best = (min(faster, key=lambda c: c["latency_ratio"]) if faster else
            max(ok, key=lambda c: (float("inf") if c["identical"] else c["min_sqnr_db"], -c["size"])))
    assert auto["chosen"] == best["mode"]
    for c in ok:
        assert c["ci"][0] <= c["latency_ratio"] <= c["ci"][1]
    assert out.is_file() and out.stat().st_size == best["size"]
    if not best["identical"]:         # judged as the floor judges: pooled over the samples
        from tflc.runtime import compare_models
        cmp, _ = compare_models(str(MODEL), str(out), source=str(tmp_path / "cal.npz"))
        assert best["min_sqnr_db"] == pytest.approx(min(d.sqnr_db for d in cmp.pooled), abs=0.01)
    assert not any(p.name.startswith(".tflc-auto-") for p in tmp_path.iterdir())   # no temporary left behind


def _auto(tmp_path, capsys, mode: str) -> dict:
    """tflc optimize MODEL --quantize MODE at -O1 on the calibration samples: its --json."""
    rc, text, err = _run(capsys, "optimize", str(MODEL), "-o", str(tmp_path / "auto.tflite"), "-O1", "--quantize",
                         mode, "--calibration", _calibration(tmp_path), "--json")
    assert rc == 0, err
    return json.loads(text)


def test_a_target_only_float_reaches_keeps_every_op_float_and_says_so(tmp_path, capsys):
    """500 dB: int8's mixed precision keeps every op float (outputs identical), which is then the
    only candidate within the target."""
    data = _auto(tmp_path, capsys, "auto{min-sqnr=500}")
    auto = data["auto"]
    within = [c for c in auto["candidates"] if not c["error"] and c["identical"] and c["verdict"] != "slower"]
    faster = [c for c in within if c["verdict"] == "faster"]
    best = min(faster, key=lambda c: c["latency_ratio"]) if faster else max(within, key=lambda c: -c["size"])
    assert within and auto["chosen"] == best["mode"]
    assert "identical to the input's" in auto["why"]
    assert data["check"]["identical"] is True


def test_auto_never_writes_a_mode_that_is_slower_than_the_input(tmp_path, capsys, monkeypatch):
    import tflc.profiler

    class Slower:                     # every candidate measured 1.5x slower than the input
        ratio, ci_low, ci_high, verdict = 1.5, 1.4, 1.6, "slower"
    monkeypatch.setattr(tflc.profiler, "compare_latency", lambda *a, **k: Slower())
    data = _auto(tmp_path, capsys, "auto{min-sqnr=15}")
    auto = data["auto"]
    assert any(not c["error"] and (c["identical"] or c["min_sqnr_db"] >= 15) for c in auto["candidates"])
    assert auto["chosen"] is None and "slower than the input" in auto["why"] and "without quantization" in auto["why"]
    assert data["check"]["identical"] is True and not data.get("quantization")


def test_auto_options_are_checked():
    assert parse_auto("auto") == DEFAULT_TARGET_DB and parse_auto("auto{min-sqnr=30}") == 30.0
    assert parse_auto("int8") is None
    for bad in ("auto{min-sqnr=abc}", "auto{foo=1}"):
        with pytest.raises(UsageError):
            parse_auto(bad)
