#!/usr/bin/env python
"""Benchmark: the dispatch cost of one tflc native op against one builtin op, and flat memory over
create/destroy cycles of ``tflc.runtime.Interpreter``.

Usage::

    python benchmarks/dispatch.py [--elements 16] [--rounds 40] [--cycles 10000] [--json]

Dispatch: chains of N trivial ops on a float32 tensor of ``--elements`` values, run by
``tflc.runtime.Interpreter`` (1 thread) with ``OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES``
so that no builtin op hides inside an XNNPACK partition (tflc's kernel delegate still applies):

* ``tflc``: N custom ops ``BenchCopy`` run by a NativeKernel (a Numba ``@cfunc`` copying input to
  output; LiteRT calls it with no Python in between);
* ``MUL``: N builtin MUL ops (x * a constant of ones), a two-input elementwise kernel;
* ``RELU``: N builtin RELU ops, a one-input elementwise kernel (as the copy).

Per op means the slope between a short and a long chain (``(t(N_hi) - t(N_lo)) / (N_hi - N_lo)``),
so what one ``invoke()`` costs regardless of its ops (the Python call, the wrapper) drops out.
Every round times every model (the order reversed on alternate rounds) and gives one per-op time
each; the ratio tflc / builtin is the median of the per-round ratios with its 95% bootstrap
interval over the rounds (``tflc.profiler.paired``). The issue's target: within 1.2x.

Memory: ``--cycles`` create / allocate / invoke / destroy cycles of a two-custom-op model after a
500-cycle warm-up; VmRSS (``/proc/self/status``) before and after, and for scale what one
interpreter kept alive costs.
"""
from __future__ import annotations

import argparse
import gc
import json
import re
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

CODE = "BenchCopy"
TARGET = 1.2
N_LO, N_HI = 20, 220


# --------------------------------------------------------------------------- the kernel: a copy

def copy_kernel():
    """A NativeKernel copying input 0 to output 0 (both float32 of the same size), read through raw
    pointers with the struct readers every tflc kernel uses (tflc.kernels._native)."""
    from numba import cfunc

    import tflc.kernels
    from tflc.kernels import _native as N

    @cfunc(N.SIGNATURE, nopython=True)
    def invoke(context, node):
        op = N.op_node(node)
        t_in, t_out = N.input_tensor(context, op, 0), N.output_tensor(context, op, 0)
        n = N.num_elements(t_out)
        x = N.floats_at(N.data(t_in), n)
        y = N.floats_at(N.data(t_out), n)
        for k in range(n):
            y[k] = x[k]
        return np.int32(0)

    kernel = tflc.kernels.NativeKernel(invoke=invoke.address)
    kernel_keep.append(invoke)          # the cfunc's machine code lives as long as the object
    return kernel


kernel_keep: list = []


# --------------------------------------------------------------------------- models

def chain(kind: str, n: int, elements: int) -> bytes:
    """x -> n ops of ``kind`` ("tflc", "MUL", "RELU") -> y, float32 [1, elements]."""
    from tflc.io import serialize
    from tflc.ir.build import add_op, new_model
    from tflc.ir.core import OpCode, Operator
    from tflc.schema import OP_CODES, TYPE_CODES, fb

    shape = (1, elements)
    m, sg = new_model(f"{n} x {kind}")
    cur = sg.new_tensor("x", TYPE_CODES["FLOAT32"], shape)
    first = cur
    ones = sg.new_constant("ones", np.ones(shape, np.float32)) if kind == "MUL" else None
    for i in range(n):
        y = sg.new_tensor(f"t{i}", TYPE_CODES["FLOAT32"], shape)
        if kind == "tflc":
            sg.add_op(Operator(OpCode(OP_CODES["CUSTOM"], CODE), [cur], [y]))
        elif kind == "MUL":
            add_op(sg, "MUL", [cur, ones], [y], fb.MulOptionsT(), fb.BuiltinOptions.MulOptions)
        else:
            add_op(sg, kind, [cur], [y])
        cur = y
    sg.set_graph_inputs([first])
    sg.set_graph_outputs([cur])
    return serialize(m)


