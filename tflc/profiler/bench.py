"""``tflc bench``: whole-model latency of one or several models, side by side.

For each model: size, latency (warm-up, then N timed runs: p50/p90/p99, mean, standard
deviation), peak memory (growth of the resident set while LiteRT loads and runs the model, in an
isolated child), the largest output error against the first model (choosing a model trades
accuracy, size and speed), latency per thread count alone and under contention (a background
load on the same cores, as on a phone where another app runs), and the model with and without
XNNPACK (and with tflc's delegate where the model holds tflc kernels).
"""
from __future__ import annotations

import hashlib
import os
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from ..runtime.inputs import convert_inputs
from ..errors import TflcError, UsageError
from ..runtime.interpreter import RunOptions, native_stderr
from .latency import LatencyComparison, LatencyStats, _inputs_for, _open, _timed
from .paired import PairedRatio, paired_ratio


# --------------------------------------------------------------------------- names

def unique_labels(paths: Sequence[str]) -> list[str]:
    """A distinct label per model: each path's shortest suffix (in path components) that no other
    path ends with, so ``m.tflite`` and ``o2/m.tflite`` stay ``m.tflite`` and ``o2/m.tflite``; the
    same file given twice gets its position, ``m.tflite [2]``."""
    norm = [os.path.normpath(str(p)) for p in paths]
    distinct = list(dict.fromkeys(norm))
    parts = {p: Path(p).parts or (p,) for p in distinct}
    short: dict[str, str] = {}
    for p in distinct:
        pk = parts[p]
        short[p] = str(Path(*pk))
        for n in range(1, len(pk) + 1):
            if all(parts[q][-n:] != pk[-n:] for q in distinct if q != p):
                short[p] = str(Path(*pk[-n:]))
                break
    out = [short[p] for p in norm]
    return [f"{lab} [{k + 1}]" if out.count(lab) > 1 else lab for k, lab in enumerate(out)]


# --------------------------------------------------------------------------- threads and load

def parse_threads(text: str | Sequence[int] | None) -> list[int]:
    """``"1,2,4"`` or ``"auto"`` (1, 2, 4, ... up to the number of cores, and that number)."""
    if text is None:
        return [1]
    if not isinstance(text, str):
        return sorted({int(t) for t in text})
    if text.strip().lower() == "auto":
        n = os.cpu_count() or 1
        out, t = [], 1
        while t < n:
            out.append(t)
            t *= 2
        out.append(n)
        return sorted(set(out))
    try:
        vals = sorted({int(x) for x in text.split(",") if x.strip()})
    except ValueError:
        raise UsageError(f"--threads {text!r}: expected a list like 1,2,4 or 'auto'") from None
    if not vals or any(v < 1 for v in vals):
        raise UsageError(f"--threads {text!r}: thread counts must be positive")
    return vals


class BackgroundLoad:
    """``n`` busy processes on the machine's cores while the context is open (forked children,
    ended by their pid; each also exits if its parent disappears or after ``max_seconds``)."""

    def __init__(self, n: int, max_seconds: float = 3600.0):
        self.n, self.max_seconds = max(0, int(n)), max_seconds
        self.pids: list[int] = []

    def __enter__(self) -> "BackgroundLoad":
        parent = os.getpid()
        for _ in range(self.n):
            pid = os.fork()
            if pid == 0:  # child: spin
                try:
                    end = time.monotonic() + self.max_seconds
                    x = 1.0
                    while True:
                        for _ in range(200_000):
                            x = x * 1.0000001 + 1e-9
                        if os.getppid() != parent or time.monotonic() > end:
                            break
                finally:
                    os._exit(0)
            self.pids.append(pid)
        time.sleep(0.05)
        return self

    def __exit__(self, *exc: object) -> None:
        for pid in self.pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        for pid in self.pids:
            try:
                os.waitpid(pid, 0)
            except ChildProcessError:
                pass
        self.pids = []


# --------------------------------------------------------------------------- memory

