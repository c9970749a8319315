"""Range estimators for quantize-int8's activations: min/max, percentile, MSE-optimal.

**MSE-optimal** (``mse_range``): the clipping range [a, b] (a <= 0 <= b, inside the calibrated
[min, max]) minimizing the expected squared quantization error of the tensor's values, clip and
rounding together, over a histogram of its calibration values (``TensorRange.histogram``: 2048
bins over [min, max]). For a value x with the grid step s = (b - a) / (levels - 1):

    error(x) = (x - b)^2             x > b   (clipped)
             = (a - x)^2             x < a
             = s^2 / 12              else    (rounding, uniform within a step)

summed over the bins (their centres, weighted by their counts). Exact zeros (a ReLU's off half,
padding) are left out: 0 is exact on every grid, so they cost nothing whatever the range.

The search is a grid over the two
clipping thresholds, a = min * f and b = max * g with f, g in (0, 1] (``GRID`` steps each; a side
that is 0, e.g. after a ReLU, stays 0), all pairs at once (the clipping cost is separable: one
pass over the bins per threshold and side). Min/max is one of the pairs (f = g = 1),
so the result never costs more than min/max on the histogram.
"""
from __future__ import annotations

import numpy as np

#: clipping thresholds tried per side (as fractions of min and max)
GRID = 64
#: histogram bins (as the calibration analysis' ``TensorRange.histogram``)
HIST_BINS = 2048
#: the smallest fraction tried
LOWEST = 0.02


def expected_error(counts: np.ndarray, centres: np.ndarray, lo, hi, levels: int = 256) -> np.ndarray:
    """The mean squared quantization error of the histogram for each range ``[lo, hi]`` (arrays
    broadcast together; the result has their shape)."""
    lo = np.asarray(lo, np.float64)[..., None]
    hi = np.asarray(hi, np.float64)[..., None]
    step = np.maximum(hi - lo, 1e-30) / (levels - 1)
    x = centres.astype(np.float64)
    clip = np.where(x > hi, (x - hi) ** 2, 0.0) + np.where(x < lo, (lo - x) ** 2, 0.0)
    inside = (x >= lo) & (x <= hi)
    err = clip + np.where(inside, step ** 2 / 12.0, 0.0)
    w = counts.astype(np.float64)
    return (err * w).sum(axis=-1) / max(w.sum(), 1.0)


def mse_range_from_histogram(counts: np.ndarray, edges: np.ndarray, levels: int = 256,
                             grid: int = GRID) -> tuple[float, float]:
    """The MSE-optimal (lo, hi) of a histogram (``counts``, ``edges`` as ``np.histogram``)."""
    counts = np.asarray(counts)
    edges = np.asarray(edges, np.float64)
    mn, mx = min(float(edges[0]), 0.0), max(float(edges[-1]), 0.0)
    if counts.sum() == 0 or mx - mn <= 1e-30:
        return float(edges[0]), float(edges[-1])
    centres = (edges[:-1] + edges[1:]) / 2
    keep = counts > 0
    counts, centres = counts[keep], centres[keep]
    fr = np.linspace(LOWEST, 1.0, grid)
    los = mn * fr if mn < 0 else np.zeros(1)
    his = mx * fr if mx > 0 else np.zeros(1)
    w = counts.astype(np.float64) / counts.sum()
    x = centres
    # separable: the clipping cost of each side and the weight outside it, per threshold
    above = x[None, :] > his[:, None]
    below = x[None, :] < los[:, None]
    cost_hi = (np.where(above, (x[None, :] - his[:, None]) ** 2, 0.0) * w).sum(axis=1)
    cost_lo = (np.where(below, (los[:, None] - x[None, :]) ** 2, 0.0) * w).sum(axis=1)
    w_hi, w_lo = (above * w).sum(axis=1), (below * w).sum(axis=1)
    step = np.maximum(his[None, :] - los[:, None], 1e-30) / (levels - 1)
    inside = np.clip(1.0 - w_lo[:, None] - w_hi[None, :], 0.0, None)
    err = cost_lo[:, None] + cost_hi[None, :] + inside * step ** 2 / 12.0
    i, j = np.unravel_index(int(np.argmin(err)), err.shape)
    return float(los[i]), float(his[j])


