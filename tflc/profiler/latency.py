"""Whole-model latency: one model (:func:`measure_latency`) or two compared (:func:`compare_latency`).

Timings run in an isolated child on the stock interpreter (``tflc.runtime.Session``), the way a
Python user runs the model. Comparing two models interleaves them in rounds (A B B A ...), so
that slow drifts of the machine (another process, frequency changes) hit both alike; the ratio
comes with a bootstrap confidence interval over the rounds.
"""
from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Sequence

import numpy as np

from ..runtime.interpreter import RunOptions, Session, native_stderr
from .collect import SWITCH_PAUSE_S


@dataclass
class LatencyStats:
    runs: int
    warmup: int
    threads: int
    xnnpack: bool
    mean_us: float
    std_us: float
    min_us: float
    max_us: float
    p50_us: float
    p90_us: float
    p99_us: float
    samples: list[float] = field(default_factory=list, repr=False)
    round_sizes: list[int] = field(default_factory=list, repr=False)   # samples per round, in order (bench)

    @property
    def cv(self) -> float:
        """Coefficient of variation (std / mean)."""
        return self.std_us / self.mean_us if self.mean_us else 0.0

    def to_json(self, samples: bool = False) -> dict:
        d = asdict(self)
        if not samples:
            d.pop("samples")
            d.pop("round_sizes")
        d["cv"] = self.cv
        return d

    @classmethod
    def from_samples(cls, samples: Sequence[float], *, warmup: int = 0, threads: int = 1,
                     xnnpack: bool = True) -> "LatencyStats":
        a = np.asarray(samples, dtype=float)
        if a.size == 0:
            raise ValueError("no samples")
        p50, p90, p99 = np.percentile(a, [50, 90, 99])
        return cls(int(a.size), warmup, threads, xnnpack, float(a.mean()), float(a.std()), float(a.min()),
                   float(a.max()), float(p50), float(p90), float(p99), [float(x) for x in a])


def _inputs_for(s: Session, input_source: str | None, shapes: dict | None, seed: int) -> list[np.ndarray]:
    from ..runtime.inputs import load_inputs
    return load_inputs(input_source, s.input_details, steps=1, seed=seed, shapes=shapes)[0]


def _open(model: Any, options: RunOptions) -> Session:
    with native_stderr():
        return Session(model if isinstance(model, (bytes, bytearray)) else str(model), options)


def _timed(interp: Any, n: int) -> list[float]:
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        interp.invoke()
        out.append((time.perf_counter() - t0) * 1e6)
    return out


def _measure(model: Any, threads: int, runs: int, warmup: int, xnnpack: bool, delegates: tuple,
             input_source: str | None, shapes: dict | None, seed: int, max_seconds: float) -> LatencyStats:
    s = _open(model, RunOptions(threads=threads, xnnpack=xnnpack, delegates=tuple(delegates)))
    s.run(_inputs_for(s, input_source, shapes, seed))
    _timed(s.interp, max(0, warmup))
    samples: list[float] = []
    t0 = time.perf_counter()
    while len(samples) < runs:
        samples.extend(_timed(s.interp, min(10, runs - len(samples))))
        if len(samples) >= 5 and time.perf_counter() - t0 > max_seconds:
            break
    return LatencyStats.from_samples(samples, warmup=warmup, threads=threads, xnnpack=xnnpack)


def _isolated(fn: Any, *args: Any, what: str, timeout: float, isolate: bool) -> Any:
    if not isolate:
        return fn(*args)
    from ..runtime.isolate import run_isolated
    return run_isolated(fn, *args, timeout=timeout, what=what)


def measure_latency(model: str | os.PathLike | bytes, threads: int = 1, runs: int = 100, warmup: int = 10, *,
                    xnnpack: bool = True, delegates: Sequence[Any] = (), input_source: str | None = None,
                    shapes: dict | None = None, seed: int = 0, max_seconds: float = 30.0,
                    isolate: bool = True, timeout: float = 900.0) -> LatencyStats:
    """Latency of ``model`` in the stock interpreter: ``warmup`` untimed invocations, then ``runs``
    timed ones (fewer if ``max_seconds`` runs out; at least 5)."""
    return _isolated(_measure, model if isinstance(model, (bytes, bytearray)) else str(model), threads, runs, warmup,
                     xnnpack, tuple(delegates), input_source, shapes, seed, max_seconds,
                     what="measuring latency", timeout=timeout, isolate=isolate and not delegates)


