"""tflc optimize: run a pipeline of passes and write a checked model."""
from __future__ import annotations

import argparse
import dataclasses
import os
import sys

from ..optimize import DEFAULT_TOLERANCE, optimize_file
from ..passmanager import LEVELS
from .common import (add_json_flag, tolerance, add_run_args, check_data_path, check_report_path, input_range,
                     input_source, print_json, run_options, shapes, write_report)


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


class _QuantizeMode(argparse.Action):
    """--quantize [MODE]: given once; a MODE that names a file is IN swallowed by the optional MODE."""

    def __call__(self, parser, namespace, value, option_string=None):
        if getattr(namespace, self.dest, None) is not None:
            parser.error("--quantize given twice (one mode per run; --quantize auto tries every mode)")
        if value != self.const and (value.endswith(".tflite") or os.path.isfile(value)):
            parser.error(f"--quantize takes an optional MODE (auto, int8, int16x8, dynamic, fp16), and {value!r} "
                         f"is a file: put IN before --quantize, or write the mode (--quantize auto)")
        setattr(namespace, self.dest, value)


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
    p.add_argument("--target", metavar="NAME",
                   help="the delegate the model is for (xnnpack, gpu, nnapi, ethos-u, or tflc: XNNPACK with tflc's kernels, which implies --kernels; see 'tflc partition'); at a "
                        "level, adds the rewrites that raise its coverage (see 'tflc passes'): exact-islands and "
                        "split-requantize where LiteRT proves them bit-identical, then float-islands: the int8 ops "
                        "it leaves on the CPU run in float inside its partition (one quantization step per op, "
                        "8 at most at the outputs)")
    p.add_argument("--kernels", action="store_true",
                   help="also run the ops the target leaves on LiteRT's builtin kernels as tflc kernels "
                        "(use-kernels: bit-identical table and integer kernels, kept only where the whole model "
                        "gets faster, measured against the builtin op and, with --target, against a float island); the output "
                        "then holds TFLC_* custom ops and runs only in tflc.runtime (tflc.runtime.Interpreter, "
                        "or any tflc command)")
    p.add_argument("--quantize", metavar="MODE", nargs="?", const="auto", action=_QuantizeMode,
                   help="post-training quantization from the .tflite: 'auto' (the default when MODE is left out: "
                        "int8, dynamic and fp16 are each tried and measured in LiteRT against IN; of those whose "
                        "every output keeps the target SQNR (25 dB unless --min-sqnr says), the fastest of the "
                        "measurably faster is written, else the most accurate of those not slower, else (all "
                        "slower) IN without quantization; when none reaches the target, the most accurate; int8 "
                        "keeps the ops float whose int8 costs the most; int16x8 is never tried: XNNPACK takes "
                        "none of it), "
                        "'int8' (full integer, float inputs and outputs unless --io; quantize-int8 and "
                        "float-islands, e.g. 'int8{percentile=99.99}'), "
                        "'int16x8' (quantize-int16x8: int16 activations, int8 weights, int64 biases; more accurate, "
                        "but XNNPACK takes none of it: the builtin kernels run it, with a warning), "
                        "'dynamic' (quantize-dynamic: int8 per-channel weights, float activations, where XNNPACK "
                        "takes the op so; depthwise convs stay float) or 'fp16' (quantize-fp16: float16 "
                        "weights); added before the clean-up; the result must keep each output's SQNR against IN "
                        "at the mode's floor (int8 10 dB, dynamic 20, fp16 40; min-sqnr-db=...; where int8 with "
                        "every op int8 is under it on the calibration samples, its most sensitive ops stay float "
                        "until it holds, with a warning: int8{fallback=false} refuses instead), pooled over the "
                        "samples (all of their noise over all of their signal; the worst sample's SQNR is "
                        "reported too), per output; checked on --inputs, else on the calibration samples. "
                        "An explicit MODE is kept at -O2 even where it is slower (with a warning)")
    p.add_argument("--min-sqnr", type=float, metavar="DB",
                   help="the target of --quantize auto (judged on --inputs, else the calibration samples), and mixed "
                        "precision for --quantize int8 or int16x8 (sets its min-sqnr=DB): a target SQNR (dB) per "
                        "output against IN, measured on the calibration samples; the ops whose int8 costs the most (a "
                        "per-op sensitivity table, measured in LiteRT) stay float until every output reaches it; "
                        "the notes and --json ('quantization') say which and why. A target: the floor that fails "
                        "the result is still the mode's (min-sqnr-db)")
    p.add_argument("--io", choices=("float", "int8", "uint8"),
                   help="the interface of an int8 (or int16x8) model: float (the default: QUANTIZE and DEQUANTIZE "
                        "at the edges), int8 (the inputs and outputs are int8; int16 for int16x8), uint8 (int8 only: "
                        "uint8 inputs and outputs, zero point + 128, converted exactly to int8 inside); sets the "
                        "quantizer's io option. An input or output a float op reads or writes stays float (noted)")
    p.add_argument("--max-error", type=float, metavar="E",
                   help="mixed precision for --quantize int8 or int16x8 (sets its max-error=E), with --min-sqnr "
                        "or alone: the largest absolute error each output may have against IN (in the output's "
                        "units), measured on the calibration samples; the most sensitive ops stay float until it "
                        "holds")
    p.add_argument("--sensitivity", type=int, metavar="N",
                   help="with --quantize int8 or int16x8: measure the per-op sensitivity table in LiteRT (the "
                        "model's SQNR per output with only that op int8, every op one trial) and note the N most "
                        "sensitive; --json / --report carry every row (quantization.sensitivity). --min-sqnr and "
                        "--max-error measure it anyway")
    p.add_argument("--calibration", metavar="DATA.npz|DIR",
                   help="calibration samples for --quantize: an .npz of arrays keyed by input name (as LiteRT "
                        "reports it) or arr_0.. in input order, first axis = sample; or a folder of images (PNG, "
                        "JPEG, ...; sorted by name) for a model with one NHWC image input: each resized (bilinear) "
                        "to its H x W, RGB or grayscale, scaled into --input-range (default: --inputs, else "
                        "generated data, with a warning)")
    p.add_argument("--calibration-samples", type=int, metavar="N",
                   help="calibrate on the first N samples of --calibration (images in name order) only")
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
    p.add_argument("-v", "--verbose", action="store_true",
                   help="list the ops behind each note (notes are grouped by pass and reason; --json keeps every "
                        "note as written)")
    add_run_args(p)
    add_json_flag(p)
    p.set_defaults(level=DEFAULT_LEVEL)
    return p


