#!/usr/bin/env python
"""tflc's int8 against litert-quantizer's static_wi8_ai8 and LiteRT's calibration quantizer, on natural images.

Usage::

    # once: litert-quantizer in its own venv (tflc's venv is left as it is)
    python3.11 -m venv /tmp/lqvenv && /tmp/lqvenv/bin/pip install litert-quantizer==0.11.0

    .venv/bin/python benchmarks/quantize_compare.py [--models NAME,...] [--out DIR]
        [--lq-python /tmp/lqvenv/bin/python] [--min-sqnr DB] [--tflc-variant LABEL=MODE]...
        [--tflc-src DIR] [--rounds 3] [--no-bench] [--json FILE]

Models: the float MediaPipe models of /work/shared/models (face_detection_short_range,
hand_landmark_lite, iris_landmark, selfie_segmentation) and the converter-built float models of
tflc's zoo (mobilenet_v3_small, transformer_encoder_3x192, mobilenet_tiny). hey_jarvis is
skipped: it is already an int8 model (int8 input, uint8 output, resource variables), there is no
float model to quantize.

Data (``skimage.data``): calibration = 32 samples from astronaut, camera, coffee, chelsea, rocket;
evaluation = 24 samples from *other* photographs: stereo_motorcycle (both views),
immunohistochemistry, hubble_deep_field, coins, moon, retina, and four faces of lfw_subset.
Each sample is a crop (whole image, centre square, random squares of 35-100 % of the short
side), maybe flipped, resized (bilinear, anti-aliased) to the model's H x W, grayscale repeated
to RGB, and scaled into the model's input range: [-1, 1] for face_detection_short_range (its
metadata: mean = std = 127.5) and the zoo's CNNs (calibrated by the zoo in [-1, 1]); [0, 1] for
hand_landmark_lite and selfie_segmentation (metadata: mean 0, std 255) and iris_landmark (no
metadata; MediaPipe's iris graph feeds [0, 1]). The transformer (a [1, 64, 192] embedding input)
gets image patch embeddings, ViT style: a 64 x 64 RGB crop cut into 8 x 8 patches of 8 x 8 x 3 =
192 values, each token standardised (zero mean, unit variance), from the same photographs.

Quantizers (tflc and the calibrator keep float inputs and outputs; litert-quantizer makes them int8
where it can):
- tflc: ``tflc optimize FLOAT -o OUT -O1 --quantize int8 --calibration CAL.npz``, the default (where
  every op int8 is under the 10 dB floor, the fallback keeps the most sensitive ops float, marked
  ``+``; ``--tflc-variant 'tflc_full=int8{fallback=false,min-sqnr-db=-1000}'`` adds full int8); with
  --min-sqnr DB, a second run with ``--min-sqnr DB``: mixed precision, reported separately;
- litert-quantizer 0.11.0 ``recipe.static_wi8_ai8()`` (min/max with a 0.95 moving average over the
  samples, int8 per-channel weights; it leaves the model's inputs/outputs int8 where it can: the
  evaluation quantizes inputs and dequantizes outputs with the model's own parameters), run by
  benchmarks/_litert_quantizer_helper.py in its own venv; it needs float32 weights and a
  SignatureDef: the model goes through ``tflc optimize --passes fold-float16-weights`` (exact),
  then a ``serving_default`` SignatureDef naming the subgraph's inputs and outputs is added with
  tflc's IR (tflc.ir.SignatureDef, written by tflc.io.write_model) where it has none; the helper
  then sets each operator code's ``builtin_code`` from ``deprecated_builtin_code`` (old converters
  leave it 0 = ADD, and litert-quantizer reads only it) and unshares constant buffers;
- LiteRT's calibration quantizer: ``tensorflow.lite.python.optimize.calibrator.Calibrator(model)
  .calibrate_and_quantize(gen, tf.float32, tf.float32, allow_float=True)`` (int8 activations,
  int32 bias, per-channel), on the same folded model, in a child process.

Evaluation, in LiteRT (tflc.runtime.Session: XNNPACK, 1 thread), each candidate in a child
process so that a crash is recorded, not fatal: SQNR per output against the float model, pooled
over the evaluation samples, 10 log10(sum ref^2 / sum (ref - got)^2); tflc minus each anchor
with a 95% bootstrap interval over the evaluation samples (paired). Where tflc's own check
refuses a result (an output under 10 dB on the calibration samples) it is made again with that
floor off (``int8{min-sqnr-db=-1000}``) and marked ``*``. ``--tflc-variant`` adds other tflc
modes (e.g. ``tflc_p9999=int8{percentile=99.99}``), ``--min-sqnr DB`` a mixed-precision run. Latency: ``tflc bench FLOAT
TFLC LQ LITERT --no-variants --no-accuracy`` (paired interleaved rounds, XNNPACK, 1 thread); the
ratio is candidate p50 / float p50 (<1 is faster).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
SHARED = Path("/work/shared/models")
DEFAULT_MODELS = ["face_detection_short_range", "hand_landmark_lite", "iris_landmark", "selfie_segmentation",
                  "hey_jarvis", "mobilenet_v3_small", "transformer_encoder_3x192", "mobilenet_tiny"]
RANGES = {"face_detection_short_range": (-1.0, 1.0), "hand_landmark_lite": (0.0, 1.0),
          "iris_landmark": (0.0, 1.0), "selfie_segmentation": (0.0, 1.0),
          "mobilenet_v3_small": (-1.0, 1.0), "mobilenet_tiny": (-1.0, 1.0)}
RANGE_WHY = {"face_detection_short_range": "metadata mean=std=127.5", "hand_landmark_lite": "metadata mean 0, std 255",
             "selfie_segmentation": "metadata mean 0, std 255", "iris_landmark": "no metadata; MediaPipe graph [0,1]",
             "mobilenet_v3_small": "zoo calibrates in [-1,1]", "mobilenet_tiny": "zoo calibrates in [-1,1]"}
SKIP = {"hey_jarvis": "already int8 (INT8 input, UINT8 output, resource variables): no float model to quantize"}
CAL_PHOTOS = ["astronaut", "camera", "coffee", "chelsea", "rocket"]
EVAL_PHOTOS = ["stereo_motorcycle", "immunohistochemistry", "hubble_deep_field", "coins", "moon", "retina"]
CAL_SAMPLES, EVAL_SAMPLES = 32, 24
TOOLS = ["tflc", "litert_quantizer", "litert_calibrator"]
ANCHORS = ["litert_quantizer", "litert_calibrator"]


# --------------------------------------------------------------------------- data

def _photos(names: list[str]) -> list[np.ndarray]:
    import skimage.data as d
    out = []
    for n in names:
        a = getattr(d, n)()
        if isinstance(a, tuple):                     # stereo_motorcycle: (left, right, disparity)
            out += [a[0], a[1]]
            continue
        out.append(a)
    return [np.repeat(a[..., None], 3, -1) if a.ndim == 2 else a[..., :3] for a in out]


def _eval_photos() -> list[np.ndarray]:
    import skimage.data as d
    ph = _photos(EVAL_PHOTOS)
    faces = d.lfw_subset()                           # (200, 25, 25) floats in [0, 1]
    ph += [np.repeat((faces[i] * 255).astype(np.uint8)[..., None], 3, -1) for i in (0, 50, 100, 150)]
    return ph


def _crops(photos: list[np.ndarray], n: int, hw: tuple[int, int], seed: int) -> list[np.ndarray]:
    """n crops (uint8 -> float in [0, 1], H x W x 3): per photo the whole image, its centre square, then
    random squares of 35-100 % of the short side, every other one flipped."""
    from skimage.transform import resize
    rng = np.random.default_rng(seed)
    out, k = [], 0
    while len(out) < n:
        img = photos[k % len(photos)]
        h, w = img.shape[:2]
        kind = k // len(photos)
        if kind == 0:
            c = img
        else:
            s = min(h, w) if kind == 1 else int(min(h, w) * rng.uniform(0.35, 1.0))
            y = (h - s) // 2 if kind == 1 else rng.integers(0, h - s + 1)
            x = (w - s) // 2 if kind == 1 else rng.integers(0, w - s + 1)
            c = img[y:y + s, x:x + s]
        if k % 2:
            c = c[:, ::-1]
        out.append(resize(c.astype(np.float32) / 255.0, hw, order=1, anti_aliasing=True).astype(np.float32))
        k += 1
    return out


def make_data(name: str, details, which: str) -> tuple[list[list[np.ndarray]], str]:
    """Samples (each a list of input arrays) and a description."""
    photos = _photos(CAL_PHOTOS) if which == "cal" else _eval_photos()
    n = CAL_SAMPLES if which == "cal" else EVAL_SAMPLES
    seed = 1 if which == "cal" else 999
    steps = []
    if len(details) == 1 and len(details[0]["shape"]) == 4 and details[0]["shape"][-1] == 3:
        _, h, w, _ = details[0]["shape"]
        lo, hi = RANGES.get(name, (0.0, 1.0))
        for c in _crops(photos, n, (int(h), int(w)), seed):
            steps.append([(lo + (hi - lo) * c)[None].astype(np.float32)])
        return steps, f"photo crops {h}x{w}, range [{lo:g},{hi:g}] ({RANGE_WHY.get(name, 'assumed')})"
    if len(details) == 1 and list(details[0]["shape"]) == [1, 64, 192]:
        for c in _crops(photos, n, (64, 64), seed):
            tok = c.reshape(8, 8, 8, 8, 3).transpose(0, 2, 1, 3, 4).reshape(64, 192)
            tok = (tok - tok.mean(1, keepdims=True)) / (tok.std(1, keepdims=True) + 1e-3)
            steps.append([tok[None].astype(np.float32)])
        return steps, "image patch embeddings (8x8x3 patches of 64x64 crops, tokens standardised)"
    from tflc.runtime import generate
    return [list(s) for s in generate(details, n, seed)], "tflc.runtime.generate random data"


def _npz(path: Path, details, steps) -> Path:
    np.savez(path, **{d["name"]: np.stack([s[i] for s in steps]) for i, d in enumerate(details)})
    return path


# --------------------------------------------------------------------------- children

def _last_json(p: subprocess.CompletedProcess) -> dict:
    """A child's result: its last stdout line that is JSON, else its exit code and last stderr line."""
    lines = [ln for ln in p.stdout.splitlines() if ln.startswith("{")]
    if lines:
        return json.loads(lines[-1])
    err = [ln for ln in p.stderr.splitlines() if ln.strip()]
    return {"ok": False, "error": f"exit {p.returncode}" + (f": {err[-1][:300]}" if err else "")}


