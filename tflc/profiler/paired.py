"""Paired latency ratios: B against A over rounds in which both ran, with a 95% interval and a reading.

Why rounds: a machine has slow phases (another process, frequency changes, which core a process
lands on). Two models timed in the same round, one right after the other (and in the other order
the next round), see the same phase, so the ratio *within* a round is far steadier than the ratio
of two pooled medians. A round is the unit of independent evidence: the interval is a bootstrap
over the rounds (resampled with replacement) of the median per-round ratio.

Why a band: pairing removes the machine's drift, not what differs from one process (or one copy
of a model) to the next. Two copies of the same model, timed side by side, read up to a few
percent apart on a busy machine, and a narrow interval can exclude 1 for such a difference. So a
ratio reads as a difference only when its whole 95% interval lies beyond ``NOISE_BAND`` (±2%) of
1; otherwise it reads "no difference beyond noise". Differences that small are not what a user
chooses a model by, and this is the same rule the -O2 latency guard applies before it calls a
rewrite slower (``LatencyComparison.slower(0.02)``).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np

#: a ratio within this relative distance of 1 is not a difference (see the module docstring)
NOISE_BAND = 0.02
#: bootstrap resamples of the rounds
BOOTSTRAP = 2000

FASTER, SLOWER, NO_DIFFERENCE, UNDECIDED = "faster", "slower", "no difference beyond noise", "undecided"


def reading(ci_low: float | None, ci_high: float | None, band: float = NOISE_BAND) -> str:
    """"faster" / "slower" only when the whole interval lies beyond ``band`` of 1; "undecided"
    without an interval (fewer than 2 paired rounds); else "no difference beyond noise"."""
    if ci_low is None or ci_high is None or not (math.isfinite(ci_low) and math.isfinite(ci_high)):
        return UNDECIDED
    if ci_high < 1.0 - band:
        return FASTER
    if ci_low > 1.0 + band:
        return SLOWER
    return NO_DIFFERENCE


@dataclass
class PairedRatio:
    """``ratio``: the median over paired rounds of (B's round statistic / A's), the statistic being
    the ``quantile``-th percentile of the round's runs (50: the median). ``ci_low``/``ci_high``:
    95% bootstrap interval over the rounds (None with fewer than 2 rounds)."""

    ratio: float
    ci_low: float | None
    ci_high: float | None
    rounds: int
    quantile: float = 50.0
    band: float = NOISE_BAND

    @property
    def verdict(self) -> str:
        return reading(self.ci_low, self.ci_high, self.band)

    def to_json(self) -> dict:
        return {"ratio": self.ratio, "ci": [self.ci_low, self.ci_high], "rounds": self.rounds,
                "quantile": self.quantile, "band": self.band, "verdict": self.verdict}


def paired_ratio(a_rounds: Mapping[int, Sequence[float]] | Sequence[Sequence[float]],
                 b_rounds: Mapping[int, Sequence[float]] | Sequence[Sequence[float]], *, quantile: float = 50.0,
                 band: float = NOISE_BAND, seed: int = 0) -> PairedRatio | None:
    """B against A over the rounds both have (by round id for mappings, by position for lists).

    Each round gives one ratio: percentile ``quantile`` of B's runs in it over A's. None when no
    round has both sides (or A's statistic is 0)."""
    a = dict(a_rounds) if isinstance(a_rounds, Mapping) else dict(enumerate(a_rounds))
    b = dict(b_rounds) if isinstance(b_rounds, Mapping) else dict(enumerate(b_rounds))
    ratios = []
    for r in sorted(set(a) & set(b)):
        if len(a[r]) and len(b[r]):
            den = float(np.percentile(np.asarray(a[r], dtype=float), quantile))
            num = float(np.percentile(np.asarray(b[r], dtype=float), quantile))
            if den > 0:
                ratios.append(num / den)
    return ratio_interval(ratios, quantile=quantile, band=band, seed=seed)


def ratio_interval(ratios: Sequence[float], *, quantile: float = 50.0, band: float = NOISE_BAND,
                   seed: int = 0) -> PairedRatio | None:
    """The median of per-round ratios and its 95% bootstrap interval over the rounds."""
    x = np.asarray(ratios, dtype=float)
    if x.size == 0:
        return None
    med = float(np.median(x))
    if x.size < 2:
        return PairedRatio(med, None, None, 1, quantile, band)
    rng = np.random.default_rng(seed)
    boot = np.median(x[rng.integers(0, x.size, size=(BOOTSTRAP, x.size))], axis=1)
    lo, hi = np.percentile(boot, [2.5, 97.5])
    return PairedRatio(med, float(lo), float(hi), int(x.size), quantile, band)


def split_rounds(samples: Sequence[float], sizes: Sequence[int], ids: Sequence[int] | None = None
                 ) -> dict[int, list[float]]:
    """Pooled ``samples`` back into rounds: ``sizes[k]`` samples for round ``ids[k]`` (default k).
    Empty when the sizes do not account for every sample (the rounds are unknown)."""
    ids = list(ids) if ids is not None and len(ids) == len(sizes) else list(range(len(sizes)))
    if sum(sizes) != len(samples):
        return {}
    out: dict[int, list[float]] = {}
    pos = 0
    for r, n in zip(ids, sizes):
        out.setdefault(r, []).extend(float(v) for v in samples[pos:pos + n])
        pos += n
    return out
