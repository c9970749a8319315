"""TFLC_LUT8 / TFLC_LUT8X8: table kernels bit-identical to LiteRT's int8 builtin kernels, run by
tflc.runtime inside the stock interpreter (tables made by LiteRT from the op itself)."""
from __future__ import annotations

import numpy as np
import pytest

from tflc.io import serialize
from tflc.ir.build import add_op, custom_opcode, new_model
from tflc.ir.core import Operator
from tflc.passes_api import parse_pipeline
from tflc.passmanager import PassContext, run_pipeline
from tflc.runtime import RunOptions, Session
from tflc.schema import TYPE_CODES, fb

import tflc.kernels as K
from tflc.kernels import lut
from tflc.kernels.library import CONSTRAINTS, KERNELS, REPLACES

I8, U8 = TYPE_CODES["INT8"], TYPE_CODES["UINT8"]


def _q(scale: float, zp: int) -> fb.QuantizationParametersT:
    q = fb.QuantizationParametersT()
    q.scale, q.zeroPoint = [scale], [zp]
    return q


def _binary(kind: str, a_shape, b_shape, out_shape, qa=(0.05, 3), qb=(0.02, -7), qo=(0.1, -20)):
    m, sg = new_model(f"int8 {kind}")
    a = sg.new_tensor("a", I8, a_shape, quantization=_q(*qa))
    b = sg.new_tensor("b", I8, b_shape, quantization=_q(*qb))
    y = sg.new_tensor("y", I8, out_shape, quantization=_q(*qo))
    opts = {"SUB": (fb.SubOptionsT(), fb.BuiltinOptions.SubOptions), "MUL": (fb.MulOptionsT(), fb.BuiltinOptions.MulOptions),
            "SQUARED_DIFFERENCE": (fb.SquaredDifferenceOptionsT(), fb.BuiltinOptions.SquaredDifferenceOptions)}[kind]
    add_op(sg, kind, [a, b], [y], *opts)
    sg.set_graph_inputs([a, b])
    sg.set_graph_outputs([y])
    return m


def _unary(kind: str, shape, qi=(0.05, 3), qo=(1 / 128, 0)):
    m, sg = new_model(f"int8 {kind}")
    x = sg.new_tensor("x", I8, shape, quantization=_q(*qi))
    y = sg.new_tensor("y", I8, shape, quantization=_q(*qo))
    op = add_op(sg, kind, [x], [y])
    if kind in ("ABS", "RSQRT"):
        sg.require_version(op, 2)
    sg.set_graph_inputs([x])
    sg.set_graph_outputs([y])
    return m


def _kernels(m):
    ctx = PassContext(target="xnnpack")
    out = m.clone()
    run_pipeline(out, parse_pipeline("use-kernels{measure=false}"), ctx)
    return out, ctx


def _random(shape, rng, dt=np.int8):
    info = np.iinfo(dt)
    return rng.integers(info.min, info.max + 1, size=shape).astype(dt)


@pytest.mark.parametrize("kind", ["SQUARED_DIFFERENCE", "SUB", "MUL"])
@pytest.mark.parametrize("shapes", [((1, 4, 8), (1, 4, 8), (1, 4, 8)),      # same shape
                                    ((1, 4, 8), (1, 4, 1), (1, 4, 8)),      # a row of b per row (layer norm)
                                    ((1, 1, 8), (1, 4, 8), (1, 4, 8)),      # a broadcast over rows
                                    ((2, 1, 3, 5), (1, 4, 1, 5), (2, 4, 3, 5)),
                                    ((1, 1), (1, 1), (1, 1))])