def _print_text(data: dict, verbose: bool = False) -> None:
    from ..report.optimize_text import optimize_lines
    for line in optimize_lines(data, verbose=verbose):
        print(line)


def _sources(args: argparse.Namespace) -> tuple:
    """--calibration and --inputs with --input-range and --calibration-samples attached (InputSource)."""
    from ..errors import UsageError
    from ..runtime.inputs import InputSource
    n = args.calibration_samples
    if n is not None and (n < 1 or args.calibration is None):
        raise UsageError("--calibration-samples N needs N >= 1 and --calibration")
    check_data_path("--calibration", args.calibration)
    inputs = input_source(args, args.calibration)
    cal = None if args.calibration is None else InputSource(
        args.calibration, input_range(args) if os.path.isdir(args.calibration) else None, n)
    return cal, inputs


#: flags that set an option of the quantizer: flag -> (option, what the mode must be, for the error)
_MODE_FLAGS = {
    "--min-sqnr": ("min-sqnr", "--quantize int8 or int16x8 (mixed precision keeps their most sensitive ops float) "
                               "or auto (its target)"),
    "--max-error": ("max-error", "--quantize int8 or int16x8 (mixed precision keeps their most sensitive ops "
                                 "float)"),
    "--io": ("io", "--quantize int8 or int16x8 (the interface of a fully quantized model)"),
    "--sensitivity": ("sensitivity", "--quantize int8 or int16x8 (the table ranks their ops)"),
}


