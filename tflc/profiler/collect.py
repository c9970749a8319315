"""Measurements, taken in an isolated child process: the raw material of a profile.

For each view the child runs the model two ways, interleaved run by run so that machine noise
hits both alike: with LiteRT's profiler on (through the C API: per-operator events), and through
the stock Python interpreter with no profiler (the whole-model latency the per-op times must add
up to). What comes back is plain data (``RawView``); ``profile.py`` turns it into tables.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from ..errors import TflcError
from ..runtime.inputs import load_inputs
from ..runtime.interpreter import RunOptions, Session, native_stderr

VIEWS = ("xnnpack", "builtin")

#: pause when switching between two runtimes of one process that use several threads
SWITCH_PAUSE_S = 0.05


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


def delegate_partitions(interp: Any) -> list[list[int]]:
    """For each DELEGATE node of the main subgraph (in node order), the original nodes it took."""
    details = interp._get_ops_details()
    producer: dict[int, int] = {}
    for d in details:
        if d["op_name"] == "DELEGATE":
            continue
        for t in d["outputs"]:
            producer.setdefault(int(t), int(d["index"]))
    parts = []
    for d in details:
        if d["op_name"] != "DELEGATE":
            continue
        boundary = {int(t) for t in d["inputs"]}
        members: set[int] = set()
        stack = [int(t) for t in d["outputs"]]
        seen: set[int] = set()
        while stack:
            t = stack.pop()
            if t in seen or t in boundary or t < 0:
                continue
            seen.add(t)
            p = producer.get(t)
            if p is None or p in members:
                continue
            members.add(p)
            stack.extend(int(x) for x in details[p]["inputs"])
        parts.append(sorted(members))
    return parts


def _stock_timer(session: Session) -> Callable[[], float]:
    interp = session.interp

    def once() -> float:
        t0 = time.perf_counter()
        interp.invoke()
        return (time.perf_counter() - t0) * 1e6
    return once


def _events(evs: list) -> list[tuple]:
    from .capi import EV_DELEGATE_PROFILED_OPERATOR, EV_DEFAULT, EV_OPERATOR
    keep = (EV_OPERATOR, EV_DELEGATE_PROFILED_OPERATOR)
    out = []
    for e in evs:
        if e.type in keep or (e.type == EV_DEFAULT and e.tag == "Invoke"):
            out.append((e.type, e.tag, e.meta1, e.meta2, e.start_us, e.elapsed_us))
    return out


def _loop(n_runs: int, max_seconds: float, min_runs: int, step: Callable[[], None]) -> None:
    t0 = time.perf_counter()
    for r in range(n_runs):
        step()
        if r + 1 >= min_runs and time.perf_counter() - t0 > max_seconds:
            break


def _profile_view_capi(view: str, model_bytes: bytes, inputs: list[np.ndarray], input_names: list[str],
                       session: Session | None, threads: int, runs: int, warmup: int, max_seconds: float,
                       rv: RawView) -> None:
    from .capi import CompiledModel
    mode = "delegate" if view == "xnnpack" else "builtin"
    with native_stderr() as log:
        try:
            cm = CompiledModel(model_bytes, threads=threads, kernel_mode=mode, profiling=True)
        except TflcError:
            raise
        except Exception as e:  # pragma: no cover - ctypes failure
            raise TflcError(f"LiteRT C API: {e}") from None
    try:
        by_name = dict(zip(input_names, inputs))
        if all(n in by_name for n in cm.input_names):
            arrays = [by_name[n] for n in cm.input_names]
        else:
            arrays = list(inputs)
        with native_stderr() as log:
            try:
                cm.set_inputs(arrays)
                for _ in range(max(1, warmup)):
                    cm.run()
            except TflcError as e:
                detail = next((ln for ln in log if "rror" in ln), "")
                raise type(e)(f"{e}{': ' + detail.strip() if detail else ''}") from None
        stock = _stock_timer(session) if session is not None else None
        if stock is not None:
            for _ in range(max(1, warmup)):
                stock()
        # One thread: the stock and the profiled run alternate run by run. More threads: in blocks,
        # with a pause at each switch, since one runtime's idle workers spin for a while after their
        # last job and would steal the cores from the other's.
        n, pause = (1, 0.0) if threads == 1 else (2, SWITCH_PAUSE_S)

        def block() -> None:
            if stock is not None:
                if pause:
                    time.sleep(pause)
                    stock()
                for _ in range(n):
                    rv.measured_us.append(stock())
            if pause:
                time.sleep(pause)
                cm.run()
            for _ in range(n):
                rv.runs.append(_events(cm.profile_run()))
        _loop(max(1, -(-runs // n)), max_seconds, min_runs=max(1, -(-5 // n)), step=block)
    finally:
        with native_stderr():
            cm.close()


def collect(model_bytes: bytes, *, threads: int = 1, runs: int = 50, warmup: int = 5,
            max_seconds: float = 20.0, views: tuple[str, ...] = VIEWS, input_source: str | None = None,
            shapes: dict | None = None, seed: int = 0, method: str = "auto") -> RawProfile:
    """Measure ``model_bytes``; run this in a child (``run_isolated``). ``method``: "auto" (the C API
    profiler, else op-alone), "capi" (no fallback) or "alone"."""
    from ..io import read_model_bytes
    from . import capi
    model = read_model_bytes(model_bytes)
    notes: list[str] = []
    sessions: dict[str, Session | None] = {}
    errors: dict[str, str] = {}
    for view in views:
        try:
            sessions[view] = Session(model_bytes, RunOptions(threads=threads, xnnpack=(view == "xnnpack")),
                                     name="the model")
        except TflcError as e:
            sessions[view], errors[view] = None, str(e)
    ref = next((s for s in sessions.values() if s is not None), None)
    if ref is None:
        ref = Session(model_bytes, RunOptions(threads=threads), name="the model")  # raises the real error
    inputs = load_inputs(input_source, ref.input_details, steps=1, seed=seed, shapes=shapes)[0]
    input_names = [d["name"] for d in ref.input_details]
    runtime_shapes: dict[int, tuple] = {}
    partitions: list[list[int]] = []
    for view, s in list(sessions.items()):
        if s is None:
            continue
        try:
            s.run(inputs)
        except TflcError as e:
            sessions[view], errors[view] = None, str(e)
            continue
        if view == "xnnpack" or not runtime_shapes:
            for d in s.interp.get_tensor_details():
                runtime_shapes[int(d["index"])] = tuple(int(x) for x in d["shape"])
        if view == "xnnpack":
            try:
                partitions = delegate_partitions(s.interp)
            except Exception as e:  # the op details API is experimental
                notes.append(f"could not read XNNPACK's partitions: {e}")
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
    for view in views:
        t0 = time.perf_counter()
        rv = RawView(view, "litert-profiler" if use_capi else "op-alone")
        if view == "xnnpack":
            rv.partitions = partitions
        if sessions.get(view) is None:
            rv.notes.append(f"the whole model does not run {'with' if view == 'xnnpack' else 'without'} "
                            f"XNNPACK here: {errors.get(view, '?')}")
        done = False
        if use_capi:
            try:
                _profile_view_capi(view, model_bytes, inputs, input_names, sessions.get(view), threads, runs,
                                   warmup, max_seconds, rv)
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
                rv.method, rv.runs, rv.measured_us = "op-alone", [], []
        if not done:
            from .alone import time_ops_alone
            time_ops_alone(model, model_bytes, inputs, view=view, threads=threads, rv=rv,
                           session=sessions.get(view), max_seconds=max_seconds, runs=max(5, min(runs, 30)))
        rv.seconds = time.perf_counter() - t0
        raw_views[view] = rv
    return RawProfile(ops, raw_views, threads, capi.litert_version(), [list(a.shape) for a in inputs], notes)
