"""exact-islands: int8 elementwise ops XNNPACK leaves on the CPU run in float inside its partition,
only where LiteRT proves the float version bit-identical on every input value."""
from __future__ import annotations

import numpy as np

from tflc.io import serialize
from tflc.ir.build import add_op, builtin_opcode, new_model
from tflc.passes_api import parse_pipeline
from tflc.passmanager import TARGET_PASSES, PassContext, plan_pipeline, run_pipeline
from tflc.runtime import RunOptions, Session, compare_models
from tflc.runtime.delegation import xnnpack_delegation
from tflc.schema import TYPE_CODES, fb

I8 = TYPE_CODES["INT8"]
SHAPE = (1, 4, 4, 8)


def _q(scale: float, zp: int) -> fb.QuantizationParametersT:
    q = fb.QuantizationParametersT()
    q.scale, q.zeroPoint = [scale], [zp]
    return q


def _chain(kind: str = "RELU", q_in=(0.1, 5), q_out=(0.05, -128), alpha=None, q_alpha=(0.01, 0)):
    """x (int8) -> ADD (taken) -> KIND (int8: XNNPACK refuses it) -> ADD (taken) -> y."""
    m, sg = new_model(f"int8 {kind}")
    shape = SHAPE if alpha is None else SHAPE[:3] + (len(alpha),)
    x = sg.new_tensor("x", I8, shape, quantization=_q(*q_in))
    a = sg.new_tensor("a", I8, shape, quantization=_q(*q_in))
    r = sg.new_tensor("r", I8, shape, quantization=_q(*q_out))
    y = sg.new_tensor("y", I8, shape, quantization=_q(q_out[0] * 2, q_out[1]))
    add_op(sg, "ADD", [x, x], [a], fb.AddOptionsT(), fb.BuiltinOptions.AddOptions)
    if alpha is None:
        act = add_op(sg, kind, [a], [r])
    else:
        slope = sg.new_constant("alpha", np.array(alpha, np.int8).reshape(1, 1, -1), I8, quantization=_q(*q_alpha))
        act = add_op(sg, kind, [a, slope], [r])
    if kind != "PRELU":                 # int8 RELU-family ops are version 2; PRELU has one version
        sg.require_version(act, 2)
    add_op(sg, "ADD", [r, r], [y], fb.AddOptionsT(), fb.BuiltinOptions.AddOptions)
    sg.set_graph_inputs([x])
    sg.set_graph_outputs([y])
    return m


def _every_value(a_bytes: bytes, b_bytes: bytes, shape) -> None:
    """Independent of the pass: both models agree on all 256 values at every position."""
    a, b = Session(a_bytes, RunOptions()), Session(b_bytes, RunOptions())
    n = int(np.prod(shape))
    for k in range(256):
        x = (-128 + (np.arange(n) + k) % 256).astype(np.int8).reshape(shape)
        assert a.run([x])[0].tobytes() == b.run([x])[0].tobytes(), k


def test_an_int8_relu_becomes_an_island_inside_the_partition_bit_identically():
    m = _chain("RELU")
    before = serialize(m)
    assert sorted(xnnpack_delegation(before).taken) == [0, 2], "XNNPACK leaves the int8 RELU out"
    ctx = PassContext(target="xnnpack")
    run_pipeline(m, parse_pipeline("exact-islands"), ctx)
    assert [op.type for op in m.main.operators] == ["ADD", "DEQUANTIZE", "RELU", "QUANTIZE", "ADD"]
    relu = m.main.operators[2]
    assert relu.inputs[0].type_name == "FLOAT32" and relu.outputs[0].type_name == "FLOAT32"
    assert m.main.operators[3].outputs[0].name == "r", "the int8 tensor keeps its name and quantization"
    after = serialize(m)
    real = xnnpack_delegation(after)
    assert real.taken == list(range(5)) and len(real.partitions) == 1, "one partition, nothing on the CPU"
    cmp, _ = compare_models(before, after, steps=3)
    assert cmp.identical, cmp.to_json()
    _every_value(before, after, SHAPE)
    assert any("proved bit-identical on all 256 input values" in n for n in ctx.messages)


def test_a_relu_the_float_route_rounds_differently_stays_on_the_cpu_and_says_where():
    """in 0.05 (zp -3) -> out 0.04: input -1 is 0.1 = 2.5 output steps, a tie the int8 kernel rounds up
    and XNNPACK's QUANTIZE to even."""
    m = _chain("RELU", q_in=(0.05, -3), q_out=(0.04, -128))
    ctx = PassContext(target="xnnpack")
    assert not run_pipeline(m, parse_pipeline("exact-islands"), ctx)[0].changed
    kept = [n for n in ctx.messages if n.startswith("exact-islands: kept RELU")]
    assert kept and "not bit-identical to the int8 kernel" in kept[0] and "input value -1" in kept[0], kept


def test_a_prelu_with_a_constant_slope_per_channel():
    m = _chain("PRELU", q_in=(0.1, -5), q_out=(0.07, -100), alpha=[100, -50, 20, 77], q_alpha=(0.002, 3))
    before = serialize(m)
    run_pipeline(m, parse_pipeline("exact-islands"), PassContext(target="xnnpack"))
    prelu = m.main.operators[2]
    assert prelu.type == "PRELU" and prelu.inputs[1].type_name == "FLOAT32"
    np.testing.assert_allclose(prelu.inputs[1].data.reshape(-1), (np.array([100, -50, 20, 77]) - 3) * 0.002,
                               rtol=1e-6)
    after = serialize(m)
    assert len(xnnpack_delegation(after).partitions) == 1
    _every_value(before, after, SHAPE[:3] + (4,))


