#!/usr/bin/env python
"""How long ``tflc optimize --quantize int8 --calibration X.npz`` takes, and where the time goes.

Usage::

    python benchmarks/quantize_timing.py [MODEL.tflite ...] [--samples 100] [--out DIR] [--json FILE]

Default models: the MediaPipe models in /work/shared/models (face_detection_short_range,
hand_landmark_lite, iris_landmark). For each, ``--samples`` calibration samples are cut from the
scikit-image sample photographs (random crops, flips, resized bilinearly to the model's H x W, RGB
or grayscale as the input has channels), scaled into the model's input range (``--input-range``;
default: what MediaPipe feeds each model, ``INPUT_RANGES``, else -1,1) and written as an .npz keyed
by the input's name, ``[sample, 1, H, W, C]``. Then, each in a fresh process (1 LiteRT thread):

- ``tflc optimize MODEL -o OUT --quantize int8 --calibration CAL.npz --json`` (-O2: with the latency
  guard): ``wall`` (Python start-up and imports included) and ``optimize`` (tflc's own clock);
- the same with ``--no-latency-guard``: what is left after the passes is the LiteRT check of the
  result (``check``: the quantized model against the float one on the 100 samples, SQNR per output);
  ``check+guard`` is that remainder at -O2.

Per pass: ``quantize-int8`` (includes the calibration: the float model run on every sample in one
LiteRT child, builtin kernels, every tensor kept, each tensor summarized), ``(calibration)`` that
analysis timed alone in this process, ``other passes`` the rest of the pipeline. Where the result
fails the 10 dB SQNR floor (tflc then refuses to write it, after doing the work), the refused run is
the one timed (``wall``) and the breakdown comes from a rerun with the floor at 0 dB.

``--photos DIR`` only writes the PNG crops (224 x 224) into DIR, for ``--calibration DIR``.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

MODELS_DIR = Path("/work/shared/models")
DEFAULT_MODELS = ["face_detection_short_range", "hand_landmark_lite", "iris_landmark"]
#: the input ranges MediaPipe's graphs feed them (ImageToTensorCalculator's output_tensor_float_range /
#: TfLiteConverterCalculator's zero_center); the models carry no normalization metadata
INPUT_RANGES = {"face_detection_short_range": (-1.0, 1.0), "hand_landmark_lite": (0.0, 1.0),
                "iris_landmark": (0.0, 1.0)}
#: scikit-image photographs bundled with the package (no download needed)
PHOTOS = ("astronaut", "camera", "cat", "coffee", "chelsea", "rocket", "immunohistochemistry", "motorcycle",
          "hubble", "coins", "moon", "page", "horse", "brick", "grass", "gravel", "clock", "colorwheel")


def _photo(name: str) -> np.ndarray | None:
    from skimage import data
    try:
        if name == "motorcycle":
            img = data.stereo_motorcycle()[0]
        elif name == "hubble":
            img = data.hubble_deep_field()
        else:
            img = getattr(data, name)()
    except Exception:  # noqa: BLE001 - a photograph that needs a download, or a missing one
        return None
    img = np.asarray(img)
    if img.dtype == bool:
        img = img.astype(np.uint8) * 255
    if img.ndim == 2:
        img = np.stack([img] * 3, axis=-1)
    img = img[..., :3]
    if img.dtype != np.uint8:
        img = (255 * (img - img.min()) / max(float(img.max() - img.min()), 1e-6)).astype(np.uint8)
    return img


def photo_samples(count: int, height: int, width: int, channels: int = 3, lo: float = -1.0, hi: float = 1.0,
                  seed: int = 0) -> np.ndarray:
    """``count`` natural-image samples ``[count, height, width, channels]`` (float32 in [lo, hi]):
    random crops (half to all of the shorter side) of the scikit-image photographs, flipped at random,
    resized bilinearly to ``height x width``; grayscale (mean of RGB) when ``channels`` is 1."""
    from skimage import transform
    photos = [p for p in (_photo(n) for n in PHOTOS) if p is not None]
    if not photos:
        raise RuntimeError("no scikit-image sample photographs could be loaded")
    rng = np.random.default_rng(seed)
    out = np.empty((count, height, width, channels), np.float32)
    for i in range(count):
        img = photos[i % len(photos)]
        h, w = img.shape[:2]
        side = int(min(h, w) * (1.0 if i < len(photos) else rng.uniform(0.5, 1.0)))
        ch = min(h, max(8, int(side * height / max(height, width) * (max(height, width) / height))))
        cw = min(w, max(8, int(side * width / max(height, width) * (max(height, width) / height))))
        y, x = rng.integers(0, h - ch + 1), rng.integers(0, w - cw + 1)
        crop = img[y:y + ch, x:x + cw].astype(np.float32) / 255.0
        if rng.random() < 0.5:
            crop = crop[:, ::-1]
        crop = transform.resize(crop, (height, width), order=1, anti_aliasing=True).astype(np.float32)
        if channels == 1:
            crop = crop.mean(axis=-1, keepdims=True)
        out[i] = lo + (hi - lo) * crop
    return out


def write_photos(directory: Path, count: int, size: int = 224, seed: int = 0) -> list[Path]:
    """``count`` PNG crops ``size x size`` (RGB) of the photographs into ``directory``."""
    from skimage import io
    directory.mkdir(parents=True, exist_ok=True)
    arr = photo_samples(count, size, size, 3, 0.0, 1.0, seed)
    paths = []
    for i, a in enumerate(arr):
        p = directory / f"photo_{i:03d}.png"
        io.imsave(p, (a * 255).round().astype(np.uint8), check_contrast=False)
        paths.append(p)
    return paths


def calibration_npz(model: Path, path: Path, count: int, lo: float, hi: float, seed: int = 0) -> Path:
    """An .npz of ``count`` photo samples for ``model``'s single NHWC image input."""
    from tflc.runtime import Interpreter
    interp = Interpreter(model_path=str(model))
    (inp,) = interp.get_input_details()
    _, h, w, c = (int(v) for v in inp["shape"])
    np.savez(path, **{inp["name"]: photo_samples(count, h, w, c, lo, hi, seed)[:, None]})  # [sample, 1, H, W, C]
    return path


