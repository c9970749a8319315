"""Accuracy metrics between a reference output and a candidate output."""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np


@dataclass
class OutputDiff:
    name: str
    shape: tuple[int, ...]
    identical: bool          # bit-identical
    max_abs: float
    mean_abs: float
    max_rel: float           # max |a-b| / max(|a|)
    cosine: float
    sqnr_db: float           # 10 log10(sum a^2 / sum (a-b)^2); inf when identical (null in JSON)
    #: integer outputs on the same quantization grid: the largest difference in steps; else None
    max_steps: int | None = None

    def to_json(self) -> dict:
        d = asdict(self)
        for k in ("max_abs", "mean_abs", "max_rel", "cosine", "sqnr_db"):
            v = d[k]
            d[k] = None if v != v or v in (float("inf"), float("-inf")) else v  # JSON has no inf
        d["shape"] = list(self.shape)
        return d


def _dequant(a: np.ndarray, q: tuple[float, int] | None) -> np.ndarray:
    if q and q[0] and a.dtype.kind in "iu":
        return (a.astype(np.float64) - q[1]) * q[0]
    return a.astype(np.float64) if a.dtype.kind != "c" else a.astype(np.complex128)


def diff_output(name: str, ref: np.ndarray, got: np.ndarray, ref_q=None, got_q=None) -> OutputDiff:
    identical = ref.shape == got.shape and ref.dtype == got.dtype and ref.tobytes() == got.tobytes()
    if ref.shape != got.shape or ref.dtype.kind in "SUOV" or got.dtype.kind in "SUOV":
        nan = float("nan")
        return OutputDiff(name, tuple(ref.shape), identical, nan, nan, nan, nan, nan)
    a, b = _dequant(ref, ref_q), _dequant(got, got_q)
    steps = None
    if ref.dtype.kind in "iu" and got.dtype == ref.dtype and ref_q and got_q and tuple(ref_q) == tuple(got_q):
        steps = int(np.abs(ref.astype(np.int64) - got.astype(np.int64)).max()) if ref.size else 0
    err = np.abs(a - b)
    finite = np.isfinite(err)
    max_abs = float(err[finite].max()) if finite.any() else (0.0 if identical else float("nan"))
    mean_abs = float(err[finite].mean()) if finite.any() else max_abs
    peak = float(np.abs(a[np.isfinite(a)]).max()) if np.isfinite(a).any() else 0.0
    max_rel = max_abs / peak if peak > 0 else (0.0 if max_abs == 0 else float("inf"))
    af, bf = a.ravel(), b.ravel()
    na, nb = np.linalg.norm(af), np.linalg.norm(bf)
    cosine = float(np.real(np.vdot(af, bf)) / (na * nb)) if na > 0 and nb > 0 else (1.0 if na == nb else 0.0)
    noise = float(np.sum(np.abs(a - b) ** 2))
    signal = float(np.sum(np.abs(a) ** 2))
    sqnr = float("inf") if noise == 0 else (10 * np.log10(signal / noise) if signal > 0 else float("-inf"))
    return OutputDiff(name, tuple(ref.shape), identical, max_abs, mean_abs, max_rel, cosine, sqnr, steps)
