"""tflc.kernels.batch_matmul_i8: byte-identical to LiteRT's int8 BATCH_MATMUL with a non-constant
right operand, in a stock Session (default options, XNNPACK applied: XNNPACK runs the op when the
right operand's zero point is 0, the builtin reference kernel otherwise) and with XNNPACK off:
adj_x / adj_y, broadcast batches, nonzero zero points, multipliers above and below one, empty
tensors, the transformer's ops."""
from __future__ import annotations

import numpy as np
import pytest
from numba import carray, cfunc, types

from tflc.io import read_model, serialize
from tflc.ir.build import add_op, new_model
from tflc.runtime import RunOptions, Session
from tflc.schema import TYPE_CODES, fb, op_name

BM = pytest.importorskip("tflc.kernels.batch_matmul_i8")
I8 = TYPE_CODES["INT8"]
# the first BATCH_MATMUL of transformer_encoder_3x192_int8 (lhs, rhs, output: scale, zero point)
TRANSFORMER_Q = ((0.021999497, -5), (0.019686962, 4), (0.09941518, 3))


def _q(scale: float, zp: int) -> fb.QuantizationParametersT:
    q = fb.QuantizationParametersT()
    q.scale, q.zeroPoint = [float(scale)], [int(zp)]
    return q


def _out_shape(ls, rs, adj_x, adj_y):
    m = ls[-1] if adj_x else ls[-2]
    n = rs[-2] if adj_y else rs[-1]
    rank = max(len(ls), len(rs))
    lb = (1,) * (rank - len(ls)) + tuple(ls[:-2])
    rb = (1,) * (rank - len(rs)) + tuple(rs[:-2])
    return tuple(b if a == 1 else a for a, b in zip(lb, rb)) + (m, n)


def _session(ls, rs, adj_x, adj_y, lq, rq, oq, xnnpack: bool = True) -> Session:
    m, sg = new_model("one int8 batch_matmul")
    a = sg.new_tensor("lhs", I8, ls, quantization=_q(*lq))
    b = sg.new_tensor("rhs", I8, rs, quantization=_q(*rq))
    y = sg.new_tensor("out", I8, _out_shape(ls, rs, adj_x, adj_y), quantization=_q(*oq))
    o = fb.BatchMatMulOptionsT()
    o.adjX, o.adjY = bool(adj_x), bool(adj_y)
    op = add_op(sg, "BATCH_MATMUL", [a, b], [y], o, fb.BuiltinOptions.BatchMatMulOptions)
    sg.require_version(op, 2)
    sg.set_graph_inputs([a, b])
    sg.set_graph_outputs([y])
    return Session(serialize(m), RunOptions(xnnpack=xnnpack))


def _ours(a, b, adj_x, adj_y, lq, rq, oq, xnnpack: bool = True) -> np.ndarray:
    ip, fp = BM.params(lq[0], lq[1], rq[0], rq[1], oq[0], oq[1], xnnpack=xnnpack)
    shape = _out_shape(a.shape, b.shape, adj_x, adj_y)
    d = BM.dims(a.shape, b.shape, adj_x, adj_y, shape)
    out = np.full(int(np.prod(shape)), 55, np.int8)
    BM.compute(np.ascontiguousarray(a).reshape(-1), np.ascontiguousarray(b).reshape(-1), out, d, ip, fp)
    return out.reshape(shape)


def _check(a, b, adj_x, adj_y, lq, rq, oq, xnnpack: bool = True) -> np.ndarray:
    ref = _session(a.shape, b.shape, adj_x, adj_y, lq, rq, oq, xnnpack).run([a, b])[0]
    got = _ours(a, b, adj_x, adj_y, lq, rq, oq, xnnpack)
    assert got.shape == ref.shape
    bad = np.argwhere(got != ref)
    assert bad.size == 0, (f"{len(bad)} of {ref.size} outputs differ ({a.shape} x {b.shape}, adj {adj_x}/{adj_y}, "
                           f"q {lq} {rq} {oq}, xnnpack {xnnpack}); first at {tuple(bad[0])}: ours {got[tuple(bad[0])]}, "
                           f"LiteRT {ref[tuple(bad[0])]}")
    return ref