def test_a_prelu_that_differs_in_float_is_kept():
    m = _chain("PRELU", q_in=(0.05, 0), q_out=(0.05, 0), alpha=[32, 64, 16, 0], q_alpha=(1 / 128, 0))
    ctx = PassContext(target="xnnpack")
    assert not run_pipeline(m, parse_pipeline("exact-islands"), ctx)[0].changed
    assert any("kept PRELU" in n and "float-islands may run it" in n for n in ctx.messages)


def test_two_activations_are_not_enumerated():
    m, sg = new_model("two inputs")
    x = sg.new_tensor("x", I8, (1, 16), quantization=_q(0.1, 0))
    z = sg.new_tensor("z", I8, (1, 16), quantization=_q(0.1, 0))
    y = sg.new_tensor("y", I8, (1, 16), quantization=_q(0.2, -128))
    add_op(sg, "SQUARED_DIFFERENCE", [x, z], [y])
    sg.set_graph_inputs([x, z])
    sg.set_graph_outputs([y])
    ctx = PassContext(target="xnnpack")
    assert not run_pipeline(m, parse_pipeline("exact-islands"), ctx)[0].changed
    assert any("reads 2 tensors computed at run time" in n for n in ctx.messages), ctx.messages


def test_float_ops_and_ops_the_target_takes_are_left_alone_silently():
    m, sg = new_model("float")
    x = sg.new_tensor("x", TYPE_CODES["FLOAT32"], (1, 16))
    y = sg.new_tensor("y", TYPE_CODES["FLOAT32"], (1, 16))
    add_op(sg, "RELU", [x], [y])
    sg.set_graph_inputs([x])
    sg.set_graph_outputs([y])
    ctx = PassContext(target="xnnpack")
    assert not run_pipeline(m, parse_pipeline("exact-islands"), ctx)[0].changed
    assert not ctx.messages


def test_the_proof_finds_a_rewrite_that_changes_one_value_range():
    """A wrong rewrite (the island, then RELU -> RELU6) differs only above 6.0: the proof finds it."""
    from tflc.passes._exhaustive import prove
    from tflc.passes.exact_islands import island

    def wrong(sg, op):
        island(sg, op)
        sg.set_opcode(op, builtin_opcode("RELU6"))

    m = _chain("RELU")
    relu = m.main.operators[1]
    assert prove(relu, island, "exact-islands").ok
    bad = prove(relu, wrong, "wrong")
    assert not bad.ok and "differs from the original" in bad.reason


def test_covers_says_what_tflc_partition_can_offer():
    from tflc.passes.exact_islands import ExactIslands
    from tflc.targets import get_target
    target = get_target("xnnpack")
    assert [ExactIslands.covers(op, target) for op in _chain("RELU").main.operators] == [False, True, False]
    tie = _chain("RELU", q_in=(0.05, -3), q_out=(0.04, -128))
    assert [ExactIslands.covers(op, target) for op in tie.main.operators] == [False, False, False]


def test_it_is_lossless_and_runs_before_float_islands():
    from tflc.passes_api import get_pass
    assert get_pass("exact-islands").tolerance == 0.0
    assert TARGET_PASSES.index("exact-islands") < TARGET_PASSES.index("float-islands")
    names = [p.name for p in plan_pipeline(level="O1", target="xnnpack", tolerance=0.0).passes]
    assert "exact-islands" in names and "float-islands" not in names


def test_optimize_target_xnnpack_at_tolerance_0_writes_it(tmp_path):
    from tflc.optimize import optimize_file
    src = tmp_path / "in.tflite"
    src.write_bytes(serialize(_chain("RELU6", q_in=(0.1, 5), q_out=(0.05, -128))))
    res = optimize_file(src, tmp_path / "out.tflite", level="O1", target="xnnpack", tolerance=0.0)
    assert any(r.name == "exact-islands" and r.changed for r in res.passes)
    real = xnnpack_delegation(tmp_path / "out.tflite")
    assert len(real.taken) == real.nodes and len(real.partitions) == 1


def test_per_channel_constants_are_dequantized_along_their_axis():
    from tflc.passes._islands import dequantized as _dequantized
    m, sg = new_model()
    q = fb.QuantizationParametersT()
    q.scale, q.zeroPoint, q.quantizedDimension = [0.5, 0.25], [0, 2], 1
    c = sg.new_constant("c", np.array([[4, 4], [6, 6]], np.int8), I8, quantization=q)
    np.testing.assert_array_equal(_dequantized(c), [[2.0, 0.5], [3.0, 1.0]])


def test_an_op_litert_cannot_run_alone_is_kept_without_a_proof():
    m = _chain("PRELU", q_in=(0.1, -5), q_out=(0.07, -100), alpha=[100, -50, 20, 77], q_alpha=(0.002, 3))
    prelu = m.main.operators[1]
    m.main.require_version(prelu, 2)                # no PRELU version 2 exists: LiteRT refuses to load it
    ctx = PassContext(target="xnnpack")
    assert not run_pipeline(m, parse_pipeline("exact-islands"), ctx)[0].changed
    assert any("no proof that it is exact in float: LiteRT could not run it" in n for n in ctx.messages), ctx.messages


def test_tflc_partition_lists_it(tmp_path, capsys):
    import json

    from tflc.cli.main import main
    path = tmp_path / "relu.tflite"
    path.write_bytes(serialize(_chain("RELU")))
    assert main(["partition", str(path), "--no-profile", "--json"]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert any(r.startswith("exact-islands:") and "(1 op(s) here" in r for r in rep["rewrites"]), rep["rewrites"]