def _child(args: list[str], timeout: float) -> dict:
    """Run this script in a child mode; its last stdout line is JSON."""
    try:
        p = subprocess.run([sys.executable, str(Path(__file__).resolve()), *args], capture_output=True, text=True,
                           timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"ok": False, "error": f"timed out after {timeout:.0f} s"}
    return _last_json(p)


def _eval_child(ref: str, cand: str, data: str) -> None:
    from tflc.runtime import Session
    from tflc.runtime.inputs import quantize_like_litert
    z = np.load(data)
    out = {}
    for tag, path in (("ref", ref), ("cand", cand)):
        s = Session(path)
        names = [d["name"] for d in s.output_details]
        ins = s.input_details
        res = []
        for i in range(len(z[z.files[0]])):
            feed = []
            for k, d in enumerate(ins):
                a = z[d["name"]][i] if d["name"] in z.files else z[z.files[k]][i]
                sc, zp = d["quantization"]       # as the float twin's QUANTIZE (XNNPACK) rounds
                feed.append(quantize_like_litert(a, sc, zp, d["dtype"]) if np.dtype(d["dtype"]).kind in "iu" and sc
                            else a)
            got = []
            for o, d in zip(s.run(feed), s.output_details):
                sc, zp = d["quantization"]
                got.append((o.astype(np.float64) - zp) * sc if o.dtype.kind in "iu" and sc else o.astype(np.float64))
            res.append(got)
        out[tag] = (names, res)
    rn, ref_r = out["ref"]
    cn, cand_r = out["cand"]
    order = [cn.index(n) for n in rn] if sorted(rn) == sorted(cn) else list(range(len(rn)))
    sq, sigs, noises = [], [], []
    for k, j in enumerate(order):
        sig = [float(np.sum(r[k] ** 2)) for r in ref_r]
        noise = [float(np.sum((r[k] - c[j]) ** 2)) for r, c in zip(ref_r, cand_r)]
        sq.append(float("inf") if sum(noise) == 0 else float(10 * np.log10(sum(sig) / sum(noise))))
        sigs.append(sig)
        noises.append(noise)
    print(json.dumps({"ok": True, "outputs": rn, "sqnr_db": sq, "signal": sigs, "noise": noises}))


