"""The profiler's own cost inside each builtin op event, measured on this machine.

With ``kernel_mode = builtin`` LiteRT's profiler opens and closes one event around every TFLite
node. The work of doing so (reading the clock, recording the event) partly falls between the two
timestamps, so each event reads longer than the node costs in the stock interpreter. On a model of
large ops that is lost in the noise; on a model of a few tens of microseconds made of ~50 tiny ops
it adds up to 20% (hey_jarvis: raw events 1.22x the stock latency).

How it is measured: a calibration model built with tflc's IR, a chain of N ``ADD`` ops on
1-element float32 tensors, at two lengths (``N_SHORT``, ``N_LONG``). Per round, each length runs
in the stock interpreter with no profiler (XNNPACK off: the builtin kernels) and through the C API
with the profiler on (builtin kernels). The slope of the stock latency over N is what one such node
costs with no profiler; the slope of the events' total over N is what one event reads. Their
difference is the profiler's cost per event that lands inside the events:

    per_event_us = (events(N_LONG) - events(N_SHORT)) / dN - (stock(N_LONG) - stock(N_SHORT)) / dN

(the median over the rounds). Slopes, not means, so that the fixed cost of an invoke cancels.
The result is cached per LiteRT version (and threads) in the profiler's cache folder, since it is
a property of the runtime on this machine, not of a model.

The same measurement gives the stock latency's intercept, ``invoke_us``: what an invoke of the
builtin interpreter costs besides its ops (its loop over the nodes, the call from Python). No op
event holds it, so on a model of a few microseconds the op events cannot add up to the measured
latency without it; the builtin view's calibrated total adds it once per run, as a line of its own.

The correction subtracts ``per_event_us`` for each builtin op event: from an op's mean time over
the runs (never below 0; not from each integer-µs reading, since one that reads 0 cannot be
lowered and clamping it would bias the total high) and from each run's total. It is not
applied to XNNPACK's own per-operator events: those are timed by XNNPACK inside its runtime and
truncated to whole microseconds, so they read low, not high, and no such measurement of their
overhead can be made through 1 µs truncation.
"""
from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Sequence

import numpy as np

from ._cache import read_cached, write_cached

N_SHORT, N_LONG = 10, 160
ROUNDS = 5
RUNS_PER_ROUND = 200
WARMUP = 50
METHOD = (f"a chain of {N_SHORT} vs {N_LONG} ADD ops on 1-element float32 tensors, builtin kernels: slope of the "
          "profiled events' total over ops, less the slope of the stock latency (no profiler) over ops")
VERSION = 2      # of the procedure: a new one measures again (2: also the fixed cost per invoke)


def calibration_model(n: int) -> bytes:
    """N chained ADDs of a 1-element float32 tensor and a constant, serialized."""
    from ..io import serialize
    from ..schema import TYPE_CODES, fb
    from ..ir.build import add_op, new_model
    m, sg = new_model("tflc profiler calibration")
    x = sg.new_tensor("x", TYPE_CODES["FLOAT32"], (1,))
    c = sg.new_constant("c", np.ones((1,), np.float32))
    cur = x
    for i in range(n):
        y = sg.new_tensor(f"y{i}", TYPE_CODES["FLOAT32"], (1,))
        add_op(sg, "ADD", [cur, c], [y], fb.AddOptionsT(), fb.BuiltinOptions.AddOptions)
        cur = y
    sg.set_graph_inputs([x])
    sg.set_graph_outputs([cur])
    return serialize(m)


