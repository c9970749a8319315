#!/usr/bin/env python
"""tflc's int8 quantizer against float and the converter's own int8: latency, SQNR, size, partitions.

Usage::

    python benchmarks/quantize.py [--models mobilenet_tiny,mobilenet_v3_small,...] [--out DIR]
                                  [--rounds 5] [--no-bench]

For each model:
- FLOAT: the float model (zoo ``tflc.testing.zoo`` names, or a .tflite path such as
  /work/shared/models/iris_landmark.tflite);
- CONVERTER: the TF converter's full-int8 zoo variant (``<name>_int8``, int8 inputs/outputs,
  calibrated by the zoo on 20 uniform [-1, 1] samples); for a .tflite path, LiteRT's own
  calibration quantizer (``CalibrationWrapper``, what the converter drives) on the same
  calibration samples as tflc;
- TFLC: ``tflc optimize FLOAT -O1 --quantize int8 --calibration CAL.npz`` (float inputs/outputs).

Calibration: 32 samples uniform in [-1, 1] (seed 1). SQNR is measured on 16 held-out samples
(seed 999, never calibrated on), pooled over the samples: 10 log10(sum ref^2 / sum (ref-got)^2)
per output; int8 inputs/outputs are (de)quantized with their own parameters. Latency: ``tflc bench
FLOAT CONVERTER TFLC`` (1 thread, XNNPACK, paired interleaved rounds; ratios against FLOAT), then
``tflc bench CONVERTER TFLC`` for the ratio against the converter (paired likewise).
Partitions: LiteRT's own XNNPACK decision, read back per node (``tflc.runtime.delegation``).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

DEFAULT_MODELS = ["mobilenet_tiny", "mobilenet_v3_small", "transformer_encoder_3x192",
                  "/work/shared/models/iris_landmark.tflite"]
CAL_SAMPLES, CAL_SEED, EVAL_SAMPLES, EVAL_SEED = 32, 1, 16, 999


def _samples(details, n, seed):
    from tflc.runtime import generate
    return generate(details, n, seed)


def _npz(path: Path, details, steps) -> Path:
    np.savez(path, **{d["name"]: np.stack([s[i] for s in steps]) for i, d in enumerate(details)})
    return path


def _litert_quantize(data: bytes, steps) -> bytes:
    from ai_edge_litert._pywrap_tensorflow_lite_calibration_wrapper import CalibrationWrapper
    w = CalibrationWrapper(data, [], [])
    w.Prepare([list(a.shape) for a in steps[0]])
    for s in steps:
        w.FeedTensor(list(s))
    i8, i32 = np.dtype(np.int8).num, np.dtype(np.int32).num
    return w.QuantizeModel(i8, i8, False, i8, i32, False, False)


def _litert_int8(src: Path, dst: Path, steps) -> Path:
    """LiteRT's calibration quantizer, in a child process (it fails in a process that loaded TF)."""
    from tflc.runtime import run_isolated
    dst.write_bytes(run_isolated(_litert_quantize, src.read_bytes(), steps, what="LiteRT's calibration quantizer"))
    return dst


def _run(path: Path, steps):
    from tflc.runtime import Session
    s = Session(str(path))
    outs = []
    for st in steps:
        feed = []
        for a, d in zip(st, s.input_details):
            sc, zp = d["quantization"]
            feed.append(np.clip(np.round(a / sc) + zp, -128, 127).astype(d["dtype"])
                        if np.dtype(d["dtype"]).kind == "i" and sc else a)
        got = []
        for o, d in zip(s.run(feed), s.output_details):
            sc, zp = d["quantization"]
            got.append((o.astype(np.float64) - zp) * sc if o.dtype.kind == "i" and sc else o.astype(np.float64))
        outs.append(got)
    return [d["name"] for d in s.output_details], outs


def _sqnr(ref, got) -> list[float]:
    res = []
    for k in range(len(ref[0])):
        sig = sum(float(np.sum(r[k] ** 2)) for r in ref)
        noise = sum(float(np.sum((r[k] - g[k]) ** 2)) for r, g in zip(ref, got))
        res.append(float("inf") if noise == 0 else 10 * np.log10(sig / noise))
    return res


def _partitions(path: Path) -> tuple[int, int, int]:
    from tflc.runtime.delegation import xnnpack_delegation
    d = xnnpack_delegation(path.read_bytes())
    return len(d.partitions), len(d.taken), d.nodes


