"""quantize-int8 and the calibration analysis: ranges from LiteRT, the TFLite int8 spec, the check."""
from __future__ import annotations

import numpy as np
import pytest

from tflc.passes.quantize_int8 import (activation_params, quantize_bias, quantize_weights, weight_scales)
from tflc.analyses import get_analysis
from tflc.io import read_model, serialize
from tflc.ir.build import add_op, new_model
from tflc.ir.quant import quant_params
from tflc.metrics import diff_output
from tflc.passes_api import parse_pipeline
from tflc.passmanager import PassContext, plan_pipeline, run_pipeline
from tflc.runtime import RunOptions, Session
from tflc.schema import TYPE_CODES, fb

F32 = TYPE_CODES["FLOAT32"]
RNG = np.random.default_rng(7)


def _model():
    """x -> CONV_2D(relu) -> MAX_POOL_2D -> RESHAPE -> FULLY_CONNECTED -> LOGISTIC -> MUL -> y1
                                                                   \\-> DIV(const) -> y2 (no int8 DIV)"""
    m, sg = new_model("quantize test")
    x = sg.new_tensor("x", F32, (1, 8, 8, 3))
    w = sg.new_constant("w", RNG.normal(0, 0.5, (4, 3, 3, 3)).astype(np.float32))
    b = sg.new_constant("b", RNG.normal(0, 0.1, (4,)).astype(np.float32))
    c = sg.new_tensor("c", F32, (1, 8, 8, 4))
    co = fb.Conv2DOptionsT()
    co.padding, co.strideW, co.strideH, co.fusedActivationFunction = 0, 1, 1, 1   # SAME, RELU
    add_op(sg, "CONV_2D", [x, w, b], [c], co, fb.BuiltinOptions.Conv2DOptions)
    p = sg.new_tensor("p", F32, (1, 4, 4, 4))
    po = fb.Pool2DOptionsT()
    po.padding, po.strideW, po.strideH, po.filterWidth, po.filterHeight = 1, 2, 2, 2, 2
    add_op(sg, "MAX_POOL_2D", [c], [p], po, fb.BuiltinOptions.Pool2DOptions)
    shape = sg.new_constant("shape", np.array([1, 64], np.int32))
    r = sg.new_tensor("r", F32, (1, 64))
    ro = fb.ReshapeOptionsT()
    ro.newShape = [1, 64]
    add_op(sg, "RESHAPE", [p, shape], [r], ro, fb.BuiltinOptions.ReshapeOptions)
    fw = sg.new_constant("fw", RNG.normal(0, 0.2, (8, 64)).astype(np.float32))
    fbias = sg.new_constant("fb", RNG.normal(0, 0.1, (8,)).astype(np.float32))
    f = sg.new_tensor("f", F32, (1, 8))
    add_op(sg, "FULLY_CONNECTED", [r, fw, fbias], [f], fb.FullyConnectedOptionsT(),
           fb.BuiltinOptions.FullyConnectedOptions)
    lg = sg.new_tensor("l", F32, (1, 8))
    add_op(sg, "LOGISTIC", [f], [lg])
    y1 = sg.new_tensor("y1", F32, (1, 8))
    add_op(sg, "MUL", [lg, lg], [y1], fb.MulOptionsT(), fb.BuiltinOptions.MulOptions)
    three = sg.new_constant("three", np.array([3.0], np.float32))
    y2 = sg.new_tensor("y2", F32, (1, 8))
    add_op(sg, "DIV", [f, three], [y2], fb.DivOptionsT(), fb.BuiltinOptions.DivOptions)
    sg.set_graph_inputs([x])
    sg.set_graph_outputs([y1, y2])
    return m


def _samples(n=8):
    return RNG.uniform(-1, 1, (n, 1, 8, 8, 3)).astype(np.float32)


def _npz(tmp_path, key="x", n=8):
    data = _samples(n)
    path = tmp_path / "calib.npz"
    np.savez(path, **{key: data})
    return path, data


def _by_name(sg):
    return {t.name: t for t in sg.tensors}