def _proc_status() -> dict[str, int]:
    out = {}
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(("VmRSS:", "VmHWM:")):
                    k, v = line.split(":", 1)
                    out[k] = int(v.split()[0]) * 1024
    except OSError:
        pass
    return out


def _reset_peak() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


# --------------------------------------------------------------------------- one measurement (child)

def _tflc_delegate_factory(data: bytes) -> tuple[Callable[[], Any] | None, str]:
    """tflc's delegate for a model holding tflc kernels: (factory, "") or (None, why not). Found by
    the runtime (``tflc.runtime.tflc_delegate_factory``), which adds it to every session of such a
    model by itself: the "tflc" configuration runs the model as every other command does."""
    from ..runtime import tflc_delegate_factory
    return tflc_delegate_factory(data)


def _measure_child(model: Any, threads: int, runs: int, warmup: int, xnnpack: bool, use_tflc: bool,
                   input_source: str | None, shapes: dict | None, max_seconds: float,
                   min_seconds: float = 0.0, min_runs: int = 5) -> tuple[LatencyStats, int | None]:
    from ..runtime.interpreter import preload
    preload()  # the runtime's own libraries are not the model's memory
    reset = _reset_peak()
    before = _proc_status().get("VmRSS")
    delegates: tuple = ()
    if use_tflc:
        data = model if isinstance(model, bytes) else Path(model).read_bytes()
        factory, why = _tflc_delegate_factory(data)
        if factory is None:
            raise TflcError(why)
        delegates = (factory(),)
    s = _open(model, RunOptions(threads=threads, xnnpack=xnnpack, delegates=delegates))
    s.run(_inputs_for(s, input_source, shapes, 0))
    _timed(s.interp, warmup)
    samples: list[float] = []
    t0 = time.perf_counter()
    while True:
        elapsed = time.perf_counter() - t0
        if len(samples) >= runs and elapsed >= min_seconds:
            break
        if len(samples) >= min_runs and elapsed > max_seconds:
            break
        samples.extend(_timed(s.interp, min(10, runs - len(samples)) if len(samples) < runs else 10))
    peak = None
    if reset and before is not None:
        hwm = _proc_status().get("VmHWM")
        peak = max(0, hwm - before) if hwm is not None else None
    return LatencyStats.from_samples(samples, warmup=warmup, threads=threads, xnnpack=xnnpack), peak


def _measure(model: Any, *, threads: int, runs: int, warmup: int, xnnpack: bool = True, use_tflc: bool = False,
             input_source: str | None = None, shapes: dict | None = None, max_seconds: float = 10.0,
             min_seconds: float = 0.0, min_runs: int = 5,
             what: str = "benchmarking") -> tuple[LatencyStats, int | None]:
    from ..runtime.isolate import run_isolated
    return run_isolated(_measure_child, model, threads, runs, warmup, xnnpack, use_tflc, input_source, shapes,
                        max_seconds, min_seconds, min_runs, what=what, timeout=max(120.0, 20 * max_seconds))


#: under load, measure at least this long: preemptions come every few scheduler periods (ms), so a
#: fast model's runs must span enough of them for the tail to mean something
LOADED_MIN_SECONDS = 2.0


# --------------------------------------------------------------------------- results

@dataclass
class ThreadPoint:
    threads: int
    isolated: LatencyStats
    loaded: LatencyStats | None = None

    def to_json(self) -> dict:
        return {"threads": self.threads, "isolated": self.isolated.to_json(),
                "loaded": self.loaded.to_json() if self.loaded else None}


