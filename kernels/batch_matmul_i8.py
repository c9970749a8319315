"""Bit-exact int8 BATCH_MATMUL of LiteRT 2.3.0's stock interpreter, as a pure Numba compute function.

Which kernel runs the op in a stock interpreter (default options, XNNPACK applied) depends on the
right operand's zero point: XNNPACK's delegate takes int8 x int8 -> int8 BATCH_MATMUL only when that
zero point is 0 (``VisitBatchMatMulNode`` refuses others); otherwise the op stays on LiteRT's
builtin kernel, which in 2.3.0 is the reference kernel only (the ruy-based optimized int8 path was
removed from ``batch_matmul.cc``). Both are reproduced; ``params`` picks the one the stock
interpreter would run (``xnnpack=False`` asks for the builtin one always, as
``OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES`` would run it).

Builtin reference kernel (``tflite/kernels/batch_matmul.cc``, ``internal/reference/batch_matmul.h``):

* at prepare: ``real = double(float32(lhs_scale * rhs_scale)) / double(output_scale)`` (the product
  is taken in float32, as the no-bias ``GetQuantizedConvolutionMultipler`` does), then
  ``QuantizeMultiplier``: ``frexp``, ``round(q * 2^31)`` half away from zero, ``2^31`` folded into
  the exponent, exponents below -31 flushed to a zero multiplier; clamp range [-128, 127];
* per output: ``acc = sum_k (lhs - lhs_zp) * (rhs - rhs_zp)`` in int32 (wrapping), then TFLite's
  *double-rounding* ``MultiplyByQuantizedMultiplier`` (the wheel is not built with
  ``TFLITE_SINGLE_ROUNDING``; the tests tell the two apart): ``x * 2^left`` in int32, gemmlowp's
  ``SaturatingRoundingDoublingHighMul`` (nudge, division by 2^31 truncating toward zero) and
  ``RoundingDivideByPOT`` (ties away from zero); plus the output zero point; clamp.

XNNPACK (``src/subgraph/batch-matrix-multiply.c``, the qs8 GEMM microkernels' fp32 requantization):

* scale ``float32(float32(lhs_scale * rhs_scale) / output_scale)``, all in float32;
* per output: the same int32 accumulator (XNNPACK folds ``-lhs_zp * sum_k rhs`` into a packed bias:
  equal modulo 2^32), ``float32(acc) * scale``, ``min`` with ``127 - out_zp``, round to nearest
  even (``cvtps2dq``: out of range gives INT32_MIN), int32 add of the output zero point, signed
  saturation to int8. That is the AVX-512 kernels' order, the ones this x86-64 machine runs; AVX2
  kernels saturate through int16 instead, which differs only where ``acc * scale < -2^31`` (scales
  far outside practice) with a negative output zero point.

Both: ``adj_x``/``adj_y`` transpose the last two axes of an operand; batch axes (up to three,
rank <= 5) broadcast numpy-style. The kernels transpose operands into scratch buffers and sum in
their own orders; int32 addition wraps identically in any order, so the bytes are the same.

Contract (shared with the native-kernel wrapper): ``params`` -> ``(ip, fp)`` (see :func:`params`);
``dims(lhs_shape, rhs_shape, adj_x, adj_y, out_shape)`` -> the layout documented at :func:`dims`;
``compute(lhs, rhs, out, dims, ip, fp)`` on flat C-contiguous int8 arrays. ``compute`` allocates its
int32 accumulators once per call (``4 * max(M, N)`` values) and nothing else.
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit

__all__ = ["params", "dims", "compute", "quantize_multiplier", "DIMS_LEN"]

# dims layout
D_B0, D_B1, D_B2 = 0, 1, 2                  # broadcast batch sizes (extended to 3 batch axes)
D_LS0, D_LS1, D_LS2 = 3, 4, 5               # lhs element strides per batch axis (0: broadcast)
D_RS0, D_RS1, D_RS2 = 6, 7, 8               # rhs element strides per batch axis (0: broadcast)
D_M, D_N, D_K = 9, 10, 11                   # output rows, output cols, accumulation depth
D_ADJ_X, D_ADJ_Y = 12, 13
DIMS_LEN = 14

MAX_RANK = 5


def _scalar(v, what: str):
    a = np.asarray(v)
    if a.ndim > 0:
        if a.size != 1:
            raise ValueError(f"batch_matmul int8: {what} has {a.size} values; only per-tensor quantization "
                             "is supported")
        a = a.reshape(())
    return a.item()


def quantize_multiplier(real: float) -> tuple[int, int]:
    """TFLite's ``QuantizeMultiplier``: ``(multiplier, shift)`` with ``real ~ multiplier * 2^(shift-31)``."""
    if real == 0.0:
        return 0, 0
    q, shift = math.frexp(real)
    q_fixed = int(math.floor(abs(q) * (1 << 31) + 0.5))       # std::round: ties away from zero
    if q < 0:
        q_fixed = -q_fixed
    if q_fixed == (1 << 31):
        q_fixed //= 2
        shift += 1
    if shift < -31:
        shift, q_fixed = 0, 0
    return q_fixed, shift