def _calibrator_child(src: str, cal: str, dst: str) -> None:
    t0 = time.time()
    try:
        import tensorflow as tf
        from tensorflow.lite.python.optimize.calibrator import Calibrator
        z = np.load(cal)
        n = len(z[z.files[0]])

        def gen():
            for i in range(n):
                yield [z[k][i] for k in z.files]

        q = Calibrator(Path(src).read_bytes()).calibrate_and_quantize(gen, tf.float32, tf.float32, True)
        Path(dst).write_bytes(q)
        print(json.dumps({"ok": True, "seconds": time.time() - t0}))
    except Exception as e:
        msg = f"{type(e).__name__}: {e}".splitlines()[0][:300]
        print(json.dumps({"ok": False, "error": msg, "seconds": time.time() - t0}))


# --------------------------------------------------------------------------- quantizers

def _tflc_once(fl: Path, cal: Path, dst: Path, mode: str, min_sqnr: float | None) -> dict:
    cmd = [sys.executable, "-m", "tflc.cli.main", "optimize", str(fl), "-o", str(dst), "-O1", "--quantize", mode,
           "--calibration", str(cal), "--json"]
    if min_sqnr is not None:
        cmd += ["--min-sqnr", str(min_sqnr)]
    t0 = time.time()
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=3000)
    r = {"ok": p.returncode == 0 and dst.exists(), "seconds": time.time() - t0, "command": " ".join(cmd[2:])}
    try:
        j = json.loads(p.stdout)
    except (json.JSONDecodeError, TypeError):
        j = {}
    notes = []
    for ps in j.get("passes") or []:
        notes += [n if isinstance(n, str) else json.dumps(n) for n in ps.get("notes") or []]
    notes += [n if isinstance(n, str) else json.dumps(n) for n in j.get("notes") or []]
    r["notes"] = [n for n in notes if "quantize-int8" in n or "float" in n.lower()][:40]
    if j.get("quantization"):
        r["quantization"] = j["quantization"]
    if not r["ok"]:
        err = [ln for ln in p.stderr.splitlines() if ln.strip()]
        r["error"] = (err[-1] if err else str(j.get("error") or f"exit {p.returncode}"))[:400]
    return r


