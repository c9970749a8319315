"""Profiling and benchmarking models on LiteRT.

* :func:`get_profile` -- per-operator latency (XNNPACK view and builtin view), cached as a JSON
  artifact keyed to the model's content; passes get the same through the ``profile`` analysis
  (``ctx.analyses.get("profile", model, ctx)``, see ``tflc.analyses``).
* :func:`measure_latency`, :func:`compare_latency` -- whole-model latency, and an interleaved A/B
  comparison with a confidence interval (for "keep the rewrite only if it is not slower").
* :mod:`tflc.profiler.bench` -- ``tflc bench``: several models, thread counts, contention.
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any, Sequence

from .collect import VIEWS
from .latency import LatencyComparison, LatencyStats, compare_latency, measure_latency
from .profile import SUM_TOLERANCE, OpStat, Partition, Profile, View

__all__ = ["VIEWS", "SUM_TOLERANCE", "LatencyComparison", "LatencyStats", "OpStat", "Partition", "Profile",
           "View", "cache_dir", "compare_latency", "get_profile", "measure_latency",
           "profile_key"]


def cache_dir() -> Path:
    """``$TFLC_CACHE/profiles`` if TFLC_CACHE is set, else ``~/.cache/tflc/profiles``."""
    env = os.environ.get("TFLC_CACHE")
    base = Path(env).expanduser() if env else Path.home() / ".cache" / "tflc"
    return base / "profiles"


def _model_bytes(model: str | os.PathLike | bytes | bytearray | memoryview) -> tuple[bytes, str]:
    if isinstance(model, (bytes, bytearray, memoryview)):
        return bytes(model), "the in-memory model"
    p = Path(model)
    try:
        return p.read_bytes(), str(p)
    except OSError as e:
        from ..errors import UsageError
        raise UsageError(f"{p}: cannot read the model ({e.strerror or e})") from None


def _input_key(input_source: str | None, shapes: dict | None, seed: int) -> str:
    h = hashlib.sha256()
    if input_source is not None:
        p = Path(input_source)
        if p.is_file():
            h.update(p.read_bytes())
        else:   # a folder of images: names, sizes and times
            for f in sorted(p.iterdir()) if p.is_dir() else []:
                st = f.stat()
                h.update(f"{f.name}:{st.st_size}:{st.st_mtime_ns}".encode())
    h.update(repr(sorted((shapes or {}).items())).encode())
    h.update(str(seed).encode())
    return h.hexdigest()[:12]


def profile_key(data: bytes, *, threads: int = 1, views: Sequence[str] = VIEWS, method: str = "auto",
                input_source: str | None = None, shapes: dict | None = None, seed: int = 0, runs: int = 50,
                warmup: int = 10, max_seconds: float = 20.0) -> str:
    """The cache key: the model's content, the settings (what runs and how it is measured), and the
    LiteRT version that measured it."""
    from ..runtime.capi import litert_version
    from .collect import ROUNDS
    from .profile import SCHEMA
    digest = hashlib.sha256(data).hexdigest()
    settings = (f"t{threads}-{'+'.join(views)}-{method}-in{_input_key(input_source, shapes, seed)}"
                f"-r{runs}w{warmup}m{max_seconds:g}x{ROUNDS}")
    return f"{digest}-{settings}-litert{litert_version() or 'none'}-s{SCHEMA}"


def get_profile(model: str | os.PathLike | bytes, *, threads: int = 1, cache: bool = True,
                views: Sequence[str] = VIEWS, runs: int = 50, warmup: int = 10, max_seconds: float = 20.0,
                input_source: str | None = None, shapes: dict | None = None, seed: int = 0,
                method: str = "auto", name: str | None = None, timeout: float = 1800.0) -> Profile:
    """Profile ``model`` (a path or .tflite bytes), or return the cached profile of the same content.

    ``method``: "auto" (LiteRT's profiler through the C API, else each op timed alone), "capi", "alone".
    ``max_seconds`` bounds the time spent on each view, warm-ups included (at least 5 runs are made).
    The cache is keyed to the model's content and to every setting, ``runs``, ``warmup`` and
    ``max_seconds`` included: other settings measure again.
    """
    from ..runtime.isolate import run_isolated
    from .profile import build_profile
    views = tuple(views)
    bad = [v for v in views if v not in VIEWS]
    if bad or not views:
        from ..errors import UsageError
        raise UsageError(f"unknown profile view(s) {', '.join(bad) or '(none)'}: choose from {', '.join(VIEWS)}")
    data, label = _model_bytes(model)
    label = name or label
    path = cache_dir() / (profile_key(data, threads=threads, views=views, method=method, input_source=input_source,
                                      shapes=shapes, seed=seed, runs=runs, warmup=warmup,
                                      max_seconds=max_seconds) + ".json")
    if cache and path.is_file():
        try:
            prof = Profile.load(path)
            prof.model, prof.cached = label, True
            return prof
        except (ValueError, KeyError, TypeError, OSError):
            pass        # an unreadable or older artifact: measure again
    raw = run_isolated(_collect_kw, data, dict(threads=threads, runs=runs, warmup=warmup, max_seconds=max_seconds,
                                               views=views, input_source=input_source, shapes=shapes, seed=seed,
                                               method=method, name=label), timeout=timeout, what=f"profiling {label}")
    prof = build_profile(raw, model_name=label, data=data)
    # a fallback forced by this environment (C API refused, TFLC_NO_CAPI) is not the model's profile
    # for good: measure again next time rather than serve it from the cache
    transient = method == "auto" and any("C API unusable" in n for n in
                                         prof.notes + [n for v in prof.views.values() for n in v.notes])
    if cache and not transient:
        try:
            prof.save(path)
        except OSError:
            pass        # a read-only cache is not an error
    return prof


def _collect_kw(data: bytes, kw: dict) -> Any:
    from .collect import collect
    return collect(data, **kw)
