"""tflc inspect: a readable summary of a model."""
from __future__ import annotations

import argparse
import os

from ..optimize import load
from ..summary import op_rows, render_ops, render_text, summarize
from .common import add_json_flag, print_json


def add_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser("inspect", help="summarize a model: subgraphs, ops by type, tensors, sizes, signatures",
                       description="Summarize a .tflite model: subgraphs, operators by type, inputs and outputs "
                       "(with dynamic dimensions and quantization), constant bytes by type, custom ops, "
                       "signatures and metadata. The model is read and verified; nothing is run.")
    p.add_argument("model", metavar="IN", help="a .tflite file")
    p.add_argument("--ops", action="store_true",
                   help="also list every operator: type, input and output types/shapes (c = constant), name")
    add_json_flag(p)
    return p


def run(args: argparse.Namespace) -> int:
    model = load(args.model)
    s = summarize(model, args.model, os.path.getsize(args.model))
    if args.ops:
        s["ops"] = op_rows(model)
    if args.json:
        print_json(s)
    else:
        print(render_text(s))
        if args.ops:
            print("\noperators (subgraph:index type  inputs -> outputs  output name):")
            print(render_ops(s["ops"]))
    return 0
