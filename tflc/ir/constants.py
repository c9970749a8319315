"""Small constant inputs (axes, permutations, new shapes, paddings) read as Python ints.

Passes decide on these values (is this TRANSPOSE an identity? which axes does this MEAN
reduce?), so they are read one way: only from a constant integer tensor, flattened.
"""
from __future__ import annotations

import numpy as np

from .core import Tensor


def const_ints(t: Tensor | None) -> tuple[int, ...] | None:
    """The values of a constant integer tensor, flattened; None if ``t`` is absent, not constant
    or not of an integer type."""
    if t is None or not t.is_constant or t.np_dtype is None or t.np_dtype.kind not in "iu":
        return None
    return tuple(int(v) for v in np.asarray(t.data).reshape(-1))


def permutation(t: Tensor | None) -> tuple[int, ...] | None:
    """A constant permutation of ``range(n)`` (a TRANSPOSE's input 1), else None."""
    perm = const_ints(t)
    if perm is None or sorted(perm) != list(range(len(perm))):
        return None
    return perm
