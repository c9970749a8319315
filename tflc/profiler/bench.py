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

from ..errors import TflcError, UsageError
from ..runtime.interpreter import RunOptions, native_stderr
from .latency import LatencyStats, _inputs_for, _open, _timed


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
    """tflc's delegate for a model holding tflc kernels: (factory, "") or (None, why not)."""
    from ..io import read_model_bytes
    model = read_model_bytes(data)
    codes = {op.type for op in model.operators() if op.opcode.is_custom}
    tflc_codes = sorted(c for c in codes if c.upper().startswith("TFLC"))
    if not tflc_codes:
        return None, "no tflc kernels in this model"
    try:
        import tflc.kernels as k
    except ImportError as e:
        return None, f"tflc.kernels cannot be imported ({e})"
    make = getattr(k, "make_delegate", None)
    if make is None:
        return None, f"model holds tflc kernels ({', '.join(tflc_codes)}) but tflc.kernels has no make_delegate()"
    return (lambda: make(data)), ""


def _measure_child(model: Any, threads: int, runs: int, warmup: int, xnnpack: bool, use_tflc: bool,
                   input_source: str | None, shapes: dict | None, max_seconds: float,
                   min_seconds: float = 0.0) -> tuple[LatencyStats, int | None]:
    import ai_edge_litert.interpreter as _preload  # the runtime's own libraries are not the model's memory
    del _preload
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
        if len(samples) >= 5 and elapsed > max_seconds:
            break
        samples.extend(_timed(s.interp, 10))
    peak = None
    if reset and before is not None:
        hwm = _proc_status().get("VmHWM")
        peak = max(0, hwm - before) if hwm is not None else None
    return LatencyStats.from_samples(samples, warmup=warmup, threads=threads, xnnpack=xnnpack), peak


def _measure(model: Any, *, threads: int, runs: int, warmup: int, xnnpack: bool = True, use_tflc: bool = False,
             input_source: str | None = None, shapes: dict | None = None, max_seconds: float = 10.0,
             min_seconds: float = 0.0, what: str = "benchmarking") -> tuple[LatencyStats, int | None]:
    from ..runtime.isolate import run_isolated
    return run_isolated(_measure_child, model, threads, runs, warmup, xnnpack, use_tflc, input_source, shapes,
                        max_seconds, min_seconds, what=what, timeout=max(120.0, 20 * max_seconds))


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

    def to_json(self, samples: bool = False) -> dict:
        return {"path": self.path, "name": self.name, "size_bytes": self.size_bytes, "sha256": self.sha256,
                "latency": self.latency.to_json(samples) if self.latency else None,
                "peak_memory_bytes": self.peak_memory_bytes, "threads": [t.to_json() for t in self.threads],
                "configs": {k: (v.to_json() if v else None) for k, v in self.configs.items()},
                "accuracy": self.accuracy, "recommendation": self.recommendation, "notes": self.notes}


@dataclass
class BenchResult:
    models: list[ModelBench]
    threads: list[int]
    runs: int
    warmup: int
    contention: int                  # busy background processes (0: not measured)
    cpu_count: int = field(default_factory=lambda: os.cpu_count() or 1)

    def ratios(self) -> list[dict]:
        """Each model against the first: size, p50 latency, peak memory."""
        base = self.models[0] if self.models else None
        out = []
        for m in self.models:
            def r(a: float | None, b: float | None) -> float | None:
                return (a / b) if (a is not None and b) else None
            out.append({"name": m.name,
                        "size": r(m.size_bytes, base.size_bytes if base else None),
                        "p50": r(m.latency.p50_us if m.latency else None,
                                 base.latency.p50_us if base and base.latency else None),
                        "memory": r(m.peak_memory_bytes, base.peak_memory_bytes if base else None)})
        return out

    def to_json(self, samples: bool = False) -> dict:
        return {"threads": self.threads, "runs": self.runs, "warmup": self.warmup, "contention": self.contention,
                "cpu_count": self.cpu_count, "models": [m.to_json(samples) for m in self.models],
                "ratios": self.ratios()}