def time_quantize(model: Path, cal: Path, out: Path, extra: list[str] | None = None, mode: str = "int8") -> dict:
    """Run ``tflc optimize MODEL --quantize MODE --calibration CAL --json`` in a fresh process. Where the
    result fails the SQNR floor (tflc refuses to write it, after doing all the work), the run is timed
    as it was, and repeated with the floor at 0 dB for the report (``refused`` says why)."""
    exe = Path(sys.executable).with_name("tflc")
    def run(q: str) -> tuple[float, subprocess.CompletedProcess]:
        cmd = [str(exe) if exe.exists() else "tflc", "optimize", str(model), "-o", str(out), "--quantize", q,
               "--calibration", str(cal), "--json", *(extra or [])]
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True)
        return time.perf_counter() - t0, proc
    wall, proc = run(mode)
    refused = None
    if proc.returncode != 0 and "SQNR" in proc.stderr:
        refused = proc.stderr.strip().splitlines()[-1]
        floor = mode[:-1] + ",min-sqnr-db=0}" if mode.endswith("}") else mode + "{min-sqnr-db=0}"
        _, proc = run(floor)
    if proc.returncode != 0:
        raise RuntimeError(f"tflc optimize {model} failed:\n{proc.stderr[-3000:]}")
    return {"wall_s": wall, "report": json.loads(proc.stdout), "refused": refused}


def _breakdown(report: dict) -> dict:
    """Seconds per pass, and the rest of ``tflc optimize``'s own time (the LiteRT check of the result,
    plus the latency guard where it ran), from its ``--json`` report."""
    passes: dict[str, float] = {}
    for p in report.get("passes", []):
        passes[p["name"]] = passes.get(p["name"], 0.0) + float(p["seconds"])
    total = float(report["seconds"])
    return {"optimize_s": total, "passes_s": passes, "after_passes_s": total - sum(passes.values())}