@dataclass
class ModelBench:
    path: str
    name: str
    size_bytes: int
    sha256: str
    latency: LatencyStats | None = None          # XNNPACK, the first thread count
    peak_memory_bytes: int | None = None
    threads: list[ThreadPoint] = field(default_factory=list)
    configs: dict[str, LatencyStats | None] = field(default_factory=dict)   # xnnpack / builtin / tflc
    accuracy: dict | None = None                 # against the first model
    recommendation: dict | None = None
    notes: list[str] = field(default_factory=list)
    #: round id -> peak memory growth in that round (peak_memory_bytes is the largest)
    peak_rounds: dict[int, int] = field(default_factory=dict)
    #: latency against the first model, both in one process, interleaved (None: the first model itself)
    comparison: LatencyComparison | None = None

    def speedups(self) -> list[dict]:
        """Per thread count, against the first count, over the rounds both ran (paired): the p50
        speed-up alone, the p90 speed-up under load, and p90 under load / p90 alone."""
        base = self.threads[0] if self.threads else None
        out = []
        for p in self.threads:
            out.append({"threads": p.threads,
                        "speedup": paired(p.isolated, base.isolated if base else None),
                        "speedup_loaded_p90": paired(p.loaded, base.loaded if base else None, quantile=90),
                        "loaded_over_alone_p90": paired(p.isolated, p.loaded, quantile=90)})
        return out

    def kernel_ratios(self) -> dict[str, PairedRatio | None]:
        """Each other kernel configuration's p50 against XNNPACK's, paired by round."""
        x = self.configs.get("xnnpack")
        return {k: paired(x, v) for k, v in self.configs.items() if k != "xnnpack"}

    def to_json(self, samples: bool = False) -> dict:
        def pj(r: PairedRatio | None) -> dict | None:
            return r.to_json() if r is not None else None
        return {"path": self.path, "name": self.name, "size_bytes": self.size_bytes, "sha256": self.sha256,
                "latency": self.latency.to_json(samples) if self.latency else None,
                "peak_memory_bytes": self.peak_memory_bytes, "threads": [t.to_json() for t in self.threads],
                "thread_ratios": [{k: (pj(v) if k != "threads" else v) for k, v in d.items()}
                                  for d in self.speedups()],
                "configs": {k: (v.to_json() if v else None) for k, v in self.configs.items()},
                "kernel_ratios": {k: pj(v) for k, v in self.kernel_ratios().items()},
                "comparison": self.comparison.to_json() if self.comparison else None,
                "accuracy": self.accuracy, "recommendation": self.recommendation, "notes": self.notes}


def paired(a: LatencyStats | None, b: LatencyStats | None, quantile: float = 50.0) -> PairedRatio | None:
    """B against A over the rounds both ran (``tflc.profiler.paired``); None where either was not
    measured or the rounds are unknown."""
    if a is None or b is None:
        return None
    return paired_ratio(a.by_round(), b.by_round(), quantile=quantile)


