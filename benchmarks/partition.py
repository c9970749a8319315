"""Benchmark: XNNPACK partitioning, predicted and real, and what `tflc optimize --target xnnpack` gains.

Per model: does `tflc partition`'s prediction match the nodes LiteRT's XNNPACK delegate takes (and
its partitions); partitions and ops on the CPU before and after `optimize --target xnnpack`; the
latency of the result against the input, interleaved in one process (median per-round ratio with
its 95% interval and reading); and how far the outputs moved (bit-identical, or the largest
difference in quantization steps for integer outputs and the SQNR against the input).

    python benchmarks/partition.py                       # ../shared/models + the converter's int8 models
    python benchmarks/partition.py path/to/model.tflite --rounds 60
    python benchmarks/partition.py --predict-only        # only the prediction check (fast)
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "models"
ZOO = ["mobilenet_tiny_int8", "mobilenet_v3_small_int8", "transformer_encoder_3x192_int8",
       "mobilenet_tiny", "mobilenet_v3_small", "transformer_encoder_3x192"]


def _cpu() -> str:
    from tflc.runtime.machine import describe
    return describe()


def _models(args) -> list[tuple[str, Path]]:
    if args.models:
        return [(Path(p).stem, Path(p)) for p in args.models]
    from tflc.testing import zoo
    out = [(p.stem, p) for p in sorted(SHARED.glob("*.tflite"))] if SHARED.is_dir() else []
    return out + [(n, zoo.build(n)) for n in ZOO]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("models", nargs="*", help="models (default: ../shared/models and the converter's models)")
    ap.add_argument("--rounds", type=int, default=30, help="interleaved latency rounds per model (default 30)")
    ap.add_argument("--predict-only", action="store_true", help="only check the prediction against LiteRT")
    ap.add_argument("--json", metavar="FILE", help="also write the rows as JSON")
    args = ap.parse_args(argv)

    from tflc.errors import TflcError
    from tflc.io import read_model
    from tflc.optimize import optimize_file
    from tflc.profiler import compare_latency
    from tflc.runtime import compare_models
    from tflc.runtime.delegation import xnnpack_delegation
    from tflc.targets import get_target
    from tflc.targets.plan import make_plan

    xnn = get_target("xnnpack")
    rows = []
    print(f"CPU: {_cpu()}; 1 thread; LiteRT's default XNNPACK delegate")
    print(f"{'model':38s} {'predicted':>9s} {'partitions':>10s} {'CPU ops':>8s} {'latency ratio [95%]':>28s}  outputs")
    for name, path in _models(args):
        row: dict = {"model": name}
        try:
            plan = make_plan(read_model(path), xnn)
            real = xnnpack_delegation(path)
        except TflcError as e:
            print(f"{name:38s} skipped: {e}")
            continue
        pred_parts = sorted(sorted(s.ops) for si, s in plan.partitions if si == 0)
        row["prediction_matches"] = plan.delegated_indices(0) == real.taken and pred_parts == sorted(real.partitions)
        row["before"] = {"partitions": len(real.partitions), "cpu_ops": real.nodes - len(real.taken)}
        if args.predict_only:
            print(f"{name:38s} {'same' if row['prediction_matches'] else 'DIFFERS':>9s} "
                  f"{len(real.partitions):>10d} {real.nodes - len(real.taken):>8d}")
            rows.append(row)
            continue
        with tempfile.TemporaryDirectory() as d:
            out = Path(d) / "out.tflite"
            try:
                res = optimize_file(path, out, level="O2", target="xnnpack", latency_guard=False)
            except TflcError as e:
                print(f"{name:38s} optimize failed: {e}")
                continue
            after = xnnpack_delegation(out)
            row["after"] = {"partitions": len(after.partitions), "cpu_ops": after.nodes - len(after.taken)}
            cmp = compare_latency(str(path), str(out), rounds=args.rounds, max_seconds=30.0)
            row["latency"] = {"ratio": cmp.ratio, "ci": [cmp.ci_low, cmp.ci_high], "verdict": cmp.verdict,
                              "input_us": cmp.a.p50_us, "output_us": cmp.b.p50_us}
            acc, _ = compare_models(str(path), str(out), steps=3)
            steps = [d.max_steps for d in acc.diffs if d.max_steps is not None]
            row["outputs"] = {"identical": acc.identical, "max_steps": max(steps) if steps else None,
                              "sqnr_db": min(d.sqnr_db for d in acc.diffs), "passes": [r.name for r in res.passes
                                                                                         if r.changed]}
        o = row["outputs"]
        moved = "bit-identical" if o["identical"] else (
            (f"{o['max_steps']} step(s), " if o["max_steps"] is not None else "") + f"SQNR {o['sqnr_db']:.1f} dB")
        lat = row["latency"]
        print(f"{name:38s} {'same' if row['prediction_matches'] else 'DIFFERS':>9s} "
              f"{row['before']['partitions']:>4d} -> {row['after']['partitions']:<3d} "
              f"{row['before']['cpu_ops']:>3d} -> {row['after']['cpu_ops']:<3d} "
              f"{lat['ratio']:>7.3f} [{lat['ci'][0]:.3f}-{lat['ci'][1]:.3f}] {lat['verdict'][:12]:>12s}  {moved}")
        rows.append(row)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    return 0 if all(r["prediction_matches"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
