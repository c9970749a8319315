"""Shape propagation by LiteRT itself: run a model once and read every tensor's shape."""
from __future__ import annotations

import numpy as np

from ..errors import RuntimeFailure, TflcError
from .custom_ops import MissingKernelError
from .inputs import concrete_shape, generate
from .interpreter import RunOptions, Session
from .isolate import run_isolated


def _shapes_child(data: bytes, name: str) -> dict[str, tuple[int, ...]]:
    # Shapes are read after ``invoke``: LiteRT prepares the ops behind a dynamic tensor only then.
    # Zeros first (valid indices for GATHER-like inputs), else generated data.
    session = Session(data, RunOptions(xnnpack=False), name=name)
    details = session.input_details
    first_error = ""
    for attempt in ("zeros", "generated"):
        arrays = ([np.zeros(concrete_shape(d), d["dtype"]) for d in details] if attempt == "zeros"
                  else generate(details, steps=1, seed=0)[0])
        try:
            session.run(arrays)
        except MissingKernelError:
            raise                       # other inputs will not help
        except TflcError as e:
            first_error = first_error or str(e)
            continue
        return {d["name"]: tuple(int(x) for x in d["shape"]) for d in session.tensor_details()}
    raise RuntimeFailure(first_error)


def tensor_shapes(data: bytes, name: str = "the model") -> dict[str, tuple[int, ...]]:
    """Every tensor's shape (by name) after one invocation of ``data`` with its own input shapes,
    on the builtin kernels, in an isolated child. ``name`` names the model in errors."""
    return run_isolated(_shapes_child, data, name, what="LiteRT shape propagation")