def _tflc(fl: Path, cal: Path, dst: Path, min_sqnr: float | None, mode: str = "int8") -> dict:
    """tflc optimize --quantize int8; where tflc refuses the result for its own 10 dB floor (measured on
    the calibration samples), run again with the floor off so that the model can still be compared."""
    r = _tflc_once(fl, cal, dst, mode, min_sqnr)
    if not r["ok"] and "under the 10 dB required" in r.get("error", ""):
        forced = mode[:-1] + ",min-sqnr-db=-1000}" if mode.endswith("}") else mode + "{min-sqnr-db=-1000}"
        f = _tflc_once(fl, cal, dst, forced, min_sqnr)
        f["refused_at_floor"] = r["error"]
        return f
    return r


def _lq_input(fl: Path, dst: Path) -> tuple[Path, str]:
    """fold float16 weights (exact) and add a serving_default SignatureDef where none is there."""
    from tflc.io import read_model, write_model
    from tflc.ir import SignatureDef
    folded = dst.with_name(dst.stem + "_fold.tflite")
    p = subprocess.run([sys.executable, "-m", "tflc.cli.main", "optimize", str(fl), "-o", str(folded),
                        "--passes", "fold-float16-weights"], capture_output=True, text=True)
    what = "fold-float16-weights"
    if p.returncode != 0 or not folded.exists():
        folded, what = fl, f"(fold-float16-weights failed: {p.stderr.strip().splitlines()[-1:]})"
    m = read_model(folded)
    if not m.signature_defs:
        sg = m.main
        m.signature_defs.append(SignatureDef("serving_default", sg, [(t.name, t) for t in sg.inputs],
                                             [(t.name, t) for t in sg.outputs]))
        what += " + serving_default SignatureDef (tflc.ir)"
    write_model(m, dst)
    return dst, what