def mse_range(values: np.ndarray, bins: int = 2048, levels: int = 256, grid: int = GRID) -> tuple[float, float]:
    """The MSE-optimal (lo, hi) of a sample of values (a ``bins``-bin histogram of them)."""
    v = np.asarray(values, np.float64).reshape(-1)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return 0.0, 0.0
    lo, hi = float(v.min()), float(v.max())
    counts, edges = np.histogram(v, bins=bins, range=(lo, hi if hi > lo else lo + 1e-12))
    return mse_range_from_histogram(counts, edges, levels, grid)


def activation_params(lo: float, hi: float) -> tuple[float, int]:
    """Asymmetric int8 (scale, zero point) for [lo, hi], widened to hold 0 (exactly representable)."""
    lo, hi = min(float(lo), 0.0), max(float(hi), 0.0)
    if not np.isfinite(lo) or not np.isfinite(hi):
        raise ValueError("non-finite range")
    if hi - lo <= 1e-30:
        return 1.0 / 255, -128
    scale = (hi - lo) / 255.0
    zp = int(np.clip(np.round(-128 - lo / scale), -128, 127))
    return float(np.float32(scale)), zp


def activation_params16(lo: float, hi: float) -> tuple[float, int]:
    """Symmetric int16 (scale, 0) for [lo, hi]: scale = max(|lo|, |hi|) / 32767."""
    amax = max(abs(float(lo)), abs(float(hi)))
    if not np.isfinite(amax):
        raise ValueError("non-finite range")
    return (float(np.float32(amax / 32767.0)) if amax > 1e-30 else 1.0 / 32767), 0


def quantization_mse(values: np.ndarray, lo: float, hi: float, levels: int = 256) -> float:
    """The real mean squared error of quantizing ``values`` on the asymmetric grid of [lo, hi]
    (:func:`activation_params`: the range widened to hold 0, 0 exact)."""
    v = np.asarray(values, np.float64)
    if levels == 256:
        s, z = activation_params(lo, hi)
        q = np.clip(np.round(v / s) + z, -128, 127)
    else:
        s, z = activation_params16(lo, hi)
        q = np.clip(np.round(v / s), -32767, 32767)
    return float(np.mean(((q - z) * s - v) ** 2))


def tensor_range(r, method: str, percentile: float = 99.99, levels: int = 256) -> tuple[float, float]:
    """A calibrated tensor's (lo, hi) by ``method``: minmax, percentile, mse or avgminmax. Kept on
    the summary where it has a ``memo`` (ranges=auto asks for the same ones many times)."""
    memo = getattr(r, "memo", None)
    if memo is None:
        return _tensor_range(r, method, percentile, levels)
    key = (method, percentile, levels)
    if key not in memo:
        memo[key] = _tensor_range(r, method, percentile, levels)
    return memo[key]


def _tensor_range(r, method: str, percentile: float, levels: int) -> tuple[float, float]:
    if method == "minmax":
        return r.min, r.max
    if method == "percentile":
        return r.range(percentile if percentile < 100 else None)
    if method == "avgminmax":
        if getattr(r, "sample_min", None) is None or r.sample_min.size == 0:
            return r.min, r.max
        return float(np.mean(r.sample_min)), float(np.mean(r.sample_max))
    if method == "mse":
        if getattr(r, "samples", None) is None or r.samples.size == 0:
            return r.min, r.max
        # exact zeros (a ReLU's off half) cost nothing on any grid (0 is exact): left out
        v = r.samples[r.samples != 0]
        if v.size == 0:
            return r.min, r.max
        counts, edges = np.histogram(v, bins=HIST_BINS, range=(r.min, r.max if r.max > r.min else r.min + 1e-12))
        a, b = mse_range_from_histogram(counts, edges, levels)
        return max(a, r.min), min(b, r.max)
    raise ValueError(f"unknown range method {method!r}")
