"""tflc optimize: run a pipeline of passes and write a checked model."""
from __future__ import annotations

import argparse
import sys

from ..optimize import DEFAULT_TOLERANCE, optimize_file
from ..passmanager import LEVELS
from ..summary import human_bytes
from .common import (add_json_flag, tolerance, add_run_args, check_report_path, print_json, run_options, shapes,
                     write_report)


DEFAULT_LEVEL = "O2"


def _levels_epilog() -> str:
    """The levels as LEVELS defines them (one place decides what a level runs)."""
    lines = ["levels:"]
    for lvl in LEVELS.values():
        words, cur = lvl.help.split(), ""
        first = True
        for w in words + ([] if lvl.name != DEFAULT_LEVEL else ["(default)"]):
            if len(cur) + len(w) + 1 > 84:
                lines.append(f"  {'-' + lvl.name if first else '':<4} {cur}")
                cur, first = w, False
            else:
                cur = f"{cur} {w}".strip()
        lines.append(f"  {'-' + lvl.name if first else '':<4} {cur}")
    lines.append("'tflc passes' lists the passes of each level and their options.")
    return "\n".join(lines)


def add_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "optimize", help="optimize a model (-O0/-O1/-O2 or --passes) and write a checked copy",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Read IN, run a pipeline of passes, write OUT.\n\n"
        "OUT is written only after LiteRT has run it next to IN on the same inputs: bit-identical\n"
        "outputs for lossless pipelines (-O0 also checks the structure), else within the tolerance\n"
        f"(default {DEFAULT_TOLERANCE:g} relative for float passes). IN is never overwritten, and OUT\n"
        "is replaced atomically: on any failure nothing is written.",
        epilog=_levels_epilog())
    p.add_argument("input", metavar="IN", help="the .tflite model to optimize (never modified)")
    p.add_argument("-o", "--output", metavar="OUT", required=True, help="where to write the optimized model")
    lv = p.add_mutually_exclusive_group()
    for lvl in LEVELS.values():
        lv.add_argument(f"-{lvl.name}", dest="level", action="store_const", const=lvl.name,
                        help=lvl.help.split(" (")[0] + (" (default)" if lvl.name == DEFAULT_LEVEL else ""))
    lv.add_argument("--passes", metavar="LIST",
                    help="explicit pipeline instead of a level: 'a,b{opt=val,...},c' (see 'tflc passes')")
    p.add_argument("--tolerance", type=tolerance, metavar="REL",
                   help="largest relative output error accepted (default: 0 for lossless pipelines, "
                        f"else {DEFAULT_TOLERANCE:g} or what the passes declare); at -O1/-O2 the passes that "
                        "may change outputs by more are skipped: --tolerance 0 keeps only bit-identical rewrites")
    p.add_argument("--verify-each", action="store_true",
                   help="after every pass, also run the model in LiteRT against IN and name the first pass that breaks it")
    guard = p.add_mutually_exclusive_group()
    guard.add_argument("--latency-guard", dest="latency_guard", action="store_true", default=None,
                   help="keep the result only where LiteRT does not run it slower (default at -O2): slower "
                        "means the 95%% interval of the paired-round latency ratio lies above 1.02; then the "
                        "passes are replayed one by one and those that slow the model down are dropped")
    guard.add_argument("--no-latency-guard", dest="latency_guard", action="store_false",
                   help="skip the latency measurement at -O2")
    p.add_argument("--report", metavar="FILE.json", help="write the full report (passes, timings, sizes, check) as JSON")
    add_run_args(p)
    add_json_flag(p)
    p.set_defaults(level=DEFAULT_LEVEL)
    return p


def _print_text(res) -> None:
    if res.skipped:
        print(f"skipped {', '.join(res.skipped)}: they may change outputs by more than the --tolerance asked for")
    if res.passes:
        w = max(len(r.name) for r in res.passes)
        checked = any(r.max_rel_error is not None for r in res.passes)       # --verify-each
        print(f"  {'pass':<{w}}  {'changed':>7}  {'ms':>8}  {'ops':>11}  {'tensors':>11}  {'constant bytes':>21}"
              + ("  max rel err (vs the model before it)" if checked else ""))
        for r in res.passes:
            b, a = r.before, r.after
            err = ("  " + ("identical" if r.max_rel_error == 0 else f"{r.max_rel_error:.3g}")
                   if r.max_rel_error is not None else "")
            print(f"  {r.name:<{w}}  {'yes' if r.changed else '-':>7}  {r.seconds * 1e3:8.1f}  "
                  f"{b['ops']:>5}→{a['ops']:<5}  {b['tensors']:>5}→{a['tensors']:<5}  "
                  f"{human_bytes(b['constant_bytes']):>10}→{human_bytes(a['constant_bytes']):<10}{err}")
            for n in r.notes:
                print(f"  {'':<{w}}    note: {n}")
    if res.latency and "skipped" in res.latency:
        print(f"latency guard: skipped ({res.latency['skipped']})")
    elif res.latency:
        lat = res.latency
        print(f"latency in LiteRT: ratio {lat['ratio']:.3f} (median over paired rounds, 95% interval "
              f"{lat['ci'][0]:.3f}-{lat['ci'][1]:.3f}; p50 ≈ {lat['input_us']:.0f} → {lat['output_us']:.0f} µs)"
              + (f"; dropped {', '.join(d['pass'] for d in lat['dropped'])} (slower)" if lat["dropped"] else ""))
    b, a, c = res.before, res.after, res.check
    verdict = ("bit-identical" if c["identical"] else
               f"max relative error {max((d['max_rel'] or 0) for d in c['outputs']):.3g} (tolerance {c['tolerance']:g})")
    print(f"wrote {res.output}: {b['ops']} → {a['ops']} ops, {human_bytes(res.size_before)} → "
          f"{human_bytes(res.size_after)}; outputs {verdict} over {c['steps']} step(s) in LiteRT")


def run(args: argparse.Namespace) -> int:
    level = None if args.passes is not None else args.level
    if args.report:
        check_report_path(args.report, not_same_as=[args.input, args.output])
    res = optimize_file(args.input, args.output, level=level, passes=args.passes, run_options=run_options(args),
                        input_source=args.inputs, steps=args.steps, shapes=shapes(args),
                        tolerance=args.tolerance, verify_each=args.verify_each,
                        latency_guard=args.latency_guard)
    data = res.to_json()
    if args.report:
        write_report(args.report, data)
    if args.json:
        print_json(data)
    else:
        _print_text(res)
    sys.stdout.flush()
    return 0
