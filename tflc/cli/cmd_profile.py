"""tflc profile: per-operator latency on LiteRT, in two views (XNNPACK as LiteRT runs it, and the
builtin kernels op by op), with a trace, a report, and a cached JSON artifact."""
from __future__ import annotations

import argparse
import shlex
import sys

from ..errors import UsageError
from ..runtime import parse_shape_overrides
from .common import add_json_flag, positive_int, print_json


def add_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "profile", help="per-operator latency on LiteRT (XNNPACK and builtin views)",
        description="Profile a model on LiteRT: for every op its type, input/output shapes, average/min/max "
        "time, percent and cumulative percent of the total, and a summary by op type, hot ops first. Two "
        "views: as LiteRT runs it with its default XNNPACK delegate (a delegated partition is one line, the "
        "ops inside it named, their times from XNNPACK's own per-operator events), and each op with the "
        "builtin kernels. Per-op times are checked against the whole-model latency measured without the "
        "profiler. The profile is cached as JSON keyed to the model's content (TFLC_CACHE, default "
        "~/.cache/tflc/profiles).")
    p.add_argument("model", metavar="IN", help="the .tflite model")
    p.add_argument("--threads", type=positive_int, default=1, metavar="N", help="LiteRT threads (default 1)")
    p.add_argument("--runs", type=positive_int, default=50, metavar="N",
                   help="profiled invocations per view (default 50; --max-time may stop earlier)")
    p.add_argument("--warmup", type=int, default=5, metavar="N", help="untimed invocations first (default 5)")
    p.add_argument("--max-time", type=float, default=20.0, metavar="S",
                   help="seconds of profiled runs per view at most (default 20; at least 5 runs)")
    p.add_argument("--view", choices=["both", "xnnpack", "builtin"], default="both",
                   help="which view(s) to measure (default both)")
    p.add_argument("--method", choices=["auto", "capi", "alone"], default="auto",
                   help="auto: LiteRT's profiler through its C API, else each op timed alone; capi: no "
                   "fallback; alone: time each op as a one-op model")
    p.add_argument("--top", type=positive_int, default=10, metavar="N", help="ops in the top table (default 10)")
    p.add_argument("--trace", metavar="OUT.json", help="write a Chrome/Perfetto trace (one row per op)")
    p.add_argument("--trace-runs", type=positive_int, default=3, metavar="N",
                   help="invocations in the trace (default 3, at most 5)")
    p.add_argument("--report", metavar="OUT.md|OUT.html", help="write a report with tables and plots")
    p.add_argument("--img-dir", metavar="DIR", help="where a Markdown report's images go (default: OUT-img/ "
                   "beside it; HTML reports embed them)")
    p.add_argument("--no-cache", action="store_true", help="measure again even if a cached profile exists")
    p.add_argument("--check", action="store_true",
                   help="exit 1 if a view's per-op times do not add up to the measured latency within 10%%")
    p.add_argument("--inputs", metavar="DATA", help="inputs (.npz or image folder); default: generated")
    p.add_argument("--input-shape", action="append", default=[], metavar="NAME:DxD",
                   help="fix a dynamic input's shape (repeatable)")
    add_json_flag(p)
    return p


def run(args: argparse.Namespace) -> int:
    from ..optimize import load
    from ..profiler import get_profile
    from ..profiler.report import Progress, print_blocks, profile_blocks, profile_report
    from ..profiler.trace import write_trace
    if args.report and not args.report.lower().endswith((".md", ".markdown", ".html", ".htm")):
        raise UsageError(f"--report {args.report}: write .md or .html (use --json for machines)")
    if args.trace and not args.trace.lower().endswith(".json"):
        raise UsageError(f"--trace {args.trace}: the trace is JSON (name it .json)")
    load(args.model)   # a clear error for an unreadable model before running anything
    views = ("xnnpack", "builtin") if args.view == "both" else (args.view,)
    with Progress(None, f"profiling {args.model} ({', '.join(views)}; up to {args.runs} runs per view)"):
        prof = get_profile(args.model, threads=args.threads, cache=not args.no_cache, views=views, runs=args.runs,
                           warmup=args.warmup, max_seconds=args.max_time, input_source=args.inputs,
                           shapes=parse_shape_overrides(args.input_shape) or None, method=args.method)
    if args.trace:
        n = write_trace(prof, args.trace, runs=args.trace_runs)
        print(f"trace: {args.trace} ({n} slices; open in https://ui.perfetto.dev)", file=sys.stderr)
    if args.report:
        argv = sys.argv[2:] if len(sys.argv) > 2 and sys.argv[1] == "profile" else None
        cmd = "tflc profile " + " ".join(shlex.quote(a) for a in argv) if argv else None
        files = profile_report(prof, args.report, top=max(args.top, 15), command=cmd, img_dir=args.img_dir)
        print(f"report: {files[0]}" + (f" (+{len(files) - 1} image(s))" if len(files) > 1 else ""), file=sys.stderr)
    bad = [v.name for v in prof.views.values() if v.sums_ok() is False]
    if args.json:
        data = prof.to_json()
        data["sums_ok"] = not bad
        print_json(data)
    else:
        print_blocks(profile_blocks(prof, top=args.top))
        if bad:
            print(f"\nper-op times do not add up to the measured latency within 10% in: {', '.join(bad)}")
    return 1 if (args.check and bad) else 0
