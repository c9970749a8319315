"""split-requantize: an int8 <-> uint8 QUANTIZE XNNPACK refuses runs as DEQUANTIZE + QUANTIZE inside
its partition, where LiteRT proves that bit-identical."""
from __future__ import annotations

import numpy as np
import pytest

from tflc.io import serialize
from tflc.ir.build import add_op, new_model
from tflc.passes_api import parse_pipeline
from tflc.passmanager import TARGET_PASSES, PassContext, plan_pipeline, run_pipeline
from tflc.runtime import RunOptions, Session, compare_models
from tflc.runtime.delegation import xnnpack_delegation
from tflc.schema import TYPE_CODES, fb

I8, U8, F32 = TYPE_CODES["INT8"], TYPE_CODES["UINT8"], TYPE_CODES["FLOAT32"]


def _q(scale: float, zp: int) -> fb.QuantizationParametersT:
    q = fb.QuantizationParametersT()
    q.scale, q.zeroPoint = [scale], [zp]
    return q


def _uint8_interface(out_scale: float = 0.05, out_zp: int = 0):
    """x (uint8) -> QUANTIZE (uint8 -> int8) -> ADD (int8) -> QUANTIZE (int8 -> uint8) -> y (uint8):
    what a quantizer writes for a model with a uint8 interface (scales kept, zero points moved by 128)."""
    m, sg = new_model("uint8 interface")
    x = sg.new_tensor("x", U8, (1, 8, 8, 4), quantization=_q(0.05, 128))
    xi = sg.new_tensor("x_int8", I8, (1, 8, 8, 4), quantization=_q(0.05, 0))
    c = sg.new_constant("c", np.array([-40, -10, 10, 40], np.int8).reshape(1, 1, 1, 4), I8,
                        quantization=_q(0.05, 0))
    a = sg.new_tensor("a", I8, (1, 8, 8, 4), quantization=_q(0.05, -128))
    y = sg.new_tensor("y", U8, (1, 8, 8, 4), quantization=_q(out_scale, out_zp))
    q_in = add_op(sg, "QUANTIZE", [x], [xi])
    sg.require_version(q_in, 2)
    add_op(sg, "ADD", [xi, c], [a], fb.AddOptionsT(), fb.BuiltinOptions.AddOptions)
    q_out = add_op(sg, "QUANTIZE", [a], [y])
    sg.require_version(q_out, 2)
    sg.set_graph_inputs([x])
    sg.set_graph_outputs([y])
    return m


def _every_value(model_bytes: bytes, other: bytes) -> None:
    """Both models give the same bytes on all 256 input values at every position."""
    a, b = Session(model_bytes, RunOptions()), Session(other, RunOptions())
    n = 8 * 8 * 4
    for k in range(256):
        x = ((np.arange(n) + k) % 256).astype(np.uint8).reshape(1, 8, 8, 4)
        assert a.run([x])[0].tobytes() == b.run([x])[0].tobytes(), k


def test_the_interface_quantizes_join_the_partition_bit_identically():
    m = _uint8_interface()
    before = serialize(m)
    real = xnnpack_delegation(before)
    assert real.taken == [1], "XNNPACK leaves both requantizing QUANTIZEs on the CPU"
    ctx = PassContext(target="xnnpack")
    run_pipeline(m, parse_pipeline("split-requantize"), ctx)
    assert [op.type for op in m.main.operators] == ["DEQUANTIZE", "QUANTIZE", "ADD", "DEQUANTIZE", "QUANTIZE"]
    assert [t.name for t in m.main.outputs] == ["y"] and m.main.outputs[0].type_name == "UINT8"
    after = serialize(m)
    real = xnnpack_delegation(after)
    assert real.taken == list(range(5)) and len(real.partitions) == 1, "one partition, nothing on the CPU"
    cmp, _ = compare_models(before, after, steps=3)
    assert cmp.identical, cmp.to_json()
    _every_value(before, after)
    notes = [n for n in ctx.messages if n.startswith("split-requantize:")]
    assert len(notes) == 2 and "proved bit-identical" in notes[0]