# --------------------------------------------------------------------------- dispatch

def _per_invoke_us(interp, inner: int, batches: int) -> float:
    """Median over ``batches`` of the mean time of ``inner`` back-to-back invokes, in µs."""
    invoke = interp.invoke
    times = []
    for _ in range(batches):
        t0 = time.perf_counter_ns()
        for _ in range(inner):
            invoke()
        times.append((time.perf_counter_ns() - t0) / inner / 1e3)
    return float(np.median(times))


def dispatch(elements: int, rounds: int, inner: int, batches: int) -> dict:
    from tflc.profiler.paired import ratio_interval
    from tflc.runtime import Interpreter
    from tflc.runtime.dropin import OpResolverType

    kinds = ["tflc", "MUL", "RELU"]
    kernel = copy_kernel()
    interps = {}
    for kind in kinds:
        for n in (N_LO, N_HI):
            it = Interpreter(model_content=chain(kind, n, elements), num_threads=1, kernels={CODE: kernel},
                             experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
            it.allocate_tensors()
            x = np.arange(elements, dtype=np.float32).reshape(1, elements)
            it.set_tensor(it.get_input_details()[0]["index"], x)
            it.invoke()
            y = it.get_tensor(it.get_output_details()[0]["index"])
            want = np.maximum(x, 0) if kind == "RELU" else x
            if not np.array_equal(y, want):
                raise SystemExit(f"{kind} x {n}: wrong output {y}")
            if kind == "tflc" and it.kernel_delegate.claimed_count != n:
                raise SystemExit(f"tflc's delegate took {it.kernel_delegate.claimed_count} of {n} ops")
            interps[(kind, n)] = it
    for it in interps.values():            # warm caches and the CPU's clock
        _per_invoke_us(it, inner, 2)
    per_op: dict[str, list[float]] = {k: [] for k in kinds}
    order = list(interps)
    for r in range(rounds):
        t = {key: _per_invoke_us(interps[key], inner, batches) for key in (order if r % 2 == 0 else order[::-1])}
        for kind in kinds:
            per_op[kind].append((t[(kind, N_HI)] - t[(kind, N_LO)]) / (N_HI - N_LO))
    out: dict = {"elements": elements, "chain": [N_LO, N_HI], "rounds": rounds, "invokes_per_batch": inner,
                 "batches_per_model_per_round": batches, "per_op_us": {}, "ratios": {}}
    for kind in kinds:
        v = np.asarray(per_op[kind])
        out["per_op_us"][kind] = {"median": float(np.median(v)), "p10": float(np.percentile(v, 10)),
                                  "p90": float(np.percentile(v, 90))}
    for base in kinds[1:]:
        ratios = [a / b for a, b in zip(per_op["tflc"], per_op[base]) if b > 0]
        pr = ratio_interval(ratios)
        out["ratios"][f"tflc/{base}"] = dict(pr.to_json(), within_target=bool(pr.ci_high is not None
                                                                            and pr.ci_high <= TARGET))
    return out


# --------------------------------------------------------------------------- memory

def _rss_kib() -> int:
    with open("/proc/self/status") as f:
        return next(int(ln.split()[1]) for ln in f if ln.startswith("VmRSS:"))


def memory(cycles: int, warmup: int = 500) -> dict:
    """RSS over ``cycles`` create/allocate/invoke/destroy cycles, and what a kept interpreter weighs."""
    from tflc.runtime import Interpreter

    kernel = copy_kernel()
    data = chain("tflc", 2, 16)
    x = np.ones((1, 16), np.float32)

    def make():
        it = Interpreter(model_content=data, kernels={CODE: kernel})
        it.allocate_tensors()
        it.set_tensor(it.get_input_details()[0]["index"], x)
        it.invoke()
        return it

    for _ in range(warmup):
        make()
    gc.collect()
    before = _rss_kib()
    t0 = time.perf_counter()
    for _ in range(cycles):
        make()
    seconds = time.perf_counter() - t0
    gc.collect()
    after = _rss_kib()
    kept = []
    base = _rss_kib()
    for _ in range(500):
        kept.append(make())
    gc.collect()
    one = (_rss_kib() - base) / 500
    return {"cycles": cycles, "warmup": warmup, "rss_before_kib": before, "rss_after_kib": after,
            "growth_kib": after - before, "ms_per_cycle": seconds / cycles * 1e3, "kept_interpreter_kib": one}


# --------------------------------------------------------------------------- report

def cpu() -> dict:
    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:
        return {"model": "unknown", "avx512_vnni": None}
    m = re.search(r"^model name\s*:\s*(.*)$", info, re.M)
    return {"model": m.group(1).strip() if m else "unknown", "avx512_vnni": bool(re.search(r"\bavx512_vnni\b", info))}


def show(result: dict) -> None:
    c = result["cpu"]
    print(f"CPU: {c['model']} (avx512_vnni: {'yes' if c['avx512_vnni'] else 'no'}); ai-edge-litert "
          f"{result['litert']}; 1 thread, XNNPACK off")
    d = result.get("dispatch")
    if d:
        print(f"\nDispatch per op: chains of {d['chain'][0]} and {d['chain'][1]} ops on float32[1, {d['elements']}], "
              f"{d['rounds']} interleaved rounds")
        print(f"  {'op':<34}{'µs/op median':>14}{'p10':>9}{'p90':>9}")
        names = {"tflc": "tflc NativeKernel (copy)", "MUL": "builtin MUL (x * ones)", "RELU": "builtin RELU"}
        for kind, v in d["per_op_us"].items():
            print(f"  {names[kind]:<34}{v['median']:>14.3f}{v['p10']:>9.3f}{v['p90']:>9.3f}")
        print(f"  {'ratio':<14}{'median':>8}{'95% interval':>20}   target <= {TARGET}x")
        for name, r in d["ratios"].items():
            lo, hi = r["ci"]
            ci = f"[{lo:.3f}, {hi:.3f}]" if lo is not None else "-"
            print(f"  {name:<14}{r['ratio']:>8.3f}{ci:>20}   {'met' if r['within_target'] else 'NOT met'}")
    mem = result.get("memory")
    if mem:
        print(f"\nMemory: {mem['cycles']} create/allocate/invoke/destroy cycles after {mem['warmup']} warm-up "
              f"({mem['ms_per_cycle']:.2f} ms each)")
        print(f"  VmRSS {mem['rss_before_kib']} KiB -> {mem['rss_after_kib']} KiB: {mem['growth_kib']:+d} KiB "
              f"(one interpreter kept alive: {mem['kept_interpreter_kib']:.0f} KiB)")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--elements", type=int, default=16, help="float32 values per tensor (default 16)")
    ap.add_argument("--rounds", type=int, default=40, help="interleaved rounds (default 40)")
    ap.add_argument("--inner", type=int, default=200, help="invokes per timed batch (default 200)")
    ap.add_argument("--batches", type=int, default=5, help="timed batches per model per round (default 5)")
    ap.add_argument("--cycles", type=int, default=10_000, help="create/destroy cycles (default 10000; 0: skip)")
    ap.add_argument("--no-dispatch", action="store_true", help="only the memory measurement")
    ap.add_argument("--json", action="store_true", help="print the results as JSON instead of a table")
    args = ap.parse_args(argv)
    from importlib import metadata
    result: dict = {"cpu": cpu(), "litert": metadata.version("ai-edge-litert")}
    if not args.no_dispatch:
        result["dispatch"] = dispatch(args.elements, args.rounds, args.inner, args.batches)
    if args.cycles:
        result["memory"] = memory(args.cycles)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        show(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
