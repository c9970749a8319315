#!/usr/bin/env python
"""Build the test/benchmark model zoo (``tflc.testing.zoo``).

Usage::

    python benchmarks/build_models.py                      # all models, into the cache
    python benchmarks/build_models.py mobilenet_tiny --out examples/
    python benchmarks/build_models.py --list

Without ``--out`` models go to the zoo cache (``$TFLC_MODEL_CACHE`` or
``~/.cache/tflc/models``); with ``--out DIR`` each is written as ``DIR/<name>.tflite``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

try:
    from tflc.testing import zoo
except ImportError:  # running from a source checkout without installing
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from tflc.testing import zoo


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Build tflc's test/benchmark TFLite models.")
    parser.add_argument("names", nargs="*", help="models to build (default: all); see --list")
    parser.add_argument("--out", type=Path, help="write DIR/<name>.tflite instead of using the cache")
    parser.add_argument("--list", action="store_true", help="list the model names and exit")
    args = parser.parse_args(argv)

    if args.list:
        print("\n".join(zoo.BUILDERS))
        return 0
    names = args.names or list(zoo.BUILDERS)
    unknown = [n for n in names if n not in zoo.BUILDERS]
    if unknown:
        parser.error(f"unknown model(s): {', '.join(unknown)}; known: {', '.join(zoo.BUILDERS)}")

    for name in names:
        start = time.perf_counter()
        if args.out is not None:
            path = args.out / f"{name}.tflite"
            zoo._write_atomic(path, zoo.BUILDERS[name]())
        else:
            path = zoo.build(name)
        seconds = time.perf_counter() - start
        print(f"{name:32s} {path.stat().st_size / 1024:8.1f} KiB  {seconds:6.2f}s  {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
