"""tflc bench: whole-model latency of one or several models side by side, thread tuning (also
under contention), with and without XNNPACK."""
from __future__ import annotations

import argparse
import os
import shlex
import sys

from ..errors import RuntimeFailure, UsageError
from ..profiler.paired import NOISE_BAND
from ..runtime import parse_shape_overrides
from .cmd_profile import IMG_DIR_HELP
from .common import (add_input_args, input_source, add_json_flag, non_negative_int, positive_int, positive_seconds, print_json,
                     shape_failure)


def add_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "bench", help="whole-model latency, size, memory; several models side by side; thread tuning",
        description="Benchmark one or several models on LiteRT: warm-up, then N timed runs (p50/p90/p99, mean, "
        "standard deviation), model size, peak memory, and, with several models, ratios against the first and "
        "each model's largest output error against the first (accuracy, size and speed side by side; models "
        "with other inputs or outputs are not comparable). Models are named by the shortest end of their "
        "paths that tells them apart. "
        "Each model after the first is compared with the first in one process, interleaved in rounds (A B, B "
        "A, ... as the -O2 latency guard compares): the ratio is the median over the rounds of each round's "
        "ratio of medians, with a 95% bootstrap interval over the rounds. The other measurements are split into "
        "--rounds that time every setting one after the other, in alternating order, and the thread and kernel "
        "ratios are paired by round likewise. "
        f"A ratio reads 'faster' or 'slower' only when its whole interval lies beyond ±{100 * NOISE_BAND:.0f}% "
        "of 1, else 'no difference beyond noise': pairing removes the machine's drift, not what differs from "
        "one process to the next (two copies of one model read a few percent apart); more --rounds narrow the "
        "interval. --json gives each ratio's interval and verdict. "
        "--threads 1,2,4 (or auto) measures each thread count, --contention also under a background load on "
        "the same cores, and a thread count is recommended. Each model also runs without XNNPACK (and with "
        "tflc's delegate where it holds tflc kernels). Sizes in KB/MB of 1024.")
    p.add_argument("models", nargs="+", metavar="IN", help="models; the first is the reference for ratios")
    p.add_argument("--threads", default="1", metavar="LIST",
                   help="thread counts: N, a list like 1,2,4, or 'auto' (default 1)")
    p.add_argument("--contention", nargs="?", type=int, const=os.cpu_count() or 1, default=0, metavar="N",
                   help=f"also measure under N busy background processes (default N: the number of cores, "
                   f"{os.cpu_count() or 1})")
    p.add_argument("--runs", type=positive_int, default=100, metavar="N", help="timed runs (default 100)")
    p.add_argument("--warmup", type=non_negative_int, default=10, metavar="N",
                   help="untimed runs before each round's timed runs (default 10)")
    p.add_argument("--max-time", type=positive_seconds, default=10.0, metavar="S",
                   help="seconds per configuration (model x threads x load x kernels) at most, all its rounds, "
                   "process starts and warm-ups included (default 10; at least 5 runs each)")
    p.add_argument("--rounds", type=positive_int, default=5, metavar="N",
                   help="split each measurement into N passes over all configurations, so that a slow phase "
                   "of the machine hits all alike; the rounds are the units of the ratios' intervals (default 5, "
                   "at least 2 for an interval; at most --runs)")
    p.add_argument("--no-variants", action="store_true", help="skip the runs without XNNPACK / with tflc's delegate")
    p.add_argument("--no-accuracy", action="store_true", help="do not compare outputs with the first model")
    p.add_argument("--report", metavar="OUT.md|OUT.html", help="write a report with tables and plots")
    p.add_argument("--img-dir", metavar="DIR", help=IMG_DIR_HELP)
    add_input_args(p)
    add_json_flag(p)
    return p


def run(args: argparse.Namespace) -> int:
    from ..optimize import load
    from ..profiler.bench import parse_threads, run_bench
    from ..report.bench_text import bench_blocks
    from ..report.documents import bench_report, check_report
    from ..report.progress import Progress
    from ..report.text import print_blocks
    from ..runtime.inputs import check_shape_overrides
    if args.report:     # before any measuring: its path and its plots' dependencies; no folder is created
        check_report(args.report, args.img_dir)
    if args.contention < 0:
        raise UsageError("--contention N: N must be 0 or more")
    shapes = parse_shape_overrides(args.input_shape)
    for m in args.models:
        model = load(m)
        if shapes:      # as tflc optimize checks them: a name the model lacks, a fixed dimension changed
            try:
                check_shape_overrides(shapes, model.main.inputs)
            except UsageError as e:
                raise UsageError(f"{m}: {e}" if len(args.models) > 1 else str(e)) from None
    threads = parse_threads(args.threads)
    steps = min(args.rounds, args.runs) * len(args.models) * (len(threads) * (2 if args.contention else 1)
                                              + (0 if args.no_variants else 1)) \
        + (len(args.models) - 1) * (1 if args.no_accuracy else 2)      # comparisons, accuracy
    with Progress(steps, "benchmarking", enabled=not args.json) as bar:
        try:
            result = run_bench(args.models, threads=threads, runs=args.runs, warmup=args.warmup,
                               contention=args.contention, xnnpack_variants=not args.no_variants,
                               input_source=input_source(args), shapes=shapes or None, max_seconds=args.max_time,
                               accuracy=not args.no_accuracy, rounds=args.rounds, progress=lambda msg: bar.step(msg))
        except RuntimeFailure as e:
            if shapes and "cannot prepare" in str(e):
                raise UsageError(shape_failure(args.input_shape, str(e))) from None
            raise
    if args.report:
        argv = sys.argv[2:] if len(sys.argv) > 2 and sys.argv[1] == "bench" else None
        cmd = "tflc bench " + " ".join(shlex.quote(a) for a in argv) if argv else None
        files = bench_report(result, args.report, command=cmd, img_dir=args.img_dir)
        print(f"report: {files[0]}" + (f" (+{len(files) - 1} image(s))" if len(files) > 1 else ""), file=sys.stderr)
    if args.json:
        print_json(result.to_json())
    else:
        print_blocks(bench_blocks(result))
    return 0
