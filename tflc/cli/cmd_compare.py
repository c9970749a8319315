"""tflc compare: two models on the same inputs, output by output."""
from __future__ import annotations

import argparse

from ..optimize import load
from ..runtime import compare_models
from ..runtime.inputs import check_shape_overrides
from .common import add_json_flag, add_run_args, input_source, print_json, run_options, shapes, tolerance


def add_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser("compare", help="run two models on the same inputs and compare their outputs",
                       description="Run model A (the reference) and model B on the same inputs in LiteRT and "
                       "report, per output, max and mean absolute error, max relative error (to A's peak), "
                       "cosine similarity and SQNR in dB. Quantized outputs are dequantized first. For "
                       "stateful models each step runs on the same interpreter and the worst step counts.")
    p.add_argument("a", metavar="A", help="the reference model")
    p.add_argument("b", metavar="B", help="the model to compare with A")
    p.add_argument("--tolerance", type=tolerance, metavar="REL",
                   help="exit 1 if any output's max relative error exceeds REL")
    add_run_args(p)
    add_json_flag(p)
    return p


def _fmt(v: float) -> str:
    return "inf" if v == float("inf") else ("nan" if v != v else f"{v:.3g}")


def run(args: argparse.Namespace) -> int:
    a = load(args.a)
    load(args.b)  # clear errors for unreadable files before running anything
    if args.input_shape:
        check_shape_overrides(shapes(args), a.main.inputs)
    cmp, _ = compare_models(args.a, args.b, options=run_options(args), source=input_source(args), steps=args.steps,
                            shapes=shapes(args))
    failed = args.tolerance is not None and cmp.worst_rel() > args.tolerance
    if args.json:
        data = cmp.to_json()
        data.update(a=args.a, b=args.b, tolerance=args.tolerance, passed=not failed)
        print_json(data)
    else:
        print(f"{args.a}  vs  {args.b}  ({cmp.steps} step(s))")
        w = max(len(d.name) for d in cmp.diffs) if cmp.diffs else 6
        many = cmp.steps > 1 and len(cmp.pooled) == len(cmp.diffs) == len(cmp.worst_sqnr_db)
        extra = f"  {'SQNR all':>8}  {'SQNR min':>8}" if many else ""
        print(f"  {'output':<{w}}  {'max abs':>9}  {'mean abs':>9}  {'max rel':>9}  {'cosine':>9}  {'SQNR dB':>8}"
              + extra)
        for i, d in enumerate(cmp.diffs):
            tag = "  identical" if d.identical else ""
            cols = f"  {_fmt(cmp.pooled[i].sqnr_db):>8}  {_fmt(cmp.worst_sqnr_db[i]):>8}" if many else ""
            print(f"  {d.name:<{w}}  {_fmt(d.max_abs):>9}  {_fmt(d.mean_abs):>9}  {_fmt(d.max_rel):>9}  "
                  f"{_fmt(d.cosine):>9}  {_fmt(d.sqnr_db):>8}{cols}{tag}")
        if many:
            print("  (per output, the step with the largest absolute error; SQNR all: pooled over every step, "
                  "SQNR min: the lowest of any one step)")
        for n in cmp.notes:
            print(f"  note: {n}")
        if failed:
            print(f"FAILED: max relative error {cmp.worst_rel():.3g} > tolerance {args.tolerance:g}")
    return 1 if failed else 0
