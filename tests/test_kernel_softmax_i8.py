"""tflc.kernels.softmax_i8: byte-identical to LiteRT's builtin int8 SOFTMAX (one-op models run by a
stock Session: default options, XNNPACK applied, which leaves int8 softmax to the builtin kernel).

Random data alone hardly tells LiteRT's float32 exp table from an exact float softmax (they differ
on roughly one output in 10^5), so the grids below are built to reach the rounding boundaries, and a
test checks that a plain float64 softmax does fail on them.
"""
from __future__ import annotations

import numpy as np
import pytest
from numba import carray, cfunc, types

from tflc.io import read_model, serialize
from tflc.ir.build import add_op, new_model
from tflc.runtime import RunOptions, Session
from tflc.schema import TYPE_CODES, fb, op_name

SM = pytest.importorskip("tflc.kernels.softmax_i8")
I8 = TYPE_CODES["INT8"]
OUT_SCALE, OUT_ZP = 1 / 256, -128
# the input scales of the three SOFTMAX ops of the converter's transformer_encoder_3x192_int8
TRANSFORMER_SCALES = (0.012426898, 0.03690399, 0.037180178)


def _q(scale: float, zp: int) -> fb.QuantizationParametersT:
    q = fb.QuantizationParametersT()
    q.scale, q.zeroPoint = [float(scale)], [int(zp)]
    return q


def _session(shape, in_scale, in_zp, beta, out_scale=OUT_SCALE, out_zp=OUT_ZP, xnnpack: bool = True) -> Session:
    return Session(serialize(_model(shape, in_scale, in_zp, beta, out_scale, out_zp)), RunOptions(xnnpack=xnnpack))


def _ours(x: np.ndarray, in_scale, in_zp, beta, out_scale=OUT_SCALE, out_zp=OUT_ZP) -> np.ndarray:
    ip, fp = SM.params(in_scale, in_zp, out_scale, out_zp, beta)
    out = np.full(x.size, 55, np.int8)
    SM.compute(np.ascontiguousarray(x).reshape(-1), out, SM.dims(x.shape), ip, fp)
    return out.reshape(x.shape)


def _check(x, in_scale, in_zp, beta, out_scale=OUT_SCALE) -> np.ndarray:
    ref = _session(x.shape, in_scale, in_zp, beta, out_scale).run([x])[0]
    got = _ours(x, in_scale, in_zp, beta, out_scale)
    bad = np.argwhere(got != ref)
    assert bad.size == 0, (f"{len(bad)} of {x.size} outputs differ (scale {in_scale}, beta {beta}); first at "
                           f"{tuple(bad[0])}: ours {got[tuple(bad[0])]}, LiteRT {ref[tuple(bad[0])]}")
    return ref


def _boundary_grid() -> np.ndarray:
    """Rows (127, 127 - i, 127 - j) for every i, j in 0..255: every softmax of three values that
    differ by up to 255 steps, 196608 outputs (they include values next to the .5 boundaries)."""
    i, j = np.meshgrid(np.arange(256), np.arange(256), indexing="ij")
    return np.stack([np.full(i.size, 127), 127 - i.ravel(), 127 - j.ravel()], 1).astype(np.int8)


def _float_softmax(x, in_scale, beta) -> np.ndarray:
    """An exact (float64) softmax quantized to the int8 output, ties away from zero: not LiteRT's."""
    v = x.astype(np.float64) * in_scale * beta
    e = np.exp(v - v.max(-1, keepdims=True))
    p = e / e.sum(-1, keepdims=True) * 256
    return np.clip(np.floor(p + 0.5) - 128, -128, 127).astype(np.int8)


RANDOM_CASES = [
    # shape, input scale, input zero point, beta
    ((1, 3, 64, 64), 0.012426898, 3, 1.0),
    ((1, 3, 64, 64), 0.03690399, -2, 1.0),
    ((5, 7), 0.1, 0, 0.5),
    ((300,), 0.05, 10, 2.0),
    ((4, 1), 0.2, -7, 1.0),                 # depth 1
    ((1, 1, 1, 1), 0.2, 0, 1.0),
    ((2, 1, 3, 17), 0.004, -128, 3.7),
    ((8, 513), 0.01, 127, 1.0),
    ((16, 64), 0.3, 5, 0.1),
    ((3, 20), 0.0001, 0, 1.0),              # tiny scale: nearly uniform
    ((3, 20), 50.0, 0, 1.0),                # huge scale: one-hot (table underflows to 0)
    ((6, 7), 0.1, 0, 0.0),                  # beta 0: uniform
    ((8, 300), 0.5, 0, -0.3),               # negative beta
    ((4, 16), 1.0, 0, -1.0),                # table entries overflow to inf: NaN probabilities
]


