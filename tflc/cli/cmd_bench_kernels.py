"""tflc bench-kernels: every tflc kernel against the builtin ops it replaces, XNNPACK, and a copy
of the same bytes, over a sweep of shapes (``tflc.kernelbench``)."""
from __future__ import annotations

import argparse
import dataclasses
import sys

from ..errors import UsageError
from ..profiler.paired import NOISE_BAND
from .common import add_json_flag, positive_int, positive_seconds, print_json

NAME = "bench-kernels"


def _sizes(text: str) -> list[tuple[int, ...]]:
    from ..kernelbench import parse_sizes
    try:
        return parse_sizes(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _list(text: str) -> list[str]:
    items = [s.strip() for s in text.split(",") if s.strip()]
    if not items:
        raise argparse.ArgumentTypeError(f"expected a name or a comma-separated list, got {text!r}")
    return items


def add_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser(
        NAME, help="benchmark tflc's kernels against the builtin ops they replace, XNNPACK, and a memory copy",
        description="Benchmark every kernel of tflc's library (tflc.kernels.library.REPLACES) against each builtin "
        "int8 op it replaces, over a sweep of shapes: the one-op int8 model on LiteRT's builtin kernels, the same "
        "op replaced by the kernel (made as the use-kernels pass makes it: a table kernel's table by LiteRT "
        "itself), the int8 op and the float32 op with XNNPACK where XNNPACK takes them, and a copy (numpy) of as "
        "many bytes as the op reads and writes, the memory bandwidth at that size. All of a case run in one "
        "process, interleaved in rounds; kernel/x ratios are the median of per-round ratios with a 95% bootstrap "
        f"interval, read 'faster'/'slower' only beyond ±{100 * NOISE_BAND:.0f}%. Each kernel's outputs are "
        "checked byte for byte against LiteRT's before timing (column 'exact'). "
        "Exit status 1 where a kernel's outputs differ from LiteRT's. "
        "Your own kernel: register it (tflc.kernels.register(CODE, kernel), or a plug-in's tflc.kernels entry "
        "point) and benchmark a model holding it with --custom MINE.tflite --against REF.tflite (REF: the "
        "builtin ops it replaces); or, in Python, sweep it like the library's kernels: "
        "tflc.kernelbench.add_kernel(CODE, replaces, options) then tflc.kernelbench.run(kernels=[CODE]).")
    p.add_argument("--kernel", type=_list, action="extend", metavar="CODE",
                   help="only these kernels (e.g. TFLC_LUT8X8; comma-separated or repeated; default: all)")
    p.add_argument("--op", type=_list, action="extend", metavar="TYPE",
                   help="only these builtin ops (e.g. GELU,SUB; comma-separated or repeated; default: all of the "
                   "sweep that some kernel replaces)")
    p.add_argument("--sizes", type=_sizes, metavar="LIST",
                   help="output sizes: elements (1K = 1024, 1M) shaped [1, N/256, 256], or shapes like 1x64x192 "
                   "(default 1K,16K,256K,1M); binary ops run each size also as a row broadcast ([.., C] with [.., 1])")
    p.add_argument("--quick", action="store_true", help="fewer and shorter rounds (wider intervals)")
    p.add_argument("--rounds", type=positive_int, metavar="N", help="rounds per case (default 20; --quick 6)")
    p.add_argument("--per-round", type=positive_int, metavar="N",
                   help="timed runs of each variant per round (default 10; --quick 5)")
    p.add_argument("--max-time", type=positive_seconds, metavar="S",
                   help="seconds per case at most, after 5 rounds (default 3; --quick 0.8)")
    p.add_argument("--threads", type=positive_int, default=1, metavar="N", help="LiteRT threads (default 1)")
    p.add_argument("--plot", metavar="FILE.png|svg", help="also plot GB/s against size per op (needs matplotlib)")
    p.add_argument("--custom", metavar="MODEL.tflite",
                   help="benchmark this model (holding custom ops with registered kernels) against --against")
    p.add_argument("--against", metavar="REF.tflite", help="the reference model for --custom (the builtin ops)")
    add_json_flag(p)
    return p


def _settings(args: argparse.Namespace):
    from ..kernelbench import Settings
    base = Settings.quick() if args.quick else Settings()
    kw = {"threads": args.threads}
    for name, attr in (("rounds", "rounds"), ("per_round", "per_round"), ("max_time", "max_seconds")):
        v = getattr(args, name, None)
        if v is not None:
            kw[attr] = v
    return dataclasses.replace(base, **kw)


def _read(path: str, flag: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except FileNotFoundError:
        raise UsageError(f"{flag} {path}: no such file") from None
    except IsADirectoryError:
        raise UsageError(f"{flag} {path}: a folder, not a model") from None


def run(args: argparse.Namespace) -> int:
    from .. import kernelbench as kb
    from ..report.kernelbench_text import check_plot, kernelbench_blocks, plot_kernelbench
    from ..report.progress import Progress
    from ..report.text import print_blocks
    if bool(args.custom) != bool(args.against):
        raise UsageError("--custom MODEL and --against REF go together")
    if args.custom and (args.kernel or args.op or args.sizes):
        raise UsageError("--custom times one model against another: --kernel, --op and --sizes do not apply")
    if args.plot:
        check_plot(args.plot)
    settings = _settings(args)
    if args.custom:
        model, ref = _read(args.custom, "--custom"), _read(args.against, "--against")
        from ..io import read_model_bytes
        for data, flag, path in ((model, "--custom", args.custom), (ref, "--against", args.against)):
            try:
                read_model_bytes(data)
            except Exception as e:  # noqa: BLE001 - a file that is no model is the user's to fix
                why = str(e).splitlines()[0] if str(e) else type(e).__name__
                raise UsageError(f"{flag} {path}: not a readable .tflite model ({why})") from None
        with Progress(None, f"timing {args.custom} against {args.against}", enabled=not args.json):
            row = kb.bench_models(model, ref, settings, name=args.custom)
        result = {"machine": kb.machine(), "settings": dataclasses.asdict(settings), "cases": [row],
                  "custom": args.custom, "against": args.against}
    else:
        n = kb.count_cases(args.sizes or (), args.op, args.kernel)
        with Progress(n + 1, "benchmarking kernels", enabled=not args.json) as bar:
            result = kb.run(args.sizes or (), args.op, args.kernel, settings, progress=lambda msg: bar.step(msg))
    if args.plot:
        plot_kernelbench(result, args.plot)
        print(f"plot: {args.plot}", file=sys.stderr)
    if args.json:
        print_json(result)
    else:
        print_blocks(kernelbench_blocks(result))
    bad = [r for r in result["cases"] if r.get("exact") is False]
    return 1 if bad else 0