def time_calibration(model: Path, cal: Path) -> tuple[float, int]:
    """Seconds the ``calibration`` analysis takes alone (what quantize-int8 runs first: the float model
    on every sample in one LiteRT child, every tensor's range kept), and the samples it ran."""
    from types import SimpleNamespace
    from tflc.analyses.calibration import calibration
    from tflc.io import read_model
    m = read_model(model)
    ctx = SimpleNamespace(calibration=str(cal), input_source=None, seed=0, shapes={}, calibration_samples=0)
    t0 = time.perf_counter()
    r = calibration(m, ctx)
    if r.error:
        raise RuntimeError(r.error)
    return time.perf_counter() - t0, r.samples


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("models", nargs="*", help="the .tflite models (default: the MediaPipe ones)")
    ap.add_argument("--samples", type=int, default=100)
    ap.add_argument("--input-range", default=None,
                    help="LO,HI the photos are scaled into (default: INPUT_RANGES per model, else -1,1)")
    ap.add_argument("--out", type=Path, default=None, help="where the .npz and outputs go (default: a temp dir)")
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--photos", type=Path, default=None, help="only write PNG crops into this folder")
    args = ap.parse_args(argv)
    if args.photos is not None:
        print(f"wrote {len(write_photos(args.photos, args.samples))} PNGs to {args.photos}")
        return 0
    models = [Path(m) for m in args.models] or [MODELS_DIR / f"{n}.tflite" for n in DEFAULT_MODELS]
    out = args.out or Path(tempfile.mkdtemp(prefix="tflc-qtiming-"))
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    from tflc.runtime.machine import describe, machine
    print(f"CPU: {describe()}")
    print(f"{'model':28s} {'samples':>7s} {'wall':>6s} {'optimize':>8s} {'quantize-int8':>13s} {'(calibration)':>13s} "
          f"{'other passes':>12s} {'check':>6s} {'check+guard':>11s}")
    for m in models:
        lo, hi = (tuple(float(v) for v in args.input_range.split(",")) if args.input_range
                  else INPUT_RANGES.get(m.stem, (-1.0, 1.0)))
        cal = calibration_npz(m, out / f"{m.stem}_cal{args.samples}.npz", args.samples, lo, hi)
        calib_s, n = time_calibration(m, cal)
        r = time_quantize(m, cal, out / f"{m.stem}_int8.tflite")                 # -O2: with the latency guard
        r1 = time_quantize(m, cal, out / f"{m.stem}_int8_noguard.tflite", ["--no-latency-guard"])
        b, b1 = _breakdown(r["report"]), _breakdown(r1["report"])
        quant = b["passes_s"].get("quantize-int8", float("nan"))
        others = sum(v for k, v in b["passes_s"].items() if k != "quantize-int8")
        # the floor's figure: each output's SQNR pooled over the samples (check.outputs holds, per
        # output, the step of largest absolute error)
        chk = r["report"]["check"]
        sqnr = ([None if v is None else round(v, 1) for v in chk["sqnr_db"].values()] if chk.get("sqnr_db")
                else [round(o["sqnr_db"], 1) for o in chk["outputs"]])
        row = {"model": m.stem, "samples": n, "input_range": [lo, hi], "wall_s": r["wall_s"], **b,
               "calibration_s": calib_s, "check_s": b1["after_passes_s"], "wall_no_guard_s": r1["wall_s"],
               "sqnr_db": sqnr, "refused": r["refused"]}
        rows.append(row)
        print(f"{m.stem:28s} {n:7d} {r['wall_s']:6.1f} {b['optimize_s']:8.1f} {quant:13.1f} {calib_s:13.1f} "
              f"{others:12.2f} {b1['after_passes_s']:6.1f} {b['after_passes_s']:11.1f}   SQNR {sqnr} dB"
              + (" (refused: under the 10 dB floor)" if r["refused"] else ""), flush=True)
    if args.json:
        args.json.write_text(json.dumps({"machine": machine(), "models": rows}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
