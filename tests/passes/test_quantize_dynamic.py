"""quantize-dynamic: int8 per-channel weights, float activations, where XNNPACK takes the op so;
a depthwise conv (no dynamic-range kernel in XNNPACK) keeps float weights. Checked by SQNR."""
from __future__ import annotations

import numpy as np
import pytest

from tflc.io import read_model, serialize
from tflc.ir.build import add_op, new_model
from tflc.ir.quant import is_quantized, quant_params
from tflc.metrics import diff_output
from tflc.passes_api import get_pass, parse_pipeline
from tflc.passmanager import PassContext, plan_pipeline, run_pipeline
from tflc.runtime import Session
from tflc.runtime.delegation import xnnpack_delegation
from tflc.schema import TYPE_CODES, fb

F32 = TYPE_CODES["FLOAT32"]
RNG = np.random.default_rng(3)


def _model():
    """x -> CONV_2D -> DEPTHWISE_CONV_2D -> RESHAPE -> BATCH_MATMUL(const) -> RESHAPE -> FULLY_CONNECTED -> y"""
    m, sg = new_model("dynamic test")
    x = sg.new_tensor("x", F32, (1, 8, 8, 3))
    c = sg.new_tensor("c", F32, (1, 8, 8, 4))
    co = fb.Conv2DOptionsT()
    co.padding, co.strideW, co.strideH, co.fusedActivationFunction = 0, 1, 1, 1
    add_op(sg, "CONV_2D", [x, sg.new_constant("cw", RNG.normal(0, 0.5, (4, 3, 3, 3)).astype(np.float32)),
                           sg.new_constant("cb", RNG.normal(0, 0.1, (4,)).astype(np.float32))], [c],
           co, fb.BuiltinOptions.Conv2DOptions)
    d = sg.new_tensor("d", F32, (1, 8, 8, 4))
    do = fb.DepthwiseConv2DOptionsT()
    do.padding, do.strideW, do.strideH, do.depthMultiplier = 0, 1, 1, 1
    add_op(sg, "DEPTHWISE_CONV_2D", [c, sg.new_constant("dw", RNG.normal(0, 0.5, (1, 3, 3, 4)).astype(np.float32)),
                                     sg.new_constant("db", RNG.normal(0, 0.1, (4,)).astype(np.float32))], [d],
           do, fb.BuiltinOptions.DepthwiseConv2DOptions)
    r = sg.new_tensor("r", F32, (1, 64, 4))
    ro = fb.ReshapeOptionsT()
    ro.newShape = [1, 64, 4]
    add_op(sg, "RESHAPE", [d, sg.new_constant("s1", np.array([1, 64, 4], np.int32))], [r], ro,
           fb.BuiltinOptions.ReshapeOptions)
    b = sg.new_tensor("b", F32, (1, 64, 6))
    add_op(sg, "BATCH_MATMUL", [r, sg.new_constant("rhs", RNG.normal(0, 0.5, (4, 6)).astype(np.float32))], [b],
           fb.BatchMatMulOptionsT(), fb.BuiltinOptions.BatchMatMulOptions)
    f = sg.new_tensor("f", F32, (1, 384))
    ro2 = fb.ReshapeOptionsT()
    ro2.newShape = [1, 384]
    add_op(sg, "RESHAPE", [b, sg.new_constant("s2", np.array([1, 384], np.int32))], [f], ro2,
           fb.BuiltinOptions.ReshapeOptions)
    y = sg.new_tensor("y", F32, (1, 8))
    add_op(sg, "FULLY_CONNECTED", [f, sg.new_constant("fw", RNG.normal(0, 0.1, (8, 384)).astype(np.float32)),
                                   sg.new_constant("fb", RNG.normal(0, 0.1, (8,)).astype(np.float32))], [y],
           fb.FullyConnectedOptionsT(), fb.BuiltinOptions.FullyConnectedOptions)
    sg.set_graph_inputs([x])
    sg.set_graph_outputs([y])
    return m


def _sqnr(ref: bytes, got: bytes, n: int = 4) -> float:
    a, b = Session(ref), Session(got)
    xs = RNG.uniform(-1, 1, (n, 1, 8, 8, 3)).astype(np.float32)
    return min(diff_output("y", a.run([x])[0], b.run([x])[0]).sqnr_db for x in xs)


def test_weights_become_int8_per_channel_and_the_depthwise_conv_stays_float():
    m = _model()
    ref = serialize(m)
    ctx = PassContext()
    run_pipeline(m, parse_pipeline("quantize-dynamic"), ctx)
    one = {op.type: op for op in m.main.operators}
    for kind, channels, axis in (("CONV_2D", 4, 0), ("BATCH_MATMUL", 6, 1), ("FULLY_CONNECTED", 8, 0)):
        op = one[kind]
        w, q = op.inputs[1], quant_params(op.inputs[1])
        assert w.type_name == "INT8" and w.is_constant, kind
        assert q.per_channel and len(q.scale) == channels and q.axis == axis and set(q.zero_point) == {0}, kind
        assert w.data.min() >= -127 and np.abs(w.data).max() == 127
        assert op.inputs[0].type_name == "FLOAT32" and op.outputs[0].type_name == "FLOAT32", "activations stay float"
        if kind != "BATCH_MATMUL":
            assert op.inputs[2].type_name == "FLOAT32", "the bias stays float"
    dw = one["DEPTHWISE_CONV_2D"]
    assert dw.inputs[1].type_name == "FLOAT32" and not is_quantized(dw.inputs[1])
    assert any("kept DEPTHWISE_CONV_2D 'd' float: XNNPACK does not take it" in n for n in ctx.messages)
    assert not any(op.type in ("QUANTIZE", "DEQUANTIZE") for op in m.main.operators)
    out = serialize(m)
    # XNNPACK takes every op (the dynamic-range GEMMs and the float depthwise conv): one partition
    dl = xnnpack_delegation(out)
    assert dl.taken == list(range(dl.nodes)) and len(dl.partitions) == 1
    assert _sqnr(ref, out) > 30


