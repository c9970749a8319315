"""Measurements, taken in an isolated child process: the raw material of a profile.

For each view the child runs the model two ways: with LiteRT's profiler on (through the C API:
per-operator events), and through the stock Python interpreter with no profiler (the whole-model
latency the per-op times must add up to), measured as ``tflc bench`` measures it: rounds of
warm-up runs then timed runs. The two alternate round by round (stock, profiled, stock, ...), so
that a slow phase of the machine hits both alike, but never run by run: each runtime's runs
follow its own warm-up, since a profiled run between two timed ones evicts the model from the
caches (on a model of a few microseconds that made the stock runs 2x slower). What comes back is
plain data (``RawView``); ``profile.py`` turns it into tables.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from ..errors import TflcError
from ..runtime.custom_ops import MissingKernelError
from ..runtime.delegation import delegate_partitions
from ..runtime.inputs import load_inputs
from ..runtime.interpreter import SWITCH_PAUSE_S, RunOptions, Session, native_stderr

VIEWS = ("xnnpack", "builtin")

#: rounds per view (as ``tflc bench --rounds``): stock and profiled runs alternate round by round
ROUNDS = 5


@dataclass
class OpInfo:
    subgraph: int
    index: int
    type: str
    name: str                         # first output tensor's name
    inputs: list[str]                 # "float32[1,64,64,3]" ("const " prefix for weights)
    outputs: list[str]
    in_tensors: list[int] = field(default_factory=list)
    out_tensors: list[int] = field(default_factory=list)


@dataclass
class RawView:
    view: str                          # "xnnpack" | "builtin"
    method: str                        # "litert-profiler" | "op-alone" | "unavailable"
    measured_us: list[float] = field(default_factory=list)    # whole model, no profiler, per run
    # litert-profiler: per run, the events (type, tag, meta1, meta2, start_us, elapsed_us)
    runs: list[list[tuple]] = field(default_factory=list)
    partitions: list[list[int]] = field(default_factory=list)  # main-subgraph nodes per delegate node
    # op-alone: per op key "s/i" -> list of times (µs), and the per-call baseline subtracted
    alone_us: dict[str, list[float]] = field(default_factory=dict)
    alone_notes: dict[str, str] = field(default_factory=dict)
    baseline_us: float = 0.0
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0
    warmup: int = 0                    # untimed runs before each round's timed runs
    rounds: int = 0                    # rounds made
    requested: dict = field(default_factory=dict)             # runs / warmup / max_seconds / rounds asked
    measured_rounds: list[int] = field(default_factory=list)  # the round of each measured run
    run_rounds: list[int] = field(default_factory=list)       # the round of each profiled run
    # the profiler's own cost per builtin op event on this machine (calibrate.py), or None
    calibration: dict | None = None


@dataclass
class RawProfile:
    ops: list[OpInfo]
    views: dict[str, RawView]
    threads: int
    litert_version: str | None
    input_shapes: list[list[int]]
    notes: list[str] = field(default_factory=list)


def _is_weight(t: Any) -> bool:
    """A constant, or a constant behind a DEQUANTIZE (float16 / quantized weights)."""
    if t.is_constant:
        return True
    p = t.producer
    return p is not None and p.type == "DEQUANTIZE" and bool(p.inputs) and p.inputs[0] is not None \
        and p.inputs[0].is_constant


def _tensor_desc(t: Any, runtime_shape: tuple | None) -> str:
    if t is None:
        return "-"
    shape = runtime_shape if runtime_shape is not None else (t.shape if t.shape is not None else ())
    name = t.type_name.lower()
    return f"{'const ' if _is_weight(t) else ''}{name}[{','.join(str(int(d)) for d in shape)}]"


def model_ops(model: Any, runtime_shapes: dict[int, tuple] | None = None) -> list[OpInfo]:
    """Every operator of every subgraph, with its tensors' types and (main subgraph: runtime) shapes."""
    out = []
    for si, sg in enumerate(model.subgraphs):
        index = {id(t): k for k, t in enumerate(sg.tensors)}
        for oi, op in enumerate(sg.operators):
            def desc(t):
                rs = runtime_shapes.get(index[id(t)]) if (si == 0 and runtime_shapes and t is not None) else None
                return _tensor_desc(t, rs)
            outs = [t for t in op.outputs]
            name = next((t.name for t in outs if t is not None), f"#{oi}")
            out.append(OpInfo(si, oi, op.type, name, [desc(t) for t in op.inputs], [desc(t) for t in outs],
                              [index.get(id(t), -1) if t is not None else -1 for t in op.inputs],
                              [index.get(id(t), -1) if t is not None else -1 for t in outs]))
    return out


