"""Benchmark: -O1 and -O2 over the real models and converter-built models.

Per model and level: ops before/after, file size before/after, LiteRT latency of the result
against the input as a ratio measured in the same run (interleaved A/B rounds, median ratio with
a 95% interval), and the worst relative error over every output.

    python benchmarks/optimize_models.py                 # ../shared/models + the zoo
    python benchmarks/optimize_models.py --threads 2 --json results.json
    python benchmarks/optimize_models.py --rounds 100 --max-seconds 60   # tighter intervals
    python benchmarks/optimize_models.py path/to/model.tflite --levels O2
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "models"
#: zoo models and the --input-shape each gets (dynamic-batch models are specialized to batch 1)
ZOO = {"mobilenet_tiny": None, "mobilenet_tiny_fp16": None, "transformer_encoder": "1x32",
       "transformer_encoder_fp16": "1x32", "transformer_encoder_tfkeras": "1x32"}


def _models(args) -> list[tuple[str, Path, dict]]:
    from tflc.runtime import Session
    from tflc.testing import zoo
    out = []
    if args.models:
        return [(Path(p).stem, Path(p), {}) for p in args.models]
    for p in sorted(SHARED.glob("*.tflite")) if SHARED.is_dir() else []:
        out.append((p.stem, p, {}))
    for name, shape in ZOO.items():
        if name not in zoo.BUILDERS:
            continue
        path = zoo.build(name)
        shapes = {}
        if shape:
            shapes = {Session(str(path)).input_names[0]: tuple(int(d) for d in shape.split("x"))}
        out.append((name, path, shapes))
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("models", nargs="*", help="models (default: ../shared/models and the zoo)")
    ap.add_argument("--levels", default="O1,O2")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=30, help="interleaved A/B latency rounds per model (default 30)")
    ap.add_argument("--max-seconds", type=float, default=20.0, help="time budget per latency comparison (default 20)")
    ap.add_argument("--json", metavar="FILE", help="also write the rows as JSON")
    args = ap.parse_args(argv)

    from tflc.optimize import optimize_file
    from tflc.profiler import compare_latency
    from tflc.runtime import RunOptions

    rows = []
    hdr = (f"{'model':<28} {'lvl':<3} {'ops':>11} {'size KB':>15} {'latency ratio':>22} {'max rel err':>11}")
    print(hdr)
    print("-" * len(hdr))
    with tempfile.TemporaryDirectory() as d:
        for name, path, shapes in _models(args):
            for level in args.levels.split(","):
                out = Path(d) / f"{name}.{level}.tflite"
                res = optimize_file(path, out, level=level, shapes=shapes, latency_guard=(level == "O2"),
                                    run_options=RunOptions(threads=args.threads))
                lat = compare_latency(str(path), str(out), threads=args.threads, shapes=shapes or None,
                                      rounds=args.rounds, max_seconds=args.max_seconds)
                worst = max((o["max_rel"] or 0.0) for o in res.check["outputs"])
                row = {"model": name, "level": level, "ops_before": res.before["ops"], "ops_after": res.after["ops"],
                       "size_before": res.size_before, "size_after": res.size_after, "latency_ratio": lat.ratio,
                       "latency_ci": [lat.ci_low, lat.ci_high], "input_us": lat.a.p50_us, "output_us": lat.b.p50_us,
                       "max_rel_error": worst, "identical": res.check["identical"],
                       "dropped": (res.latency or {}).get("dropped", [])}
                rows.append(row)
                print(f"{name:<28} {level:<3} {row['ops_before']:>5}→{row['ops_after']:<5} "
                      f"{res.size_before / 1024:>7.1f}→{res.size_after / 1024:<7.1f} "
                      f"{lat.ratio:>6.3f} [{lat.ci_low:.3f},{lat.ci_high:.3f}] "
                      f"{'identical' if row['identical'] else f'{worst:.2e}':>11}", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