def _lq(lq_python: str, src: Path, cal: Path, dst: Path) -> dict:
    try:
        p = subprocess.run([lq_python, str(HERE / "_litert_quantizer_helper.py"), str(src), str(cal), str(dst)],
                           capture_output=True, text=True, timeout=3000)
    except FileNotFoundError as e:
        return {"ok": False, "error": f"no litert-quantizer venv: {e}"}
    return _last_json(p)


def _float32_size(fl: Path, folded: Path) -> int:
    """The float32 file the size criterion compares with: the model itself, or where its weights are
    float16, the same model with them folded to float32 (``fold-float16-weights``, exact)."""
    from tflc.io import read_model
    from tflc.schema import TYPE_CODES
    m = read_model(fl)
    f16 = any(t.is_constant and t.dtype == TYPE_CODES["FLOAT16"] for sg in m.subgraphs for t in sg.tensors)
    return folded.stat().st_size if f16 and folded.exists() else fl.stat().st_size


def size_breakdown(path: Path) -> dict:
    """Where a quantized file's bytes go: constant data (int8 weights, int32 biases, what stays
    float), the per-channel scales (4 bytes each, on weights and on biases; LiteRT also wants an
    int64 zero point per scale, stored once per distinct vector by tflc's writer), and the rest
    (tensor and operator tables, names, shapes, per-tensor parameters, alignment)."""
    from tflc.io import read_model
    m = read_model(path)
    tensors = [t for sg in m.subgraphs for t in sg.tensors]
    const = sum(t.buffer.nbytes for t in tensors if t.buffer is not None and t.buffer.data is not None)
    scales = sum(len(t.quantization.scale) for t in tensors
                 if t.quantization is not None and t.quantization.scale is not None and len(t.quantization.scale) > 1)
    size = path.stat().st_size
    return {"size": size, "constants": const, "per_channel_scales": 4 * scales,
            "rest": size - const - 4 * scales}


def ok_tools(row: dict, tools: list[str]) -> list[str]:
    return [t for t in tools if row["tools"].get(t, {}).get("ok")]


def _bench(paths: list[Path], rounds: int) -> list[float | None]:
    cmd = [sys.executable, "-m", "tflc.cli.main", "bench", *map(str, paths), "--json", "--no-variants",
           "--no-accuracy", "--rounds", str(rounds), "--max-time", "6", "--runs", "60", "--threads", "1"]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
    if p.returncode != 0:
        raise RuntimeError((p.stderr.strip().splitlines() or ["tflc bench failed"])[-1])
    b = json.loads(p.stdout)
    return [None] + [r.get("p50") for r in b["ratios"][1:]] if len(b["ratios"]) == len(paths) else \
        [None] + [r.get("p50") for r in b["ratios"]]


# --------------------------------------------------------------------------- main