# --- the maths ---

def test_activation_params_hold_zero_and_the_range():
    s, z = activation_params(-1.0, 3.0)
    assert s == pytest.approx(4 / 255) and -128 <= z <= 127
    assert (-128 - z) * s == pytest.approx(-1.0, abs=s) and (127 - z) * s == pytest.approx(3.0, abs=s)
    assert activation_params(0.5, 2.0)[1] == -128, "a positive range starts at 0"
    assert activation_params(-2.0, -0.5)[1] == 127, "a negative range ends at 0"
    assert activation_params(0.0, 0.0) == (1 / 255, -128)


def test_weights_are_symmetric_per_channel_and_biases_use_the_product_of_scales():
    w = RNG.normal(0, 1, (4, 3, 3, 2)).astype(np.float32)
    w[2] = 0
    s = weight_scales(w, 0)
    q = quantize_weights(w, s, 0)
    assert q.dtype == np.int8 and q.min() >= -127 and np.all(np.abs(q).reshape(4, -1).max(1)[[0, 1, 3]] == 127)
    assert np.all(q[2] == 0)
    assert np.allclose(q * s[:, None, None, None], w, atol=s.max() / 2 + 1e-7)
    bias = np.array([0.5, -0.25, 0.0, 1.0], np.float32)
    bq = quantize_bias(bias, 0.02 * s)
    assert bq.dtype == np.int32 and np.allclose(bq * 0.02 * s, bias, atol=(0.02 * s).max())


# --- the pass ---

def test_quantize_int8_follows_the_spec_and_runs_in_litert(tmp_path):
    m = _model()
    ref = serialize(m)
    path, data = _npz(tmp_path)
    ctx = PassContext(calibration=str(path))
    run_pipeline(m, parse_pipeline("quantize-int8"), ctx)
    sg = m.main
    types = [op.type for op in sg.operators]
    assert sorted(types) == sorted(["QUANTIZE", "CONV_2D", "MAX_POOL_2D", "RESHAPE", "FULLY_CONNECTED", "LOGISTIC",
                                    "MUL", "DEQUANTIZE", "DEQUANTIZE", "DIV"])
    assert types[0] == "QUANTIZE" and sg.operators[0].inputs[0].name == "x"
    one = {op.type: op for op in sg.operators}
    conv, pool, resh, fc, lg = (one[k] for k in ("CONV_2D", "MAX_POOL_2D", "RESHAPE", "FULLY_CONNECTED", "LOGISTIC"))
    for op in (conv, fc):
        qi, qw, qb = (quant_params(t) for t in op.inputs)
        w = op.inputs[1]
        assert w.type_name == "INT8" and qw.per_channel and qw.axis == 0 and set(qw.zero_point) == {0}
        assert w.data.min() >= -127
        assert op.inputs[2].type_name == "INT32" and set(qb.zero_point) == {0}
        assert np.allclose(qb.scale, np.float32(qi.scale[0]) * np.asarray(qw.scale, np.float32), rtol=1e-6)
    for op in (pool, resh):
        assert quant_params(op.inputs[0]) == quant_params(op.outputs[0]), f"{op.type} keeps its parameters"
    assert quant_params(lg.outputs[0]).scale == (1 / 256,) and quant_params(lg.outputs[0]).zero_point == (-128,)
    div = one["DIV"]
    assert div.inputs[0].producer.type == "DEQUANTIZE" and div.inputs[0].type_name == "FLOAT32" and div.outputs[0].type_name == "FLOAT32"
    assert [t.name for t in sg.outputs] == ["y1", "y2"] and all(t.type_name == "FLOAT32" for t in sg.outputs)
    assert any("kept DIV 'y2' float" in n for n in ctx.messages)
    a, b = Session(ref), Session(serialize(m))
    for x in data[:3]:
        for u, v in zip(a.run([x]), b.run([x])):
            assert diff_output("y", u, v).sqnr_db > 25