def recommend(points: Sequence[ThreadPoint]) -> dict:
    """The thread count to use: the smallest worst-case slowdown against the best count, alone (p50)
    and, when measured, under load (p90: another app preempts the model now and then, and the tail
    is what a user feels). Says when more threads help alone but hurt under load."""
    if not points:
        return {}
    iso = {p.threads: p.isolated.p50_us for p in points}
    best_iso = min(iso, key=lambda t: (iso[t], t))
    load = {p.threads: p.loaded.p90_us for p in points if p.loaded is not None}
    if not load:
        return {"threads": best_iso, "best_isolated": best_iso, "best_loaded": None,
                "reason": f"{best_iso} thread(s) is fastest ({iso[best_iso] / 1000:.3g} ms p50); "
                          "not measured under load (--contention)"}
    best_load = min(load, key=lambda t: (load[t], t))

    def regret(t: int) -> float:
        return max(iso[t] / iso[best_iso], load.get(t, float("inf")) / load[best_load])
    pick = min(iso, key=lambda t: (regret(t), t))
    reason = (f"{pick} thread(s): within {100 * (regret(pick) - 1):.0f}% of the best count both alone (p50) "
              f"and under load (p90)")
    warn = None
    if best_iso > best_load:
        warn = (f"{best_iso} threads is fastest alone ({iso[best_iso] / 1000:.3g} ms p50 vs {iso[best_load] / 1000:.3g} "
                f"ms with {best_load}) but hurts under load ({load.get(best_iso, float('nan')) / 1000:.3g} ms p90 vs "
                f"{load[best_load] / 1000:.3g} ms)")
    return {"threads": pick, "best_isolated": best_iso, "best_loaded": best_load, "reason": reason,
            "warning": warn}


def _convert_inputs(steps: list, ref: list[dict], other: list[dict]) -> list:
    """The reference's inputs for another model: the same values, (de)quantized where one model
    takes quantized integers and the other floats."""
    import numpy as np
    if len(ref) != len(other):
        raise TflcError(f"{len(other)} inputs against {len(ref)} in the first model")
    out = []
    for step in steps:
        conv = []
        for x, rd, od in zip(step, ref, other):
            rdt, odt = np.dtype(rd["dtype"]), np.dtype(od["dtype"])
            rq, oq = rd.get("quantization", (0.0, 0)), od.get("quantization", (0.0, 0))
            x = np.asarray(x)
            if rdt == odt and tuple(rq) == tuple(oq):
                conv.append(x)
                continue
            real = x.astype(np.float64)
            if rdt.kind in "iu" and rq[0]:
                real = (real - rq[1]) * rq[0]
            if odt.kind in "iu" and oq[0]:
                info = np.iinfo(odt)
                conv.append(np.clip(np.round(real / oq[0] + oq[1]), info.min, info.max).astype(odt))
            elif odt.kind == "f":
                conv.append(real.astype(odt))
            else:
                raise TflcError(f"input {od['name']!r}: {odt} cannot stand for the first model's {rdt}")
        out.append(conv)
    return out


def _input_details(path: str) -> list[dict]:
    from ..runtime import Session
    with native_stderr():
        s = Session(path)
    keep = ("name", "index", "shape", "shape_signature", "dtype", "quantization")
    return [{k: d[k] for k in keep if k in d} for d in s.input_details]


def _accuracy(first: str, other: str, input_source: str | None, shapes: dict | None,
              ref_result: Any = None) -> tuple[dict, Any]:
    from ..runtime import compare_results, run_model
    if ref_result is None:
        ref_result = run_model(first, source=input_source, steps=1, shapes=shapes, what=f"LiteRT on {first}")
    from ..runtime.isolate import run_isolated
    details = run_isolated(_input_details, other, what=f"LiteRT on {other}")
    inputs = _convert_inputs(ref_result.inputs, ref_result.input_details, details)
    got = run_model(other, inputs=inputs, what=f"LiteRT on {other}")
    cmp = compare_results(ref_result, got)
    worst = max(cmp.diffs, key=lambda d: (d.max_rel if d.max_rel == d.max_rel else float("inf")))
    return {"max_abs": worst.max_abs, "max_rel": worst.max_rel, "sqnr_db": worst.sqnr_db, "output": worst.name,
            "identical": cmp.identical}, ref_result