def test_lut8x8_is_bit_identical_to_the_builtin_op(kind, shapes):
    # SUB and MUL with scales XNNPACK refuses (input 1's scale far below the output's), as the
    # converter's layer norms have them; SQUARED_DIFFERENCE XNNPACK never takes in int8
    qb = (0.02, -7) if kind == "SQUARED_DIFFERENCE" else (1e-5, -7)
    m = _binary(kind, *shapes, qb=qb)
    out, _ = _kernels(m)
    types = [op.type for op in out.main.operators]
    assert types == [lut.LUT8X8], types
    ref, got = Session(serialize(m), RunOptions()), Session(serialize(out), RunOptions())
    rng = np.random.default_rng(1)
    cases = [[_random(shapes[0], rng), _random(shapes[1], rng)] for _ in range(5)]
    cases += [[np.full(shapes[0], v, np.int8), np.full(shapes[1], w, np.int8)] for v in (-128, 127) for w in (-128, 127)]
    for x in cases:
        assert ref.run(x)[0].tobytes() == got.run(x)[0].tobytes()


def test_the_whole_lut8x8_table_is_the_builtin_op_on_every_pair():
    """All 65,536 input pairs, independent of how the pass made the table."""
    m = _binary("SQUARED_DIFFERENCE", (65536,), (65536,), (65536,))
    out, _ = _kernels(m)
    i = np.arange(65536)
    a = (i >> 8).astype(np.uint8).view(np.int8)
    b = (i & 255).astype(np.uint8).view(np.int8)
    ref = Session(serialize(m), RunOptions()).run([a, b])[0]
    got = Session(serialize(out), RunOptions()).run([a, b])[0]
    assert ref.tobytes() == got.tobytes()
    table = lut.decode_table(lut.LUT8X8, out.main.operators[0].custom_options)
    assert np.array_equal(lut.reference(lut.LUT8X8, table, a, b), ref)


@pytest.mark.parametrize("kind", ["GELU", "HARD_SWISH", "ABS", "RSQRT"])
def test_lut8_is_bit_identical_on_every_value(kind):
    """Ops XNNPACK leaves on the builtin kernels in int8."""
    qo = {"GELU": (0.03, -100), "HARD_SWISH": (0.04, -90), "ABS": (0.05, -128), "RSQRT": (0.02, -100)}[kind]
    qi = (0.05, -128) if kind == "RSQRT" else (0.05, 3)     # RSQRT: only values >= 0
    m = _unary(kind, (1, 3, 256), qi=qi, qo=qo)
    out, _ = _kernels(m)
    assert [op.type for op in out.main.operators] == [lut.LUT8]
    x = np.stack([np.roll(np.arange(256).astype(np.uint8).view(np.int8), k) for k in range(3)]).reshape(1, 3, 256)
    ref = Session(serialize(m), RunOptions()).run([x])[0]
    got = Session(serialize(out), RunOptions()).run([x])[0]
    assert ref.tobytes() == got.tobytes()


def test_a_chain_of_table_ops_becomes_one_table():
    """SQUARED_DIFFERENCE -> RSQRT (both left to the builtin kernels by XNNPACK): one 65,536-entry
    table, the RSQRT's table applied to the SQUARED_DIFFERENCE's."""
    m, sg = new_model("sqdiff then rsqrt")
    a = sg.new_tensor("a", I8, (1, 4, 8), quantization=_q(0.05, 0))
    b = sg.new_tensor("b", I8, (1, 4, 1), quantization=_q(0.05, 0))
    d = sg.new_tensor("d", I8, (1, 4, 8), quantization=_q(0.02, -128))
    y = sg.new_tensor("y", I8, (1, 4, 8), quantization=_q(0.05, -128))
    add_op(sg, "SQUARED_DIFFERENCE", [a, b], [d], fb.SquaredDifferenceOptionsT(), fb.BuiltinOptions.SquaredDifferenceOptions)
    r = add_op(sg, "RSQRT", [d], [y])
    sg.require_version(r, 2)
    sg.set_graph_inputs([a, b])
    sg.set_graph_outputs([y])
    out, _ = _kernels(m)
    types = [op.type for op in out.main.operators]
    assert types == [lut.LUT8X8], types
    rng = np.random.default_rng(0)
    ref, got = Session(serialize(m), RunOptions()), Session(serialize(out), RunOptions())
    for _ in range(4):
        x = [_random((1, 4, 8), rng), _random((1, 4, 1), rng)]
        assert ref.run(x)[0].tobytes() == got.run(x)[0].tobytes()


