"""tflc profile: per-operator latency on LiteRT, in two views (XNNPACK as LiteRT runs it, and the
builtin kernels op by op), with a trace, a report, and a cached JSON artifact."""
from __future__ import annotations

import argparse
import os
import shlex
import sys

from ..runtime import parse_shape_overrides
from ..errors import RuntimeFailure, UsageError
from .common import (add_input_args, input_source, add_json_flag, non_negative_int, positive_int, positive_seconds, print_json,
                     shape_failure)

TRACE_RUNS_MAX = 5          # the profile keeps this many runs' timelines


def trace_runs(text: str) -> int:
    v = positive_int(text)
    if v > TRACE_RUNS_MAX:
        raise argparse.ArgumentTypeError(f"at most {TRACE_RUNS_MAX} (the profile keeps {TRACE_RUNS_MAX} runs' "
                                         f"timelines), got {text!r}")
    return v


IMG_DIR_HELP = ("where a Markdown report's images go (default: a folder named after the report, beside it: "
                "prof-img/ for --report prof.md; HTML reports embed them)")


def add_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "profile", help="per-operator latency on LiteRT (XNNPACK and builtin views)",
        description="Profile a model on LiteRT: for every op its type, input/output shapes, average/min/max "
        "time, percent and cumulative percent of the total, and a summary by op type, hot ops first. Two "
        "views: as LiteRT runs it with its default XNNPACK delegate (a delegated partition is one line, the "
        "ops inside it named, their times from XNNPACK's own per-operator events), and with the builtin "
        "kernels only (no XNNPACK), one event per op. The per-op events are checked against the "
        "whole-model latency measured without the profiler, as 'tflc bench' measures it (the median): "
        "within 10%%, off, or not checkable where the events' 1 µs resolution is too coarse for the model. "
        "Each builtin op event holds part of the profiler's own cost: it is measured once per LiteRT version "
        "on this machine (a chain of tiny ADDs with and without the profiler) and subtracted from each op "
        "event (never below 0); the check then judges that calibrated sum, and says so. XNNPACK's own events "
        "are not calibrated (they are truncated to whole µs and read low). "
        "The profile is cached as JSON keyed to the model's content and the settings (TFLC_CACHE, default "
        "~/.cache/tflc/profiles).")
    p.add_argument("model", metavar="IN", help="the .tflite model")
    p.add_argument("--threads", type=positive_int, default=1, metavar="N", help="LiteRT threads (default 1)")
    p.add_argument("--runs", type=positive_int, default=50, metavar="N",
                   help="profiled runs per view, and as many runs without the profiler (default 50; --max-time "
                   "may stop earlier)")
    p.add_argument("--warmup", type=non_negative_int, default=10, metavar="N",
                   help="untimed runs before each round of timed runs, as tflc bench (default 10)")
    p.add_argument("--max-time", type=positive_seconds, default=20.0, metavar="S",
                   help="seconds per view at most, warm-up included (default 20; at least 5 runs)")
    p.add_argument("--view", choices=["both", "xnnpack", "builtin"], default="both",
                   help="which view(s) to measure (default both)")
    p.add_argument("--method", choices=["auto", "capi", "alone"], default="auto",
                   help="auto: LiteRT's profiler through its C API, else each op timed alone; capi: no "
                   "fallback; alone: time each op as a one-op model")
    p.add_argument("--top", type=positive_int, default=10, metavar="N",
                   help="ops in the top table, on the terminal and in the report (default 10)")
    p.add_argument("--trace", metavar="OUT.json", help="write a Chrome/Perfetto trace (one row per op) of "
                   "representative runs: those whose per-run total is nearest the median (the trace's metadata "
                   "names them), not the first ones")
    p.add_argument("--trace-runs", type=trace_runs, default=3, metavar="N",
                   help=f"invocations in the trace (default 3, at most {TRACE_RUNS_MAX}), nearest the median first")
    p.add_argument("--report", metavar="OUT.md|OUT.html", help="write a report with tables and plots")
    p.add_argument("--img-dir", metavar="DIR", help=IMG_DIR_HELP)
    p.add_argument("--no-cache", action="store_true", help="measure again even if a cached profile exists")
    p.add_argument("--check", action="store_true",
                   help="exit 1 if a view's raw per-op events are off the measured latency by more than 10%% "
                   "(a view whose events' resolution cannot decide it is reported as not checkable)")
    add_input_args(p)
    add_json_flag(p)
    return p