def _accumulators(a, b, adj_x, adj_y, lq, rq) -> np.ndarray:
    x = a.astype(np.int64) - lq[1]
    y = b.astype(np.int64) - rq[1]
    if adj_x:
        x = np.swapaxes(x, -1, -2)
    if adj_y:
        y = np.swapaxes(y, -1, -2)
    return np.matmul(x, y)


def _single_rounding(acc, lq, rq, oq) -> np.ndarray:
    """TFLITE_SINGLE_ROUNDING's requantization (one rounding of x * m / 2^(31 - shift)): not LiteRT's."""
    mult, shift = (int(v) for v in BM.params(lq[0], lq[1], rq[0], rq[1], *oq)[0][:2])
    total = 31 - shift
    return np.clip(((acc * mult + (1 << (total - 1))) >> total) + oq[1], -128, 127).astype(np.int8)


SHAPES = [
    # lhs, rhs, adj_x, adj_y
    ((1, 3, 64, 64), (1, 3, 64, 64), False, False),
    ((1, 3, 64, 64), (1, 3, 64, 64), False, True),
    ((1, 3, 64, 64), (1, 3, 64, 64), True, False),
    ((1, 3, 64, 64), (1, 3, 64, 64), True, True),
    ((2, 5, 7), (7, 3), False, False),              # rank 3 x rank 2
    ((2, 3), (2, 3, 4), False, False),              # rank 2 x rank 3
    ((2, 1, 5, 7), (1, 4, 3, 7), False, True),      # both broadcast
    ((3, 7, 5), (3, 7, 2), True, False),
    ((3, 7, 5), (1, 2, 7), True, True),
    ((4, 1, 2, 3, 8), (2, 8, 5), False, False),     # rank 5
    ((5, 9, 1), (5, 1, 6), False, False),           # depth 1
    ((1, 1), (1, 1), False, False),
    ((2, 1, 33), (2, 1, 33), False, True),          # one row, one column
    ((1, 6, 40, 17), (6, 1, 17, 9), False, False),  # rhs batch [..., 1, X, Y] (LiteRT folds it)
]


@pytest.mark.parametrize("ls,rs,adj_x,adj_y", SHAPES)
def test_random_inputs_are_bit_exact(ls, rs, adj_x, adj_y):
    rng = np.random.default_rng(len(ls) * 1000 + int(np.prod(ls)) + 7 * int(np.prod(rs)) + adj_x + 2 * adj_y)
    a = rng.integers(-128, 128, ls, dtype=np.int8)
    b = rng.integers(-128, 128, rs, dtype=np.int8)
    _check(a, b, adj_x, adj_y, *TRANSFORMER_Q)
    for i in range(4):
        lq = (float(10 ** rng.uniform(-3, 0)), int(rng.integers(-128, 128)))
        rq = (float(10 ** rng.uniform(-3, 0)), 0 if i % 2 else int(rng.integers(-128, 128)))   # 0: XNNPACK's
        oq = (float(10 ** rng.uniform(-2.5, 0.5)), int(rng.integers(-128, 128)))
        _check(a, b, adj_x, adj_y, lq, rq, oq)
        if i % 2:
            _check(a, b, adj_x, adj_y, lq, rq, oq, xnnpack=False)


@pytest.mark.parametrize("out_scale", [10.0, 1.0, 0.1, 0.01, 1e-3, 1e-4, 1e-6, 1e-9, 1e6, 1e9])
def test_extreme_multipliers(out_scale):
    """Multipliers from below 2^-31 (flushed to zero) to above 2^30 (left shifts that wrap int32),
    on accumulators near zero and at the int8 extremes."""
    rng = np.random.default_rng(int(abs(np.log10(out_scale)) * 10))
    for lo, hi in [(-3, 4), (-128, 128), (125, 128)]:
        a = rng.integers(lo, hi, (2, 8, 64), dtype=np.int8)
        b = rng.integers(lo, hi, (2, 64, 8), dtype=np.int8)
        for ozp in (3, -12):
            oq = (out_scale, ozp)
            _check(a, b, False, False, (1.0, 0), (1.0, 0), oq)                  # XNNPACK
            _check(a, b, False, False, (1.0, 0), (1.0, 0), oq, xnnpack=False)   # builtin
            _check(a, b, False, False, (1.0, -128), (0.5, 127), oq)