@pytest.mark.parametrize("shape,in_scale,in_zp,beta", RANDOM_CASES)
def test_random_inputs_are_bit_exact(shape, in_scale, in_zp, beta):
    rng = np.random.default_rng(abs(hash((shape, in_scale, beta))) % 2**32)
    x = rng.integers(-128, 128, shape, dtype=np.int8)
    _check(x, in_scale, in_zp, beta)


@pytest.mark.parametrize("fill", [-128, 127, 0])
@pytest.mark.parametrize("depth", [1, 3, 64, 512, 1000])
def test_constant_rows(fill, depth):
    # all-equal rows: probabilities 1/depth (depth 512: exactly 0.5 steps, a tie that roundf
    # rounds away from zero)
    x = np.full((2, depth), fill, np.int8)
    ref = _check(x, 0.05, 0, 1.0)
    if depth == 512:
        assert (ref == -127).all()


def test_mixed_extremes():
    x = np.full((4, 32), -128, np.int8)
    x[:, 5] = 127
    x[1, :] = 127
    x[2, ::2] = 127
    x[3, 7] = -127
    for s in (0.001, 0.05, 1.0):
        _check(x, s, 0, 1.0)


@pytest.mark.parametrize("in_scale,beta", [(s, 1.0) for s in TRANSFORMER_SCALES] + [(0.012426898, 0.7),
                                                                                 (0.05, 2.0), (0.0015653796, 1.0)])
def test_boundary_grid_is_bit_exact(in_scale, beta):
    _check(_boundary_grid(), in_scale, 0, beta)


def test_boundary_grid_rejects_a_float_softmax():
    """The grid tells LiteRT's float32 table kernel from an exact softmax: the tests above would fail
    a kernel that computed softmax in float64 (and one that rounded ties to even)."""
    x = _boundary_grid()
    diffs = 0
    for s in TRANSFORMER_SCALES:
        ref = _session(x.shape, s, 0, 1.0).run([x])[0]
        diffs += int(np.count_nonzero(_float_softmax(x, s, 1.0) != ref))
    assert diffs > 0
    tie = np.full((1, 512), 3, np.int8)
    ref = _session(tie.shape, 0.05, 0, 1.0).run([tie])[0]
    v = np.full(512, 0.5)                                         # 256/512
    assert not np.array_equal(np.round(v).astype(np.int64) - 128, ref[0].astype(np.int64))


def test_xnnpack_leaves_int8_softmax_to_the_builtin_kernel():
    # the stock interpreter and one without XNNPACK run the same kernel: one algorithm to match
    x = _boundary_grid()
    ref = _session(x.shape, 0.012426898, 3, 1.0).run([x])[0]
    assert np.array_equal(_session(x.shape, 0.012426898, 3, 1.0, xnnpack=False).run([x])[0], ref)
    assert np.array_equal(_ours(x, 0.012426898, 3, 1.0), ref)


@pytest.mark.parametrize("out_scale", [1 / 256, 0.0039063, 0.0039059])
def test_output_scale_within_litert_tolerance(out_scale):
    rng = np.random.default_rng(3)
    x = rng.integers(-128, 128, (4, 40), dtype=np.int8)
    _check(x, 0.05, 0, 1.0, out_scale=out_scale)


def test_refused_like_litert():
    for out_scale, out_zp in [(0.0039, -128), (1 / 128, -128), (1 / 256, 0)]:
        with pytest.raises(ValueError):
            SM.params(0.05, 0, out_scale, out_zp, 1.0)
        with pytest.raises(Exception):        # LiteRT refuses the same op at prepare
            _session((2, 4), 0.05, 0, 1.0, out_scale, out_zp).run([np.zeros((2, 4), np.int8)])
    with pytest.raises(ValueError, match="per-tensor"):
        SM.params([0.05, 0.1], [0, 0], 1 / 256, -128, 1.0)
    for bad in (0.0, -1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError):
            SM.params(bad, 0, 1 / 256, -128, 1.0)
    with pytest.raises(ValueError):
        SM.dims(())


@pytest.mark.parametrize("shape", [(0, 5), (5, 0), (2, 0, 3), (0,)])
def test_empty_tensors(shape):
    x = np.zeros(shape, np.int8)
    assert _session(shape, 0.1, 0, 1.0).run([x])[0].shape == shape
    out = np.zeros(0, np.int8)
    SM.compute(x.reshape(-1), out, SM.dims(shape), *SM.params(0.1, 0, 1 / 256, -128, 1.0))
    assert list(SM.dims(shape)) == [int(np.prod(shape[:-1])), shape[-1]]