def test_a_dynamic_range_depthwise_conv_would_split_the_partition():
    """Why the target's rule matters: with int8 weights forced on it, LiteRT leaves the depthwise conv out."""
    from tflc.passes.quantize_dynamic import WEIGHTED, rewrite
    m = _model()
    rewrite(m, {op.uid for op in m.main.operators if op.type in WEIGHTED})
    dw = next(op for op in m.main.operators if op.type == "DEPTHWISE_CONV_2D")
    assert dw.inputs[1].type_name == "INT8"
    dl = xnnpack_delegation(serialize(m))
    assert dw.index not in dl.taken and len(dl.partitions) == 2


def test_the_example_mobilenet(example_model, tmp_path):
    from tflc.optimize import optimize_file
    out = tmp_path / "dyn.tflite"
    res = optimize_file(example_model, out, level="O1", quantize="dynamic")
    assert res.check["min_sqnr_db"] == 20.0 and all(v >= 25.0 for v in res.check["sqnr_db"].values())
    assert res.size_after < 0.5 * res.size_before
    m = read_model(out)
    convs = [op for op in m.main.operators if op.type in ("CONV_2D", "FULLY_CONNECTED")]
    dws = [op for op in m.main.operators if op.type == "DEPTHWISE_CONV_2D"]
    assert convs and dws
    assert all(op.inputs[1].type_name == "INT8" and quant_params(op.inputs[1]).per_channel for op in convs)
    assert all(op.inputs[1].type_name == "FLOAT32" for op in dws)
    dl = xnnpack_delegation(out)
    assert dl.taken == list(range(dl.nodes)) and len(dl.partitions) == 1


def test_the_plan_and_the_options():
    plan = plan_pipeline(level="O1", quantize="dynamic")
    names = [p.name for p in plan.passes]
    assert names.index("quantize-dynamic") < names.index("remove-dead-code") and "float-islands" not in names
    assert plan.min_sqnr_db == 20.0
    plan = plan_pipeline(level="O0", quantize="dynamic{min-sqnr-db=35}")
    assert [p.name for p in plan.passes] == ["quantize-dynamic", "remove-dead-code"] and plan.min_sqnr_db == 35.0
    with pytest.raises(ValueError, match="ops"):
        get_pass("quantize-dynamic").Options(ops=["ADD"])


def test_float16_weights_are_folded_then_quantized():
    m = _model()
    run_pipeline(m, parse_pipeline("store-float16-weights"), PassContext())
    run_pipeline(m, parse_pipeline("quantize-dynamic"), PassContext())
    fc = next(op for op in m.main.operators if op.type == "FULLY_CONNECTED")
    assert fc.inputs[1].type_name == "INT8" and fc.inputs[1].producer is None
    Session(serialize(m)).run([np.zeros((1, 8, 8, 3), np.float32)])


def test_cli(tmp_path, example_model, capsys):
    from tflc.cli.main import main
    out = tmp_path / "q.tflite"
    assert main(["optimize", str(example_model), "-o", str(out), "-O1", "--quantize", "dynamic"]) == 0
    text = capsys.readouterr().out
    assert "quantize-dynamic" in text and "SQNR" in text


def test_transpose_conv():
    m, sg = new_model("transpose conv")
    x = sg.new_tensor("x", F32, (1, 4, 4, 8))
    y = sg.new_tensor("y", F32, (1, 8, 8, 6))
    o = fb.TransposeConvOptionsT()
    o.padding, o.strideW, o.strideH = 0, 2, 2
    add_op(sg, "TRANSPOSE_CONV", [sg.new_constant("os", np.array([1, 8, 8, 6], np.int32)),
                                  sg.new_constant("w", RNG.normal(0, 1, (6, 3, 3, 8)).astype(np.float32)), x,
                                  sg.new_constant("b", RNG.normal(0, 1, (6,)).astype(np.float32))], [y],
           o, fb.BuiltinOptions.TransposeConvOptions)
    sg.set_graph_inputs([x])
    sg.set_graph_outputs([y])
    ref = serialize(m)
    run_pipeline(m, parse_pipeline("quantize-dynamic"), PassContext())
    w = m.main.operators[0].inputs[1]
    assert w.type_name == "INT8" and len(quant_params(w).scale) == 6 and quant_params(w).axis == 0
    out = serialize(m)
    assert xnnpack_delegation(out).taken == [0]
    xs = RNG.normal(0, 1, (1, 4, 4, 8)).astype(np.float32)
    assert diff_output("y", Session(ref).run([xs])[0], Session(out).run([xs])[0]).sqnr_db > 30