@dataclass
class BenchResult:
    models: list[ModelBench]
    threads: list[int]
    runs: int
    warmup: int
    contention: int                  # busy background processes (0: not measured)
    cpu_count: int = field(default_factory=lambda: os.cpu_count() or 1)
    rounds: int = 1                  # rounds made (at most the rounds asked for, and the runs; --max-time)
    notes: list[str] = field(default_factory=list)

    def ratios(self) -> list[dict]:
        """Each model against the first, a list in the models' order (two models may share a file
        name: match them by position). ``size``: exact. ``p50``: B's latency over A's, the median
        over paired rounds of each round's ratio, with ``p50_ci`` its 95% bootstrap interval and
        ``verdict`` its reading ("faster" / "slower" only when the whole interval lies beyond the
        ±2% noise band, else "no difference beyond noise"; ``tflc.profiler.paired``). ``paired``
        says how: "one process" (both models in one process, interleaved A B, B A: the
        comparison, whose own p50s are ``a_p50_us`` / ``b_p50_us`` and ``p50_ratio``) or "rounds"
        (each model's own processes, paired by round, where the comparison could not run).
        ``p50_of_table`` is the ratio of the latency table's p50s. ``memory``: per-round peaks,
        paired by round likewise."""
        base = self.models[0] if self.models else None
        out = []
        for k, m in enumerate(self.models):
            def r(a: float | None, b: float | None) -> float | None:
                return (a / b) if (a is not None and b) else None
            pooled = r(m.latency.p50_us if m.latency else None, base.latency.p50_us if base and base.latency else None)
            row: dict[str, Any] = {"index": k, "name": m.name, "size": r(m.size_bytes, base.size_bytes if base else None),
                                   "p50": pooled, "p50_ci": None, "p50_rounds": 0, "paired": None,
                                   "verdict": "reference" if k == 0 else "undecided", "p50_of_table": pooled,
                                   "memory": r(m.peak_memory_bytes, base.peak_memory_bytes if base else None),
                                   "memory_ci": None}
            if k and base is not None:
                c = m.comparison
                if c is not None:
                    row.update(p50=c.ratio, p50_ci=[c.ci_low, c.ci_high], p50_rounds=c.rounds, paired="one process",
                               verdict=c.verdict, a_p50_us=c.a.p50_us, b_p50_us=c.b.p50_us, p50_ratio=c.p50_ratio)
                else:
                    pr = paired(base.latency, m.latency)
                    if pr is not None:
                        row.update(p50=pr.ratio, p50_ci=[pr.ci_low, pr.ci_high], p50_rounds=pr.rounds,
                                   paired="rounds", verdict=pr.verdict)
                mem = paired_ratio({r_: [v] for r_, v in base.peak_rounds.items()},
                                   {r_: [v] for r_, v in m.peak_rounds.items()})
                if mem is not None:
                    row.update(memory=mem.ratio, memory_ci=[mem.ci_low, mem.ci_high])
            out.append(row)
        return out

    def to_json(self, samples: bool = False) -> dict:
        return {"threads": self.threads, "runs": self.runs, "warmup": self.warmup, "contention": self.contention,
                "cpu_count": self.cpu_count, "rounds": self.rounds, "models": [m.to_json(samples) for m in self.models],
                "ratios": self.ratios(), "notes": self.notes}


#: a recommendation must be the pick in this share of bootstrap resamples of the runs, else the
#: noise is too high to decide
RECOMMEND_STABILITY = 0.9
_BOOT = 400


def _pick(iso: dict[int, float], load: dict[int, float]) -> int:
    best_iso = min(iso, key=lambda t: (iso[t], t))
    if not load:
        return best_iso
    best_load = min(load, key=lambda t: (load[t], t))

    def regret(t: int) -> float:
        return max(iso[t] / iso[best_iso], load.get(t, float("inf")) / load[best_load])
    return min(iso, key=lambda t: (regret(t), t))


def _stability(points: Sequence[ThreadPoint], pick: int, seed: int = 0) -> float:
    """The share of bootstrap resamples (of each thread count's runs) in which ``pick`` is still
    the pick: how far the runs' noise leaves the choice in doubt. Where the runs came in rounds,
    the rounds are resampled first, then the runs within them (a slow phase of the machine moves
    a whole round)."""
    import numpy as np
    rng = np.random.default_rng(seed)

    def boot(st: LatencyStats, q: float) -> "np.ndarray":
        a = np.asarray(st.samples or [st.p50_us if q == 50 else st.p90_us], dtype=float)
        if a.size < 2:
            return np.full(_BOOT, float(a[0]))
        sizes = [n for n in st.round_sizes if n > 0]
        if len(sizes) < 2 or sum(sizes) != a.size:
            return np.percentile(a[rng.integers(0, a.size, size=(_BOOT, a.size))], q, axis=1)
        starts = np.cumsum([0] + sizes[:-1])
        out = np.empty(_BOOT)
        for b in range(_BOOT):
            picked = rng.integers(0, len(sizes), size=len(sizes))
            idx = np.concatenate([starts[k] + rng.integers(0, sizes[k], size=sizes[k]) for k in picked])
            out[b] = np.percentile(a[idx], q)
        return out
    iso = {p.threads: boot(p.isolated, 50) for p in points}
    load = {p.threads: boot(p.loaded, 90) for p in points if p.loaded is not None}
    same = 0
    for b in range(_BOOT):
        same += _pick({t: float(v[b]) for t, v in iso.items()}, {t: float(v[b]) for t, v in load.items()}) == pick
    return same / _BOOT


