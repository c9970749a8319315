"""Inputs for running a model: from an .npz file, a folder of images, or generated.

An input set is a list of *steps*; each step is one array per model input, in the model's input
order. Stateful models get several steps; for stateless ones each step is one sample.
Generated data fits each input: floats in [-1, 1], quantized integers over their full range,
other integers small and non-negative (they are often indices), booleans at random.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from ..errors import UsageError

Step = list[np.ndarray]

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"}


def parse_shape_overrides(specs: Sequence[str]) -> dict[str, tuple[int, ...]]:
    """``NAME:1x128`` (NAME may itself contain colons: the last one separates the shape)."""
    out: dict[str, tuple[int, ...]] = {}
    for spec in specs:
        name, sep, dims = spec.rpartition(":")
        try:
            shape = tuple(int(d) for d in dims.lower().split("x")) if dims else ()
        except ValueError:
            shape = ()
        if not sep or not name or not shape or any(d <= 0 for d in shape):
            raise UsageError(f"bad --input-shape {spec!r}: expected NAME:DxDx... (e.g. input_1:1x128)")
        if name in out:
            raise UsageError(f"--input-shape given twice for {name!r}")
        out[name] = shape
    return out


def check_shape_overrides(shapes: Mapping[str, tuple[int, ...]], inputs: Sequence[Any]) -> None:
    """Every NAME must be an input of the model (as LiteRT names it) and its fixed dimensions
    must agree. ``inputs`` are the main subgraph's input tensors (tflc.ir Tensor)."""
    by_name = {t.name: t for t in inputs}
    for name, shape in shapes.items():
        t = by_name.get(name)
        if t is None:
            raise UsageError(f"--input-shape {name!r}: the model has no such input (inputs: "
                             f"{', '.join(repr(n) for n in by_name) or 'none'})")
        sig = t.shape_signature if t.shape_signature is not None else t.shape
        detail = {"name": name, "shape": t.shape or (), "shape_signature": sig or ()}
        if sig is not None and not shape_fits(shape, detail):
            raise UsageError(f"--input-shape {name}:{'x'.join(map(str, shape))} does not fit the input's "
                             f"shape {_sig(detail)} (? = dynamic)")


def concrete_shape(detail: Mapping[str, Any], overrides: Mapping[str, tuple[int, ...]] | None = None) -> tuple[int, ...]:
    """The shape to feed: an override, else the signature with dynamic dims (-1) set to 1."""
    if overrides and detail["name"] in overrides:
        shape = tuple(overrides[detail["name"]])
        sig = detail.get("shape_signature")
        if sig is not None and len(sig) and len(sig) != len(shape):
            raise UsageError(f"--input-shape for {detail['name']!r} has rank {len(shape)}, "
                             f"the input has rank {len(sig)}")
        return shape
    sig = detail.get("shape_signature")
    if sig is None or len(sig) == 0:
        sig = detail["shape"]
    return tuple(1 if int(d) < 0 else int(d) for d in sig)