def run_model(name: str, out: Path, args) -> dict:
    from tflc.runtime import Session
    from tflc.testing import zoo
    if name in SKIP:
        return {"model": name, "skipped": SKIP[name]}
    fl = SHARED / f"{name}.tflite" if (SHARED / f"{name}.tflite").exists() else Path(zoo.build(name))
    details = Session(str(fl)).input_details
    cal_steps, cal_what = make_data(name, details, "cal")
    ev_steps, ev_what = make_data(name, details, "eval")
    cal = _npz(out / f"{name}_cal.npz", details, cal_steps)
    ev = _npz(out / f"{name}_eval.npz", details, ev_steps)
    row = {"model": name, "float": str(fl), "calibration": f"{len(cal_steps)} x {cal_what} from {CAL_PHOTOS}",
           "evaluation": f"{len(ev_steps)} x {ev_what} from {EVAL_PHOTOS} + lfw_subset faces", "tools": {}}
    tools = _tools(args)
    paths = {t: out / f"{name}_{t}.tflite" for t in tools}
    for t in tools:
        paths[t].unlink(missing_ok=True)
    lq_in, row["anchor_input"] = _lq_input(fl, out / f"{name}_float32_sig.tflite")
    for t in tools:
        print(f"  {name}: {t} ...", flush=True)
        if t == "tflc":
            r = _tflc(fl, cal, paths[t], None)
        elif t == "tflc_min_sqnr":
            r = _tflc(fl, cal, paths[t], args.min_sqnr)
        elif t in args.variants:
            r = _tflc(fl, cal, paths[t], None, args.variants[t])
        elif t == "litert_quantizer":
            r = _lq(args.lq_python, lq_in, cal, paths[t])
        else:
            r = _child(["--_calibrator", str(lq_in), str(cal), str(paths[t])], 1800)
        if r.get("ok"):
            e = _child(["--_eval", str(fl), str(paths[t]), str(ev)], 900)
            if e.get("ok"):
                r.update(outputs=e["outputs"], sqnr_db=e["sqnr_db"], noise=e["noise"])
                row["signal"] = e["signal"]
            else:
                r.update(ok=False, error=f"runs not: {e.get('error')}")
            r["size"] = paths[t].stat().st_size
        row["tools"][t] = r
        print(f"    {json.dumps({k: v for k, v in r.items() if k not in ('quantization', 'notes', 'noise')}, default=str)[:600]}",
              flush=True)
    row["size_float"] = fl.stat().st_size
    row["size_float32"] = _float32_size(fl, out / f"{name}_float32_sig_fold.tflite")
    ok = ok_tools(row, tools)
    for t in ok:
        row["tools"][t]["size_breakdown"] = size_breakdown(paths[t])
    if not args.no_bench and ok:
        try:
            ratios = _bench([fl] + [paths[t] for t in ok], args.rounds)
            for t, r in zip(ok, ratios[1:]):
                row["tools"][t]["latency_ratio"] = r
        except Exception as e:  # one bench for all; if it fails, each alone
            row["bench_error"] = str(e)[:300]
            for t in ok:
                try:
                    row["tools"][t]["latency_ratio"] = _bench([fl, paths[t]], args.rounds)[1]
                except Exception as e2:
                    row["tools"][t]["latency_error"] = str(e2)[:200]
    return row


def paired_diff(noise_a: list[float], noise_b: list[float], n_boot: int = 2000, seed: int = 0) -> tuple[float, float, float]:
    """SQNR(a) - SQNR(b) in dB on one output (same signal: 10 log10(sum noise_b / sum noise_a)), with a 95%
    bootstrap interval over the evaluation samples (resampled in pairs)."""
    a, b = np.asarray(noise_a, np.float64), np.asarray(noise_b, np.float64)
    d = float(10 * np.log10(b.sum() / max(a.sum(), 1e-300)))
    idx = np.random.default_rng(seed).integers(0, len(a), (n_boot, len(a)))
    boots = 10 * np.log10(b[idx].sum(1) / np.maximum(a[idx].sum(1), 1e-300))
    return d, float(np.percentile(boots, 2.5)), float(np.percentile(boots, 97.5))


def _fmt(r: dict, k: int) -> str:
    if not r.get("ok"):
        return "FAIL"
    fb = (r.get("quantization") or {}).get("fallback") or {}
    return f"{r['sqnr_db'][k]:.1f}" + ("*" if r.get("refused_at_floor") else "") + ("+" if fb.get("reached") else "")


