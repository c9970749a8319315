"""Benchmark: what tflc's kernels (`tflc optimize --kernels`) gain on each model, measured side by side.

Per model, four optimized variants, each compared with its partner in one process, interleaved in
rounds (median per-round ratio with its 95% interval and reading, ±2% counts as noise):

* `-O2` against `-O2 --kernels`: the issue's "never slower" check;
* lossless: `-O2 --target xnnpack --tolerance 0` against `-O2 --target tflc --tolerance 0`
  (exact islands, then exact kernels: outputs bit-identical to the input model's), and the latter
  against the input model itself;

and every decision use-kernels made (pattern, ops, the op alone on the builtin kernel and on the
tflc kernel, the whole model with the kernel and with a float island, the choice).

    python benchmarks/kernels.py                         # ../shared/models + the converter's models
    python benchmarks/kernels.py model.tflite --json out.json
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "models"
ZOO = ["transformer_encoder_3x192_int8", "mobilenet_v3_small_int8", "mobilenet_tiny_int8",
       "transformer_encoder_3x192", "mobilenet_v3_small", "transformer_encoder_3x192_dynamic_int8"]


def _cpu() -> str:
    from tflc.runtime.machine import describe
    return describe()


def _models(args) -> list[tuple[str, Path]]:
    if args.models:
        return [(Path(p).stem, Path(p)) for p in args.models]
    from tflc.testing import zoo
    out = [(p.stem, p) for p in sorted(SHARED.glob("*.tflite"))] if SHARED.is_dir() else []
    return out + [(n, zoo.build(n)) for n in ZOO]


def _cmp(a: Path, b: Path, rounds: int) -> dict:
    """B's latency against A's; two byte-identical files are not timed (two copies of one model
    read up to ±4% apart on a busy machine, which says nothing about the models)."""
    from tflc.profiler import compare_latency
    if Path(a).read_bytes() == Path(b).read_bytes():
        return {"ratio": 1.0, "ci": [1.0, 1.0], "verdict": "the same file (nothing changed)", "p50_us": None}
    c = compare_latency(str(a), str(b), rounds=rounds, max_seconds=20.0)
    return {"ratio": round(c.ratio, 4), "ci": [round(c.ci_low, 4), round(c.ci_high, 4)], "verdict": c.verdict,
            "p50_us": [round(c.a.p50_us, 1), round(c.b.p50_us, 1)]}


def _txt(c: dict | None) -> str:
    if not c:
        return "-"
    return f"{c['ratio']:.3f}x [{c['ci'][0]:.3f}-{c['ci'][1]:.3f}] {c['verdict']}"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("models", nargs="*", help="models (default: ../shared/models and the converter's models)")
    ap.add_argument("--rounds", type=int, default=30, help="interleaved latency rounds per comparison (default 30)")
    ap.add_argument("--json", metavar="FILE", help="also write the rows as JSON")
    args = ap.parse_args(argv)

    from tflc.errors import TflcError
    from tflc.optimize import optimize_file
    from tflc.runtime import compare_models

    print(f"CPU: {_cpu()}; LiteRT ai-edge-litert 2.3.0, XNNPACK, 1 thread", flush=True)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, path in _models(args):
            row: dict = {"model": name}
            out = {k: Path(tmp) / f"{name}.{k}.tflite" for k in ("o2", "o2k", "exact", "exactk")}
            try:
                optimize_file(path, out["o2"], level="O2")
                rk = optimize_file(path, out["o2k"], level="O2", kernels=True)
                row["o2_vs_o2_kernels"] = _cmp(out["o2"], out["o2k"], args.rounds)
                row["decisions_o2"] = rk.kernels
                optimize_file(path, out["exact"], level="O2", target="xnnpack", tolerance=0.0)
                re_ = optimize_file(path, out["exactk"], level="O2", target="tflc", tolerance=0.0)
                row["decisions_lossless"] = re_.kernels
                row["lossless_vs_lossless_kernels"] = _cmp(out["exact"], out["exactk"], args.rounds)
                row["input_vs_lossless_kernels"] = _cmp(path, out["exactk"], args.rounds)
                same, _ = compare_models(str(path), str(out["exactk"]))
                row["lossless_kernels_identical"] = same.identical
                row["kernel_ops"] = sum(1 for d in re_.kernels if d.get("chosen") == "kernel" for _ in d["ops"])
            except TflcError as e:
                row["error"] = str(e).splitlines()[0]
            rows.append(row)
            print(f"{name}: -O2 --kernels vs -O2 {_txt(row.get('o2_vs_o2_kernels'))}; lossless with kernels vs "
                  f"without {_txt(row.get('lossless_vs_lossless_kernels'))}; vs the input "
                  f"{_txt(row.get('input_vs_lossless_kernels'))}; bit-identical "
                  f"{row.get('lossless_kernels_identical')}" + (f"; error {row['error']}" if "error" in row else ""),
                  flush=True)
            for d in row.get("decisions_lossless", []) + row.get("decisions_o2", []):
                alone = (f"alone {d['builtin_us']:.1f} -> {d['kernel_us']:.1f} us "
                         f"({d['builtin_us'] / d['kernel_us']:.1f}x)" if d.get("kernel_us") else "alone -")
                print(f"    {d['pattern']} x{len(d['ops'])}: {alone}; model with kernel {_txt(d.get('kernel'))}; "
                      f"with island {_txt(d.get('island'))}; chose {d['chosen']}", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps({"cpu": _cpu(), "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