def test_io_int8_and_float16_weights(tmp_path):
    m = _model()
    run_pipeline(m, parse_pipeline("store-float16-weights"), PassContext())
    assert "DEQUANTIZE" in [op.type for op in m.main.operators], "float16 weights behind DEQUANTIZE"
    path, data = _npz(tmp_path)
    ctx = PassContext(calibration=str(path))
    run_pipeline(m, parse_pipeline("quantize-int8{io=int8}"), ctx)
    sg = m.main
    assert sg.inputs[0].type_name == "INT8" and sg.inputs[0].name == "x"
    assert sg.outputs[0].type_name == "INT8" and sg.outputs[1].type_name == "FLOAT32", "DIV writes y2 in float"
    assert not any(t.type_name == "FLOAT16" for t in sg.tensors)
    s = Session(serialize(m))
    (sc, zp) = s.input_details[0]["quantization"]
    out = s.run([np.clip(np.round(data[0] / sc) + zp, -128, 127).astype(np.int8)])
    assert out[0].dtype == np.int8


def test_io_uint8_shifts_the_edges_grid_by_128_and_runs_the_same_int8_model_inside(tmp_path):
    path, data = _npz(tmp_path)
    outs = {}
    base = _model()                      # _model() draws new weights each call
    for io in ("int8", "uint8"):
        m = base.clone()
        ctx = PassContext(calibration=str(path))
        run_pipeline(m, parse_pipeline(f"quantize-int8{{io={io},ranges=minmax}}"), ctx)
        sg = m.main
        assert sg.inputs[0].name == "x" and sg.outputs[0].name == "y1"      # the names users feed and read
        s = Session(serialize(m))
        (sc, zp), = [d["quantization"] for d in s.input_details]
        info = np.iinfo(np.int8 if io == "int8" else np.uint8)
        x = np.clip(np.round(data[0] / sc) + zp, info.min, info.max).astype(info.dtype)
        (osc, ozp) = s.output_details[0]["quantization"]
        y = s.run([x])[0]
        assert y.dtype == info.dtype
        outs[io] = ((sc, zp), (osc, ozp), (y.astype(np.float64) - ozp) * osc)
        if io == "uint8":
            assert sg.inputs[0].type_name == "UINT8" and sg.outputs[0].type_name == "UINT8"
            assert sg.outputs[1].type_name == "FLOAT32", "DIV writes y2 in float"
            edges = [op for op in sg.operators if op.type == "QUANTIZE"
                     and {op.inputs[0].type_name, op.outputs[0].type_name} == {"UINT8", "INT8"}]
            assert len(edges) == 2
            assert any("input 'x' is uint8" in n for n in ctx.messages)
    (s8, z8), (o8, oz8), y8 = outs["int8"]
    (su, zu), (ou, ozu), yu = outs["uint8"]
    assert (su, zu) == (s8, z8 + 128) and (ou, ozu) == (o8, oz8 + 128)
    assert np.array_equal(y8, yu), "uint8 <-> int8 at the same scale is exact: the same model inside"


def test_io_int8_says_which_edges_stay_float_and_why(tmp_path):
    path, _ = _npz(tmp_path)
    m = _model()
    ctx = PassContext(calibration=str(path))
    run_pipeline(m, parse_pipeline("quantize-int8{io=int8,keep-float=CONV_2D}"), ctx)
    assert m.main.inputs[0].type_name == "FLOAT32"
    assert any("input 'x' stays float, not io=int8: CONV_2D" in n and "keep-float" in n for n in ctx.messages)
    assert any("output 'y2' stays float" in n for n in ctx.messages), "DIV writes y2"


def test_a_quantizer_that_changes_nothing_is_a_warning_of_the_result(tmp_path):
    from tflc.io import write_model
    from tflc.optimize import optimize_file
    path, _ = _npz(tmp_path)
    src = tmp_path / "m.tflite"
    write_model(_model(), src)
    res = optimize_file(src, tmp_path / "o.tflite", level="O1", calibration=str(path),
                        quantize="int8{keep-float=CONV_2D:MAX_POOL_2D:RESHAPE:FULLY_CONNECTED:LOGISTIC:MUL}")
    assert any(n.startswith("warning: quantize-int8 did not change the model (nothing to quantize")
               for n in res.notes), res.notes


