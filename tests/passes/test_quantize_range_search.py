"""quantize-int8's ranges=auto search (``passes._range_search``): output cones, the staged search
and its choice, k-fold held-out calibration samples (``TensorRange.without``, ``Samples.first``),
the pooled comparison, and the per-sample-mean estimator (``avgminmax``)."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from tflc.analyses.calibration import TensorRange
from tflc.io import read_model, read_model_bytes, serialize
from tflc.ir.build import add_op, new_model
from tflc.metrics import OutputDiff
from tflc.passes._range_search import output_cones, search
from tflc.passes._ranges import tensor_range
from tflc.passes.quantize_int8 import AUTO_MARGIN_DB, RANGE_METHODS
from tflc.passes_api import parse_pipeline
from tflc.passmanager import PassContext, run_pipeline
from tflc.runtime import RunResult, Session, compare_pooled, compare_results
from tflc.schema import TYPE_CODES, fb

F32 = TYPE_CODES["FLOAT32"]
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "mobilenet_tiny.tflite"


def _fc(sg, name, x, n_in, n_out, seed):
    w = sg.new_constant(f"{name}/w", np.random.default_rng(seed).normal(0, 0.5, (n_out, n_in)).astype(np.float32))
    b = sg.new_constant(f"{name}/b", np.zeros(n_out, np.float32))
    y = sg.new_tensor(name, F32, (1, n_out))
    o = fb.FullyConnectedOptionsT()
    add_op(sg, "FULLY_CONNECTED", [x, w, b], [y], o, fb.BuiltinOptions.FullyConnectedOptions)
    return y


def two_heads() -> bytes:
    """x -> FC (shared trunk) -> FC -> out_a, and the trunk -> FC -> FC -> out_b."""
    m, sg = new_model("two heads")
    x = sg.new_tensor("x", F32, (1, 16))
    sg.set_graph_inputs([x])
    trunk = _fc(sg, "trunk", x, 16, 16, 0)
    a = _fc(sg, "out_a", trunk, 16, 4, 1)
    hb = _fc(sg, "head_b", trunk, 16, 8, 2)
    b = _fc(sg, "out_b", hb, 8, 3, 3)
    sg.set_graph_outputs([a, b])
    return serialize(m)


def test_output_cones_map_each_head_to_its_output_and_leave_the_trunk_shared():
    m = read_model_bytes(two_heads())
    ops = list(m.main.operators)
    cones = output_cones(m, ops)
    by_name = {t.name: t.uid for op in ops for t in list(op.inputs) + list(op.outputs) if t is not None}
    assert cones[by_name["out_a"]] == "out_a"
    assert cones[by_name["head_b"]] == cones[by_name["out_b"]] == "out_b"
    assert by_name["trunk"] not in cones and by_name["x"] not in cones, "the trunk reaches both outputs"
    assert by_name["out_a/w"] not in cones, "constants are not activations"


# --- the search, with a scripted measurement -------------------------------------------------

def _diff(name, db):
    return OutputDiff(name, (1,), False, 0.1, 0.01, 0.01, 0.99, db)


def _patch_measure(monkeypatch, fake_measure):
    """The search measures its folds side by side (measure_all); each job answered by fake_measure."""
    monkeypatch.setattr("tflc.passes._sensitivity.measure_all",
                        lambda reference, jobs: [fake_measure(reference, fns, smp) for fns, smp in jobs])


def _scripted(monkeypatch, table):
    """measure() answers table(shared, heads) -> {output: dB} for each candidate built."""
    def fake_measure(reference, fns, smp):
        return [[_diff(o, v) for o, v in table(*fn()).items()] for fn in fns], smp.count
    _patch_measure(monkeypatch, fake_measure)


def _run(methods=RANGE_METHODS, margin=AUTO_MARGIN_DB, folds=1):
    cones = {1: "a", 2: "b", 3: "b"}
    head_of = {1: "a", 2: "b", 3: "b"}

    def params_for(shared, per_uid):
        heads = {head_of[u]: m for u, m in per_uid.items()}
        return shared, tuple(sorted(heads.items()))

    def build(prm):
        shared, heads = prm
        return shared, dict(heads)
    smp = type("S", (), {"count": 8})()
    return search(methods, [(params_for, smp)] * folds, build, b"", cones, margin)


def test_search_gives_a_head_its_own_estimator_where_its_output_gains(monkeypatch):
    uniform = {"minmax": (10, 10), "percentile": (12, 9), "mse": (11, 11), "avgminmax": (14, 6)}

    def table(shared, heads):
        a, b = uniform[shared]
        if shared == "avgminmax" and heads.get("b") == "mse":
            b = 11.0                       # b's own head wants wide ranges, the trunk tight ones
        return {"a": float(a), "b": float(b)}
    _scripted(monkeypatch, table)
    res = _run()
    assert res["chosen"] == "avgminmax" and res["heads"] == {"b": "mse"}
    assert res["methods"] == {2: "mse", 3: "mse"}, "only b's head tensors get it"
    assert res["sqnr_db"] == {"a": 14.0, "b": 11.0}
    assert set(res["candidates"]) == set(RANGE_METHODS)
    assert res["candidates"]["avgminmax"]["worst_sqnr_db"] == 6.0


def test_search_keeps_min_max_within_the_margin_and_pools_noise_over_folds(monkeypatch):
    _scripted(monkeypatch, lambda shared, heads: {"a": 10.0 + (0.2 if shared == "percentile" else 0), "b": 10.0})
    res = _run()
    assert res["chosen"] == "minmax" and res["heads"] == {}
    res = _run(margin=0.05, folds=3)
    assert res["chosen"] == "percentile"
    assert res["samples"] == 24 and math.isclose(res["sqnr_db"]["a"], 10.2, abs_tol=1e-6), \
        "three folds of equal noise pool to the same dB"


def test_search_survives_a_candidate_liteRT_refuses(monkeypatch):
    def fake_measure(reference, fns, smp):
        out = []
        for fn in fns:
            shared, heads = fn()
            out.append("RuntimeError: refused" if shared == "mse" else [_diff("a", 20.0), _diff("b", 20.0)])
        return out, smp.count
    _patch_measure(monkeypatch, fake_measure)
    res = _run()
    assert res["candidates"]["mse"] is None and res["chosen"] == "minmax"


# --- the pieces it stands on -----------------------------------------------------------------

def test_pooled_comparison_pools_signal_and_noise_over_the_steps():
    det = [{"name": "y", "quantization": (0.0, 0)}]
    ref = RunResult([], det, [{}, {}], [[np.array([1.0, 1.0], np.float32)], [np.array([3.0, 3.0], np.float32)]])
    got = RunResult([], det, [{}, {}], [[np.array([1.0, 2.0], np.float32)], [np.array([3.0, 3.0], np.float32)]])
    (d,) = compare_pooled(ref, got)
    assert math.isclose(d.sqnr_db, 10 * math.log10(20 / 1), rel_tol=1e-9)
    assert math.isclose(compare_results(ref, got).diffs[0].sqnr_db, 10 * math.log10(2 / 1), rel_tol=1e-9), \
        "the check's figure is the worst step"


def test_the_worst_step_sqnr_is_the_lowest_sqnr_not_the_largest_error():
    # step 0: a large signal with the largest absolute error (SQNR 20 dB); step 1: a small signal
    # with a small error (SQNR 0 dB). The diffs keep step 0; the worst SQNR is step 1's.
    det = [{"name": "y", "quantization": (0.0, 0)}]
    ref = RunResult([], det, [{}, {}], [[np.array([10.0], np.float32)], [np.array([0.1], np.float32)]])
    got = RunResult([], det, [{}, {}], [[np.array([11.0], np.float32)], [np.array([0.2], np.float32)]])
    cmp = compare_results(ref, got)
    assert math.isclose(cmp.diffs[0].max_abs, 1.0) and math.isclose(cmp.diffs[0].sqnr_db, 20.0, abs_tol=1e-4)
    assert math.isclose(cmp.worst_sqnr_db[0], 0.0, abs_tol=1e-4)
    assert cmp.to_json()["worst_step_sqnr_db"] == {"y": 0.0}


def test_avgminmax_is_the_mean_of_each_samples_min_and_max():
    v = np.sort(np.array([-3, -1, 0, 1, 2, 5], np.float32))
    r = TensorRange(-3.0, 5.0, v, 6, None, np.array([-3, -1], np.float32), np.array([5, 1], np.float32),
                    np.zeros(6, np.uint16))
    assert tensor_range(r, "avgminmax") == (-2.0, 3.0)
    assert tensor_range(TensorRange(-3.0, 5.0, v, 6), "avgminmax") == (-3.0, 5.0), "no per-sample record: min/max"


@pytest.fixture(scope="module")
def example_npz(tmp_path_factory):
    d = Session(str(EXAMPLE)).input_details[0]
    data = np.random.default_rng(7).uniform(-1, 1, (6, *d["shape"])).astype(np.float32)
    root = tmp_path_factory.mktemp("cv")
    np.savez(root / "all.npz", **{d["name"]: data})
    np.savez(root / "first4.npz", **{d["name"]: data[:4]})
    return root


def test_leaving_samples_out_gives_what_calibrating_without_them_gives(example_npz):
    m = read_model(EXAMPLE)
    full = PassContext(calibration=str(example_npz / "all.npz")).analyses
    part = PassContext(calibration=str(example_npz / "first4.npz")).analyses
    ra = full.get("calibration", m, PassContext(calibration=str(example_npz / "all.npz")))
    rb = part.get("calibration", m, PassContext(calibration=str(example_npz / "first4.npz")))
    assert ra.samples == 6 and rb.samples == 4
    checked = 0
    for uid, r in ra.ranges.items():
        w, ref = r.without(range(4, 6)), rb.ranges[uid]
        assert (w.min, w.max) == (ref.min, ref.max)
        np.testing.assert_array_equal(w.sample_min, ref.sample_min)
        assert tensor_range(w, "avgminmax") == tensor_range(ref, "avgminmax")
        assert w.samples.size < r.samples.size or r.sample_ids.max() < 4
        checked += (w.min, w.max) != (r.min, r.max)
    assert checked, "some tensor's range came from the samples left out"


def test_auto_on_a_real_model_measures_every_estimator_on_held_out_folds(example_npz):
    m = read_model(EXAMPLE)
    ctx = PassContext(calibration=str(example_npz / "all.npz"))
    run_pipeline(m, parse_pipeline("quantize-int8{ranges=auto,samples=4}"), ctx)
    fact = ctx.facts["quantize-int8"]
    auto = fact["ranges_auto"]
    assert auto["folds"] == 2 and auto["samples"] == 6, "6 samples: two folds of 3, each held out once"
    db = {k: c["worst_sqnr_db"] for k, c in auto["candidates"].items()}
    assert set(db) == set(RANGE_METHODS) and all(v is not None and v > 0 for v in db.values())
    best = max(db, key=db.get)                # one output: its mean is its worst
    assert auto["chosen"] == fact["ranges"]
    assert db[auto["chosen"]] == db[best] or (auto["chosen"] == "minmax" and db[best] - db["minmax"] <= AUTO_MARGIN_DB)
    assert auto["heads"] == {}, "one output: no heads"
    note = next(n for n in ctx.messages if "ranges=auto" in n)
    assert all(k in note for k in RANGE_METHODS) and "2 folds" in note and f"kept {auto['chosen']}" in note
    # the model written is the chosen estimator's
    m2 = read_model(EXAMPLE)
    run_pipeline(m2, parse_pipeline(f"quantize-int8{{ranges={auto['chosen']},samples=4}}"),
                 PassContext(calibration=str(example_npz / "all.npz")))
    assert serialize(m) == serialize(m2)