def _generate_one(detail: Mapping[str, Any], shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    dt = np.dtype(detail["dtype"])
    scale = detail.get("quantization", (0.0, 0))[0]
    if dt.kind == "f":
        return rng.uniform(-1.0, 1.0, size=shape).astype(dt)
    if dt.kind in "iu" and scale:  # quantized: the whole integer range is meaningful
        info = np.iinfo(dt)
        return rng.integers(info.min, int(info.max) + 1, size=shape, dtype=np.int64).astype(dt)
    if dt.kind in "iu":
        return rng.integers(0, 8, size=shape).astype(dt)
    if dt.kind == "b":
        return rng.integers(0, 2, size=shape).astype(bool)
    if dt.kind == "c":
        return (rng.uniform(-1, 1, size=shape) + 1j * rng.uniform(-1, 1, size=shape)).astype(dt)
    raise UsageError(f"cannot generate data for input {detail['name']!r} of type {dt}")


def generate(details: Sequence[Mapping[str, Any]], steps: int = 1, seed: int = 0,
             shapes: Mapping[str, tuple[int, ...]] | None = None) -> list[Step]:
    rng = np.random.default_rng(seed)
    return [[_generate_one(d, concrete_shape(d, shapes), rng) for d in details] for _ in range(steps)]


def load_npz(path: str | Path, details: Sequence[Mapping[str, Any]]) -> list[Step]:
    """Arrays keyed by input name (or ``arr_0``.. in input order). An extra leading axis is steps.
    Other keys are refused, not matched by their order in the file: that is the order they were
    written in, not necessarily the model's (LiteRT's input order is the converter's); same-shaped
    inputs paired wrongly would pass every check, and a mistyped name would go unnoticed."""
    try:
        npz = np.load(path, allow_pickle=False)
        keys = list(npz.keys())
    except FileNotFoundError:
        raise UsageError(f"{path}: no such file") from None
    except Exception as e:  # BadZipFile, ValueError, OSError...
        raise UsageError(f"{path}: not a readable .npz file ({type(e).__name__}: {e})") from None
    arrays = []
    for i, d in enumerate(details):
        key = d["name"] if d["name"] in keys else (f"arr_{i}" if f"arr_{i}" in keys else None)
        if key is None:
            raise UsageError(f"{path}: no array for input {d['name']!r} (has {', '.join(keys) or 'nothing'}; "
                             f"key the arrays by the inputs' names, {', '.join(repr(x['name']) for x in details)}, "
                             f"or arr_0.. in input order)")
        arrays.append(np.asarray(npz[key]))
    extra = sorted(set(keys) - {d["name"] for d in details} - {f"arr_{i}" for i in range(len(details))})
    if extra:
        raise UsageError(f"{path}: arrays {', '.join(extra)} match no input of the model "
                         f"(inputs: {', '.join(d['name'] for d in details)})")
    rank = [len(_sig(d).split("x")) if _sig(d) else 0 for d in details]
    if all(a.ndim == r + 1 for a, r in zip(arrays, rank)):
        n = arrays[0].shape[0]
        if any(a.shape[0] != n for a in arrays):
            raise UsageError(f"{path}: arrays disagree on the number of steps (leading axis)")
        if n == 0:
            raise UsageError(f"{path}: holds no samples (the leading axis, the sample axis, is 0 long)")
        steps = [[a[s] for a in arrays] for s in range(n)]
    else:
        steps = [arrays]
    where = (lambda s: f"{path} (sample {s})") if len(steps) > 1 else (lambda s: path)
    return [[_fit(where(s), a, d) for a, d in zip(step, details)] for s, step in enumerate(steps)]


def _fit(path: Any, a: np.ndarray, d: Mapping[str, Any]) -> np.ndarray:
    """An array from the user, checked against the input: shape, and values that fit the type."""
    if not shape_fits(a.shape, d):
        sig = _sig(d).split("x")
        hint = ""
        if a.ndim == len(sig) and sig and sig[0] == "1" and a.shape[0] > 1 and shape_fits((1, *a.shape[1:]), d):
            hint = (f" (samples go on an axis of their own, before the batch axis: "
                    f"{a.shape[0]}x{'x'.join(sig)}, e.g. x[:, None])")
        raise UsageError(f"{path}: input {d['name']!r} is {_sig(d)}, the array is "
                         f"{'x'.join(map(str, a.shape)) or 'a scalar'}{hint}")
    bad = int(a.size - np.count_nonzero(np.isfinite(a))) if a.dtype.kind == "f" else 0
    if bad:
        raise UsageError(f"{path}: input {d['name']!r}: {bad} of {a.size} values are NaN or infinite")
    dt = np.dtype(d["dtype"])
    if a.dtype == dt:
        return a
    if dt.kind == "f" and a.dtype == np.uint8:
        # raw pixels for a float input: cast as they are, 0..255 would calibrate a model that expects
        # [0, 1] or [-1, 1] on the wrong ranges, and nothing downstream would say so
        raise UsageError(f"{path}: input {d['name']!r} takes {dt.name}, the array holds uint8 (raw pixels?): "
                         f"scale it to the model's input range and save it as {dt.name}, or pass the image "
                         f"folder with --input-range")
    if dt.kind in "iu":
        scale, zp = d.get("quantization", (0.0, 0))
        if a.dtype.kind == "f" and scale:   # real values for a quantized input: quantize them
            info = np.iinfo(dt)
            return quantize_like_litert(a, scale, zp, dt)
        if a.dtype.kind == "f" and not np.all(np.mod(a, 1) == 0):
            raise UsageError(f"{path}: input {d['name']!r} takes {dt.name}, the array holds fractional values")
        info = np.iinfo(dt)
        if a.size and (a.min() < info.min or a.max() > info.max):
            raise UsageError(f"{path}: input {d['name']!r} takes {dt.name}, values "
                             f"{a.min()}..{a.max()} do not fit")
    return a.astype(dt)


class InputSource(str):
    """A path (.npz or image folder) with how to read it: ``input_range`` (lo, hi): the real values
    an image's pixels 0..255 map to (default (0, 1); e.g. (-1, 1) for MobileNet-style models),
    ``limit``: at most that many samples (the first, in order). A ``str``, so it goes wherever a
    path does (``--calibration``, ``--inputs``) and prints as the path."""

    input_range: tuple[float, float] | None = None
    limit: int | None = None

    def __new__(cls, path: Any, input_range: tuple[float, float] | None = None, limit: int | None = None):
        self = super().__new__(cls, str(path))
        self.input_range = None if input_range is None else (float(input_range[0]), float(input_range[1]))
        self.limit = None if limit is None else int(limit)
        return self

    def __reduce__(self):
        return (InputSource, (str(self), self.input_range, self.limit))


def parse_input_range(spec: str) -> tuple[float, float]:
    """``LO,HI`` (e.g. ``-1,1``) with LO < HI, both finite."""
    try:
        lo, hi = (float(v) for v in str(spec).split(","))
    except ValueError:
        raise UsageError(f"bad --input-range {spec!r}: expected LO,HI (e.g. 0,1 or -1,1)") from None
    if not (np.isfinite(lo) and np.isfinite(hi) and lo < hi):
        raise UsageError(f"bad --input-range {spec!r}: expected finite LO < HI (e.g. 0,1 or -1,1)")
    return lo, hi


def image_files(folder: str | Path) -> list[Path]:
    """The images of a folder (by suffix), sorted by name."""
    return sorted((p for p in Path(folder).iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES),
                  key=lambda p: p.name)


def load_images(folder: str | Path, details: Sequence[Mapping[str, Any]], limit: int | None = None,
                input_range: tuple[float, float] | None = None) -> list[Step]:
    """Each image a step (files sorted by name, the first ``limit``), resized (bilinear) to the
    single NHWC image input's H x W, RGB (or grayscale for one channel), pixels 0..255 mapped
    linearly onto ``input_range`` (default (0, 1)) for a float input; quantized with the input's
    parameters for a quantized one, raw 0..255 for an unquantized integer input."""
    try:
        from PIL import Image
    except ImportError:
        raise UsageError("reading a folder of images needs Pillow: pip install pillow") from None
    if len(details) != 1 or len(concrete_shape(details[0])) != 4:
        got = ", ".join(f"{d['name']!r} {_sig(d) or 'scalar'}" for d in details) or "none"
        raise UsageError(f"{folder}: a folder of images needs a model with one image input (NHWC, rank 4); "
                         f"this model's inputs: {got}")
    d = details[0]
    _, h, w, c = concrete_shape(d)
    if c not in (1, 3, 4):
        raise UsageError(f"{folder}: input {d['name']!r} is {_sig(d)}: {c} channels is no image "
                         "(a folder of images feeds 1, 3 or 4 channels, NHWC)")
    files = image_files(folder)
    if not files:
        raise UsageError(f"{folder}: no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
    lo, hi = input_range if input_range is not None else (0.0, 1.0)
    dt = np.dtype(d["dtype"])
    mode = {1: "L", 3: "RGB", 4: "RGBA"}[c]
    bilinear = getattr(getattr(Image, "Resampling", Image), "BILINEAR")
    steps = []
    for f in files[:limit]:
        try:
            with Image.open(f) as im:
                img = im.convert(mode).resize((w, h), bilinear)
        except Exception as e:  # a broken or unsupported image
            raise UsageError(f"{f}: cannot read the image ({type(e).__name__}: {e})") from None
        x = np.asarray(img, dtype=np.float32).reshape(1, h, w, c) / np.float32(255.0)
        real = (np.float32(lo) + x * np.float32(hi - lo)).astype(np.float32)
        if dt.kind == "f":
            arr = real.astype(dt)
        else:
            scale, zp = d.get("quantization", (0.0, 0))
            if not scale:
                arr = (x * 255.0).round().astype(dt)
            else:
                info = np.iinfo(dt)
                arr = quantize_like_litert(real, scale, zp, dt)
        steps.append([arr])
    return steps


def quantize_like_litert(real: np.ndarray, scale: float, zero_point: int, dtype: Any) -> np.ndarray:
    """Real values onto an integer input's grid as XNNPACK's QUANTIZE (f32 -> qs8/qu8) puts them:
    x times 1/scale in float32, rounded to nearest, ties to even, plus the zero point, clamped; so
    an integer-input model is fed what its float-input twin's QUANTIZE computes. In float64
    (x / scale + zp) the ties fell either way: image pixels scaled into [-1, 1] at 2/255 land on .5
    a third of the time, and an int8-input face_detection measured 9.1 dB where its float twin
    measured 9.5. (LiteRT's builtin QUANTIZE rounds ties away from zero.)"""
    info = np.iinfo(dtype)
    q = np.rint(np.asarray(real, np.float32) * (np.float32(1.0) / np.float32(scale)))
    return np.clip(q.astype(np.float64) + int(zero_point), info.min, info.max).astype(dtype)


def shape_fits(shape: Sequence[int], detail: Mapping[str, Any]) -> bool:
    """Can an array of ``shape`` be fed to this input (same rank, fixed dimensions equal)?"""
    sig = detail.get("shape_signature")
    if sig is None or len(sig) == 0:
        sig = detail["shape"]
    sig = [int(d) for d in sig]
    return len(shape) == len(sig) and all(d < 0 or d == int(n) for d, n in zip(sig, shape))


def _sig(detail: Mapping[str, Any]) -> str:
    sig = detail.get("shape_signature")
    sig = detail["shape"] if sig is None or len(sig) == 0 else sig
    return "x".join("?" if int(d) < 0 else str(int(d)) for d in sig)


def convert_inputs(steps: list[Step], ref: Sequence[Mapping[str, Any]], other: Sequence[Mapping[str, Any]]) -> list[Step]:
    """The reference model's inputs for another model: the same real values, quantized or
    dequantized where one model takes quantized integers and the other floats (a float model
    against its int8 version)."""
    if len(ref) != len(other):
        raise UsageError(f"the models have different inputs ({len(ref)} against {len(other)}): not comparable")
    out = []
    for step in steps:
        conv = []
        for x, rd, od in zip(step, ref, other):
            if not shape_fits(np.shape(x), od):
                raise UsageError(f"input {od['name']!r} is {_sig(od)}, the reference feeds "
                                 f"{'x'.join(map(str, np.shape(x)))}: not comparable")
            rdt, odt = np.dtype(rd["dtype"]), np.dtype(od["dtype"])
            rq, oq = tuple(rd.get("quantization", (0.0, 0))), tuple(od.get("quantization", (0.0, 0)))
            x = np.asarray(x)
            if rdt == odt and rq == oq:
                conv.append(x)
                continue
            real = x.astype(np.float64)
            if rdt.kind in "iu" and rq[0]:
                real = (real - rq[1]) * rq[0]
            if odt.kind in "iu" and oq[0]:
                info = np.iinfo(odt)
                conv.append(quantize_like_litert(real, oq[0], oq[1], odt))
            elif odt.kind == "f" and (rdt.kind == "f" or rq[0]):
                conv.append(real.astype(odt))
            else:
                raise UsageError(f"input {od['name']!r} takes {odt}, the reference's takes {rdt}: not comparable")
        out.append(conv)
    return out


def load_inputs(source: str | None, details: Sequence[Mapping[str, Any]], *, steps: int = 1, seed: int = 0,
                shapes: Mapping[str, tuple[int, ...]] | None = None) -> list[Step]:
    """``source`` None: generated; an .npz file; or a folder of images. An ``InputSource`` also
    says how to scale images (``input_range``) and how many samples to take at most (``limit``)."""
    if source is None:
        return generate(details, steps, seed, shapes)
    p = Path(source)
    limit = getattr(source, "limit", None)
    if p.is_dir():
        return load_images(p, details, limit=limit, input_range=getattr(source, "input_range", None))
    if p.suffix == ".npz":
        return load_npz(p, details)[:limit]
    if not p.exists():
        raise UsageError(f"{source}: no such file or folder")
    raise UsageError(f"{source}: inputs must be an .npz file or a folder of images")
