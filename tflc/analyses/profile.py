"""The ``profile`` analysis: per-operator latency of the model in LiteRT (see ``tflc.profiler``)."""
from __future__ import annotations

from typing import Any

from . import analysis


@analysis("profile", "per-operator latency in LiteRT, XNNPACK and builtin views (tflc.profiler)")
def profile(model: Any, ctx: Any) -> Any:
    from ..io import serialize
    from ..profiler import get_profile
    opts = getattr(ctx, "run_options", None)
    return get_profile(serialize(model), threads=getattr(opts, "threads", 1),
                       input_source=getattr(ctx, "input_source", None), shapes=getattr(ctx, "shapes", None) or None,
                       seed=getattr(ctx, "seed", 0), name=getattr(model, "source_path", None) or "the model",
                       **dict(getattr(ctx, "profile_options", None) or {}))