def test_callable_from_a_cfunc():
    sig = types.void(types.CPointer(types.int8), types.CPointer(types.int8), types.int64,
                     types.CPointer(types.int64), types.CPointer(types.int64), types.int64,
                     types.CPointer(types.float32), types.int64)

    @cfunc(sig, nopython=True)
    def native(x, out, n, d, ip, nip, fp, nfp):
        SM.compute(carray(x, n), carray(out, n), carray(d, 2), carray(ip, nip), carray(fp, nfp))

    rng = np.random.default_rng(4)
    x = rng.integers(-128, 128, (6, 33), dtype=np.int8)
    ip, fp = SM.params(0.07, 1, 1 / 256, -128, 1.0)
    d = SM.dims(x.shape)
    out = np.zeros(x.size, np.int8)
    native.ctypes(x.ctypes.data_as(native.ctypes.argtypes[0]), out.ctypes.data_as(native.ctypes.argtypes[1]),
                  x.size, d.ctypes.data_as(native.ctypes.argtypes[3]), ip.ctypes.data_as(native.ctypes.argtypes[4]),
                  ip.size, fp.ctypes.data_as(native.ctypes.argtypes[6]), fp.size)
    assert np.array_equal(out.reshape(x.shape), _ours(x, 0.07, 1, 1.0))


def test_transformer_softmax_ops(zoo):
    """Every SOFTMAX of the converter's full-int8 transformer, at its own quantization and shape, on
    random inputs and the boundary grid, against LiteRT running a one-op copy of that op."""
    from tflc.passes._exhaustive import one_op_model
    model = read_model(zoo("transformer_encoder_3x192_int8"))
    ops = [op for op in model.subgraphs[0].operators if op_name(op.opcode.builtin_code) == "SOFTMAX"]
    assert ops
    rng = np.random.default_rng(5)
    for op in ops:
        x_t, y_t = op.inputs[0], op.outputs[0]
        (s,), (zp,) = x_t.quantization.scale, x_t.quantization.zeroPoint
        (os_,), (ozp,) = y_t.quantization.scale, y_t.quantization.zeroPoint
        beta = op.options.beta
        m, _ = one_op_model(op)
        sess = Session(serialize(m))
        for x in (rng.integers(-128, 128, x_t.shape, dtype=np.int8),
                  rng.integers(-20, 60, x_t.shape, dtype=np.int8)):
            ref = sess.run([x])[0]
            assert np.array_equal(_ours(x, s, zp, beta, os_, ozp), ref), op.outputs[0].name
        grid = _boundary_grid()
        assert np.array_equal(_ours(grid, s, zp, beta, os_, ozp),
                              _session(grid.shape, s, zp, beta, os_, ozp).run([grid])[0])


# --------------------------------------------------------------------------- TFLC_SOFTMAX_I8 inside LiteRT

def _model(shape, in_scale, in_zp, beta, out_scale=OUT_SCALE, out_zp=OUT_ZP):
    m, sg = new_model("one int8 softmax")
    x = sg.new_tensor("x", I8, shape, quantization=_q(in_scale, in_zp))
    y = sg.new_tensor("y", I8, shape, quantization=_q(out_scale, out_zp))
    o = fb.SoftmaxOptionsT()
    o.beta = float(beta)
    op = add_op(sg, "SOFTMAX", [x], [y], o, fb.BuiltinOptions.SoftmaxOptions)
    sg.require_version(op, 2)
    sg.set_graph_inputs([x])
    sg.set_graph_outputs([y])
    return m


@pytest.mark.parametrize("shape,in_scale,beta", [((1, 3, 64, 64), 0.0625, 1.0), ((5, 7), 0.3, 0.5), ((9, 1), 0.1, 1.0),
                                                 ((6, 300), 0.01, 2.0)])
def test_the_native_kernel_runs_in_litert_bit_identically(shape, in_scale, beta):
    from tflc.kernels.softmax_i8 import CODE
    from tflc.passes_api import parse_pipeline
    from tflc.passmanager import PassContext, run_pipeline
    m = _model(shape, in_scale, 3, beta)
    out = m.clone()
    run_pipeline(out, parse_pipeline("use-kernels{measure=false}"), PassContext(target="xnnpack"))
    assert [op.type for op in out.main.operators] == [CODE]
    ref, got = Session(serialize(m), RunOptions()), Session(serialize(out), RunOptions())
    rng = np.random.default_rng(3)
    grid = _boundary_grid()
    cases = [rng.integers(-128, 128, shape).astype(np.int8) for _ in range(4)]
    cases.append(np.full(shape, 127, np.int8))
    if shape[-1] == 3:
        cases.append(grid)
    for x in cases:
        assert ref.run([x])[0].tobytes() == got.run([x])[0].tobytes()
    # resized: a batch LiteRT did not see at build time (prepare recomputes the rows)
    if len(shape) == 2:
        x = rng.integers(-128, 128, (shape[0] * 3, shape[1])).astype(np.int8)
        assert ref.run([x])[0].tobytes() == got.run([x])[0].tobytes()


def test_a_softmax_the_kernel_cannot_take_is_refused_with_the_reason():
    from tflc.kernels.softmax_i8 import REPLACES
    m = _model((2, 8), 0.1, 0, 1.0)
    sg = m.main
    sg.set_quantization(sg.outputs[0], _q(1 / 128, 0))
    ok, why = REPLACES(sg.operators[0])
    assert not ok and "zero point -128" in why
