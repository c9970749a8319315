"""Bit-exact int8 SOFTMAX of LiteRT 2.3.0's builtin kernel, as a pure Numba compute function.

What LiteRT runs (``tflite/kernels/activations.cc``, kernel type ``kGenericOptimized``, on an x86-64
build where ``TFLITE_SOFTMAX_USE_UINT16_LUT`` is not defined: that switch is for clang on aarch64):

* at prepare (``PopulateSoftmaxLookupTable``): a float32 table of 256 entries,
  ``table[255 - v] = expf(float32(-input_scale * beta) * float32(v))`` for ``v = 0..255``, i.e. the
  exponential of ``-(max - x) * input_scale * beta``; the input zero point is never used (softmax is
  shift invariant). The output must have zero point -128 and a scale within 0.001/256 of 1/256
  (LiteRT's ``TF_LITE_ENSURE_NEAR``), and the output's own scale is the one used below;
* per row of the last axis (``optimized_ops::Softmax``): the max of the int8 values, a float32 sum
  of ``table[255 - max + x]`` in index order (no reassociation: Numba without fastmath keeps it),
  ``inv = 1.0f / (sum * output_scale)``, and each output is
  ``clamp(int32(roundf(table[255 - max + x] * inv)) + zero_point, -128, 127)`` with ``roundf``
  rounding halves away from zero.

The table is computed here in Python with glibc's ``expf`` through ctypes: LiteRT's shared library
imports ``expf@GLIBC_2.27`` (no vector variant), so the float32 values are the same ones (numpy's
own float32 exp differs from it in about a third of the entries). Without a C library ``expf``, the
float32 rounding of the double ``exp`` stands in (glibc's expf is correctly rounded in practice).
XNNPACK does not take int8 SOFTMAX, so the stock interpreter always runs this builtin kernel.

Contract (shared with the native-kernel wrapper): ``params`` -> ``(ip, fp)`` with
``ip = [output_zero_point]`` and ``fp = table[0:256] ++ [output_scale, max(table)]``; ``dims(shape) ->
[outer, depth]``; ``compute(x, out, dims, ip, fp)`` on flat C-contiguous arrays.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import math

import numpy as np
from numba import njit

__all__ = ["params", "dims", "compute", "TABLE_SIZE"]

TABLE_SIZE = 256
_FP_SCALE = TABLE_SIZE          # fp[256]: the output scale (float32)


def _libm_expf():
    for name in (ctypes.util.find_library("m"), "libm.so.6"):
        if not name:
            continue
        try:
            f = ctypes.CDLL(name).expf
        except (OSError, AttributeError):
            continue
        f.restype, f.argtypes = ctypes.c_float, [ctypes.c_float]
        return f
    return None


_EXPF = _libm_expf()


def _expf(x: np.float32) -> np.float32:
    if _EXPF is not None:
        return np.float32(_EXPF(float(x)))
    # no C library expf: the correctly rounded float32 of exp (what glibc's expf returns in practice)
    try:
        return np.float32(math.exp(float(x)))
    except OverflowError:
        return np.float32(np.inf)


def _scalar(v, what: str) -> float:
    a = np.asarray(v)
    if a.ndim > 0:
        if a.size != 1:
            raise ValueError(f"softmax int8: {what} has {a.size} values; only per-tensor quantization is supported")
        a = a.reshape(())
    return a.item()


def params(input_scale: float, input_zero_point: int, output_scale: float, output_zero_point: int,
           beta: float) -> tuple[np.ndarray, np.ndarray]:
    """``(ip, fp)`` for :func:`compute`: the exp table LiteRT builds at prepare, and the output params.

    Raises ValueError where LiteRT would refuse the op (output zero point not -128, output scale not
    within 0.001/256 of 1/256) or for a non-per-tensor / non-finite quantization.
    """
    in_scale = _scalar(input_scale, "the input scale")
    _scalar(input_zero_point, "the input zero point")          # unused by LiteRT, but must be per-tensor
    out_scale = _scalar(output_scale, "the output scale")
    out_zp = int(_scalar(output_zero_point, "the output zero point"))
    beta = float(beta)
    if not (math.isfinite(in_scale) and in_scale > 0):
        raise ValueError(f"softmax int8: the input scale must be finite and positive, got {in_scale}")
    if out_zp != -128:
        raise ValueError(f"softmax int8: LiteRT requires the output zero point -128, got {out_zp}")
    s = np.float32(out_scale)
    if not abs(float(s) - 1.0 / 256) <= 0.001 * (1.0 / 256):
        raise ValueError(f"softmax int8: LiteRT requires an output scale within 0.001/256 of 1/256, got {out_scale}")
    if not math.isfinite(beta):
        raise ValueError(f"softmax int8: beta must be finite, got {beta}")
    # float32 throughout, as the C++ (-input_scale * beta in float, then times float(v))
    scale = np.float32(-np.float32(in_scale)) * np.float32(beta)
    fp = np.empty(TABLE_SIZE + 2, np.float32)
    for v in range(TABLE_SIZE):
        fp[TABLE_SIZE - 1 - v] = _expf(np.float32(scale * np.float32(v)))
    fp[_FP_SCALE] = s
    table = fp[:TABLE_SIZE]
    # the largest entry (NaN if any is NaN): bounds every p of a row, for compute's fast path
    fp[_FP_SCALE + 1] = np.float32(np.nan) if np.isnan(table).any() else table.max()
    ip = np.array([out_zp], np.int64)
    return ip, fp


def dims(input_shape) -> np.ndarray:
    """``[outer, depth]``: softmax runs over the last axis (depth), ``outer`` rows of it."""
    shape = tuple(int(d) for d in input_shape)
    if len(shape) < 1:
        raise ValueError("softmax int8: the input must have at least one dimension (LiteRT requires rank >= 1)")
    if any(d < 0 for d in shape):
        raise ValueError(f"softmax int8: the input shape {shape} is not static")
    depth = shape[-1]
    outer = 1
    for d in shape[:-1]:
        outer *= d
    return np.array([outer, depth], np.int64)


@njit(inline="always")
def _row_max(x, base, depth):
    mx = np.int64(-128)
    for j in range(depth):
        v = np.int64(x[base + j])
        if v > mx:
            mx = v
    return mx


@njit(inline="always")
def _row_out(x, out, base, depth, T, s, out_scale, tmax, zp):
    """One row's outputs from its sum ``s``: ``clamp(int32(roundf(table * inv)) + zp)``. ``T`` is
    the row's view of the table, ``T[x + 128] = table[255 - max + x]``: an index LLVM can prove
    non-negative (an int8 plus 128), so no negative-index wrap-around runs per element."""
    den = s * out_scale
    inv = np.float32(np.inf) if den == np.float32(0.0) else np.float32(1.0) / den
    bound = np.float64(tmax) * np.float64(inv)
    if bound >= 0.0 and bound < 1073741824.0 and zp == -128:
        # every p lies in [0, 2^30): roundf(p) (half away from zero) is floor(double(p) + 0.5)
        # exactly, and no x86 overflow case arises. The zero point is LiteRT's required -128
        # (params checks it), written as a constant: with it read at run time LLVM does not
        # vectorize this loop, which then runs 6x slower on rows the branch predictor cannot learn
        for j in range(depth):
            p = T[np.int64(x[base + j]) + 128] * inv
            q = np.int64(np.floor(np.float64(p) + 0.5)) - 128
            out[base + j] = np.int8(min(max(q, -128), 127))
        return
    for j in range(depth):
        p = T[np.int64(x[base + j]) + 128] * inv
        # roundf, then the float->int32 conversion of x86 (out of range or NaN reads as
        # INT32_MIN), the int32 add of the zero point, the clamp
        if p >= np.float32(0.0) and p < np.float32(2147483648.0):
            f = np.floor(p)
            q = np.int64(f)
            if p - f >= np.float32(0.5):
                q += 1
        elif p < np.float32(0.0) and p > np.float32(-2147483648.0):
            f = np.floor(-p)
            q = -np.int64(f)
            if -p - f >= np.float32(0.5):
                q -= 1
        else:
            q = np.int64(-2147483648)
        q = q + zp
        q = ((q + 2147483648) & 0xFFFFFFFF) - 2147483648      # int32 wrap-around
        if q > 127:
            q = 127
        elif q < -128:
            q = -128
        out[base + j] = np.int8(q)


@njit(cache=True, nogil=True)
def compute(x, out, dims, ip, fp):
    """LiteRT's int8 softmax over rows of ``dims[1]`` values: ``x`` int8 in, ``out`` int8 out.

    Four rows at a time: their four float32 sums run side by side, each in index order (the same
    sums as LiteRT's, so the same bits), which hides the latency of one serial sum. Each row reads
    the table through its own view ``T = fp[127 - max:256]``, ``T[x + 128]`` being LiteRT's
    ``table[255 - max + x]``."""
    outer = dims[0]
    depth = dims[1]
    if outer <= 0 or depth <= 0:
        return
    zp = ip[0]
    out_scale = fp[256]
    if fp.size > 257:                   # the largest table entry bounds every p of a row by tmax * inv
        tmax = fp[257]
    else:
        tmax = np.float32(0.0)
        for k in range(256):
            if not fp[k] <= tmax:       # (NaN too)
                tmax = fp[k]
    i = 0
    while i + 4 <= outer:
        b0 = i * depth
        b1 = b0 + depth
        b2 = b1 + depth
        b3 = b2 + depth
        T0, T1 = fp[127 - _row_max(x, b0, depth):256], fp[127 - _row_max(x, b1, depth):256]
        T2, T3 = fp[127 - _row_max(x, b2, depth):256], fp[127 - _row_max(x, b3, depth):256]
        s0 = s1 = s2 = s3 = np.float32(0.0)
        for j in range(depth):
            s0 += T0[np.int64(x[b0 + j]) + 128]
            s1 += T1[np.int64(x[b1 + j]) + 128]
            s2 += T2[np.int64(x[b2 + j]) + 128]
            s3 += T3[np.int64(x[b3 + j]) + 128]
        _row_out(x, out, b0, depth, T0, s0, out_scale, tmax, zp)
        _row_out(x, out, b1, depth, T1, s1, out_scale, tmax, zp)
        _row_out(x, out, b2, depth, T2, s2, out_scale, tmax, zp)
        _row_out(x, out, b3, depth, T3, s3, out_scale, tmax, zp)
        i += 4
    while i < outer:
        b0 = i * depth
        T0 = fp[127 - _row_max(x, b0, depth):256]
        s0 = np.float32(0.0)
        for j in range(depth):
            s0 += T0[np.int64(x[b0 + j]) + 128]
        _row_out(x, out, b0, depth, T0, s0, out_scale, tmax, zp)
        i += 1


# --------------------------------------------------------------------------- TFLC_SOFTMAX_I8: the native kernel

from numba import cfunc  # noqa: E402  (the kernel below builds on the compute above)

from tflc.ir.quant import quant_params  # noqa: E402

from . import _native as N  # noqa: E402
from . import _params as P  # noqa: E402
from .kernel import NativeKernel  # noqa: E402

CODE = "TFLC_SOFTMAX_I8"


@cfunc(N.SIGNATURE, nopython=True, cache=True)
def invoke(context, node):
    op = N.op_node(node)
    p = N.params_of(op)
    if p == N.u64(0):
        return N.i32(N.ERROR)
    ip, d, fp = P.views(p)
    n = d[0] * d[1]
    compute(N.int8s_at(N.data(N.input_tensor(context, op, 0)), n),
            N.int8s_at(N.data(N.output_tensor(context, op, 0)), n), d, ip, fp)
    return N.i32(N.OK)


def _plan(v: N.OpView) -> np.ndarray:
    if len(v.inputs) != 1 or len(v.outputs) != 1:
        raise N.Refused(f"{CODE} has 1 input and 1 output")
    for t in (*v.inputs, *v.outputs):
        if v.type_of(t) != "INT8":
            raise N.Refused(f"a tensor is {v.type_of(t)}, needs INT8")
    shape = v.shape_of(v.inputs[0])
    v.resize(v.outputs[0], shape)
    try:
        return dims(shape)
    except ValueError as e:
        raise N.Refused(str(e)) from None


_PREPARE = P.make_prepare(f"{CODE} (tflc.kernels.softmax_i8)", _plan)
KERNEL = NativeKernel(invoke=invoke.address, prepare=N.address(_PREPARE), init=P.block_from_options)


def _op_params(op) -> tuple[np.ndarray, np.ndarray]:
    """``params`` from an IR SOFTMAX op (ValueError: not one this kernel takes)."""
    if op.type != "SOFTMAX" or len(op.inputs) != 1 or len(op.outputs) != 1:
        raise ValueError(f"{op.type} is not a one-input SOFTMAX")
    x, y = op.inputs[0], op.outputs[0]
    if x is None or y is None or x.type_name != "INT8" or y.type_name != "INT8":
        raise ValueError("softmax int8: input and output must be INT8")
    qx, qy = quant_params(x), quant_params(y)
    if qx is None or qy is None or qx.per_channel or qy.per_channel:
        raise ValueError("softmax int8: input and output must be quantized per tensor")
    dims(x.shape or ())
    beta = float(getattr(op.options, "beta", 1.0) if op.options is not None else 1.0)
    return params(qx.scale[0], qx.zero_point[0], qy.scale[0], qy.zero_point[0], beta)


options, REPLACES, CONSTRAINTS = P.family(
    CODE, _op_params,
    "an int8 SOFTMAX quantized per tensor (output 1/256, zero point -128), any beta, "
    "static shape; bit-identical to LiteRT 2.3.0's builtin kernel",
    "one INT8 input, one INT8 output of its shape; parameters (exp table, output scale and "
    "zero point) in its options")
