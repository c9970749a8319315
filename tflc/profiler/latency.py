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
    #: which round each entry of ``round_sizes`` was (a configuration may skip rounds: --max-time)
    round_ids: list[int] = field(default_factory=list, repr=False)

    @property
    def cv(self) -> float:
        """Coefficient of variation (std / mean)."""
        return self.std_us / self.mean_us if self.mean_us else 0.0

    def to_json(self, samples: bool = False) -> dict:
        d = asdict(self)
        if not samples:
            d.pop("samples")
            d.pop("round_sizes")
            d.pop("round_ids")
        d["cv"] = self.cv
        return d

    def by_round(self) -> dict[int, list[float]]:
        """The samples split back into their rounds (round id -> runs); empty if unknown."""
        from .paired import split_rounds
        return split_rounds(self.samples, self.round_sizes, self.round_ids or None)

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
    """``ratio`` = B's latency / A's (below 1: B is faster): the median over the paired rounds of
    the per-round ratio of medians, with its 95% bootstrap interval over the rounds
    (``tflc.profiler.paired``). ``a`` and ``b`` hold the runs of those same rounds."""
    ratio: float
    ci_low: float
    ci_high: float
    rounds: int
    a: LatencyStats
    b: LatencyStats

    @property
    def verdict(self) -> str:
        """"faster" / "slower" only when the whole interval lies beyond the ±2% noise band, else
        "no difference beyond noise" (see ``tflc.profiler.paired.reading``)."""
        from .paired import reading
        return reading(self.ci_low, self.ci_high)

    @property
    def p50_ratio(self) -> float:
        """The ratio of the two p50s over the same runs (printed beside ``ratio``: they agree to
        within the rounds' spread, and a reader can check one against the other)."""
        return self.b.p50_us / self.a.p50_us if self.a.p50_us else float("nan")

    def slower(self, margin: float = 0.0) -> bool:
        """B is slower than A by more than ``margin`` (relative), with 95% confidence."""
        return self.ci_low > 1.0 + margin

    def faster(self, margin: float = 0.0) -> bool:
        return self.ci_high < 1.0 - margin

    def to_json(self) -> dict:
        return {"ratio": self.ratio, "ci_low": self.ci_low, "ci_high": self.ci_high, "rounds": self.rounds,
                "verdict": self.verdict, "p50_ratio": self.p50_ratio, "a": self.a.to_json(), "b": self.b.to_json()}


def comparison_from_rounds(ra: Sequence[Sequence[float]], rb: Sequence[Sequence[float]], *, warmup: int = 0,
                           threads: int = 1, xnnpack: bool = True) -> LatencyComparison:
    """The comparison of B's rounds against A's (round k of each was timed together): the
    arithmetic of :func:`compare_latency`, apart from the measuring (a test gives made-up runs)."""
    from .paired import paired_ratio
    pr = paired_ratio(ra, rb)
    if pr is None:
        raise ValueError("no paired rounds")
    lo = pr.ci_low if pr.ci_low is not None else pr.ratio     # one round: no interval, a point
    hi = pr.ci_high if pr.ci_high is not None else pr.ratio

    def stats(rounds: Sequence[Sequence[float]]) -> LatencyStats:
        st = LatencyStats.from_samples([t for x in rounds for t in x], warmup=warmup, threads=threads,
                                       xnnpack=xnnpack)
        st.round_sizes, st.round_ids = [len(x) for x in rounds], list(range(len(rounds)))
        return st
    return LatencyComparison(pr.ratio, lo, hi, pr.rounds, stats(ra), stats(rb))


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
    return comparison_from_rounds(ra, rb, warmup=warmup, threads=threads, xnnpack=xnnpack)


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
