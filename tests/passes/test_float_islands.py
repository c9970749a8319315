"""float-islands: int8 ops XNNPACK leaves on the CPU run in float inside its partition."""
from __future__ import annotations

import numpy as np
import pytest

from tflc.io import read_model, read_model_bytes, serialize
from tflc.ir.build import add_op, new_model
from tflc.passes_api import parse_pipeline
from tflc.passmanager import PassContext, run_pipeline
from tflc.runtime import RunOptions, compare_models
from tflc.runtime.delegation import xnnpack_delegation
from tflc.schema import TYPE_CODES, fb


def _q(scale: float, zp: int) -> fb.QuantizationParametersT:
    q = fb.QuantizationParametersT()
    q.scale, q.zeroPoint = [scale], [zp]
    return q


def _int8_softmax_model():
    """x (int8) -> ADD (int8, taken) -> SOFTMAX (int8: XNNPACK refuses) -> ADD (taken) -> y."""
    m, sg = new_model("int8 softmax")
    i8 = TYPE_CODES["INT8"]
    x = sg.new_tensor("x", i8, (1, 16), quantization=_q(0.05, 0))
    c = sg.new_constant("c", np.full((1, 16), 10, np.int8), i8, quantization=_q(0.05, 0))
    a = sg.new_tensor("a", i8, (1, 16), quantization=_q(0.1, 0))
    s = sg.new_tensor("s", i8, (1, 16), quantization=_q(1 / 256, -128))
    y = sg.new_tensor("y", i8, (1, 16), quantization=_q(1 / 128, -128))
    add_op(sg, "ADD", [x, c], [a], fb.AddOptionsT(), fb.BuiltinOptions.AddOptions)
    so = fb.SoftmaxOptionsT()
    so.beta = 1.0
    sm = add_op(sg, "SOFTMAX", [a], [s], so, fb.BuiltinOptions.SoftmaxOptions)
    sg.require_version(sm, 2)
    add_op(sg, "ADD", [s, s], [y], fb.AddOptionsT(), fb.BuiltinOptions.AddOptions)
    sg.set_graph_inputs([x])
    sg.set_graph_outputs([y])
    return m


def test_an_int8_softmax_becomes_a_float_island_inside_the_partition(tmp_path):
    m = _int8_softmax_model()
    before = serialize(m)
    assert sorted(xnnpack_delegation(before).taken) == [0, 2], "XNNPACK leaves the int8 SOFTMAX out"
    ctx = PassContext(target="xnnpack")
    run_pipeline(m, parse_pipeline("float-islands"), ctx)
    types = [op.type for op in m.main.operators]
    assert types == ["ADD", "DEQUANTIZE", "SOFTMAX", "QUANTIZE", "ADD"]
    sm = m.main.operators[2]
    assert sm.inputs[0].type_name == "FLOAT32" and sm.outputs[0].type_name == "FLOAT32"
    after = serialize(m)
    real = xnnpack_delegation(after)
    assert real.taken == list(range(5)) and len(real.partitions) == 1, "one partition, nothing on the CPU"
    cmp, _ = compare_models(before, after, options=RunOptions(), steps=3)
    assert all(d.max_steps is not None and d.max_steps <= 1 for d in cmp.diffs), cmp.to_json()
    assert any("runs in float inside the partition" in n for n in ctx.messages)


def test_ops_the_target_already_takes_are_left_alone(zoo):
    m = read_model(zoo("mobilenet_tiny_int8"))
    ctx = PassContext(target="xnnpack")
    run_pipeline(m, parse_pipeline("float-islands"), ctx)
    # every int8 op of this CNN but its SOFTMAX head is taken by XNNPACK already
    assert [op.type for op in m.main.operators].count("DEQUANTIZE") <= 1


def test_covers_says_what_tflc_partition_can_offer():
    from tflc.passes.float_islands import FloatIslands
    from tflc.targets import get_target
    m = _int8_softmax_model()
    target = get_target("xnnpack")
    assert [FloatIslands.covers(op, target) for op in m.main.operators] == [False, True, False]


def test_optimize_target_xnnpack_checks_steps(tmp_path):
    from tflc.optimize import optimize_file
    src = tmp_path / "in.tflite"
    src.write_bytes(serialize(_int8_softmax_model()))
    res = optimize_file(src, tmp_path / "out.tflite", level="O1", target="xnnpack")
    assert any(r.name == "float-islands" and r.changed for r in res.passes)
    assert res.check["quant_steps"] == 8
    out = read_model_bytes((tmp_path / "out.tflite").read_bytes())
    assert "DEQUANTIZE" in [op.type for op in out.main.operators]


@pytest.mark.parametrize("name", ["transformer_encoder_3x192", "mobilenet_v3_small"])
def test_converter_int8_models_end_in_one_partition_and_stay_as_accurate(zoo, name):
    path, float_path = zoo(f"{name}_int8"), zoo(name)
    before = xnnpack_delegation(path)
    m = read_model(path)
    run_pipeline(m, parse_pipeline("float-islands"), PassContext(target="xnnpack"))
    islands = serialize(m)
    after = xnnpack_delegation(islands)
    assert len(after.partitions) == 1 < len(before.partitions)
    assert len(after.taken) == after.nodes, "nothing left on the CPU"
    cmp, _ = compare_models(str(path), islands, steps=2)
    assert all(d.max_steps is not None and d.max_steps <= 8 for d in cmp.diffs), cmp.to_json()
    # against the float model, the islands are at least as accurate as the int8 original
    orig, _ = compare_models(str(float_path), str(path), steps=2)
    new, _ = compare_models(str(float_path), islands, steps=2)
    for a, b in zip(orig.diffs, new.diffs):
        assert b.sqnr_db >= a.sqnr_db - 0.1, (a.sqnr_db, b.sqnr_db)


def test_the_exact_islands_change_nothing_on_the_int8_transformer(zoo):
    """ADD (scale ratio), RSQRT, SOFTMAX and GELU in float give the int8 kernels' very values here."""
    path = zoo("transformer_encoder_3x192_int8")
    m = read_model(path)
    run_pipeline(m, parse_pipeline("float-islands{ops=ADD:RSQRT:SOFTMAX:GELU}"), PassContext(target="xnnpack"))
    assert "SOFTMAX" in [op.type for op in m.main.operators]
    cmp, _ = compare_models(str(path), serialize(m), steps=2)
    assert cmp.identical
