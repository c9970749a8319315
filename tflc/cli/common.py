"""Arguments and output helpers shared by the subcommands."""
from __future__ import annotations

import argparse
import json
import math
import re
import sys

from ..runtime import RunOptions, parse_shape_overrides


def add_json_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print machine-readable JSON instead of text")


def _number(convert, ok, not_a_number: str, out_of_range: str):
    """An argparse type: ``convert`` the text, then require ``ok(value)``; one-line messages."""
    def parse(text: str):
        try:
            v = convert(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {not_a_number}, got {text!r}") from None
        if not ok(v):
            raise argparse.ArgumentTypeError(f"expected {out_of_range}, got {text!r}")
        return v
    return parse


positive_int = _number(int, lambda v: v >= 1, "a positive integer", "a positive integer")
non_negative_int = _number(int, lambda v: v >= 0, "an integer", "0 or more")
tolerance = _number(float, lambda v: math.isfinite(v) and v >= 0, "a number", "a finite number >= 0")
positive_seconds = _number(float, lambda v: math.isfinite(v) and v > 0, "seconds", "a positive number of seconds")


def add_input_args(g, parser: argparse.ArgumentParser | None = None) -> None:
    """--inputs, --input-shape and --input-range, shared by every command that runs a model (``g``:
    the parser or a group of ``parser``)."""
    g.add_argument("--inputs", metavar="DATA", help="inputs: an .npz (arrays named like the model's inputs, "
                   "or arr_0..; an extra leading axis = steps; real values for quantized inputs are quantized) "
                   "or a folder of images (one step each, resized to the input, scaled to [0,1] for float "
                   "inputs, quantized for integer ones); default: generated")
    g.add_argument("--input-shape", action="append", default=[], metavar="NAME:DxD",
                   help="fix a dynamic input's shape, e.g. 'serving_default_x:0:1x128' (repeatable)")
    g.add_argument("--input-range", metavar="LO,HI",
                   help="the values image pixels 0..255 map to, for a folder of images given to --inputs (or "
                        "--calibration) (default 0,1; e.g. -1,1 for MobileNet-style models)")
    # '--input-range -1,1': argparse reads a word starting with '-' as an option unless it looks like a
    # negative number; let 'LO,HI' with a negative LO pass as one too (the matcher is the parser's)
    (parser or g)._negative_number_matcher = re.compile(r"^-\d+$|^-\d*\.\d+$|^-[\d.eE+-]*,[-\d.eE+]*$")


def input_range(args: argparse.Namespace) -> tuple[float, float] | None:
    """--input-range, parsed (None when not given)."""
    from ..runtime.inputs import parse_input_range
    return None if getattr(args, "input_range", None) is None else parse_input_range(args.input_range)


def check_data_path(flag: str, path: str | None) -> None:
    """A data flag (--inputs, --calibration) names an .npz or a folder: say which flag a file that is
    neither came from, before numpy reports it in its own words."""
    import os

    from ..errors import UsageError
    if path is not None and os.path.isfile(path) and not path.endswith(".npz"):
        raise UsageError(f"{flag} {path}: not an .npz file or a folder of images")


def input_source(args: argparse.Namespace, *folders_for_range: str | None):
    """--inputs as the commands take it: a folder of images carries --input-range (an InputSource);
    --input-range without any folder among --inputs and ``folders_for_range`` is an error."""
    import os

    from ..errors import UsageError
    from ..runtime.inputs import InputSource
    check_data_path("--inputs", args.inputs)
    rng = input_range(args)
    folders = [s for s in (args.inputs, *folders_for_range) if s is not None and os.path.isdir(s)]
    if rng is not None and not folders:
        raise UsageError("--input-range applies to a folder of images (--inputs DIR"
                         + (" or --calibration DIR)" if folders_for_range else ")"))
    if args.inputs is None or not os.path.isdir(args.inputs):
        return args.inputs
    return InputSource(args.inputs, rng)


def add_run_args(p: argparse.ArgumentParser, steps: int = 3) -> None:
    g = p.add_argument_group("running the model in LiteRT")
    add_input_args(g, p)
    g.add_argument("--steps", type=positive_int, default=steps, metavar="N",
                   help=f"invocations per check with generated inputs; stateful models keep state between "
                        f"them (default {steps}); with --inputs the data decides the steps")
    g.add_argument("--threads", type=positive_int, default=1, metavar="N", help="LiteRT threads (default 1)")
    g.add_argument("--no-xnnpack", action="store_true", help="builtin kernels only (no XNNPACK delegate)")


def run_options(args: argparse.Namespace) -> RunOptions:
    return RunOptions(threads=args.threads, xnnpack=not args.no_xnnpack)


def shapes(args: argparse.Namespace) -> dict:
    return parse_shape_overrides(args.input_shape)


def _clean(o):
    if isinstance(o, float) and not math.isfinite(o):
        return None if math.isnan(o) else str(o)
    if isinstance(o, dict):
        return {k: _clean(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_clean(v) for v in o]
    return o


def _default(o):
    import numpy as np
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    return str(o)


def dumps(data: object) -> str:
    return json.dumps(_clean(data), indent=2, default=_default)


def print_json(data: object) -> None:
    sys.stdout.write(dumps(data) + "\n")


def write_report(path: str, data: object) -> None:
    """Write a JSON report atomically (its path was checked with ``check_report_path``)."""
    from ..paths import atomic_writer
    with atomic_writer(path, "w") as f:
        f.write(dumps(data) + "\n")


def check_report_path(path: str, *, not_same_as=()) -> None:
    from ..paths import check_output_path
    check_output_path(path, flag="--report", not_same_as=not_same_as, suffix=".json")


def shape_failure(specs: list[str], message: str) -> str:
    """LiteRT (XNNPACK) refusing the shapes given, in tflc's words: what was asked, that the model
    cannot run so, what to do; LiteRT's own reason last, shortened."""
    reason = message.split(": ", 1)[-1] if message.startswith("LiteRT cannot prepare") else message
    if len(reason) > 160:
        reason = reason[:159] + "…"
    return (f"--input-shape {' '.join(specs)}: the model cannot run with this shape (LiteRT could not prepare it; "
            f"its dimensions do not fit the model's other fixed sizes); give the shape it was built for, or "
            f"none (LiteRT: {reason})")