def recommend(points: Sequence[ThreadPoint]) -> dict:
    """The thread count to use: the smallest worst-case slowdown against the best count, alone (p50)
    and, when measured, under load (p90: another app preempts the model now and then, and the tail
    is what a user feels). Says when more threads help alone but hurt under load, and recommends
    nothing when the runs are too noisy to tell the counts apart (the pick would change in more
    than 10% of bootstrap resamples of the runs)."""
    if not points:
        return {}
    iso = {p.threads: p.isolated.p50_us for p in points}
    best_iso = min(iso, key=lambda t: (iso[t], t))
    load = {p.threads: p.loaded.p90_us for p in points if p.loaded is not None}
    best_load = min(load, key=lambda t: (load[t], t)) if load else None
    pick = _pick(iso, load)
    stability = _stability(points, pick) if len(points) > 1 else 1.0
    if stability < RECOMMEND_STABILITY:
        cv = max([p.isolated.cv for p in points] + [p.loaded.cv for p in points if p.loaded is not None])
        others = ", ".join(f"{t}: {iso[t] / 1000:.3g} ms" for t in sorted(iso))
        return {"threads": None, "best_isolated": best_iso, "best_loaded": best_load, "candidate": pick,
                "stability": stability,
                "reason": f"the runs are too noisy to tell the thread counts apart (p50 alone {others}; cv up to "
                          f"{cv:.2f}; {pick} thread(s) would be picked in only {100 * stability:.0f}% of bootstrap "
                          "resamples): measure longer (--runs, --rounds) or on a quieter machine"}
    if not load:
        return {"threads": best_iso, "best_isolated": best_iso, "best_loaded": None, "stability": stability,
                "reason": f"{best_iso} thread(s) is fastest ({iso[best_iso] / 1000:.3g} ms p50); "
                          "not measured under load (--contention)"}
    regret = max(iso[pick] / iso[best_iso], load[pick] / load[best_load])
    reason = (f"{pick} thread(s): within {100 * (regret - 1):.0f}% of the best count both alone (p50) "
              f"and under load (p90)")
    warn = None
    if best_iso > best_load:
        warn = (f"{best_iso} threads is fastest alone ({iso[best_iso] / 1000:.3g} ms p50 vs {iso[best_load] / 1000:.3g} "
                f"ms with {best_load}) but hurts under load ({load.get(best_iso, float('nan')) / 1000:.3g} ms p90 vs "
                f"{load[best_load] / 1000:.3g} ms)")
    return {"threads": pick, "best_isolated": best_iso, "best_loaded": best_load, "reason": reason,
            "warning": warn, "stability": stability}


def _input_details(path: str) -> list[dict]:
    from ..runtime import Session
    with native_stderr():
        s = Session(path)
    keep = ("name", "index", "shape", "shape_signature", "dtype", "quantization")
    return [{k: d[k] for k in keep if k in d} for d in s.input_details]


def _desc(dtype: Any, shape: Sequence[int]) -> str:
    import numpy as np
    return f"{np.dtype(dtype).name}[{','.join(str(int(d)) for d in shape)}]"


def _inputs_mismatch(ref_details: list[dict], ref_arrays: list, details: list[dict]) -> str:
    """Why the reference's inputs cannot be fed to another model ("" if they can): their count or
    shapes differ (a dimension the other model leaves dynamic, -1, matches anything)."""
    import numpy as np
    if len(details) != len(ref_details):
        return f"{len(ref_details)} input(s) against {len(details)}"
    for x, d in zip(ref_arrays, details):
        want = [int(v) for v in d.get("shape_signature", d["shape"])]
        got = list(np.shape(x))
        if len(want) != len(got) or any(w not in (-1, g) for w, g in zip(want, got)):
            return (", ".join(_desc(np.asarray(a).dtype, np.shape(a)) for a in ref_arrays) + " against "
                    + ", ".join(_desc(dd["dtype"], dd.get("shape_signature", dd["shape"])) for dd in details))
    return ""