def test_io_uint8_is_for_int8_activations():
    from tflc.passes.quantize_int8 import QuantizeInt8Options
    with pytest.raises(ValueError, match="io=uint8 is for int8 activations"):
        QuantizeInt8Options(io="uint8", activations="int16")


def test_the_plan_adds_the_quantizer_and_float_islands_before_the_clean_up():
    plan = plan_pipeline(level="O1", quantize="int8")
    names = [p.name for p in plan.passes]
    assert names.index("quantize-int8") + 1 == names.index("float-islands") < names.index("remove-dead-code")
    assert plan.min_sqnr_db == 10.0
    plan = plan_pipeline(level="O1", quantize="int8{min-sqnr-db=30}", target="xnnpack")
    names = [p.name for p in plan.passes]
    assert names.count("float-islands") == 1 and names.index("quantize-int8") < names.index("float-islands")
    assert plan.min_sqnr_db == 30.0
    assert [p.name for p in plan_pipeline(level="O0", quantize="int8").passes] == [
        "quantize-int8", "float-islands", "remove-dead-code"]
    from tflc.errors import UsageError
    with pytest.raises(UsageError, match="unknown --quantize mode"):
        plan_pipeline(level="O1", quantize="int4")


def test_optimize_checks_the_sqnr_of_each_output(tmp_path, example_model):
    from tflc.optimize import OutputCheckFailed, optimize_file
    m = read_model(example_model)
    shape = m.main.inputs[0].shape
    cal = tmp_path / "cal.npz"
    np.savez(cal, RNG.uniform(-1, 1, (8, *shape)).astype(np.float32))
    out = tmp_path / "q.tflite"
    res = optimize_file(example_model, out, level="O1", quantize="int8", calibration=str(cal))
    assert res.check["min_sqnr_db"] == 10.0 and all(v >= 20.0 for v in res.check["sqnr_db"].values())
    assert res.check["steps"] == 8, "checked on the calibration samples (no --inputs)"
    assert any(n.startswith("quantized output ") and "dB" in n for n in res.notes)
    assert res.size_after < 0.6 * res.size_before
    types = {op.type for op in read_model(out).main.operators}
    assert {"CONV_2D", "QUANTIZE", "DEQUANTIZE"} <= types
    bad = tmp_path / "bad.tflite"
    with pytest.raises(OutputCheckFailed, match="SQNR") as e:
        optimize_file(example_model, bad, level="O1", quantize="int8{min-sqnr-db=90,fallback=false}",
                      calibration=str(cal))
    assert not bad.exists()
    msg = str(e.value)
    assert "over 8 samples" in msg and "--min-sqnr DB" in msg and "--quantize 'int8{min-sqnr-db=N}'" in msg, msg
    # the fallback (the default) tried keeping ops float first: the refusal says so, not "add --min-sqnr"
    with pytest.raises(OutputCheckFailed, match="SQNR") as e:
        optimize_file(example_model, bad, level="O1", quantize="int8{min-sqnr-db=90}", calibration=str(cal))
    assert "did not reach it either (tried: the fallback)" in str(e.value) and "--min-sqnr DB" not in str(e.value)
    assert "quantized by quantize-int8" in msg and "fold-affine" not in msg, "the quantizer is named, not the rest"
    # dynamic range has no mixed precision: its refusal does not send the user to --min-sqnr
    with pytest.raises(OutputCheckFailed, match="SQNR") as e:
        optimize_file(example_model, bad, level="O1", quantize="dynamic{min-sqnr-db=200}", calibration=str(cal))
    msg = str(e.value)
    assert "--min-sqnr" not in msg and "--quantize auto" in msg and "--quantize 'dynamic{min-sqnr-db=N}'" in msg, msg
    # the floor's figure is pooled over the samples; the worst sample's is reported beside it
    assert set(res.check["sqnr_db_worst_step"]) == set(res.check["sqnr_db"])