def per_event_from_rounds(stock_short: Sequence[float], stock_long: Sequence[float], events_short: Sequence[float],
                          events_long: Sequence[float], n_short: int = N_SHORT, n_long: int = N_LONG) -> dict:
    """The arithmetic: per round, the median of each side; per-op slopes; their difference; the
    median over rounds. Each argument: one median (µs) per round."""
    dn = float(n_long - n_short)
    per_round = []
    for ss, sl, es, el in zip(stock_short, stock_long, events_short, events_long):
        stock_slope = (sl - ss) / dn
        event_slope = (el - es) / dn
        # the stock latency's intercept: what an invoke costs besides its ops (the interpreter's
        # loop, the call from Python), timed exactly as the measured whole-model latency is
        invoke = ss - n_short * stock_slope
        per_round.append((event_slope - stock_slope, stock_slope, event_slope, invoke))
    if not per_round:
        raise ValueError("no calibration rounds")
    a = np.asarray(per_round)
    return {"per_event_us": float(np.median(a[:, 0])), "stock_us_per_op": float(np.median(a[:, 1])),
            "event_us_per_op": float(np.median(a[:, 2])), "invoke_us": max(0.0, float(np.median(a[:, 3]))),
            "rounds": len(per_round), "per_round_us": [round(float(x), 4) for x in a[:, 0]]}


def _measure(threads: int) -> dict:
    from ..runtime.interpreter import RunOptions, Session, native_stderr
    from ..runtime.capi import EV_OPERATOR, compiled_model
    x = [np.ones((1,), np.float32)]
    models = {n: calibration_model(n) for n in (N_SHORT, N_LONG)}
    stock, prof = {}, {}
    with native_stderr():
        for n, data in models.items():
            s = Session(data, RunOptions(threads=threads, xnnpack=False), name="the calibration model")
            s.run(x)
            stock[n] = s.interp
            cm = compiled_model(data, threads=threads, kernel_mode="builtin", profiling=True,
                                name="the calibration model")
            cm.set_inputs(x)
            cm.run()
            prof[n] = cm
    try:
        cols: dict[tuple[str, int], list[float]] = {}
        for _ in range(ROUNDS):
            for n in (N_SHORT, N_LONG):
                it = stock[n]
                for _ in range(WARMUP):
                    it.invoke()
                ts = []
                for _ in range(RUNS_PER_ROUND):
                    t0 = time.perf_counter()
                    it.invoke()
                    ts.append((time.perf_counter() - t0) * 1e6)
                cols.setdefault(("stock", n), []).append(float(np.median(ts)))
                cm = prof[n]
                for _ in range(WARMUP):
                    cm.run()
                sums = []
                for _ in range(RUNS_PER_ROUND):
                    sums.append(float(sum(e.elapsed_us for e in cm.profile_run() if e.type == EV_OPERATOR)))
                # events are differences of µs timestamps: the mean, not the median, resolves below 1 µs
                cols.setdefault(("events", n), []).append(float(np.mean(sums)))
    finally:
        with native_stderr():
            for cm in prof.values():
                cm.close()
    out = per_event_from_rounds(cols[("stock", N_SHORT)], cols[("stock", N_LONG)], cols[("events", N_SHORT)],
                                cols[("events", N_LONG)])
    out["per_event_us"] = max(0.0, out["per_event_us"])
    return out


def calibration_path(litert_version: str | None, threads: int) -> Path:
    from . import cache_dir
    return cache_dir() / "calibration" / f"builtin-litert{litert_version or 'none'}-t{threads}-v{VERSION}.json"


def builtin_event_overhead(threads: int = 1, *, cache: bool = True) -> dict | None:
    """The profiler's cost per builtin op event (µs), measured once per LiteRT version and cached.
    Runs in the profiling child. None where it cannot be measured (no C API, an error)."""
    if os.environ.get("TFLC_NO_CALIBRATION"):
        return None
    from ..runtime.capi import available, litert_version
    ver = litert_version()
    path = calibration_path(ver, threads)
    hit = read_cached(path, "per_event_us") if cache else None
    if hit is not None:
        return {**hit, "cached": True}
    ok, _ = available()
    if not ok:
        return None
    try:
        d = _measure(threads)
    except Exception:   # a calibration that cannot run leaves the raw check as it was
        return None
    d.update(method=METHOD, litert_version=ver, threads=threads, measured=time.strftime("%Y-%m-%dT%H:%M:%S"),
             n_short=N_SHORT, n_long=N_LONG, runs_per_round=RUNS_PER_ROUND)
    if cache:
        write_cached(path, d)
    d["cached"] = False
    return d