def _outputs_mismatch(ref: Any, got: Any) -> str:
    import numpy as np
    ro, go = ref.outputs[0], got.outputs[0]
    if len(ro) != len(go) or any(np.shape(a) != np.shape(b) for a, b in zip(ro, go)):
        return (", ".join(_desc(np.asarray(a).dtype, np.shape(a)) for a in ro) + " against "
                + ", ".join(_desc(np.asarray(b).dtype, np.shape(b)) for b in go))
    return ""


def _accuracy(first: str, other: str, input_source: str | None, shapes: dict | None,
              ref_result: Any = None) -> tuple[dict, Any]:
    """The largest output error of ``other`` against ``first`` on the same inputs; for models
    with other inputs or outputs (not two versions of one model), ``comparable`` False and why."""
    from ..runtime import compare_results, run_model
    if ref_result is None:
        ref_result = run_model(first, source=input_source, steps=1, shapes=shapes, what=f"LiteRT on {first}")
    from ..runtime.isolate import run_isolated
    details = run_isolated(_input_details, other, what=f"LiteRT on {other}")
    why = _inputs_mismatch(ref_result.input_details, ref_result.inputs[0], details)
    if why:
        return {"comparable": False, "reason": "different inputs", "detail": why}, ref_result
    try:
        inputs = convert_inputs(ref_result.inputs, ref_result.input_details, details)
    except TflcError as e:
        return {"comparable": False, "reason": "different inputs", "detail": str(e)}, ref_result
    got = run_model(other, inputs=inputs, what=f"LiteRT on {other}")
    why = _outputs_mismatch(ref_result, got)
    if why:
        return {"comparable": False, "reason": "different outputs", "detail": why}, ref_result
    cmp = compare_results(ref_result, got)
    worst = max(cmp.diffs, key=lambda d: (d.max_rel if d.max_rel == d.max_rel else float("inf")))
    return {"comparable": True, "max_abs": worst.max_abs, "max_rel": worst.max_rel, "sqnr_db": worst.sqnr_db,
            "output": worst.name, "identical": cmp.identical}, ref_result


#: the clock run_bench budgets with (a test may replace it)
_clock = time.monotonic

#: the comparison against the first model: each round times this many runs of each model
COMPARE_PER_ROUND = 10


def _compare_models(first: str, other: str, *, threads: int, rounds: int, warmup: int, input_source: str | None,
                    shapes: dict | None, max_seconds: float) -> LatencyComparison:
    """``other`` against ``first``, both in one child process, interleaved in rounds (A B, B A ...)
    as the -O2 latency guard compares: whatever sets a process's speed (the core it runs on, its
    clock, its memory) is then the same for both, and a round's ratio is far steadier than one of
    two processes' (on a small VM, processes of one model settle 20% apart)."""
    from .latency import compare_latency
    return compare_latency(first, other, threads=threads, rounds=rounds, per_round=COMPARE_PER_ROUND, warmup=warmup,
                           input_source=input_source, shapes=shapes, max_seconds=max_seconds,
                           timeout=max(120.0, 20 * max_seconds))


def _builtin_note(msg: str) -> str:
    note = f"builtin kernels only (no XNNPACK): the model does not run that way: {msg}"
    if "unresolved custom op" in msg:
        note += " (no builtin kernel for this custom op: only XNNPACK runs it)"
    return note