def _custom_model(code: str, options: bytes, shape=(2, 3)):
    m, sg = new_model("a tflc kernel")
    x = sg.new_tensor("x", I8, shape, quantization=_q(0.1, 0))
    y = sg.new_tensor("y", I8, shape, quantization=_q(0.1, 0))
    sg.add_op(Operator(custom_opcode(code), [x], [y], custom_options=options))
    sg.set_graph_inputs([x])
    sg.set_graph_outputs([y])
    return m


def test_a_lut8_op_runs_with_resized_inputs_and_empty_tensors():
    table = (np.arange(256) ^ 0x55).astype(np.uint8)     # any table: a permutation of the bytes
    m = _custom_model(lut.LUT8, lut.encode_options(table))
    s = Session(serialize(m), RunOptions())
    for shape in [(2, 3), (7, 11), (1, 1), (0, 5)]:
        x = np.random.default_rng(0).integers(-128, 128, size=shape).astype(np.int8)
        y = s.run([x])[0]
        assert y.shape == shape
        assert np.array_equal(y, lut.reference(lut.LUT8, table, x))


def test_a_corrupt_table_is_refused_with_a_reason():
    m = _custom_model(lut.LUT8, b"not a flexbuffer at all")
    with pytest.raises(Exception) as e:
        Session(serialize(m), RunOptions()).run([np.zeros((2, 3), np.int8)])
    assert "TFLC_LUT8" in str(e.value)
    ok, why = CONSTRAINTS[lut.LUT8](_custom_model(lut.LUT8, lut.encode_options(np.zeros(256, np.uint8))).main.operators[0])
    assert ok, why
    bad = _custom_model(lut.LUT8, b"")
    ok, why = CONSTRAINTS[lut.LUT8](bad.main.operators[0])
    assert not ok and "flexbuffer" in why


def test_the_library_registers_its_kernels_under_tflc_codes():
    assert set(KERNELS) >= {lut.LUT8, lut.LUT8X8}
    assert K.lookup(lut.LUT8) is KERNELS[lut.LUT8]
    assert K.registered()[lut.LUT8] == "tflc"
    for code, pred in REPLACES.items():
        assert pred.describe()


def test_replaces_says_why_an_op_is_no_table():
    m = _binary("SUB", (1, 4, 8), (1, 4, 8), (1, 4, 8))
    op = m.main.operators[0]
    ok, why = REPLACES[lut.LUT8](op)
    assert not ok and "2 tensor(s) computed at run time" in why
    ok, _ = REPLACES[lut.LUT8X8](op)
    assert ok
    m2 = _binary("SUB", (1, 2, 2, 2, 2), (1, 2, 2, 2, 2), (1, 2, 2, 2, 2))
    ok, why = REPLACES[lut.LUT8X8](m2.main.operators[0])
    assert not ok and "rank" in why


def test_encode_options_refuses_a_wrong_table():
    with pytest.raises(ValueError):
        lut.encode_options(np.zeros(100, np.uint8))


def test_an_op_lite_rt_fails_on_for_some_values_is_refused_with_the_reason():
    """int8 RSQRT of an input that can be negative: LiteRT's kernel fails on those values, so
    there is no table that means what the op means."""
    m = _unary("RSQRT", (1, 8), qi=(0.05, 3), qo=(0.02, -100))
    out, ctx = _kernels(m)
    assert [op.type for op in out.main.operators] == ["RSQRT"]
    assert any("fails on some of the input values" in n for n in ctx.messages), ctx.messages


def test_no_python_runs_per_invoke():
    """After the first run (prepare, in Python), a run calls no Python of the kernel, its helpers
    or tflc's delegate: LiteRT calls the Numba cfunc directly."""
    import sys
    from tflc.kernels import _native
    from tflc.runtime import delegate
    m = _binary("SQUARED_DIFFERENCE", (1, 4, 8), (1, 4, 1), (1, 4, 8))
    out, _ = _kernels(m)
    s = Session(serialize(out), RunOptions())
    x = [np.ones((1, 4, 8), np.int8), np.zeros((1, 4, 1), np.int8)]
    s.run(x)
    files = {lut.__file__, _native.__file__, delegate.__file__}
    seen = []

    def profile(frame, event, arg):
        if event == "call" and frame.f_code.co_filename in files:
            seen.append(frame.f_code.co_name)
    sys.setprofile(profile)
    try:
        for _ in range(3):
            s.invoke() if hasattr(s, "invoke") else s.run(x)
    finally:
        sys.setprofile(None)
    assert seen == []