def table(rows: list[dict], tools: list[str]) -> str:
    hdr = (["model", "output"] + [f"SQNR {t} (dB)" for t in tools] + [f"tflc - {t} (dB, 95% CI)" for t in ANCHORS]
           + [f"lat {t}/float" for t in tools])
    lines = ["| " + " | ".join(hdr) + " |", "|" + "---|" * len(hdr)]
    fails = []
    for row in rows:
        if "skipped" in row:
            lines.append(f"| {row['model']} | skipped: {row['skipped']} |" + " |" * (len(hdr) - 2))
            continue
        ref = next((row["tools"][t] for t in tools if row["tools"].get(t, {}).get("ok")), None)
        outs = ref["outputs"] if ref else ["-"]
        for k, o in enumerate(outs):
            cells = [row["model"] if k == 0 else "", o]
            cells += [_fmt(row["tools"][t], k) for t in tools]
            tr = row["tools"].get("tflc", {})
            for t in ANCHORS:
                ar = row["tools"].get(t, {})
                if tr.get("ok") and ar.get("ok") and "noise" in tr and "noise" in ar:
                    d, lo, hi = paired_diff(tr["noise"][k], ar["noise"][k])
                    cells.append(f"{d:+.1f} [{lo:+.1f},{hi:+.1f}]")
                else:
                    cells.append("-")
            for t in tools:
                lr = row["tools"][t].get("latency_ratio")
                cells.append("" if k else (f"{lr:.2f}" if isinstance(lr, (int, float)) else "-"))
            lines.append("| " + " | ".join(cells) + " |")
        for t in tools:
            if not row["tools"][t].get("ok"):
                fails.append(f"- {row['model']} / {t}: {row['tools'][t].get('error')}")
    summ = ["", "Summary (outputs where both ran; finite SQNR):"]
    for t in [x for x in tools if x != "tflc"]:
        diffs = []
        for row in rows:
            a, b = row.get("tools", {}).get("tflc", {}), row.get("tools", {}).get(t, {})
            if a.get("ok") and b.get("ok"):
                diffs += [(row["model"], o, x - y) for o, x, y in zip(a["outputs"], a["sqnr_db"], b["sqnr_db"])
                          if np.isfinite(x) and np.isfinite(y)]
        if diffs:
            worse = [f"{m}/{o} ({d:+.1f})" for m, o, d in diffs if d < 0]
            summ.append(f"- tflc vs {t}: >= on {len(diffs) - len(worse)}/{len(diffs)} outputs, mean difference "
                        f"{np.mean([d for *_, d in diffs]):+.2f} dB" + (f"; lower on {', '.join(worse)}" if worse else ""))
    summ += ["", "Size (file / the float32 file; tflc's bytes: constants + per-channel scales + the rest):"]
    for row in rows:
        f32 = row.get("size_float32")
        if not f32:
            continue
        cells = [f"{t} {row['tools'][t]['size'] / f32:.3f}" for t in ok_tools(row, tools)]
        b = row["tools"].get("tflc", {}).get("size_breakdown")
        extra = (f"; tflc {b['size']} B = {b['constants']} + {b['per_channel_scales']} + {b['rest']}" if b else "")
        summ.append(f"- {row['model']} (float32 {f32} B): " + ", ".join(cells) + extra)
    kept = [f"{row['model']} {(row['tools'][t].get('quantization') or {}).get('int8_ops')}/"
            f"{(row['tools'][t].get('quantization') or {}).get('ops')} ops int8 ({t})"
            for row in rows if "tools" in row for t in tools
            if ((row["tools"].get(t, {}).get("quantization") or {}).get("fallback") or {}).get("reached")]
    notes = summ + ["", "* tflc refused to write it (its check: an output under 10 dB on the calibration samples); "
             "measured with the floor off (int8{min-sqnr-db=-1000})",
             "+ with every op int8 an output was under the 10 dB floor: tflc kept its most sensitive ops float "
             "until it held (the fallback, with a warning): " + ("; ".join(kept) or "none")]
    return "\n".join(lines + ([""] + fails if fails else []) + notes)


def _tools(args) -> list[str]:
    return (list(TOOLS) + (["tflc_min_sqnr"] if args.min_sqnr is not None else []) + list(args.variants))