def run_bench(paths: Sequence[str], *, threads: Sequence[int] = (1,), runs: int = 100, warmup: int = 10,
              contention: int = 0, xnnpack_variants: bool = True, input_source: str | None = None,
              shapes: dict | None = None, max_seconds: float = 10.0, accuracy: bool = True, rounds: int = 5,
              progress: Callable[[str], None] | None = None) -> BenchResult:
    """Benchmark ``paths``; ``contention`` > 0 also measures every thread count under that many busy
    background processes. Every measurement is split into ``rounds`` passes over all the
    configurations (models x threads x load x kernels), so that a slow phase of the machine hits
    all of them alike rather than one; each configuration's samples are pooled.
    ``progress(msg)`` is called before each measurement."""
    say = progress or (lambda msg: None)
    threads = list(threads) or [1]
    rounds = max(1, int(rounds))
    per = max(1, -(-runs // rounds))
    loaded_min = min(LOADED_MIN_SECONDS, max_seconds) / rounds
    result = BenchResult([], threads, per * rounds, warmup, contention)
    datas = []
    for path in paths:
        data = Path(path).read_bytes()
        datas.append(data)
        result.models.append(ModelBench(str(path), Path(path).name, len(data), hashlib.sha256(data).hexdigest()))
    # configuration -> pooled samples (and peak memory)
    samples: dict[tuple, list[float]] = {}
    peaks: dict[int, int] = {}
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
        for cfg in configs:
            k, kind, t, loaded = cfg
            if cfg in failed:
                continue
            mb = result.models[k]
            label = {"xnnpack": f"{t} thread(s)", "builtin": "builtin kernels (no XNNPACK)",
                     "tflc": "tflc delegate"}[kind]
            say(f"{mb.name}: {label}{' under load' if loaded else ''}"
                + (f" (round {r + 1}/{rounds})" if rounds > 1 else ""))
            try:
                if loaded:
                    with BackgroundLoad(contention):
                        lat, peak = _measure(paths[k], threads=t, runs=per, warmup=warmup, input_source=input_source,
                                             shapes=shapes, max_seconds=max_seconds / rounds,
                                             min_seconds=loaded_min, what=f"benchmarking {mb.name} under load")
                else:
                    lat, peak = _measure(paths[k], threads=t, runs=per, warmup=warmup, xnnpack=kind != "builtin",
                                         use_tflc=kind == "tflc", input_source=input_source, shapes=shapes,
                                         max_seconds=max_seconds / rounds, what=f"benchmarking {mb.name}")
            except TflcError as e:
                failed[cfg] = str(e)
                if kind == "xnnpack":
                    raise
                continue
            samples.setdefault(cfg, []).extend(lat.samples)
            if kind == "xnnpack" and t == threads[0] and not loaded and peak is not None:
                peaks[k] = max(peaks.get(k, 0), peak)

    def stats(cfg: tuple) -> LatencyStats | None:
        s = samples.get(cfg)
        return LatencyStats.from_samples(s, warmup=warmup, threads=cfg[2], xnnpack=cfg[1] != "builtin") if s else None
    for k, mb in enumerate(result.models):
        for t in threads:
            mb.threads.append(ThreadPoint(t, stats((k, "xnnpack", t, False)),
                                          stats((k, "xnnpack", t, True)) if contention else None))
        mb.latency = mb.threads[0].isolated
        mb.peak_memory_bytes = peaks.get(k)
        mb.recommendation = recommend(mb.threads)
        mb.configs["xnnpack"] = mb.latency
        if xnnpack_variants:
            mb.configs["builtin"] = stats((k, "builtin", threads[0], False))
            if (k, "builtin", threads[0], False) in failed:
                mb.notes.append(f"no XNNPACK: {failed[(k, 'builtin', threads[0], False)]}")
            if (k, "tflc", threads[0], False) in configs:
                mb.configs["tflc"] = stats((k, "tflc", threads[0], False))
                if (k, "tflc", threads[0], False) in failed:
                    mb.notes.append(f"tflc delegate: {failed[(k, 'tflc', threads[0], False)]}")
    ref_result = None
    if accuracy:
        for k, mb in enumerate(result.models[1:], start=1):
            say(f"{mb.name}: outputs against {result.models[0].name}")
            try:
                mb.accuracy, ref_result = _accuracy(str(paths[0]), str(paths[k]), input_source, shapes, ref_result)
            except TflcError as e:
                mb.notes.append(f"outputs not compared with {result.models[0].name}: {e}")
    return result