@dataclass
class LatencyComparison:
    """``ratio`` = B's latency / A's (below 1: B is faster), with a 95% interval over rounds."""
    ratio: float
    ci_low: float
    ci_high: float
    rounds: int
    a: LatencyStats
    b: LatencyStats

    @property
    def verdict(self) -> str:
        if self.ci_high < 1.0:
            return "faster"
        if self.ci_low > 1.0:
            return "slower"
        return "same"

    def slower(self, margin: float = 0.0) -> bool:
        """B is slower than A by more than ``margin`` (relative), with 95% confidence."""
        return self.ci_low > 1.0 + margin

    def faster(self, margin: float = 0.0) -> bool:
        return self.ci_high < 1.0 - margin

    def to_json(self) -> dict:
        return {"ratio": self.ratio, "ci_low": self.ci_low, "ci_high": self.ci_high, "rounds": self.rounds,
                "verdict": self.verdict, "a": self.a.to_json(), "b": self.b.to_json()}


def _compare(a: Any, b: Any, threads: int, rounds: int, per_round: int, warmup: int, xnnpack: bool,
             input_source: str | None, shapes: dict | None, seed: int, max_seconds: float) -> LatencyComparison:
    opts = RunOptions(threads=threads, xnnpack=xnnpack)
    sa, sb = _open(a, opts), _open(b, opts)
    sa.run(_inputs_for(sa, input_source, shapes, seed))
    sb.run(_inputs_for(sb, input_source, shapes, seed))
    _timed(sa.interp, warmup)
    _timed(sb.interp, warmup)
    ra: list[list[float]] = []
    rb: list[list[float]] = []
    t0 = time.perf_counter()
    pause = 0.0 if threads == 1 else SWITCH_PAUSE_S   # idle workers of one runtime spin for a while
    for r in range(rounds):
        first, second = (sa, sb) if r % 2 == 0 else (sb, sa)     # A B, B A, ...
        if pause:
            time.sleep(pause)
            first.interp.invoke()
        x = _timed(first.interp, per_round)
        if pause:
            time.sleep(pause)
            second.interp.invoke()
        y = _timed(second.interp, per_round)
        (ra if first is sa else rb).append(x)
        (rb if second is sb else ra).append(y)
        if r >= 5 and time.perf_counter() - t0 > max_seconds:
            break
    ratios = np.array([np.median(y) / np.median(x) for x, y in zip(ra, rb)])
    rng = np.random.default_rng(0)
    boot = np.median(rng.choice(ratios, size=(2000, len(ratios)), replace=True), axis=1)
    lo, hi = np.percentile(boot, [2.5, 97.5])
    sa_all = [t for x in ra for t in x]
    sb_all = [t for y in rb for t in y]
    return LatencyComparison(float(np.median(ratios)), float(lo), float(hi), len(ratios),
                             LatencyStats.from_samples(sa_all, warmup=warmup, threads=threads, xnnpack=xnnpack),
                             LatencyStats.from_samples(sb_all, warmup=warmup, threads=threads, xnnpack=xnnpack))


def compare_latency(a: str | os.PathLike | bytes, b: str | os.PathLike | bytes, *, threads: int = 1,
                    rounds: int = 20, per_round: int = 10, warmup: int = 10, xnnpack: bool = True,
                    input_source: str | None = None, shapes: dict | None = None, seed: int = 0,
                    max_seconds: float = 30.0, isolate: bool = True, timeout: float = 900.0) -> LatencyComparison:
    """Compare B against A, interleaved in ``rounds`` of ``per_round`` invocations each.

    ``result.slower()`` is what "keep a rewrite only if it is not slower" wants: True only when B is
    slower with 95% confidence (the bootstrap interval of the median per-round ratio is above 1).
    """
    def norm(m: Any) -> Any:
        return m if isinstance(m, (bytes, bytearray)) else str(m)
    return _isolated(_compare, norm(a), norm(b), threads, rounds, per_round, warmup, xnnpack, input_source, shapes,
                     seed, max_seconds, what="comparing latencies", timeout=timeout, isolate=isolate)