def run(args: argparse.Namespace) -> int:
    from ..optimize import load
    from ..paths import check_output_path
    from ..profiler import get_profile
    from ..profiler.profile import CHECK_OFF, CHECK_UNDECIDABLE
    from ..report.documents import check_report, profile_report
    from ..report.profile_text import profile_blocks
    from ..report.progress import Progress
    from ..report.text import print_blocks
    from ..report.trace import write_trace
    from ..runtime.inputs import check_shape_overrides
    # output paths and the report's dependencies first: a missing folder or a missing matplotlib is
    # an error before minutes of measuring, and no folder is ever created for it
    if args.report:
        check_report(args.report, args.img_dir)
    if args.trace:
        check_output_path(args.trace, flag="--trace", suffix=".json")
    model = load(args.model)   # a clear error for an unreadable model before running anything
    shapes = parse_shape_overrides(args.input_shape)
    if shapes:                 # as tflc optimize checks them: names and fixed dimensions
        check_shape_overrides(shapes, model.main.inputs)
    views = ("xnnpack", "builtin") if args.view == "both" else (args.view,)
    with Progress(None, _progress_label(args, views), enabled=not args.json):
        try:
            prof = get_profile(args.model, threads=args.threads, cache=not args.no_cache, views=views,
                               runs=args.runs, warmup=args.warmup, max_seconds=args.max_time, input_source=input_source(args),
                               shapes=shapes or None, method=args.method)
        except RuntimeFailure as e:
            if shapes and "cannot prepare" in str(e):
                raise UsageError(shape_failure(args.input_shape, str(e))) from None
            raise
    if args.trace:
        n = write_trace(prof, args.trace, runs=args.trace_runs)
        print(f"trace: {args.trace} ({n} slices of the {args.trace_runs} run(s) nearest the median; open in "
              "https://ui.perfetto.dev)", file=sys.stderr)
    if args.report:
        argv = sys.argv[2:] if len(sys.argv) > 2 and sys.argv[1] == "profile" else None
        cmd = "tflc profile " + " ".join(shlex.quote(a) for a in argv) if argv else None
        files = profile_report(prof, args.report, top=args.top, command=cmd, img_dir=args.img_dir)
        print(f"report: {files[0]}" + (f" (+{len(files) - 1} image(s))" if len(files) > 1 else ""), file=sys.stderr)
    checks = {v.name: v.check() for v in prof.views.values()}
    bad = [n for n, c in checks.items() if c == CHECK_OFF]
    unsure = [n for n, c in checks.items() if c in (None, CHECK_UNDECIDABLE)]
    if args.json:
        data = prof.to_json()
        data["check"] = {n: (c or "not checkable") for n, c in checks.items()}
        data["sums_ok"] = False if bad else (None if unsure else True)
        data["checked_sum"] = {v.name: v.checked_sum for v in prof.views.values()}
        print_json(data)
    else:
        print_blocks(profile_blocks(prof, top=args.top))
        print()
        if bad:
            print(f"check: the per-op events ({_which(prof, bad)}) are off the measured latency by more than 10% "
                  f"in: {', '.join(bad)}")
        if unsure:
            print(f"check: not checkable in: {', '.join(unsure)} (see each view's check line)")
        if not bad and not unsure:
            print(f"check: the per-op events ({_which(prof, list(prof.views))}) are within 10% of the measured "
                  "latency in every view")
    return 1 if (args.check and bad) else 0


def _progress_label(args: argparse.Namespace, views: tuple[str, ...]) -> str:
    """What the spinner says while the profiling child works (it reports nothing back until done)."""
    label = (f"profiling {os.path.basename(args.model)}: {' and '.join(views)} view(s), up to {args.runs} runs "
             f"each, at most {args.max_time:g} s per view")
    if "builtin" in views and args.method != "alone" and not _calibrated(args.threads):
        label += "; first, once per LiteRT version, calibrating the profiler's cost per op event"
    return label


def _calibrated(threads: int) -> bool:
    """Whether the profiler's cost per op event is already measured on this machine (cached)."""
    try:
        from ..profiler.calibrate import calibration_path
        from ..runtime.capi import litert_version
        return calibration_path(litert_version(), threads).is_file()
    except Exception:      # only a label depends on it
        return True


def _which(prof, names) -> str:
    """Which sum each named view's check judged: "raw sum" or "calibrated sum", per view where they differ."""
    kinds = {n: prof.views[n].checked_sum for n in names}
    if len(set(kinds.values())) == 1:
        return f"{next(iter(kinds.values()))} sum"
    return ", ".join(f"{n}: {k} sum" for n, k in kinds.items())