def _with_flag(quantize: str | None, flag: str, value) -> str | None:
    """A flag as the quantizer's option: --min-sqnr 20 with 'int8' -> 'int8{min-sqnr=20}' (its other
    options kept); --min-sqnr and --max-error are also auto's target."""
    if value is None or (flag == "--io" and value == "float"):     # float: every mode's interface anyway
        return quantize
    from ..errors import UsageError
    from ..passes_api import get_pass
    from ..passmanager import QUANTIZE_PASSES
    option, needs = _MODE_FLAGS[flag]
    field = option.replace("-", "_")
    kind, _, rest = (quantize or "").partition("{")
    passes = QUANTIZE_PASSES.get(kind)
    fields = ({"min_sqnr"} if kind == "auto" else         # auto's one option: its target
              {f.name for f in dataclasses.fields(get_pass(passes[0]).Options)} if passes else set())
    if field not in fields:
        raise UsageError(f"{flag} needs {needs}")
    opts = rest.strip().removesuffix("}").strip()
    if any(o.split("=")[0].strip() == option for o in opts.split(",")):
        raise UsageError(f"{flag} given twice (also as the --quantize option {option})")
    shown = repr(value) if isinstance(value, float) else str(value)
    return f"{kind}{{{opts + ',' if opts else ''}{option}={shown}}}"


def _quantize_mode(args: argparse.Namespace) -> str | None:
    mode = args.quantize
    for flag in _MODE_FLAGS:
        mode = _with_flag(mode, flag, getattr(args, flag[2:].replace("-", "_")))
    return mode


def run(args: argparse.Namespace) -> int:
    from ..errors import TflcError, UsageError
    level = None if args.passes is not None else args.level
    if args.calibration is not None and args.quantize is None and "quantize" not in (args.passes or ""):
        raise UsageError("--calibration is read by quantization: add --quantize MODE (or a quantize-* pass to "
                         "--passes); the outputs are checked on --inputs")
    args.calibration, args.inputs = _sources(args)
    if args.report:
        check_report_path(args.report, not_same_as=[args.input, args.output])
    from ..report.progress import Progress
    done: list[str] = []
    name = os.path.basename(args.input)
    with Progress(None, f"optimizing {name}: reading, then the passes", enabled=not args.json) as bar:
        def on_pass(rec) -> None:        # the latency guard and the check in LiteRT follow the last pass
            done.append(rec.name)
            bar.stage(f"optimizing {name}: {len(done)} pass(es) done (last {rec.name}); then the guard and the check")
        try:
            res = optimize_file(args.input, args.output, level=level, passes=args.passes,
                                run_options=run_options(args), input_source=args.inputs, steps=args.steps,
                                shapes=shapes(args), tolerance=args.tolerance, verify_each=args.verify_each,
                                latency_guard=args.latency_guard, target=args.target, on_pass=on_pass,
                                quantize=_quantize_mode(args), calibration=args.calibration,
                                kernels=args.kernels)
        except TflcError as e:             # a refused result: its measurements are still the user's
            if args.report and getattr(e, "report", None):
                write_report(args.report, {"error": str(e), **e.report})
            raise
    data = res.to_json()
    if args.report:
        write_report(args.report, data)
    if args.json:
        print_json(data)
    else:
        _print_text(data, verbose=args.verbose)
        for n in data["notes"]:          # --quantize: each output's SQNR against IN (the check that decided)
            if n.startswith(("quantized output ", "--quantize auto", "warning: ")):
                print(n)
    sys.stdout.flush()
    return 0