def _stock_timer(session: Session) -> Callable[[], float]:
    interp = session.interp

    def once() -> float:
        t0 = time.perf_counter()
        interp.invoke()
        return (time.perf_counter() - t0) * 1e6
    return once


def _events(evs: list) -> list[tuple]:
    from ..runtime.capi import EV_DELEGATE_PROFILED_OPERATOR, EV_DEFAULT, EV_OPERATOR
    keep = (EV_OPERATOR, EV_DELEGATE_PROFILED_OPERATOR)
    out = []
    for e in evs:
        if e.type in keep or (e.type == EV_DEFAULT and e.tag == "Invoke"):
            out.append((e.type, e.tag, e.meta1, e.meta2, e.start_us, e.elapsed_us))
    return out


def _with_reason(e: TflcError, log: list[str]) -> TflcError:
    """``e`` with the reason LiteRT logged (the C API's status says only "failed")."""
    from ..runtime.capi import log_reason
    reason = log_reason(log)
    return type(e)(f"{e}: {reason}") if reason and reason not in str(e) else e


def _profile_view_capi(view: str, model_bytes: bytes, inputs: list[np.ndarray], input_names: list[str],
                       session: Session | None, threads: int, runs: int, warmup: int, max_seconds: float,
                       rv: RawView, rounds: int = ROUNDS, name: str = "the model") -> None:
    from ..runtime.capi import compiled_model
    mode = "delegate" if view == "xnnpack" else "builtin"
    try:
        with native_stderr() as log:
            cm = compiled_model(model_bytes, threads=threads, kernel_mode=mode, profiling=True, name=name)
    except TflcError as e:
        raise _with_reason(e, log) from None
    except Exception as e:  # pragma: no cover - ctypes failure
        raise TflcError(f"LiteRT C API: {e}") from None
    try:
        by_name = dict(zip(input_names, inputs))
        if all(n in by_name for n in cm.input_names):
            arrays = [by_name[n] for n in cm.input_names]
        else:
            arrays = list(inputs)
        try:        # the log lines arrive when the `with` ends: read them after it
            with native_stderr() as log:
                cm.set_inputs(arrays)
                cm.run()
        except TflcError as e:
            raise _with_reason(e, log) from None
        stock = _stock_timer(session) if session is not None else None
        # Rounds, as tflc bench: each round warms up, then times; stock and profiled runs alternate
        # round by round. More threads: a pause at each switch, since one runtime's idle workers
        # spin for a while after their last job and would steal the cores from the other's.
        pause = SWITCH_PAUSE_S if threads > 1 else 0.0
        n_rounds = max(1, min(rounds, runs))
        min_per_block = -(-5 // n_rounds)            # at least 5 runs of each kind in all
        rv.warmup = max(0, warmup)
        t0 = time.perf_counter()

        def block(run_once: Callable[[], Any], warm: Callable[[], Any], out: list, budget: float, per: int) -> None:
            if pause:
                time.sleep(pause)
            for _ in range(rv.warmup):
                warm()
            tb = time.perf_counter()
            for i in range(per):
                out.append(run_once())
                if i + 1 >= min_per_block and time.perf_counter() - tb > budget:
                    break
        done = 0
        for r in range(n_rounds):
            left = max_seconds - (time.perf_counter() - t0)
            if r and left <= 0:
                break
            budget = max(0.0, left) / (n_rounds - r) / (2 if stock is not None else 1)
            per = runs // n_rounds + (1 if r < runs % n_rounds else 0)      # exactly `runs` in all
            if stock is not None:
                block(stock, stock, rv.measured_us, budget, per)
                rv.measured_rounds += [r] * (len(rv.measured_us) - len(rv.measured_rounds))
            block(lambda: _events(cm.profile_run()), cm.run, rv.runs, budget, per)
            rv.run_rounds += [r] * (len(rv.runs) - len(rv.run_rounds))
            done += 1
        rv.rounds = done
        if len(rv.runs) < runs:
            rv.notes.append(f"{len(rv.runs)} of the {runs} profiled runs asked for: --max-time "
                            f"{max_seconds:g} s reached")
    finally:
        with native_stderr():
            cm.close()


def collect(model_bytes: bytes, *, threads: int = 1, runs: int = 50, warmup: int = 10,
            max_seconds: float = 20.0, views: tuple[str, ...] = VIEWS, input_source: str | None = None,
            shapes: dict | None = None, seed: int = 0, method: str = "auto", name: str = "the model") -> RawProfile:
    """Measure ``model_bytes``; run this in a child (``run_isolated``). ``method``: "auto" (the C API
    profiler, else op-alone), "capi" (no fallback) or "alone". ``name`` names the model in errors."""
    from ..io import read_model_bytes
    from ..runtime import capi
    model = read_model_bytes(model_bytes)
    notes: list[str] = []
    sessions: dict[str, Session | None] = {}
    errors: dict[str, str] = {}
    for view in views:
        try:
            sessions[view] = Session(model_bytes, RunOptions(threads=threads, xnnpack=(view == "xnnpack")),
                                     name=name)
        except TflcError as e:
            sessions[view], errors[view] = None, str(e)
    ref = next((s for s in sessions.values() if s is not None), None)
    if ref is None:
        ref = Session(model_bytes, RunOptions(threads=threads), name=name)  # raises the real error
    inputs = load_inputs(input_source, ref.input_details, steps=1, seed=seed, shapes=shapes)[0]
    input_names = [d["name"] for d in ref.input_details]
    runtime_shapes: dict[int, tuple] = {}
    partitions: list[list[int]] = []
    missing: MissingKernelError | None = None
    for view, s in list(sessions.items()):
        if s is None:
            continue
        try:
            s.run(inputs)
        except MissingKernelError as e:
            sessions[view], errors[view], missing = None, str(e), missing or e
            continue
        except TflcError as e:
            sessions[view], errors[view] = None, str(e)
            continue
        if view == "xnnpack" or not runtime_shapes:
            for d in s.interp.get_tensor_details():
                runtime_shapes[int(d["index"])] = tuple(int(x) for x in d["shape"])
        if view == "xnnpack":
            try:
                # XNNPACK's partitions: the nodes tflc's kernel delegate took are ops of their own
                mine = set(s.kernel_delegate.claimed.get(0, [])) if s.kernel_delegate is not None else set()
                partitions = [p for p in delegate_partitions(s.interp) if not set(p) <= mine]
            except Exception as e:  # the op details API is experimental
                notes.append(f"could not read XNNPACK's partitions: {e}")
    if missing is not None and all(s is None for s in sessions.values()):
        raise missing           # no view runs it: a kernel is missing, there is nothing to measure
    ops = model_ops(model, runtime_shapes)
    use_capi = method in ("auto", "capi")
    capi_reason = ""
    if use_capi:
        ok, capi_reason = capi.available()
        if not ok:
            if method == "capi":
                raise capi.CApiUnavailable(capi_reason)
            notes.append(f"LiteRT C API unusable ({capi_reason}): each op timed alone instead")
            use_capi = False
    raw_views: dict[str, RawView] = {}
    requested = {"runs": runs, "warmup": warmup, "max_seconds": max_seconds, "rounds": ROUNDS}
    for view in views:
        t0 = time.perf_counter()
        rv = RawView(view, "litert-profiler" if use_capi else "op-alone", requested=dict(requested))
        if view == "xnnpack":
            rv.partitions = partitions
        if sessions.get(view) is None:
            rv.notes.append(f"the whole model does not run {'with' if view == 'xnnpack' else 'without'} "
                            f"XNNPACK here: {errors.get(view, '?')}")
        done = False
        if use_capi:
            try:
                _profile_view_capi(view, model_bytes, inputs, input_names, sessions.get(view), threads, runs,
                                   warmup, max_seconds, rv, name=name)
                done = True
            except capi.CApiUnavailable as e:
                if method == "capi":
                    raise
                rv.notes.append(f"LiteRT C API unusable ({e}): each op timed alone instead")
            except TflcError as e:
                if method == "capi":
                    raise
                rv.notes.append(f"LiteRT's profiler could not run this view ({e}): each op timed alone instead")
            if not done:
                rv.method, rv.runs, rv.measured_us, rv.rounds = "op-alone", [], [], 0
                rv.measured_rounds, rv.run_rounds = [], []
        if not done:
            from .alone import time_ops_alone
            time_ops_alone(model, model_bytes, inputs, view=view, threads=threads, rv=rv,
                           session=sessions.get(view), max_seconds=max_seconds, runs=max(5, min(runs, 30)),
                           warmup=warmup)
        if done:
            from .calibrate import builtin_event_overhead
            rv.calibration = builtin_event_overhead(threads)
            if rv.calibration is None:
                rv.notes.append("the profiler's cost per op event could not be calibrated here: the check is on "
                                "the raw events")
        rv.seconds = time.perf_counter() - t0
        raw_views[view] = rv
    return RawProfile(ops, raw_views, threads, capi.litert_version(), [list(a.shape) for a in inputs], notes)
