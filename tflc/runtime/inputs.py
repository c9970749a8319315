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
        out[name] = shape
    return out


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
    """Arrays keyed by input name (or ``arr_0``.. in input order). An extra leading axis is steps."""
    try:
        npz = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as e:
        raise UsageError(f"{path}: cannot read inputs ({e})") from None
    keys = list(npz.keys())
    arrays = []
    for i, d in enumerate(details):
        key = d["name"] if d["name"] in keys else (f"arr_{i}" if f"arr_{i}" in keys else
                                                   (keys[i] if len(keys) == len(details) else None))
        if key is None:
            raise UsageError(f"{path}: no array for input {d['name']!r} (has {', '.join(keys) or 'nothing'})")
        arrays.append(np.asarray(npz[key]))
    rank = [len(d.get("shape_signature", d["shape"])) for d in details]
    if all(a.ndim == r + 1 for a, r in zip(arrays, rank)):
        n = arrays[0].shape[0]
        if any(a.shape[0] != n for a in arrays):
            raise UsageError(f"{path}: arrays disagree on the number of steps (leading axis)")
        return [[np.asarray(a[s], dtype=d["dtype"]) for a, d in zip(arrays, details)] for s in range(n)]
    return [[np.asarray(a, dtype=d["dtype"]) for a, d in zip(arrays, details)]]


def load_images(folder: str | Path, details: Sequence[Mapping[str, Any]], limit: int | None = None) -> list[Step]:
    """Each image a step, resized to the (single) image input, scaled to the input's type."""
    try:
        from PIL import Image
    except ImportError:
        raise UsageError("reading an image folder needs Pillow: pip install pillow") from None
    if len(details) != 1 or len(concrete_shape(details[0])) != 4:
        raise UsageError("an image folder can feed only a model with one NHWC image input")
    files = sorted(p for p in Path(folder).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise UsageError(f"{folder}: no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
    d = details[0]
    _, h, w, c = concrete_shape(d)
    dt = np.dtype(d["dtype"])
    steps = []
    for f in files[:limit]:
        img = Image.open(f).convert("L" if c == 1 else "RGB").resize((w, h))
        x = np.asarray(img, dtype=np.float32).reshape(1, h, w, c) / 255.0
        if dt.kind == "f":
            arr = x.astype(dt)
        else:
            scale, zp = d.get("quantization", (0.0, 0))
            if not scale:
                arr = (x * 255.0).round().astype(dt)
            else:
                info = np.iinfo(dt)
                arr = np.clip(np.round(x / scale + zp), info.min, info.max).astype(dt)
        steps.append([arr])
    return steps


def load_inputs(source: str | None, details: Sequence[Mapping[str, Any]], *, steps: int = 1, seed: int = 0,
                shapes: Mapping[str, tuple[int, ...]] | None = None) -> list[Step]:
    """``source`` None: generated; an .npz file; or a folder of images."""
    if source is None:
        return generate(details, steps, seed, shapes)
    p = Path(source)
    if p.is_dir():
        return load_images(p, details)
    if p.suffix == ".npz" and p.is_file():
        return load_npz(p, details)
    raise UsageError(f"{source}: inputs must be an .npz file or a folder of images")
