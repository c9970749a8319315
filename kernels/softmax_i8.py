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
``ip = [output_zero_point]`` and ``fp = table[0:256] ++ [output_scale]``; ``dims(shape) ->
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
    fp = np.empty(TABLE_SIZE + 1, np.float32)
    for v in range(TABLE_SIZE):
        fp[TABLE_SIZE - 1 - v] = _expf(np.float32(scale * np.float32(v)))
    fp[_FP_SCALE] = s
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


@njit(cache=True, nogil=True)
def compute(x, out, dims, ip, fp):
    """LiteRT's int8 softmax over rows of ``dims[1]`` values: ``x`` int8 in, ``out`` int8 out."""
    outer = dims[0]
    depth = dims[1]
    if outer <= 0 or depth <= 0:
        return
    zp = ip[0]
    out_scale = fp[256]
    one = np.float32(1.0)
    half = np.float32(0.5)
    for i in range(outer):
        # row views: indices provably non-negative, so no negative-index wrap-around per element
        X = x[i * depth:(i + 1) * depth]
        O = out[i * depth:(i + 1) * depth]
        mx = np.int64(-128)
        for j in range(depth):
            v = np.int64(X[j])
            if v > mx:
                mx = v
        T = fp[127 - mx:256]              # T[x + 128] = table[255 - max + x] = exp(-(max - x) * scale * beta)
        s = np.float32(0.0)
        for j in range(depth):
            s += T[np.int64(X[j]) + 128]
        den = s * out_scale
        if den == np.float32(0.0):          # never for finite tables (the max contributes 1)
            inv = np.float32(np.inf)
        else:
            inv = one / den
        for j in range(depth):
            p = T[np.int64(X[j]) + 128] * inv
            # roundf (half away from zero; p >= 0), then the float->int32 conversion of x86
            # (out of range or NaN reads as INT32_MIN), the int32 add of the zero point, the clamp
            if p >= np.float32(0.0) and p < np.float32(2147483648.0):
                f = np.floor(p)
                q = np.int64(f)
                if p - f >= half:
                    q += 1
            elif p < np.float32(0.0) and p > np.float32(-2147483648.0):
                f = np.floor(-p)
                q = -np.int64(f)
                if -p - f >= half:
                    q -= 1
            else:
                q = np.int64(-2147483648)
            q = q + zp
            q = ((q + 2147483648) & 0xFFFFFFFF) - 2147483648      # int32 wrap-around
            if q > 127:
                q = 127
            elif q < -128:
                q = -128
            O[j] = np.int8(q)