@pytest.mark.parametrize("value_a,value_b", [(-128, -128), (127, 127), (-128, 127), (0, 0)])
@pytest.mark.parametrize("zps", [(-128, 127, -128), (127, -128, 127), (0, 0, 0), (-5, 4, 3)])
def test_constant_operands(value_a, value_b, zps):
    a = np.full((2, 16, 64), value_a, np.int8)
    b = np.full((2, 64, 16), value_b, np.int8)
    for s in (0.02, 0.3):
        _check(a, b, False, False, (s, zps[0]), (0.02, zps[1]), (0.5, zps[2]))
        _check(a, np.swapaxes(b, -1, -2).copy(), False, True, (s, zps[0]), (0.02, zps[1]), (0.5, zps[2]))


def test_rounding_is_double_rounding():
    """The data above tells TFLite's double-rounding requantization (what LiteRT runs) from the
    single-rounding variant: a kernel that used the latter would fail these tests."""
    rng = np.random.default_rng(11)
    a = rng.integers(-128, 128, (1, 3, 64, 64), dtype=np.int8)
    b = rng.integers(-128, 128, (1, 3, 64, 64), dtype=np.int8)
    lq, rq, oq = TRANSFORMER_Q
    ref = _check(a, b, False, False, lq, rq, oq)
    single = _single_rounding(_accumulators(a, b, False, False, lq, rq), lq, rq, oq)
    assert np.count_nonzero(single != ref) > 0


def test_the_two_kernels_differ():
    """With a right zero point of 0 the stock interpreter runs XNNPACK's float requantization, not
    the builtin's fixed-point one: the data tells them apart, so the mode chosen matters."""
    rng = np.random.default_rng(14)
    a = rng.integers(-4, 4, (2, 8, 64), dtype=np.int8)
    b = rng.integers(-4, 4, (2, 64, 8), dtype=np.int8)
    q = ((1.0, 0), (1.0, 0), (10.0, 3))                     # ties: acc * 0.1 = k + 0.5
    with_xnnpack = _check(a, b, False, False, *q)
    builtin = _check(a, b, False, False, *q, xnnpack=False)
    assert not np.array_equal(with_xnnpack, builtin)
    assert BM.params(1.0, 0, 1.0, 0, 10.0, 3)[0][7] == 1
    assert BM.params(1.0, 0, 1.0, 4, 10.0, 3)[0][7] == 0
    assert BM.params(1.0, 0, 1.0, 0, 10.0, 3, xnnpack=False)[0][7] == 0


def test_multiplier_uses_the_float32_scale_product():
    # QuantizeMultiplier of float32(lhs_scale * rhs_scale) / output_scale, as LiteRT's prepare
    ip, _ = BM.params(0.021999497, -5, 0.019686962, 4, 0.09941518, 3)
    real = float(np.float32(np.float32(0.021999497) * np.float32(0.019686962))) / float(np.float32(0.09941518))
    mult, shift = int(ip[0]), int(ip[1])
    assert 2**30 <= mult < 2**31 and abs(mult * 2.0 ** (shift - 31) - real) <= 2.0 ** (shift - 32)
    assert BM.quantize_multiplier(1e-12) == (0, 0)
    assert BM.quantize_multiplier(0.5) == (2**30, 0)
    assert BM.quantize_multiplier(1.0 - 2**-40) == (2**30, 1)            # rounds up to 2^31: folded


def test_refused_shapes_and_quantization():
    with pytest.raises(ValueError, match="depth"):
        BM.dims((2, 3, 4), (2, 5, 6), False, False, (2, 3, 6))
    with pytest.raises(ValueError, match="broadcast"):
        BM.dims((2, 3, 4), (3, 4, 6), False, False, (2, 3, 6))
    with pytest.raises(ValueError, match="rank"):
        BM.dims((4,), (4, 2), False, False, (2,))
    with pytest.raises(ValueError, match="rank"):
        BM.dims((1, 1, 1, 1, 2, 3), (3, 2), False, False, (1, 1, 1, 1, 2, 2))
    with pytest.raises(ValueError, match="output shape"):
        BM.dims((2, 3, 4), (2, 4, 6), False, False, (2, 3, 5))
    with pytest.raises(ValueError, match="per-tensor"):
        BM.params(0.1, 0, [0.1, 0.2], [0, 0], 0.1, 0)
    with pytest.raises(ValueError):
        BM.params(0.1, 0, 0.1, 200, 0.1, 0)
    with pytest.raises(ValueError):
        BM.params(0.1, 0, 0.1, 0, 0.0, 0)
    d = BM.dims((2, 1, 3, 4), (5, 4, 6), False, False, (2, 5, 3, 6))
    assert len(d) == BM.DIMS_LEN and list(d[:3]) == [1, 2, 5]