def test_a_rescaling_requantization_the_float_route_rounds_differently_is_kept():
    """int8 scale 0.05 -> uint8 scale 0.1: half the values fall on a tie, which the fixed-point kernel
    rounds away from zero and XNNPACK's float QUANTIZE to even."""
    m = _uint8_interface(out_scale=0.1, out_zp=128)
    ctx = PassContext(target="xnnpack")
    run_pipeline(m, parse_pipeline("split-requantize"), ctx)
    types = [op.type for op in m.main.operators]
    assert types == ["DEQUANTIZE", "QUANTIZE", "ADD", "QUANTIZE"], "the input side is still split"
    kept = [n for n in ctx.messages if "kept QUANTIZE" in n]
    assert kept and "not bit-identical to the fixed-point requantization" in kept[0]
    assert "input value" in kept[0], "the refusal names a value where the two differ"


def test_quantizes_the_target_takes_and_float_quantizes_are_left_alone():
    m, sg = new_model("plain")
    x = sg.new_tensor("x", F32, (1, 16))
    q = sg.new_tensor("q", I8, (1, 16), quantization=_q(0.1, 0))
    r = sg.new_tensor("r", I8, (1, 16), quantization=_q(0.2, 3))        # int8 -> int8: XNNPACK takes it
    add_op(sg, "QUANTIZE", [x], [q])
    add_op(sg, "QUANTIZE", [q], [r])
    sg.set_graph_inputs([x])
    sg.set_graph_outputs([r])
    ctx = PassContext(target="xnnpack")
    assert not run_pipeline(m, parse_pipeline("split-requantize"), ctx)[0].changed
    assert not [n for n in ctx.messages if n.startswith("split-requantize")]


def test_covers_says_what_tflc_partition_can_offer():
    from tflc.passes.split_requantize import SplitRequantizePass
    from tflc.targets import get_target
    m = _uint8_interface()
    target = get_target("xnnpack")
    assert [SplitRequantizePass.covers(op, target) for op in m.main.operators] == [True, False, True]


def test_it_is_lossless_and_comes_first_with_target():
    from tflc.passes_api import get_pass
    assert get_pass("split-requantize").tolerance == 0.0
    assert TARGET_PASSES.index("split-requantize") < TARGET_PASSES.index("float-islands")
    plan = plan_pipeline(level="O1", target="xnnpack", tolerance=0.0)
    names = [p.name for p in plan.passes]
    assert "split-requantize" in names and "float-islands" not in names, "at --tolerance 0 it still runs"


def test_optimize_target_xnnpack_at_tolerance_0_writes_it(tmp_path):
    from tflc.optimize import optimize_file
    src = tmp_path / "in.tflite"
    src.write_bytes(serialize(_uint8_interface()))
    res = optimize_file(src, tmp_path / "out.tflite", level="O1", target="xnnpack", tolerance=0.0)
    assert any(r.name == "split-requantize" and r.changed for r in res.passes)
    real = xnnpack_delegation(tmp_path / "out.tflite")
    assert len(real.taken) == real.nodes


@pytest.mark.parametrize("dtype", ["int8", "uint8"])
def test_the_proof_covers_every_value(dtype):
    """The proof runs all 256 values of the input type at every position (k shifts of one ramp)."""
    from tflc.passes._exhaustive import prove
    from tflc.passes.split_requantize import split
    m = _uint8_interface()
    op = m.main.operators[0] if dtype == "uint8" else m.main.operators[2]
    proof = prove(op, split, "split-requantize")
    assert proof.ok and proof.cases == 256 * 8 * 8 * 4


def test_tflc_partition_lists_it(tmp_path, capsys):
    import json

    from tflc.cli.main import main
    path = tmp_path / "u8.tflite"
    path.write_bytes(serialize(_uint8_interface()))
    assert main(["partition", str(path), "--no-profile", "--json"]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert any(r.startswith("split-requantize:") and "(2 op(s) here" in r for r in rep["rewrites"]), rep["rewrites"]
