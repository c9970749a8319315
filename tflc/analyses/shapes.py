"""The ``shapes`` analysis: every tensor's shape in the main subgraph as LiteRT computes it.

The main subgraph's inputs take the context's input shapes (``--input-shape``; the model's own
shapes otherwise); the model is written, resized, allocated and invoked once in an isolated
child (``tflc.runtime.tensor_shapes``), and the shapes are read back after the invocation.
The value maps a tensor's ``uid`` to its shape (uids survive passes that add or drop other
tensors); ``error`` says why when LiteRT cannot run the model with those shapes.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from . import analysis

_PREFIX = "tflc_shape_"


@dataclass
class ShapesResult:
    shapes: dict[int, tuple[int, ...]] = field(default_factory=dict)
    error: str | None = None


@analysis("shapes", "every tensor's shape as LiteRT computes it for the given input shapes")
def shapes(model: Any, ctx: Any) -> ShapesResult:
    from ..errors import TflcError
    from ..io import serialize
    from ..runtime import tensor_shapes
    overrides = dict(getattr(ctx, "shapes", None) or {})
    # Unique names map LiteRT's tensors back to ours; the renaming happens on a private copy.
    probe = model.clone()
    sg = probe.main
    for t in list(sg.tensors):
        sg.rename(t, f"{_PREFIX}{t.uid}")          # the clone keeps the model's uids
    for t, orig in zip(sg.inputs, model.main.inputs):
        if orig.name in overrides:
            sg.set_shape(t, overrides[orig.name], overrides[orig.name])
    try:
        named = tensor_shapes(serialize(probe), name=model.source_path or "the model")
    except TflcError as e:
        return ShapesResult(error=str(e))
    out = {int(n[len(_PREFIX):]): s for n, s in named.items() if n.startswith(_PREFIX)}
    for t in model.main.inputs:                    # the inputs get exactly the requested shapes
        if t.name in overrides:
            out[t.uid] = tuple(int(d) for d in overrides[t.name])
    return ShapesResult(out)