def params(lhs_scale, lhs_zp, rhs_scale, rhs_zp, out_scale, out_zp, *,
           xnnpack: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """``(ip, fp)`` for :func:`compute`.

    ``ip = [multiplier, shift, lhs_zp, rhs_zp, out_zp, -128, 127, mode]``: the builtin kernel's
    requantization (QuantizeMultiplier of the float32 scale product over the output scale), the zero
    points, the int8 clamp range, and ``mode``: 1 where the stock interpreter runs the op in XNNPACK
    (``xnnpack`` true, the default, and a right-operand zero point of 0: XNNPACK's delegate takes
    int8 BATCH_MATMUL exactly then), 0 for LiteRT's builtin reference kernel.
    ``fp = [xnnpack_scale, 127 - out_zp]`` (float32): XNNPACK's requantization scale,
    ``float32(float32(lhs_scale * rhs_scale) / out_scale)``, and its float upper clamp.
    Per-tensor quantization only; raises ValueError otherwise or for scales that are not positive.
    """
    ls = _scalar(lhs_scale, "the lhs scale")
    rs = _scalar(rhs_scale, "the rhs scale")
    os_ = _scalar(out_scale, "the output scale")
    zps = [int(_scalar(z, what)) for z, what in ((lhs_zp, "the lhs zero point"), (rhs_zp, "the rhs zero point"),
                                                  (out_zp, "the output zero point"))]
    for z, what in zip(zps, ("lhs", "rhs", "output")):
        if not -128 <= z <= 127:
            raise ValueError(f"batch_matmul int8: the {what} zero point {z} is outside int8")
    for sc, what in ((ls, "lhs"), (rs, "rhs"), (os_, "output")):
        if not (math.isfinite(sc) and sc > 0):
            raise ValueError(f"batch_matmul int8: the {what} scale must be finite and positive, got {sc}")
    f32 = np.float32
    product = f32(f32(ls) * f32(rs))                                 # float32 product (both kernels)
    real = float(product) / float(f32(os_))                          # builtin: then double
    if not math.isfinite(real):
        raise ValueError(f"batch_matmul int8: the requantization multiplier {real} is not finite")
    mult, shift = quantize_multiplier(real)
    if mult > 2**31 - 1:
        raise ValueError("batch_matmul int8: the requantization multiplier does not fit int32")
    with np.errstate(over="ignore"):
        xnn_scale = f32(product / f32(os_))                           # XNNPACK: float32 throughout
    mode = 1 if (xnnpack and zps[1] == 0) else 0
    ip = np.array([mult, shift, zps[0], zps[1], zps[2], -128, 127, mode], np.int64)
    fp = np.array([xnn_scale, f32(127 - zps[2])], np.float32)
    return ip, fp


def _shape(s, what: str) -> tuple[int, ...]:
    t = tuple(int(d) for d in s)
    if not 2 <= len(t) <= MAX_RANK:
        raise ValueError(f"batch_matmul int8: the {what} has rank {len(t)}; LiteRT takes ranks 2 to {MAX_RANK}")
    if any(d < 0 for d in t):
        raise ValueError(f"batch_matmul int8: the {what} shape {t} is not static")
    return t


def dims(lhs_shape, rhs_shape, adj_x: bool, adj_y: bool, out_shape) -> np.ndarray:
    """Shape facts for :func:`compute` (int64, ``DIMS_LEN`` long):
    ``[B0, B1, B2, lhs strides x3, rhs strides x3, M, N, K, adj_x, adj_y]``.

    Batch axes are extended to three (leading ones); ``B*`` is each broadcast batch size and the
    strides are element offsets per batch step in each operand (0 where the operand broadcasts).
    ``M x N`` is one output matrix, ``K`` the accumulation depth. Raises ValueError for ranks outside
    2..5, mismatched depths, batch axes that do not broadcast, or an output shape LiteRT would not
    produce.
    """
    ls, rs, os_ = _shape(lhs_shape, "lhs"), _shape(rhs_shape, "rhs"), _shape(out_shape, "output")
    adj_x, adj_y = bool(adj_x), bool(adj_y)
    m, k = (ls[-1], ls[-2]) if adj_x else (ls[-2], ls[-1])
    k2, n = (rs[-1], rs[-2]) if adj_y else (rs[-2], rs[-1])
    if k != k2:
        raise ValueError(f"batch_matmul int8: the depths differ (lhs {ls} adj_x={adj_x} gives {k}, "
                         f"rhs {rs} adj_y={adj_y} gives {k2})")
    lb = (1,) * (3 - (len(ls) - 2)) + ls[:-2]
    rb = (1,) * (3 - (len(rs) - 2)) + rs[:-2]
    batch = []
    for a, b in zip(lb, rb):
        if a != b and a != 1 and b != 1:
            raise ValueError(f"batch_matmul int8: batch axes do not broadcast (lhs {ls}, rhs {rs})")
        batch.append(max(a, b) if a and b else 0)
    rank = max(len(ls), len(rs))
    expected = tuple(batch[3 - (rank - 2):]) + (m, n)
    if os_ != expected:
        raise ValueError(f"batch_matmul int8: the output shape {os_} is not the {expected} LiteRT computes "
                         f"for lhs {ls} x rhs {rs} (adj_x={adj_x}, adj_y={adj_y})")

    def strides(b: tuple[int, ...], mat: int) -> list[int]:
        out, step = [0, 0, 0], mat
        for i in (2, 1, 0):
            out[i] = step if b[i] != 1 else 0
            step *= b[i]
        return out

    d = batch + strides(lb, ls[-1] * ls[-2]) + strides(rb, rs[-1] * rs[-2]) + [m, n, k, int(adj_x), int(adj_y)]
    return np.array(d, np.int64)


@njit(cache=True, nogil=True)
def _requantize_row(acc, n, out, ob, ostep, mult, shift, zo, lo, hi):
    """``out[ob + i * ostep] = requantize(acc[i])`` for ``i < n``: TFLite's double-rounding
    MultiplyByQuantizedMultiplier (``x * 2^left``, gemmlowp's SaturatingRoundingDoublingHighMul,
    RoundingDivideByPOT), plus the output zero point, clamped to ``[lo, hi]``. Branch-free per element
    (the saturating case of the high mul needs a multiplier of INT32_MIN, which never occurs)."""
    left = shift if shift > 0 else 0
    right = -shift if shift < 0 else 0
    mask = (np.int64(1) << right) - 1
    half = mask >> 1
    for i in range(n):
        x = np.int64(np.int32(np.int64(acc[i]) << left))         # int32 wrap-around, as the C++
        ab = x * mult
        t = ab + (np.int64(1073741824) if ab >= 0 else np.int64(-1073741823))
        hm = (t + (np.int64(2147483647) if t < 0 else np.int64(0))) >> 31      # truncating division
        thr = half + (np.int64(1) if hm < 0 else np.int64(0))
        r = (hm >> right) + (np.int64(1) if (hm & mask) > thr else np.int64(0)) + zo
        r = min(max(r, lo), hi)
        out[ob + i * ostep] = np.int8(r)


@njit(cache=True, nogil=True)
def _requantize_row_xnnpack(acc, n, out, ob, ostep, scale, max_less_zp, zo):
    """XNNPACK's qs8 fp32 requantization as its AVX-512 GEMM kernels do it: ``float32(acc) * scale``,
    ``min`` with ``127 - zp`` (NaN takes the bound, as minps), round to nearest even (cvtps2dq: out of
    range reads as INT32_MIN), int32 add of the zero point (wrapping), signed saturation to int8."""
    for i in range(n):
        v = np.float32(acc[i]) * scale
        if not v < max_less_zp:
            v = max_less_zp
        if v >= np.float32(-2147483648.0):
            r = np.int64(np.rint(v))
        else:
            r = np.int64(-2147483648)
        r = np.int64(np.int32(r + zo))
        out[ob + i * ostep] = np.int8(min(max(r, -128), 127))


@njit(cache=True, nogil=True)
def _requantize(A, n, O, ob, ostep, ip, fp):
    if ip[7] != 0:
        _requantize_row_xnnpack(A, n, O, ob, ostep, fp[0], fp[1], ip[4])
    else:
        _requantize_row(A, n, O, ob, ostep, ip[0], ip[1], ip[4], ip[5], ip[6])


# The matrix loops index through slices of the flat operands (views, no allocation): inside a slice
# the indices are provably non-negative, so Numba drops its negative-index wrap-around and LLVM
# vectorizes the inner loops. Every int32 product and sum is cast back to int32 explicitly (Numba
# widens int32 arithmetic to int64): the wrap-around of LiteRT's int32 accumulator, and 32-bit lanes.

@njit(cache=True, nogil=True)
def _mat_kn(lhs, la, rhs, ra, out, ob, acc, M, N, K, adj_x, zl, zr, ip, fp):
    """One matrix, rhs stored K x N (lhs M x K, or K x M with adj_x): output rows accumulate
    ``a[m, k] * rhs[k, :]`` over k along contiguous rhs rows, four rows at a time (each rhs row is
    loaded once for four accumulator rows), then one at a time for the rest."""
    L = lhs[la:la + M * K]
    R = rhs[ra:ra + K * N]
    O = out[ob:ob + M * N]
    A0 = acc[0:N]
    A1 = acc[N:2 * N]
    A2 = acc[2 * N:3 * N]
    A3 = acc[3 * N:4 * N]
    m = 0
    while m + 4 <= M:
        for n in range(N):
            A0[n] = 0
            A1[n] = 0
            A2[n] = 0
            A3[n] = 0
        for k in range(K):
            if adj_x:
                a0 = np.int32(np.int32(L[k * M + m]) - zl)
                a1 = np.int32(np.int32(L[k * M + m + 1]) - zl)
                a2 = np.int32(np.int32(L[k * M + m + 2]) - zl)
                a3 = np.int32(np.int32(L[k * M + m + 3]) - zl)
            else:
                a0 = np.int32(np.int32(L[m * K + k]) - zl)
                a1 = np.int32(np.int32(L[(m + 1) * K + k]) - zl)
                a2 = np.int32(np.int32(L[(m + 2) * K + k]) - zl)
                a3 = np.int32(np.int32(L[(m + 3) * K + k]) - zl)
            Rk = R[k * N:k * N + N]
            for n in range(N):
                r = np.int32(np.int32(Rk[n]) - zr)
                A0[n] = np.int32(A0[n] + a0 * r)
                A1[n] = np.int32(A1[n] + a1 * r)
                A2[n] = np.int32(A2[n] + a2 * r)
                A3[n] = np.int32(A3[n] + a3 * r)
        _requantize(A0, N, O, m * N, 1, ip, fp)
        _requantize(A1, N, O, (m + 1) * N, 1, ip, fp)
        _requantize(A2, N, O, (m + 2) * N, 1, ip, fp)
        _requantize(A3, N, O, (m + 3) * N, 1, ip, fp)
        m += 4
    while m < M:
        for n in range(N):
            A0[n] = 0
        for k in range(K):
            if adj_x:
                a = np.int32(np.int32(L[k * M + m]) - zl)
            else:
                a = np.int32(np.int32(L[m * K + k]) - zl)
            Rk = R[k * N:k * N + N]
            for n in range(N):
                A0[n] = np.int32(A0[n] + a * np.int32(np.int32(Rk[n]) - zr))
        _requantize(A0, N, O, m * N, 1, ip, fp)
        m += 1


@njit(cache=True, nogil=True)
def _mat_nk(lhs, la, rhs, ra, out, ob, acc, M, N, K, zl, zr, ip, fp):
    """One matrix, lhs M x K and rhs stored N x K (adj_y): dot products of contiguous rows."""
    L = lhs[la:la + M * K]
    R = rhs[ra:ra + N * K]
    O = out[ob:ob + M * N]
    A = acc[0:N]
    for m in range(M):
        Lm = L[m * K:m * K + K]
        for n in range(N):
            Rn = R[n * K:n * K + K]
            s = np.int32(0)
            for k in range(K):
                s = np.int32(s + np.int32(np.int32(Lm[k]) - zl) * np.int32(np.int32(Rn[k]) - zr))
            A[n] = s
        _requantize(A, N, O, m * N, 1, ip, fp)


@njit(cache=True, nogil=True)
def _mat_km_nk(lhs, la, rhs, ra, out, ob, acc, M, N, K, zl, zr, ip, fp):
    """One matrix, lhs stored K x M (adj_x) and rhs N x K (adj_y): each output column accumulates
    ``lhs[k, :] * b[k, n]`` over k, along contiguous lhs rows."""
    L = lhs[la:la + K * M]
    R = rhs[ra:ra + N * K]
    O = out[ob:ob + M * N]
    A = acc[0:M]
    for n in range(N):
        for m in range(M):
            A[m] = 0
        Rn = R[n * K:n * K + K]
        for k in range(K):
            bv = np.int32(np.int32(Rn[k]) - zr)
            Lk = L[k * M:k * M + M]
            for m in range(M):
                A[m] = np.int32(A[m] + np.int32(np.int32(Lk[m]) - zl) * bv)
        _requantize(A, M, O, n, N, ip, fp)


@njit(cache=True, nogil=True)
def compute(lhs, rhs, out, dims, ip, fp):
    """LiteRT's int8 BATCH_MATMUL: ``out[b] = requantize(op(lhs[b]) @ op(rhs[b]))`` for every broadcast
    batch ``b``, ``op`` the transpose where ``adj_x`` / ``adj_y`` ask for it."""
    b0n = dims[0]
    b1n = dims[1]
    b2n = dims[2]
    M = dims[9]
    N = dims[10]
    K = dims[11]
    adj_x = dims[12] != 0
    adj_y = dims[13] != 0
    if b0n <= 0 or b1n <= 0 or b2n <= 0 or M <= 0 or N <= 0:
        return
    zl = np.int32(ip[2])
    zr = np.int32(ip[3])
    # int32 accumulators (four rows, or one column), reused for every matrix of the call
    acc = np.empty(4 * max(M, N), np.int32)
    ob = 0
    for b0 in range(b0n):
        for b1 in range(b1n):
            for b2 in range(b2n):
                la = b0 * dims[3] + b1 * dims[4] + b2 * dims[5]
                ra = b0 * dims[6] + b1 * dims[7] + b2 * dims[8]
                if not adj_y:
                    _mat_kn(lhs, la, rhs, ra, out, ob, acc, M, N, K, adj_x, zl, zr, ip, fp)
                elif not adj_x:
                    _mat_nk(lhs, la, rhs, ra, out, ob, acc, M, N, K, zl, zr, ip, fp)
                else:
                    _mat_km_nk(lhs, la, rhs, ra, out, ob, acc, M, N, K, zl, zr, ip, fp)
                ob += M * N


# --------------------------------------------------------------------------- TFLC_BATCH_MATMUL_I8: the native kernel

from numba import cfunc  # noqa: E402  (the kernel below builds on the compute above)

from tflc.ir.quant import quant_params  # noqa: E402

from . import _native as N  # noqa: E402
from . import _params as P  # noqa: E402
from .kernel import NativeKernel  # noqa: E402

CODE = "TFLC_BATCH_MATMUL_I8"
#: ip as written in the file: params' 8 entries, then adj_x and adj_y (read by prepare)
_ADJ = 8


@cfunc(N.SIGNATURE, nopython=True, cache=True)
def invoke(context, node):
    op = N.op_node(node)
    p = N.params_of(op)
    if p == N.u64(0):
        return N.i32(N.ERROR)
    ip, d, fp = P.views(p)
    ta, tb, to = N.input_tensor(context, op, 0), N.input_tensor(context, op, 1), N.output_tensor(context, op, 0)
    compute(N.int8s_at(N.data(ta), N.num_elements(ta)), N.int8s_at(N.data(tb), N.num_elements(tb)),
            N.int8s_at(N.data(to), N.num_elements(to)), d, ip, fp)
    return N.i32(N.OK)


def output_shape(a: tuple[int, ...], b: tuple[int, ...], adj_x: bool, adj_y: bool) -> tuple[int, ...]:
    if len(a) < 2 or len(b) < 2:
        raise ValueError(f"batch_matmul int8: operands of shapes {list(a)} and {list(b)} need rank >= 2")
    try:
        batch = tuple(int(d) for d in np.broadcast_shapes(a[:-2], b[:-2]))
    except ValueError:
        raise ValueError(f"batch_matmul int8: the batch axes of {list(a)} and {list(b)} do not broadcast") from None
    m = a[-1] if adj_x else a[-2]
    n = b[-2] if adj_y else b[-1]
    return batch + (m, n)


def _plan(v: N.OpView) -> np.ndarray:
    if len(v.inputs) != 2 or len(v.outputs) != 1:
        raise N.Refused(f"{CODE} has 2 inputs and 1 output")
    for t in (*v.inputs, *v.outputs):
        if v.type_of(t) != "INT8":
            raise N.Refused(f"a tensor is {v.type_of(t)}, needs INT8")
    ip, _, _ = P.block_parts(P.block_at(v.params))
    adj_x, adj_y = bool(ip[_ADJ]), bool(ip[_ADJ + 1])
    a, b = v.shape_of(v.inputs[0]), v.shape_of(v.inputs[1])
    try:
        out = output_shape(a, b, adj_x, adj_y)
        v.resize(v.outputs[0], out)
        return dims(a, b, adj_x, adj_y, out)
    except ValueError as e:
        raise N.Refused(str(e)) from None


_PREPARE = P.make_prepare(f"{CODE} (tflc.kernels.batch_matmul_i8)", _plan)


def _init(custom_options: bytes) -> np.ndarray:
    block = P.block_from_options(custom_options)
    if int(block[0]) != _ADJ + 2:
        raise N.Refused(f"its options hold {int(block[0])} integer parameters, {CODE} needs {_ADJ + 2}")
    return block


KERNEL = NativeKernel(invoke=invoke.address, prepare=N.address(_PREPARE), init=_init)


def _op_params(op) -> tuple[np.ndarray, np.ndarray]:
    """``params`` (builtin mode: the op is one XNNPACK leaves to the builtin kernel) and adj flags
    from an IR BATCH_MATMUL op (ValueError: not one this kernel takes)."""
    if op.type != "BATCH_MATMUL" or len(op.inputs) != 2 or len(op.outputs) != 1:
        raise ValueError(f"{op.type} is not a two-input BATCH_MATMUL")
    a, b, y = op.inputs[0], op.inputs[1], op.outputs[0]
    if any(t is None or t.type_name != "INT8" for t in (a, b, y)):
        raise ValueError("batch_matmul int8: both operands and the output must be INT8")
    qs = [quant_params(t) for t in (a, b, y)]
    if any(q is None or q.per_channel for q in qs):
        raise ValueError("batch_matmul int8: operands and output must be quantized per tensor")
    adj_x = bool(getattr(op.options, "adjX", False)) if op.options is not None else False
    adj_y = bool(getattr(op.options, "adjY", False)) if op.options is not None else False
    dims(a.shape or (), b.shape or (), adj_x, adj_y, y.shape or ())
    ip, fp = params(qs[0].scale[0], qs[0].zero_point[0], qs[1].scale[0], qs[1].zero_point[0], qs[2].scale[0],
                    qs[2].zero_point[0], xnnpack=False)
    return np.concatenate([ip, np.array([adj_x, adj_y], np.int64)]), fp


options, REPLACES, CONSTRAINTS = P.family(
    CODE, _op_params,
    "an int8 BATCH_MATMUL (ranks 2-5, batch broadcasting, adj_x/adj_y) quantized per "
    "tensor, any zero points; bit-identical to LiteRT 2.3.0's builtin kernel",
    "two INT8 inputs and one INT8 output; requantization, zero points and adj flags in its options")
