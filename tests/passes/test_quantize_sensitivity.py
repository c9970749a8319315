"""quantize-int8's measurements in LiteRT: the per-op sensitivity table (each op int8 alone), the
per-output errors of the result, and mixed precision (min-sqnr: the most sensitive ops stay float
until every output reaches the target)."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest

from tflc.cli.main import main
from tflc.io import read_model, serialize
from tflc.metrics import OutputDiff
from tflc.passes._sensitivity import Row, pick
from tflc.passes_api import parse_pipeline
from tflc.passmanager import PassContext, run_pipeline
from tflc.runtime import Session, compare_models

SAMPLES = 8


@pytest.fixture(scope="module")
def calib(tmp_path_factory):
    """The example model (mobilenet_tiny, converter-built, float) and calibration samples for it."""
    from pathlib import Path
    model = Path(__file__).resolve().parents[2] / "examples" / "mobilenet_tiny.tflite"
    d = Session(str(model)).input_details[0]
    path = tmp_path_factory.mktemp("sens") / "calib.npz"
    data = np.random.default_rng(5).uniform(-1, 1, (SAMPLES, *d["shape"])).astype(np.float32)
    np.savez(path, **{d["name"]: data})
    return model, path


def _quantize(model_path, calib_path, spec):
    m = read_model(model_path)
    ctx = PassContext(calibration=str(calib_path))
    run_pipeline(m, parse_pipeline(spec), ctx)
    return m, ctx


def _int8_ops(m):
    return [op for op in m.main.operators if op.type not in ("QUANTIZE", "DEQUANTIZE")
            and any(t.type_name == "INT8" for t in op.outputs)]


def test_the_sensitivity_table_has_a_finite_row_per_quantized_op(calib):
    model, path = calib
    m, ctx = _quantize(model, path, f"quantize-int8{{sensitivity=100,samples={SAMPLES}}}")
    fact = ctx.facts["quantize-int8"]
    rows = fact["sensitivity"]
    quantized = _int8_ops(m)
    assert len(rows) == fact["int8_ops"] == len(quantized) > 10
    assert sorted(r["output"] for r in rows) == sorted(op.output_name for op in quantized)
    assert {r["op"] for r in rows} <= {op.type for op in m.main.operators}
    for r in rows:
        assert r["sqnr_db"] is not None and math.isfinite(r["sqnr_db"]) and r["sqnr_db"] > 0, r
        assert "error" not in r
    assert [r["sqnr_db"] for r in rows] == sorted(r["sqnr_db"] for r in rows), "most sensitive first"
    # each op alone costs less than all of them together
    (out,) = fact["outputs"]
    assert all(out[k] is not None and math.isfinite(out[k]) for k in ("sqnr_db", "max_abs", "mean_abs", "cosine"))
    assert out["sqnr_db"] < rows[0]["sqnr_db"] and 0.9 < out["cosine"] <= 1.0 and out["mean_abs"] <= out["max_abs"]
    note = next(n for n in ctx.messages if "sensitivity" in n)
    assert rows[0]["output"] in note and f"{rows[0]['sqnr_db']:.1f} dB" in note
    assert any("measured on" in n and "cosine" in n for n in ctx.messages)


def test_min_sqnr_keeps_the_most_sensitive_ops_float_until_the_target_holds(calib):
    model, path = calib
    _, ctx0 = _quantize(model, path, "quantize-int8")
    base = ctx0.facts["quantize-int8"]["outputs"][0]["sqnr_db"]
    assert "sensitivity" not in ctx0.facts["quantize-int8"], "no table unless asked"
    target = round(base + 8, 1)
    m, ctx = _quantize(model, path, f"quantize-int8{{min-sqnr={target}}}")
    fact = ctx.facts["quantize-int8"]
    kept = fact["kept_float"]
    assert kept and fact["rounds"], "the all-int8 model was under the target"
    if fact["int8_ops"] == 0:           # everything float was tried
        assert any("nothing left to quantize" in n for n in ctx.messages)
        return
    assert fact["reached"] and fact["outputs"][0]["sqnr_db"] >= target
    assert fact["outputs_all_int8"][0]["sqnr_db"] == pytest.approx(base)
    assert fact["int8_ops"] == len(_int8_ops(m)) < len(fact["sensitivity"])
    assert kept[0]["rank"] == 1 or any(k["rank"] == 1 for k in kept), "the most sensitive op stays float first"
    still_int8 = {op.output_name for op in _int8_ops(m)}
    for k in kept:
        assert k["output"] not in still_int8
        assert any(n.startswith("quantize-int8: kept ") and f"'{k['output']}' float: min-sqnr={target:g}" in n
                   for n in ctx.messages), k["output"]
    for g in fact["given_back"]:        # kept float in a round, int8 again once the target held
        assert g["output"] in still_int8
    summary = next(n for n in ctx.messages if f"min-sqnr={target:g}: met" in n)
    assert kept[0]["output"] in summary and "alone" in summary
    # the same measurement outside the pass: LiteRT on the calibration samples, pooled over them
    cmp, _ = compare_models(str(model), serialize(m), source=str(path), steps=SAMPLES)
    assert cmp.pooled[0].sqnr_db >= target


def test_min_sqnr_is_judged_on_every_calibration_sample_not_only_the_ranking_ones(calib):
    # the sensitivity table ranks on `samples`; whether the target holds is judged on all of the
    # calibration set, which is what tflc optimize's floor checks
    model, path = calib
    _, ctx0 = _quantize(model, path, "quantize-int8")
    target = round(ctx0.facts["quantize-int8"]["outputs"][0]["sqnr_db"] + 4, 1)
    m, ctx = _quantize(model, path, f"quantize-int8{{min-sqnr={target},samples=2}}")
    fact = ctx.facts["quantize-int8"]
    assert fact["sensitivity_samples"] == 2 and fact["samples"] == SAMPLES
    assert any(f"measured on {SAMPLES} calibration sample(s)" in n for n in ctx.messages)
    assert any("sensitivity (model SQNR with only that op int8, 2 sample(s)" in n for n in ctx.messages)
    assert fact["reached"] and fact["rounds"]
    cmp, _ = compare_models(str(model), serialize(m), source=str(path), steps=SAMPLES)
    assert cmp.pooled[0].sqnr_db == pytest.approx(fact["outputs"][0]["sqnr_db"], abs=0.01)
    assert cmp.pooled[0].sqnr_db >= target


def test_pick_takes_the_biggest_noise_shares_until_the_budget_holds():
    rows = [Row(1, "CONV_2D", "a", {"y": 20.0}), Row(2, "ADD", "b", {"y": 30.0}), Row(3, "RELU", "c", {"y": 40.0}),
            Row(4, "CONV_2D", "d", {"y": 50.0})]
    diff = OutputDiff("y", (1,), False, 1.0, 0.5, 0.1, 0.99, 10 * math.log10(1 / (0.01 + 0.001 + 0.0001 + 0.00001)))
    assert [r.tensor for r in pick(rows, [diff], 25.0)] == ["a"]
    assert [r.tensor for r in pick(rows, [diff], 35.0)] == ["a", "b"]
    assert pick(rows, [diff], 15.0) == [], "already met"
    assert len(pick(rows, [diff], 200.0)) == 4
    assert [r.tensor for r in pick(rows, [diff], 25.0, least=3)] == ["a", "b", "c"], "later rounds take more"


def test_cli_min_sqnr_sets_the_option_and_json_reports_it(calib, tmp_path, capsys):
    model, path = calib
    out = tmp_path / "q.tflite"
    rc = main(["optimize", str(model), "-o", str(out), "-O1", "--quantize", "int8", "--min-sqnr", "35",
               "--calibration", str(path), "--json"])
    text, err = capsys.readouterr()
    assert rc == 0, err
    q = json.loads(text)["quantization"]
    assert q["min_sqnr"] == 35.0 and q["sensitivity"] and q["outputs"][0]["sqnr_db"] is not None
    assert q["reached"] or q["int8_ops"] == 0
    assert main(["optimize", str(model), "-o", str(tmp_path / "x.tflite"), "--quantize", "fp16", "--min-sqnr", "30"]) == 2
    assert "--min-sqnr needs --quantize int8" in capsys.readouterr().err


def test_max_error_keeps_the_most_sensitive_ops_float_until_every_output_error_is_under_it(calib, tmp_path, capsys):
    model, path = calib
    _, ctx0 = _quantize(model, path, "quantize-int8")
    base = ctx0.facts["quantize-int8"]["outputs"][0]
    limit = float(f"{base['max_abs'] / 3:.3g}")            # a third of the all-int8 largest error
    out = tmp_path / "q.tflite"
    rc = main(["optimize", str(model), "-o", str(out), "-O1", "--quantize", "int8", "--max-error", str(limit),
               "--calibration", str(path), "--json"])
    text, err = capsys.readouterr()
    assert rc == 0, err
    q = json.loads(text)["quantization"]
    assert q["max_error"] == limit and q["min_sqnr"] is None and q["kept_float"] and q["rounds"]
    assert q["reached"] and q["outputs"][0]["max_abs"] <= limit < q["outputs_all_int8"][0]["max_abs"]
    assert q["int8_ops"] > 0, "a third of the error is reachable with most ops int8"
    # the same measurement outside the pass
    cmp, _ = compare_models(str(model), str(out), source=str(path), steps=SAMPLES)
    assert cmp.pooled[0].max_abs <= limit
    assert main(["optimize", str(model), "-o", str(tmp_path / "x.tflite"), "--quantize", "auto",
                 "--max-error", "0.1"]) == 2
    assert "--max-error needs --quantize int8" in capsys.readouterr().err
    assert main(["optimize", str(model), "-o", str(tmp_path / "x.tflite"), "--quantize", "int8",
                 "--max-error", "-1"]) == 2
    assert "max-error must be a finite number above 0" in capsys.readouterr().err


def test_goal_targets_turn_a_max_error_into_the_sqnr_an_output_needs():
    from tflc.passes._sensitivity import Goal
    d = OutputDiff("y", (1,), False, 0.4, 0.1, 0.05, 0.99, 20.0)       # max abs 0.4 at 20 dB
    g = Goal(max_error=0.1)
    assert g.targets([d])["y"] == pytest.approx(20.0 + 20 * math.log10(4))   # 4x smaller error: +12 dB
    assert not g.met([d]) and g.shortfall([d]) == pytest.approx(20 * math.log10(4))
    both = Goal(min_sqnr=40.0, max_error=0.1)
    assert both.targets([d])["y"] == 40.0 and both.label == "min-sqnr=40, max-error=0.1"
    assert Goal(max_error=1.0).met([d]) and Goal(max_error=1.0).targets([d])["y"] < 20.0   # slack to give back


def test_cli_sensitivity_reports_the_table(calib, tmp_path, capsys):
    model, path = calib
    rc = main(["optimize", str(model), "-o", str(tmp_path / "q.tflite"), "-O1", "--quantize", "int8",
               "--sensitivity", "3", "--calibration", str(path), "--json"])
    text, err = capsys.readouterr()
    assert rc == 0, err
    data = json.loads(text)
    rows = data["quantization"]["sensitivity"]
    assert len(rows) == data["quantization"]["int8_ops"] > 3 and "min_sqnr" not in data["quantization"]
    note = next(n for n in data["notes"] if "sensitivity (model SQNR with only that op int8" in n)
    assert note.count(" dB on ") == 3 and rows[0]["output"] in note


def test_a_refused_result_still_reports_what_was_measured(calib, tmp_path, capsys):
    model, path = calib
    out, rep = tmp_path / "q.tflite", tmp_path / "rep.json"
    rc = main(["optimize", str(model), "-o", str(out), "-O1", "--quantize", "int8{min-sqnr-db=80}",
               "--calibration", str(path), "--report", str(rep), "--json"])
    text, err = capsys.readouterr()
    assert rc == 1 and not out.exists() and "under the 80 dB required" in err
    data = json.loads(text)
    assert data["exit_code"] == 1 and data["written"] is False
    saved = json.loads(rep.read_text())
    assert saved["error"] == data["error"] and saved["check"]["min_sqnr_db"] == 80
    assert {k: v for k, v in data.items() if k != "exit_code"} == saved, "--json and --report: one layout"
    assert saved["quantization"]["outputs"][0]["sqnr_db"] < 80 and saved["passes"]


def test_under_the_floor_the_fallback_keeps_the_most_sensitive_ops_float_with_a_warning(calib, tmp_path, capsys):
    model, path = calib
    _, ctx0 = _quantize(model, path, "quantize-int8")
    floor = round(ctx0.facts["quantize-int8"]["outputs"][0]["sqnr_db"] + 3, 1)   # every op int8 is under it
    out = tmp_path / "q.tflite"
    rc = main(["optimize", str(model), "-o", str(out), "-O1", "--quantize", f"int8{{min-sqnr-db={floor}}}",
               "--calibration", str(path), "--json"])
    text, err = capsys.readouterr()
    assert rc == 0, err
    data = json.loads(text)
    q = data["quantization"]
    fb = q["fallback"]
    assert fb["floor_db"] == floor and fb["reached"] and fb["all_int8_worst_db"] < floor and fb["kept_float"] > 0
    assert len(q["kept_float"]) == fb["kept_float"] and 0 < q["int8_ops"] < len(q["sensitivity"])
    assert "min_sqnr" not in q, "the floor is not a target the user set"
    assert any(n.startswith("warning: with every op int8") and "kept float to hold it" in n for n in data["notes"])
    assert data["check"]["sqnr_db"]["StatefulPartitionedCall:0"] >= floor
    # fallback=false: full int8 or nothing, as before
    rc = main(["optimize", str(model), "-o", str(tmp_path / "f.tflite"), "-O1", "--quantize",
               f"int8{{min-sqnr-db={floor},fallback=false}}", "--calibration", str(path)])
    assert rc == 1 and f"under the {floor:g} dB required" in capsys.readouterr().err
