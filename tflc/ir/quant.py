"""Quantization parameters, read one way for every pass.

A tensor's ``quantization`` is the flatc object ``fb.QuantizationParametersT`` (or None). What
decides the values a kernel computes is the scale and zero point per channel and, for per-channel
parameters, the quantized dimension. ``min``/``max`` are calibration ranges that no kernel reads,
so they never make two tensors' quantization differ; a custom quantization (``details``) does.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .core import Tensor


@dataclass(frozen=True)
class QuantParams:
    """Normalized parameters: equal objects quantize every value the same way."""

    scale: tuple[float, ...]
    zero_point: tuple[int, ...]       # one per scale (missing zero points read as 0)
    axis: int                         # the quantized dimension; 0 when per tensor (it does not matter)
    details: tuple | None = None      # custom quantization: (details type, its bytes)

    @property
    def per_channel(self) -> bool:
        return len(self.scale) > 1


def quant_params(t: Tensor | None) -> QuantParams | None:
    """``t``'s quantization, normalized; None when it has no scale (not quantized)."""
    q = t.quantization if t is not None else None
    if q is None or q.scale is None or len(q.scale) == 0:
        return None
    scale = tuple(float(s) for s in np.asarray(q.scale).reshape(-1))
    zp = q.zeroPoint
    zero_point = (tuple(int(z) for z in np.asarray(zp).reshape(-1)) if zp is not None and len(zp)
                  else (0,) * len(scale))
    axis = int(q.quantizedDimension or 0) if len(scale) > 1 else 0
    return QuantParams(scale, zero_point, axis, _details(q))


def _details(q: Any) -> tuple | None:
    kind = int(getattr(q, "detailsType", 0) or 0)
    if not kind:
        return None
    custom = getattr(q.details, "custom", None)
    return kind, bytes(np.asarray(custom, dtype=np.uint8)) if custom is not None else b""


def is_quantized(t: Tensor | None) -> bool:
    """``t`` carries quantization parameters (a scale)."""
    return quant_params(t) is not None


def is_per_channel(t: Tensor | None) -> bool:
    """``t`` is quantized with one scale per channel (more than one scale)."""
    p = quant_params(t)
    return p is not None and p.per_channel


def same_quantization(a: Tensor | None, b: Tensor | None) -> bool:
    """Both unquantized, or quantized with the same scales, zero points and (per channel) axis:
    a value stored in one means the same number in the other."""
    return quant_params(a) == quant_params(b)