def _cmp(worst_db: float, pooled_db: float):
    from tflc.metrics import OutputDiff
    from tflc.runtime import Comparison
    d = lambda db: OutputDiff("mask", (1, 4), False, 0.06, 0.001, 1.0, 0.9, db)  # noqa: E731
    return Comparison([d(worst_db)], 32, pooled=[d(pooled_db)])


def test_the_sqnr_floor_judges_the_samples_together_not_the_worst_one():
    from tflc.passmanager import sqnr_violation
    # a segmentation mask on a crop with nothing in it: near-silent, one sample far under 0 dB
    assert sqnr_violation(_cmp(-31.5, 20.2), 10.0) is None
    bad = sqnr_violation(_cmp(15.0, 9.7), 10.0)
    assert bad and "9.7 dB over 32 samples" in bad


def test_cli_quantize(tmp_path, example_model, capsys):
    from tflc.cli.main import main
    out = tmp_path / "q.tflite"
    assert main(["optimize", str(example_model), "-o", str(out), "-O1", "--quantize", "int8"]) == 0
    text = capsys.readouterr().out
    assert "quantize-int8" in text and "no calibration data" in text and "SQNR" in text


def test_verify_each_judges_the_quantizer_by_sqnr(tmp_path, example_model):
    from tflc.optimize import optimize_file
    res = optimize_file(example_model, tmp_path / "q.tflite", level="O0", quantize="int8", verify_each=True)
    assert [r.name for r in res.passes] == ["quantize-int8", "float-islands", "remove-dead-code"]
    assert all(r.max_rel_error is not None for r in res.passes)


def _small(ops):
    m, sg = new_model("small")
    x = sg.new_tensor("x", F32, (1, 8))
    made = {"x": x}
    for op, ins, out, shape, opts in ops:
        t = sg.new_tensor(out, F32, shape)
        made[out] = t
        add_op(sg, op, [made[i] for i in ins], [t], *opts)
    sg.set_graph_inputs([x])
    sg.set_graph_outputs([made[ops[-1][2]]])
    return m


def _softmax_opts():
    so = fb.SoftmaxOptionsT()
    so.beta = 1.0
    return so, fb.BuiltinOptions.SoftmaxOptions


def test_an_op_litert_refuses_in_int8_stays_float(monkeypatch):
    import tflc.passes.quantize_int8 as q
    monkeypatch.setitem(q.FIXED, "SOFTMAX", (1 / 128, 0))          # parameters LiteRT's int8 SOFTMAX refuses
    m = _small([("SOFTMAX", ["x"], "s", (1, 8), _softmax_opts()),
                ("ADD", ["s", "x"], "y", (1, 8), (fb.AddOptionsT(), fb.BuiltinOptions.AddOptions))])
    ctx = PassContext()
    run_pipeline(m, parse_pipeline("quantize-int8"), ctx)
    sm = next(op for op in m.main.operators if op.type == "SOFTMAX")
    assert sm.outputs[0].type_name == "FLOAT32"
    assert any("kept SOFTMAX 's' float: LiteRT refused it in int8" in n and "zero_point" in n for n in ctx.messages)
    Session(serialize(m)).run([np.zeros((1, 8), np.float32)])


def _quantized_concat(first: tuple, data: np.ndarray, tmp_path):
    """``first`` (an op on x) concatenated with ADD(x, x), then ADD(c, c): quantized on ``data``."""
    co = fb.ConcatenationOptionsT()
    co.axis = 1
    m = _small([first, ("ADD", ["x", "x"], "b", (1, 8), (fb.AddOptionsT(), fb.BuiltinOptions.AddOptions)),
                ("CONCATENATION", ["a", "b"], "c", (1, 16), (co, fb.BuiltinOptions.ConcatenationOptions)),
                ("ADD", ["c", "c"], "y", (1, 16), (fb.AddOptionsT(), fb.BuiltinOptions.AddOptions))])
    ref = serialize(m)
    np.savez(tmp_path / "cal.npz", x=data)
    ctx = PassContext(calibration=str(tmp_path / "cal.npz"))
    run_pipeline(m, parse_pipeline("quantize-int8{ranges=minmax}"), ctx)
    return m, ref, ctx