def _bench(paths: list[Path], rounds: int) -> dict:
    cmd = [sys.executable, "-m", "tflc.cli.main", "bench", *map(str, paths), "--json", "--no-variants",
           "--no-accuracy", "--rounds", str(rounds)]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    return json.loads(out)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", default=",".join(DEFAULT_MODELS))
    ap.add_argument("--out", default="build/quantize-bench")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--no-bench", action="store_true", help="skip latency (SQNR, sizes, partitions only)")
    args = ap.parse_args(argv)
    from tflc.errors import TflcError
    from tflc.optimize import optimize_file
    from tflc.runtime import Session
    from tflc.testing import zoo
    from tflc.runtime.machine import describe
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    print(f"CPU: {describe()}", flush=True)
    rows = []
    for name in args.models.split(","):
        real = name.endswith(".tflite")
        stem = Path(name).stem if real else name
        fl = Path(name) if real else zoo.build(name)
        details = Session(str(fl)).input_details
        cal_steps = _samples(details, CAL_SAMPLES, CAL_SEED)
        eval_steps = _samples(details, EVAL_SAMPLES, EVAL_SEED)
        cal = _npz(out / f"{stem}_cal.npz", details, cal_steps)
        ev = _npz(out / f"{stem}_eval.npz", details, eval_steps)
        errors: dict[str, str] = {}
        try:
            conv = _litert_int8(fl, out / f"{stem}_litert_int8.tflite", cal_steps) if real else zoo.build(f"{name}_int8")
        except TflcError as e:               # an anchor that fails is a result, not the end of the run
            conv, errors["converter"] = None, str(e).splitlines()[0]
        tq = out / f"{stem}_tflc_int8.tflite"
        try:
            res = optimize_file(fl, tq, level="O1", quantize="int8", calibration=str(cal), input_source=str(ev))
        except TflcError as e:
            res, errors["tflc"] = None, str(e).splitlines()[0]
        names, ref = _run(fl, eval_steps)
        got_c = _run(conv, eval_steps)[1] if conv is not None else None
        got_t = _run(tq, eval_steps)[1] if res is not None else None
        row = {"model": stem, "float": str(fl), "converter": str(conv), "tflc": str(tq), "errors": errors,
               "converter_kind": "LiteRT CalibrationWrapper" if real else "TF converter (zoo _int8)",
               "outputs": names, "sqnr_converter_db": _sqnr(ref, got_c) if got_c is not None else [],
               "sqnr_tflc_db": _sqnr(ref, got_t) if got_t is not None else [],
               "size_float": fl.stat().st_size, "size_converter": conv.stat().st_size if conv else None,
               "size_tflc": tq.stat().st_size if res else None,
               "partitions": {k: _partitions(p) for k, p in (("float", fl), ("converter", conv), ("tflc", tq))
                              if p is not None and (k != "tflc" or res is not None)},
               "kept_float": [n for n in res.notes if "kept " in n and "quantize-int8" in n] if res else []}
        if errors:
            print(json.dumps(row, default=str), flush=True)
            rows.append(row)
            continue
        if not args.no_bench:
            b = _bench([fl, conv, tq], args.rounds)
            row["p50_us"] = [m["latency"]["p50_us"] for m in b["models"]]
            row["ratio"] = [{k: r.get(k) for k in ("p50", "p50_ci", "verdict")} for r in b["ratios"]]
            c = _bench([conv, tq], args.rounds)          # tflc against the converter, paired as well
            row["ratio_vs_converter"] = {k: c["ratios"][1].get(k) for k in ("p50", "p50_ci", "verdict")}
        rows.append(row)
        print(json.dumps(row, default=str), flush=True)
    (out / "results.json").write_text(json.dumps(rows, indent=1, default=str))
    print()
    print("| model | p50 float | p50 converter int8 | p50 tflc int8 | tflc/float | tflc/converter | "
          "SQNR converter (dB) | SQNR tflc (dB) | size tflc/float | XNNPACK partitions f/c/t |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        if r.get("errors"):
            print(f"| {r['model']} | failed: {'; '.join(f'{k}: {v}' for k, v in r['errors'].items())} |")
            continue
        p = r.get("p50_us") or [float("nan")] * 3
        ratio = r.get("ratio")
        tf = f"{ratio[2]['p50']:.2f} [{ratio[2]['p50_ci'][0]:.2f}-{ratio[2]['p50_ci'][1]:.2f}]" if ratio else "-"
        rc = r.get("ratio_vs_converter")
        tc = f"{rc['p50']:.2f} [{rc['p50_ci'][0]:.2f}-{rc['p50_ci'][1]:.2f}]" if rc else "-"
        parts = "/".join(str(r["partitions"][k][0]) for k in ("float", "converter", "tflc"))
        print(f"| {r['model']} | {p[0]:.0f} µs | {p[1]:.0f} µs | {p[2]:.0f} µs | {tf} | {tc} | "
              f"{', '.join(f'{x:.1f}' for x in r['sqnr_converter_db'])} | "
              f"{', '.join(f'{x:.1f}' for x in r['sqnr_tflc_db'])} | {r['size_tflc'] / r['size_float']:.2f} | {parts} |")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    sys.exit(main())
