"""What one partition boundary costs on this machine: the cost model's calibration.

A delegated partition is one delegate kernel in LiteRT's execution plan: entering and leaving it
(handing its input and output tensors over, the kernel's own bookkeeping) costs time that the ops
inside it must win back. It is measured as the difference between two models with the same ops:

* A: ``N`` times (ADD, RESHAPE to an explicit shape): XNNPACK takes everything, one partition;
* B: ``N`` times (ADD, RESHAPE to ``[-1]``): XNNPACK refuses a RESHAPE to ``[-1]``, so every ADD is
  a partition of its own between two CPU ops: ``N`` partitions more than A.

timed interleaved in one process (``compare_latency``); the cost per boundary is the difference
of the two medians over ``N`` (the few nanoseconds a RESHAPE costs on either side are in it too,
and are the same order as what a CPU op beside a partition costs). Cached per LiteRT version and
thread count, like the profiler's own calibration.
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from ._cache import read_cached, write_cached

N = 32
VERSION = 1
METHOD = (f"{N} x (ADD, RESHAPE) on [1, 64] float32, RESHAPE to an explicit shape (1 XNNPACK partition) vs to "
          f"[-1] (XNNPACK refuses it: {N} partitions); (median B - median A) / {N}, timed interleaved")


def boundary_models(n: int = N) -> tuple[bytes, bytes]:
    """(A, B): the same ops, in one partition (A) or in ``n`` partitions between CPU ops (B)."""
    from ..io import serialize
    from ..ir.build import add_op, new_model
    from ..schema import TYPE_CODES, fb

    def build(shape: list[int]) -> bytes:
        m, sg = new_model("tflc boundary calibration")
        f32 = TYPE_CODES["FLOAT32"]
        x = sg.new_tensor("x", f32, (1, 64))
        c = sg.new_constant("c", np.full((1, 64), 0.5, np.float32))
        s = sg.new_constant("shape", np.asarray(shape, np.int32))
        cur = x
        for i in range(n):
            a = sg.new_tensor(f"a{i}", f32, (1, 64))
            add_op(sg, "ADD", [cur, c], [a], fb.AddOptionsT(), fb.BuiltinOptions.AddOptions)
            r = sg.new_tensor(f"r{i}", f32, (1, 64))
            opts = fb.ReshapeOptionsT()
            opts.newShape = list(shape)
            add_op(sg, "RESHAPE", [a, s], [r], opts, fb.BuiltinOptions.ReshapeOptions)
            cur = r
        sg.set_graph_inputs([x])
        sg.set_graph_outputs([cur])
        return serialize(m)
    return build([1, 64]), build([-1])


def per_boundary_us(a_us: float, b_us: float, n: int = N) -> float:
    """The cost of one boundary from the two medians (never below 0: noise is not a gain)."""
    return max(0.0, (b_us - a_us) / n)


def _path(threads: int) -> Path:
    from ..runtime.capi import litert_version
    from . import cache_dir
    return cache_dir() / "calibration" / f"boundary-litert{litert_version() or 'none'}-t{threads}-v{VERSION}.json"


def boundary_cost(threads: int = 1, *, cache: bool = True) -> dict:
    """``{"per_boundary_us": ..., "method": ..., ...}``, measured once per LiteRT version and cached."""
    path = _path(threads)
    hit = read_cached(path, "per_boundary_us") if cache else None
    if hit is not None:
        return {**hit, "cached": True}
    from .latency import compare_latency
    a, b = boundary_models()
    cmp = compare_latency(a, b, threads=threads, rounds=20, per_round=20, max_seconds=10.0)
    d = {"per_boundary_us": per_boundary_us(cmp.a.p50_us, cmp.b.p50_us), "one_partition_us": cmp.a.p50_us,
         "n_partitions_us": cmp.b.p50_us, "partitions": N, "ratio": cmp.ratio, "ci": [cmp.ci_low, cmp.ci_high],
         "method": METHOD, "threads": threads, "measured": time.strftime("%Y-%m-%dT%H:%M:%S")}
    if cache:
        write_cached(path, d)
    return {**d, "cached": False}