def _provenance(src: str | None) -> dict:
    def git(*a):
        p = subprocess.run(["git", "-C", str(HERE.parent), *a], capture_output=True, text=True)
        return p.stdout.strip()
    from tflc.runtime.machine import machine
    commit = Path(src, "COMMIT").read_text().strip() if src and Path(src, "COMMIT").exists() else None
    return {"machine": machine(), "tflc_src": src or str(HERE.parent), "tflc_src_commit": commit,
            "repo_head": git("rev-parse", "HEAD"),
            "repo_dirty": git("status", "--short", "--untracked-files=no").splitlines(),
            "note": ("tflc imported from a snapshot of the repository (git archive HEAD) given by --tflc-src"
                     if src else "tflc imported from the working tree")}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", default=",".join(DEFAULT_MODELS))
    ap.add_argument("--out", default="/tmp/quantize-compare", help="work folder (absolute paths are best)")
    ap.add_argument("--lq-python", default="/tmp/lqvenv/bin/python",
                    help="python of the venv that holds litert-quantizer 0.11.0")
    ap.add_argument("--min-sqnr", type=float, default=None, help="also run tflc with --min-sqnr DB")
    ap.add_argument("--tflc-variant", action="append", default=[], metavar="LABEL=MODE",
                    help="also run tflc with --quantize MODE, e.g. tflc_p9999='int8{percentile=99.99}'")
    ap.add_argument("--tflc-src", default=None,
                    help="run tflc from this source tree instead of the installed (editable) one, e.g. a "
                         "snapshot of HEAD while others edit the working tree: git archive HEAD | tar -x -C DIR; "
                         "ln -s ../passes DIR/tflc/passes; ln -s ../kernels DIR/tflc/kernels; "
                         "git rev-parse HEAD > DIR/COMMIT")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--no-bench", action="store_true")
    ap.add_argument("--json", default=None, help="write the results here (default OUT/results.json)")
    args = ap.parse_args(argv)
    args.variants = dict(v.split("=", 1) for v in args.tflc_variant)
    if args.tflc_src:
        src = str(Path(args.tflc_src).resolve())
        for sub in ("passes", "kernels"):   # tflc.passes / tflc.kernels from the snapshot too, not
            link = Path(src, "tflc", sub)   # from the editable install's mapping to the work tree
            if Path(src, sub).is_dir() and not link.exists():
                link.symlink_to(Path("..", sub))
        if os.environ.get("PYTHONPATH") != src:        # re-run with it first on the path (children inherit)
            env = dict(os.environ, PYTHONPATH=src, QUANTIZE_COMPARE_CWD=os.getcwd())
            os.chdir(src)
            os.execve(sys.executable, [sys.executable, str(Path(__file__).resolve()), *(argv or sys.argv[1:])], env)
        import tflc
        import tflc.passes
        for mod in (tflc, tflc.passes):
            assert str(Path(mod.__file__).resolve()).startswith(src), mod.__file__
    base = Path(os.environ.get("QUANTIZE_COMPARE_CWD", os.getcwd()))
    out = base / args.out
    args.json = args.json and str(base / args.json)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    jpath = Path(args.json) if args.json else out / "results.json"
    prov = _provenance(args.tflc_src and str(Path(args.tflc_src).resolve()))
    from tflc.runtime.machine import describe
    print(f"CPU: {describe(prov['machine'])}", flush=True)
    for name in args.models.split(","):
        print(f"== {name}", flush=True)
        rows.append(run_model(name, out, args))
        jpath.write_text(json.dumps({"provenance": prov, "models": rows}, indent=1, default=str))
    tools = _tools(args)
    print()
    print(f"CPU: {describe(prov['machine'])}")
    print(table(rows, tools))
    return 0


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    if len(sys.argv) > 1 and sys.argv[1] == "--_eval":
        _eval_child(*sys.argv[2:5])
        sys.exit(0)
    if len(sys.argv) > 1 and sys.argv[1] == "--_calibrator":
        _calibrator_child(*sys.argv[2:5])
        sys.exit(0)
    sys.exit(main())