@pytest.mark.parametrize("ls,rs", [((2, 3, 0), (2, 0, 4)), ((0, 3, 5), (1, 5, 4)), ((2, 0, 5), (2, 5, 4)),
                                   ((2, 3, 5), (2, 5, 0))])
def test_empty_tensors(ls, rs):
    # K = 0 gives the output zero point everywhere (LiteRT's sum over nothing); other 0 sizes, nothing
    # (XNNPACK refuses empty tensors at prepare: the zero-point-0 case is checked without it)
    a = np.ones(ls, np.int8)
    b = np.ones(rs, np.int8)
    _check(a, b, False, False, (0.1, 1), (0.1, -2), (0.05, 7))
    _check(a, b, False, False, (0.1, 1), (0.1, 0), (0.05, 7), xnnpack=False)
    _ours(a, b, False, False, (0.1, 1), (0.1, 0), (0.05, 7))                  # XNNPACK mode: no crash


def test_callable_from_a_cfunc():
    sig = types.void(types.CPointer(types.int8), types.int64, types.CPointer(types.int8), types.int64,
                     types.CPointer(types.int8), types.int64, types.CPointer(types.int64),
                     types.CPointer(types.int64), types.int64, types.CPointer(types.float32), types.int64)

    @cfunc(sig, nopython=True)
    def native(a, na, b, nb, out, no, d, ip, nip, fp, nfp):
        BM.compute(carray(a, na), carray(b, nb), carray(out, no), carray(d, 14), carray(ip, nip), carray(fp, nfp))

    rng = np.random.default_rng(12)
    a = rng.integers(-128, 128, (2, 8, 16), dtype=np.int8)
    b = rng.integers(-128, 128, (1, 4, 16), dtype=np.int8)
    d = BM.dims(a.shape, b.shape, False, True, (2, 8, 4))
    t = native.ctypes.argtypes
    for lq, rq, oq in (TRANSFORMER_Q, ((0.02, 3), (0.03, 0), (0.1, -4))):
        ip, fp = BM.params(lq[0], lq[1], rq[0], rq[1], *oq)
        out = np.zeros(64, np.int8)
        native.ctypes(a.ctypes.data_as(t[0]), a.size, b.ctypes.data_as(t[2]), b.size, out.ctypes.data_as(t[4]),
                      out.size, d.ctypes.data_as(t[6]), ip.ctypes.data_as(t[7]), ip.size,
                      fp.ctypes.data_as(t[9]), fp.size)
        assert np.array_equal(out.reshape(2, 8, 4), _ours(a, b, False, True, lq, rq, oq))


def test_transformer_batch_matmul_ops(zoo):
    """Every BATCH_MATMUL of the converter's full-int8 transformer, at its own quantization, options
    and shapes, on random inputs, against LiteRT running a one-op copy of that op."""
    from tflc.passes._exhaustive import one_op_model
    model = read_model(zoo("transformer_encoder_3x192_int8"))
    ops = [op for op in model.subgraphs[0].operators if op_name(op.opcode.builtin_code) == "BATCH_MATMUL"]
    assert ops
    rng = np.random.default_rng(13)
    for op in ops:
        (lt, rt), ot = op.inputs[:2], op.outputs[0]
        assert not rt.is_constant
        qs = [((t.quantization.scale[0]), int(t.quantization.zeroPoint[0])) for t in (lt, rt, ot)]
        adj_x, adj_y = bool(op.options.adjX), bool(op.options.adjY)
        m, _ = one_op_model(op)
        sess = Session(serialize(m))
        for lo, hi in [(-128, 128), (-10, 30)]:
            a = rng.integers(lo, hi, lt.shape, dtype=np.int8)
            b = rng.integers(lo, hi, rt.shape, dtype=np.int8)
            ref = sess.run([a, b])[0]
            assert ref.shape == tuple(ot.shape)
            assert np.array_equal(_ours(a, b, adj_x, adj_y, *qs), ref), ot.name
            # the same op with a right zero point of 0, as XNNPACK would then run it
            rq0 = (qs[1][0], 0)
            assert np.array_equal(_ours(a, b, adj_x, adj_y, qs[0], rq0, qs[2]),
                                  _session(lt.shape, rt.shape, adj_x, adj_y, qs[0], rq0, qs[2]).run([a, b])[0])