def test_a_fixed_parameter_op_in_a_wider_group_requantizes_into_the_group_instead_of_clipping_it(tmp_path):
    """CONCATENATION(LOGISTIC(x), 2x), x in [-2, 2]: the concatenation's inputs and output share one
    scale; LOGISTIC's int8 output must be (1/256, -128). Forcing [0, 1) on the group clipped 2x
    (1.9 dB); the group keeps its own range and LOGISTIC requantizes into it (QUANTIZE int8 -> int8)."""
    from tflc.runtime.delegation import xnnpack_delegation
    data = np.random.default_rng(0).uniform(-2, 2, (16, 1, 8)).astype(np.float32)
    m, ref, _ = _quantized_concat(("LOGISTIC", ["x"], "a", (1, 8), ()), data, tmp_path)
    by = {op.type: op for op in m.main.operators}
    assert quant_params(by["LOGISTIC"].outputs[0]).scale == (np.float32(1 / 256),)
    assert quant_params(by["LOGISTIC"].outputs[0]).zero_point == (-128,)
    concat = by["CONCATENATION"]
    cq = quant_params(concat.outputs[0])
    assert cq.scale[0] > 3.9 / 255 and all(quant_params(t) == cq for t in concat.inputs)
    requant = [op for op in m.main.operators if op.type == "QUANTIZE" and op.inputs[0].type_name == "INT8"]
    assert [op.inputs[0].producer.type for op in requant] == ["LOGISTIC"]
    a, b = Session(ref), Session(serialize(m))
    got = np.concatenate([b.run([x])[0] for x in data])
    want = np.concatenate([a.run([x])[0] for x in data])
    assert diff_output("y", want, got).sqnr_db > 30
    d = xnnpack_delegation(serialize(m))
    assert len(d.partitions) == 1 and d.taken == list(range(d.nodes))     # the requantize too: one partition


def _reshape_opts(shape):
    o = fb.ReshapeOptionsT()
    o.newShape = list(shape)
    return o


def test_a_fixed_parameter_op_whose_group_fits_its_grid_keeps_it(tmp_path):
    """RESHAPE / MAX_POOL of a LOGISTIC fit [0, 1): the group takes the fixed parameters, no requantize."""
    m = _small([("LOGISTIC", ["x"], "a", (1, 8), ()),
                ("RESHAPE", ["a"], "r", (1, 8), (_reshape_opts((1, 8)), fb.BuiltinOptions.ReshapeOptions)),
                ("ADD", ["r", "x"], "y", (1, 8), (fb.AddOptionsT(), fb.BuiltinOptions.AddOptions))])
    np.savez(tmp_path / "cal.npz", x=np.random.default_rng(1).uniform(-3, 3, (8, 1, 8)).astype(np.float32))
    run_pipeline(m, parse_pipeline("quantize-int8"), PassContext(calibration=str(tmp_path / "cal.npz")))
    reshape = next(op for op in m.main.operators if op.type == "RESHAPE")
    assert quant_params(reshape.outputs[0]).scale == (np.float32(1 / 256),)
    assert not any(op.type == "QUANTIZE" and op.inputs[0].type_name == "INT8" for op in m.main.operators)