def run_bench(paths: Sequence[str], *, threads: Sequence[int] = (1,), runs: int = 100, warmup: int = 10,
              contention: int = 0, xnnpack_variants: bool = True, input_source: str | None = None,
              shapes: dict | None = None, max_seconds: float = 10.0, accuracy: bool = True, rounds: int = 5,
              progress: Callable[[str], None] | None = None, compare_rounds: int | None = None) -> BenchResult:
    """Benchmark ``paths``; ``contention`` > 0 also measures every thread count under that many busy
    background processes. Every measurement is split into ``rounds`` passes over all the
    configurations (models x threads x load x kernels), so that a slow phase of the machine hits
    all of them alike rather than one; each configuration's samples are pooled. There are at most
    as many rounds as runs, and ``max_seconds`` bounds each configuration in all (every round's
    process start, warm-up and runs): once a configuration has spent it, with at least 5 runs,
    its remaining rounds are skipped. ``progress(msg)`` is called before each measurement.

    Each model after the first is then compared with the first in one process, interleaved in
    ``compare_rounds`` rounds (default 4 x ``rounds``, at least 10) of ``COMPARE_PER_ROUND`` runs
    each, within ``max_seconds``: the ratio, its interval and its reading (``BenchResult.ratios``)."""
    say = progress or (lambda msg: None)
    threads = list(threads) or [1]
    asked_rounds = max(1, int(rounds))
    rounds = min(asked_rounds, max(1, runs))
    min_per_round = -(-5 // rounds)              # at least 5 runs per configuration in all
    loaded_min = min(LOADED_MIN_SECONDS, max_seconds) / rounds
    result = BenchResult([], threads, runs, warmup, contention, rounds=rounds)
    if rounds < asked_rounds:
        result.notes.append(f"{rounds} rounds, not {asked_rounds}: at most one round per run (--runs {runs})")
    labels = unique_labels([str(p) for p in paths])
    datas = []
    for path, label in zip(paths, labels):
        data = Path(path).read_bytes()
        datas.append(data)
        result.models.append(ModelBench(str(path), label, len(data), hashlib.sha256(data).hexdigest()))
    # configuration -> pooled samples (and peak memory)
    samples: dict[tuple, list[float]] = {}
    sizes: dict[tuple, list[int]] = {}
    round_ids: dict[tuple, list[int]] = {}
    spent: dict[tuple, float] = {}
    done: dict[tuple, int] = {}
    peaks: dict[int, dict[int, int]] = {}          # model -> round -> peak memory growth
    failed: dict[tuple, str] = {}
    configs: list[tuple] = []
    for k, (path, data) in enumerate(zip(paths, datas)):
        for t in threads:
            configs.append((k, "xnnpack", t, False))
            if contention:
                configs.append((k, "xnnpack", t, True))
        if xnnpack_variants:
            configs.append((k, "builtin", threads[0], False))
            factory, why = _tflc_delegate_factory(data)
            if factory is not None:
                configs.append((k, "tflc", threads[0], False))
            elif "no tflc kernels" not in why:
                result.models[k].notes.append(why)
    for r in range(rounds):
        # A B, B A, ...: within a round the configurations run one after the other, and whichever
        # runs first may be favoured (a warmer or colder machine): alternating the order cancels it
        for cfg in (configs if r % 2 == 0 else configs[::-1]):
            k, kind, t, loaded = cfg
            if cfg in failed:
                continue
            left = max_seconds - spent.get(cfg, 0.0)
            if r and left <= 0 and len(samples.get(cfg, [])) >= 5:
                continue                            # its time is spent: --max-time
            mb = result.models[k]
            label = {"xnnpack": f"{t} thread(s)", "builtin": "builtin kernels (no XNNPACK)",
                     "tflc": "tflc delegate"}[kind]
            say(f"{mb.name}: {label}{' under load' if loaded else ''}"
                + (f" (round {r + 1}/{rounds})" if rounds > 1 else ""))
            budget = max(0.0, left) / (rounds - r)
            per = runs // rounds + (1 if r < runs % rounds else 0)      # exactly `runs` in all
            t0 = _clock()
            try:
                if loaded:
                    with BackgroundLoad(contention):
                        lat, peak = _measure(paths[k], threads=t, runs=per, warmup=warmup, input_source=input_source,
                                             shapes=shapes, max_seconds=budget, min_seconds=min(loaded_min, budget),
                                             min_runs=min(per, min_per_round),
                                             what=f"benchmarking {mb.name} under load")
                else:
                    lat, peak = _measure(paths[k], threads=t, runs=per, warmup=warmup, xnnpack=kind != "builtin",
                                         use_tflc=kind == "tflc", input_source=input_source, shapes=shapes,
                                         max_seconds=budget, min_runs=min(per, min_per_round),
                                         what=f"benchmarking {mb.name}")
            except TflcError as e:
                failed[cfg] = str(e)
                if kind == "xnnpack":
                    raise
                continue
            finally:
                spent[cfg] = spent.get(cfg, 0.0) + (_clock() - t0)
            done[cfg] = done.get(cfg, 0) + 1
            samples.setdefault(cfg, []).extend(lat.samples)
            sizes.setdefault(cfg, []).append(len(lat.samples))
            round_ids.setdefault(cfg, []).append(r)
            if kind == "xnnpack" and t == threads[0] and not loaded and peak is not None:
                peaks.setdefault(k, {})[r] = peak
    short = sorted({done[c] for c in done if done[c] < rounds})
    result.rounds = max(done.values(), default=rounds)
    if short:
        result.notes.append(f"--max-time {max_seconds:g} s per configuration reached: some configurations ran "
                            f"{'/'.join(str(n) for n in short)} of the {rounds} rounds")

    def stats(cfg: tuple) -> LatencyStats | None:
        s = samples.get(cfg)
        if not s:
            return None
        st = LatencyStats.from_samples(s, warmup=warmup, threads=cfg[2], xnnpack=cfg[1] != "builtin")
        st.round_sizes = list(sizes.get(cfg, []))
        st.round_ids = list(round_ids.get(cfg, []))
        return st
    for k, mb in enumerate(result.models):
        for t in threads:
            mb.threads.append(ThreadPoint(t, stats((k, "xnnpack", t, False)),
                                          stats((k, "xnnpack", t, True)) if contention else None))
        mb.latency = mb.threads[0].isolated
        mb.peak_rounds = dict(peaks.get(k, {}))
        mb.peak_memory_bytes = max(mb.peak_rounds.values()) if mb.peak_rounds else None
        mb.recommendation = recommend(mb.threads)
        mb.configs["xnnpack"] = mb.latency
        if xnnpack_variants:
            mb.configs["builtin"] = stats((k, "builtin", threads[0], False))
            if (k, "builtin", threads[0], False) in failed:
                mb.notes.append(_builtin_note(failed[(k, "builtin", threads[0], False)]))
            if (k, "tflc", threads[0], False) in configs:
                mb.configs["tflc"] = stats((k, "tflc", threads[0], False))
                if (k, "tflc", threads[0], False) in failed:
                    mb.notes.append(f"tflc delegate: {failed[(k, 'tflc', threads[0], False)]}")
    n_compare = compare_rounds if compare_rounds is not None else max(10, 4 * rounds)
    for k, mb in enumerate(result.models[1:], start=1):
        say(f"{mb.name}: latency against {result.models[0].name}, interleaved in one process")
        try:
            mb.comparison = _compare_models(str(paths[0]), str(paths[k]), threads=threads[0], rounds=n_compare,
                                            warmup=warmup, input_source=input_source, shapes=shapes,
                                            max_seconds=max_seconds)
        except TflcError as e:
            mb.notes.append(f"latency not compared with {result.models[0].name} in one process ({e}): its ratio "
                            "pairs the rounds of the two models' own processes instead")
    ref_result = None
    if accuracy:
        for k, mb in enumerate(result.models[1:], start=1):
            say(f"{mb.name}: outputs against {result.models[0].name}")
            try:
                mb.accuracy, ref_result = _accuracy(str(paths[0]), str(paths[k]), input_source, shapes, ref_result)
            except TflcError as e:
                mb.notes.append(f"outputs not compared with {result.models[0].name}: {e}")
                continue
            if mb.accuracy.get("comparable") is False:
                mb.notes.append(f"outputs not compared with {result.models[0].name}: {mb.accuracy['reason']} "
                                f"({mb.accuracy['detail']}): not two versions of one model")
    return result
