"""The ``tflc`` command: argument parsing, dispatch, and error handling.

Exit codes: 0 success, 1 verification or accuracy failure, 2 bad usage or bad input. Errors are
one line on stderr (``TFLC_DEBUG=1`` adds the traceback of an internal error).
"""
from __future__ import annotations

import argparse
import importlib
import os
import sys
from typing import Sequence

from .. import __version__
from ..errors import TflcError

#: subcommand modules in tflc/cli/, each with ``add_parser(subparsers)`` and ``run(args) -> int``
COMMANDS = ["optimize", "inspect", "passes", "compare", "profile", "bench", "bench_kernels", "partition", "qat"]

EPILOG = """\
examples:
  tflc inspect model.tflite                      what is in a model
  tflc optimize model.tflite -o out.tflite       optimize at -O2 (the default), checked in LiteRT
  tflc optimize model.tflite -o out.tflite -O0   a lossless rewrite (bit-identical outputs)
  tflc optimize m.tflite -o o.tflite --passes 'remove-dead-code,fold-constants{max-bytes=65536}'
  tflc compare model.tflite out.tflite           outputs of two models on the same inputs
  tflc partition model.tflite --target xnnpack   which ops XNNPACK takes, and why not the rest
  tflc passes                                    the passes and what -O1/-O2 run

exit codes: 0 success, 1 verification/accuracy failure, 2 bad usage or bad input
"""


class _Parser(argparse.ArgumentParser):
    """argparse, but errors are one line that points to --help."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="tflc", description="tflc: a compiler-style, profiling-guided optimizer for "
                     "TensorFlow Lite / LiteRT models.", epilog=EPILOG,
                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"tflc {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name in COMMANDS:
        try:
            mod = importlib.import_module(f"{__package__}.cmd_{name}")
        except ModuleNotFoundError as e:
            if e.name == f"{__package__}.cmd_{name}":
                continue  # command not built yet
            raise
        p = mod.add_parser(sub)
        p.set_defaults(_run=mod.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    for stream in (sys.stdout, sys.stderr):  # names from a file may hold undecodable bytes
        try:
            stream.reconfigure(errors="backslashreplace")  # type: ignore[union-attr]
        except (AttributeError, ValueError):
            pass
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if not getattr(args, "_run", None):
        parser.print_help()
        return 2
    if extra:  # blame the subcommand, not the top level
        _subparser(parser, args.command).error(f"unrecognized arguments: {' '.join(extra)}")
    try:
        return int(args._run(args) or 0)
    except TflcError as e:
        return _fail(args, str(e), e.exit_code, getattr(e, "report", None))
    except BrokenPipeError:  # `tflc ... | head`: stop quietly
        try:
            sys.stdout = open(os.devnull, "w")
        except OSError:
            pass
        return 0
    except OSError as e:  # a file we could not read or write: the user's to fix, not a bug
        where = f"{e.filename}: " if getattr(e, "filename", None) else ""
        return _fail(args, f"{where}{e.strerror or e}", 2)
    except KeyboardInterrupt:
        print("tflc: interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # a bug in tflc: still one line, unless asked for more
        if os.environ.get("TFLC_DEBUG"):
            raise
        print(f"tflc {args.command}: internal error: {type(e).__name__}: {e} "
              "(please report it; TFLC_DEBUG=1 shows the traceback)", file=sys.stderr)
        return 70


def _subparser(parser: argparse.ArgumentParser, name: str) -> argparse.ArgumentParser:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action.choices[name]
    return parser


def _fail(args: argparse.Namespace, message: str, code: int, report: dict | None = None) -> int:
    print(f"tflc {args.command}: error: {message}", file=sys.stderr)
    if getattr(args, "json", False):  # machines get an answer on stdout too (and what was measured)
        from .common import print_json
        print_json({"error": message, "exit_code": code, **(report or {})})   # as --report writes it
    return code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
