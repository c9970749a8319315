"""The calibration analysis: every main-subgraph tensor's range, from LiteRT on calibration samples."""
from __future__ import annotations

import numpy as np
import pytest

from tflc.analyses import get_analysis
from tflc.io import serialize
from tflc.ir.build import add_op, new_model
from tflc.runtime import RunOptions, Session
from tflc.schema import TYPE_CODES, fb


def PassContext(**kw):
    """What the analysis reads of a pass context (calibration, input_source, seed, shapes)."""
    from types import SimpleNamespace
    return SimpleNamespace(**{"calibration": None, "input_source": None, "seed": 0, "shapes": {}, **kw})

F32 = TYPE_CODES["FLOAT32"]
RNG = np.random.default_rng(3)


def _model():
    """x -> FULLY_CONNECTED (RELU) -> f -> TANH -> y"""
    m, sg = new_model("calibration test")
    x = sg.new_tensor("x", F32, (1, 16))
    w = sg.new_constant("w", RNG.normal(0, 0.5, (8, 16)).astype(np.float32))
    b = sg.new_constant("b", RNG.normal(0, 0.1, (8,)).astype(np.float32))
    f = sg.new_tensor("f", F32, (1, 8))
    o = fb.FullyConnectedOptionsT()
    o.fusedActivationFunction = 1
    add_op(sg, "FULLY_CONNECTED", [x, w, b], [f], o, fb.BuiltinOptions.FullyConnectedOptions)
    y = sg.new_tensor("y", F32, (1, 8))
    add_op(sg, "TANH", [f], [y])
    sg.set_graph_inputs([x])
    sg.set_graph_outputs([y])
    return m


def test_calibration_records_every_tensor_from_the_given_samples(tmp_path):
    m = _model()
    data = RNG.uniform(-2, 3, (10, 1, 16)).astype(np.float32)
    np.savez(tmp_path / "c.npz", x=data)
    cal = get_analysis("calibration").compute(m, PassContext(calibration=str(tmp_path / "c.npz")))
    assert cal.error is None and cal.warning is None and cal.samples == 10
    t = {t.name: t for t in m.main.tensors}
    assert (cal.ranges[t["x"].uid].min, cal.ranges[t["x"].uid].max) == pytest.approx((data.min(), data.max()))
    s = Session(serialize(m), RunOptions(xnnpack=False, preserve_all_tensors=True))
    idx = {d["name"]: d["index"] for d in s.tensor_details()}
    fs = np.stack([s.tensor_values([d])[idx["f"]] for d in data])
    assert (cal.ranges[t["f"].uid].min, cal.ranges[t["f"].uid].max) == pytest.approx((fs.min(), fs.max()))
    assert cal.ranges[t["f"].uid].min >= 0, "the fused RELU is inside the range"
    assert t["w"].uid in cal.ranges, "constants too"
    lo, hi = cal.ranges[t["x"].uid].range(99.0)
    assert data.min() < lo < hi < data.max()
    assert cal.ranges[t["x"].uid].range(None) == cal.ranges[t["x"].uid].range(100.0) == (data.min(), data.max())


def test_arr_keys_input_source_and_generated_data(tmp_path):
    m = _model()
    np.savez(tmp_path / "a.npz", RNG.uniform(-1, 1, (5, 1, 16)).astype(np.float32))
    assert get_analysis("calibration").compute(m, PassContext(calibration=str(tmp_path / "a.npz"))).samples == 5
    assert get_analysis("calibration").compute(m, PassContext(input_source=str(tmp_path / "a.npz"))).samples == 5
    gen = get_analysis("calibration").compute(m, PassContext())
    assert gen.warning and "generated" in gen.warning and gen.source == "generated" and gen.samples == 32
    np.savez(tmp_path / "bad.npz", nope=np.zeros((2, 1, 16), np.float32), other=np.zeros(3))
    bad = get_analysis("calibration").compute(m, PassContext(calibration=str(tmp_path / "bad.npz")))
    assert bad.error and "no array for input 'x'" in bad.error


def test_every_subgraph_is_calibrated_from_what_its_ops_write(zoo, tmp_path):
    """A WHILE model (main, condition, body): the body's tensors get ranges (each sample's last
    iteration), the subgraphs' input arguments (which alias the caller's buffers) do not."""
    from tflc.io import read_model
    model = read_model(zoo("while_loop"))
    assert len(model.subgraphs) == 3
    x = np.random.default_rng(3).uniform(-1, 1, (12, 1, 4)).astype(np.float32)
    np.savez(tmp_path / "cal.npz", x=x)
    cal = get_analysis("calibration").compute(model, PassContext(calibration=str(tmp_path / "cal.npz")))
    assert cal.error is None and cal.samples == 12
    body = next(sg for sg in model.subgraphs[1:] if any(op.type == "RELU" or "Relu" in op.output_name
                                                         for op in sg.operators))
    written = [t for op in body.operators for t in op.outputs if t.type_name == "FLOAT32"]
    assert written and all(t.uid in cal.ranges for t in written)
    relu = next(t for t in written if "Relu" in t.name)
    # the last iteration reads relu(2v - 1) >= 0 and writes relu(2v' - 1): in [0, max]
    want = x.reshape(12, 4)
    for _ in range(3):
        want = np.maximum(2 * want - 1, 0)
    assert cal.ranges[relu.uid].min == 0.0
    assert cal.ranges[relu.uid].max == pytest.approx(float(want.max()), rel=1e-5)
    for sg in model.subgraphs[1:]:
        assert not any(t.uid in cal.ranges for t in sg.inputs), "arguments alias the caller's buffers"


def test_a_stateful_model_calibrates_and_quantizes(zoo, tmp_path):
    """Resource variables and a CALL_ONCE initializer (2 subgraphs): reading every tensor back made
    LiteRT crash (SIGSEGV on a variable); only float tensors are read now."""
    from tflc.optimize import optimize_file
    from tflc.io import read_model
    path = zoo("stateful_counter")
    cal = get_analysis("calibration").compute(read_model(path), PassContext())
    assert cal.error is None and cal.samples > 0 and cal.ranges
    res = optimize_file(path, tmp_path / "q.tflite", level="O1", quantize="int8")
    q = res.quantization
    assert q and q["int8_ops"] > 0
    assert not any(n.startswith("warning: quantize-int8 did not change") for n in res.notes)
    assert all(v is not None and v >= 10 for v in res.check["sqnr_db"].values())