@pytest.mark.parametrize("n", [0, 1, 63, 64, 65, 130, 4096 + 17])
def test_the_simd_row_lookup_equals_the_scalar_one(n):
    """The row lookup the kernels use (AVX512-VBMI byte permutes where the CPU has them) against
    one load per byte, at lengths around the 64-byte step."""
    from numba import njit

    @njit
    def run(fn_simd, table, x, y):
        fn_simd(table.ctypes.data, x.ctypes.data, y.ctypes.data, x.size)

    rng = np.random.default_rng(n)
    table = rng.integers(0, 256, 256).astype(np.uint8)
    x = rng.integers(0, 256, n).astype(np.uint8)
    x[: min(n, 4)] = [0, 127, 128, 255][: min(n, 4)]
    y = np.zeros(n + 8, np.uint8)                  # bytes past n must stay untouched
    run(lut._row, table, x, y[:n])
    assert np.array_equal(y[:n], table[x]) and not y[n:].any()


def _per_channel(kind: str, shape=(1, 4, 4, 8), qx=(0.05, 3), qc=(0.01, 0), qo=(0.04, -10), seed=0):
    """x -> KIND(x, per-channel constant) with a constant that differs along the last axis."""
    rng = np.random.default_rng(seed)
    m, sg = new_model(f"int8 {kind} per channel")
    x = sg.new_tensor("x", I8, shape, quantization=_q(*qx))
    c = sg.new_constant("c", rng.integers(-100, 100, (1, 1, shape[-1])).astype(np.int8), I8, quantization=_q(*qc))
    y = sg.new_tensor("y", I8, shape, quantization=_q(*qo))
    if kind == "PRELU":
        add_op(sg, "PRELU", [x, c], [y])
    else:
        opts = {"ADD": (fb.AddOptionsT(), fb.BuiltinOptions.AddOptions),
                "MUL": (fb.MulOptionsT(), fb.BuiltinOptions.MulOptions)}[kind]
        add_op(sg, kind, [x, c], [y], *opts)
    sg.set_graph_inputs([x])
    sg.set_graph_outputs([y])
    return m


@pytest.mark.parametrize("kind", ["PRELU"])
def test_lut8c_is_bit_identical_for_per_channel_constants(kind):
    """int8 PRELU with a per-channel slope (XNNPACK leaves it on the builtin kernel): one table per
    channel, proved on every value at every position."""
    m = _per_channel(kind)
    out, ctx = _kernels(m)
    assert [op.type for op in out.main.operators] == [lut.LUT8C], ctx.messages
    ref, got = Session(serialize(m), RunOptions()), Session(serialize(out), RunOptions())
    n = 4 * 4 * 8
    for k in range(0, 256, 7):
        x = (np.arange(n) + k).astype(np.uint8).view(np.int8).reshape(1, 4, 4, 8)
        assert ref.run([x])[0].tobytes() == got.run([x])[0].tobytes()
    # resized batch: the tables follow the channels, whatever the other axes
    x = np.random.default_rng(2).integers(-128, 128, (3, 4, 4, 8)).astype(np.int8)
    table = lut.decode_table(lut.LUT8C, out.main.operators[0].custom_options)
    assert np.array_equal(got.run([x])[0], lut.reference(lut.LUT8C, table, x))


def test_lut8c_refuses_constants_that_vary_along_other_axes():
    m = _per_channel("PRELU")
    sg = m.main
    op = sg.operators[0]
    sg.set_constant(op.inputs[1], np.arange(8 * 4, dtype=np.int8).reshape(1, 4, 8), I8)
    ok, why = REPLACES[lut.LUT8C](op)
    assert not ok and "varies other than along the last axis" in why