# --------------------------------------------------------------------------- TFLC_BATCH_MATMUL_I8 inside LiteRT

def _model(ls, rs, adj_x, adj_y, lq, rq, oq, const_rhs=None):
    m, sg = new_model("one int8 batch_matmul")
    a = sg.new_tensor("lhs", I8, ls, quantization=_q(*lq))
    b = (sg.new_constant("rhs", const_rhs, I8, quantization=_q(*rq)) if const_rhs is not None
         else sg.new_tensor("rhs", I8, rs, quantization=_q(*rq)))
    y = sg.new_tensor("out", I8, _out_shape(ls, rs, adj_x, adj_y), quantization=_q(*oq))
    o = fb.BatchMatMulOptionsT()
    o.adjX, o.adjY = bool(adj_x), bool(adj_y)
    op = add_op(sg, "BATCH_MATMUL", [a, b], [y], o, fb.BuiltinOptions.BatchMatMulOptions)
    sg.require_version(op, 2)
    sg.set_graph_inputs([a] if const_rhs is not None else [a, b])
    sg.set_graph_outputs([y])
    return m


@pytest.mark.parametrize("ls,rs,adj_x,adj_y", [((1, 3, 64, 64), (1, 3, 64, 64), False, False),
                                               ((1, 3, 64, 16), (1, 3, 64, 16), False, True),
                                               ((2, 1, 5, 7), (1, 3, 5, 4), True, False),
                                               ((4, 9), (9, 6), False, False)])
def test_the_native_kernel_runs_in_litert_bit_identically(ls, rs, adj_x, adj_y):
    from tflc.kernels.batch_matmul_i8 import CODE
    from tflc.passes_api import parse_pipeline
    from tflc.passmanager import PassContext, run_pipeline
    m = _model(ls, rs, adj_x, adj_y, (0.05, 3), (0.04, 4), (0.3, -5))    # right zero point 4: XNNPACK refuses it
    out = m.clone()
    run_pipeline(out, parse_pipeline("use-kernels{measure=false}"), PassContext(target="xnnpack"))
    assert [op.type for op in out.main.operators] == [CODE]
    ref, got = Session(serialize(m), RunOptions()), Session(serialize(out), RunOptions())
    rng = np.random.default_rng(5)
    cases = [[rng.integers(-128, 128, ls).astype(np.int8), rng.integers(-128, 128, rs).astype(np.int8)]
             for _ in range(4)]
    cases.append([np.full(ls, -128, np.int8), np.full(rs, 127, np.int8)])
    for x in cases:
        assert ref.run(x)[0].tobytes() == got.run(x)[0].tobytes()


def test_a_constant_right_operand_is_read_from_the_model():
    from tflc.kernels.batch_matmul_i8 import CODE
    from tflc.passes_api import parse_pipeline
    from tflc.passmanager import PassContext, run_pipeline
    w = np.random.default_rng(0).integers(-128, 128, (8, 5)).astype(np.int8)
    m = _model((3, 8), (8, 5), False, False, (0.05, 3), (0.04, 4), (0.3, -5), const_rhs=w)
    out = m.clone()
    run_pipeline(out, parse_pipeline("use-kernels{measure=false}"), PassContext(target="xnnpack"))
    assert [op.type for op in out.main.operators] == [CODE]
    x = np.random.default_rng(1).integers(-128, 128, (3, 8)).astype(np.int8)
    assert (Session(serialize(m), RunOptions()).run([x])[0].tobytes()
            == Session(serialize(out), RunOptions()).run([x])[0].tobytes())