def test_two_fixed_parameters_in_one_group_both_requantize_into_it(tmp_path):
    data = np.random.default_rng(2).uniform(-2, 2, (16, 1, 8)).astype(np.float32)
    co = fb.ConcatenationOptionsT()
    co.axis = 1
    m = _small([("LOGISTIC", ["x"], "a", (1, 8), ()), ("TANH", ["x"], "b", (1, 8), ()),
                ("CONCATENATION", ["a", "b"], "c", (1, 16), (co, fb.BuiltinOptions.ConcatenationOptions)),
                ("ADD", ["c", "c"], "y", (1, 16), (fb.AddOptionsT(), fb.BuiltinOptions.AddOptions))])
    ref = serialize(m)
    np.savez(tmp_path / "cal.npz", x=data)
    run_pipeline(m, parse_pipeline("quantize-int8"), PassContext(calibration=str(tmp_path / "cal.npz")))
    by = {op.type: op for op in m.main.operators}
    assert by["CONCATENATION"].outputs[0].type_name == "INT8" and by["ADD"].outputs[0].type_name == "INT8"
    assert quant_params(by["TANH"].outputs[0]).scale == (np.float32(1 / 128),)
    requant = sorted(op.inputs[0].producer.type for op in m.main.operators
                     if op.type == "QUANTIZE" and op.inputs[0].type_name == "INT8")
    assert requant == ["LOGISTIC", "TANH"]
    a, b = Session(ref), Session(serialize(m))
    got = np.concatenate([b.run([x])[0] for x in data])
    want = np.concatenate([a.run([x])[0] for x in data])
    assert diff_output("y", want, got).sqnr_db > 30


def test_percentile_ranges_are_narrower(tmp_path):
    path, _ = _npz(tmp_path, n=16)
    scales = {}
    for pct in (100, 99):
        m = _model()
        run_pipeline(m, parse_pipeline(f"quantize-int8{{percentile={pct}}}"), PassContext(calibration=str(path)))
        q = next(op for op in m.main.operators if op.type == "QUANTIZE")
        scales[pct] = quant_params(q.outputs[0]).scale[0]
    assert scales[99] < scales[100]


def test_transpose_conv_is_quantized_per_channel_by_the_spec_and_xnnpack_takes_it(zoo, tmp_path):
    """TRANSPOSE_CONV reads (output shape, weights OHWI, input, bias): int8 weights per output channel
    (axis 0, zero point 0), an int32 bias at input scale x weight scale."""
    from tflc.io import read_model
    from tflc.runtime.delegation import xnnpack_delegation
    src = zoo("tiny_decoder")
    m = read_model(src)
    x = np.random.default_rng(4).uniform(0, 1, (16, 1, 16, 16, 3)).astype(np.float32)
    np.savez(tmp_path / "cal.npz", x)                 # arr_0: the first input
    run_pipeline(m, parse_pipeline("quantize-int8"), PassContext(calibration=str(tmp_path / "cal.npz")))
    tc = next(op for op in m.main.operators if op.type == "TRANSPOSE_CONV")
    shape, w, data, bias = tc.inputs
    assert shape.type_name == "INT32" and w.type_name == "INT8" and data.type_name == "INT8"
    wq, bq, xq = quant_params(w), quant_params(bias), quant_params(data)
    assert wq.axis == 0 and len(wq.scale) == w.shape[0] == 6 and set(wq.zero_point) == {0}
    assert int(np.abs(w.data).max()) <= 127
    assert bias.type_name == "INT32" and np.allclose(bq.scale, np.float32(xq.scale[0]) * np.asarray(wq.scale),
                                                     rtol=1e-6)
    a, b = Session(str(src)), Session(serialize(m))
    want = np.concatenate([a.run([s])[0] for s in x])
    got = np.concatenate([b.run([s])[0] for s in x])
    assert diff_output("y", want, got).sqnr_db > 30
    d = xnnpack_delegation(serialize(m))
    assert d.taken == list(range(d.nodes)) and len(d.partitions) == 1


def test_an_explicit_quantize_pass_is_checked_on_the_calibration_samples(tmp_path, example_model):
    """--passes 'quantize-int8,...' with --calibration and no --inputs: the floor is checked on the
    calibration samples, as with --quantize (it was the check's own 3 generated inputs)."""
    from tflc.optimize import optimize_file
    shape = read_model(example_model).main.inputs[0].shape
    cal = tmp_path / "cal.npz"
    np.savez(cal, RNG.uniform(-1, 1, (6, *shape)).astype(np.float32))
    res = optimize_file(example_model, tmp_path / "q.tflite", passes="quantize-int8,remove-dead-code",
                        calibration=str(cal))
    assert res.check["steps"] == 6 and res.check["min_sqnr_db"] == 10.0
