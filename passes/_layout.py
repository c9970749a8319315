"""Small helpers shared by cancel-transposes' rules (``cancel_transposes.py``) and its reduction-region
rule (``_layout_reductions.py``): reading TRANSPOSE permutations and static RESHAPEs, permuting shapes,
and the single-reader check. (The op sets are ``tflc.ir.opinfo``'s, quantization ``tflc.ir.quant``'s.)

A private module (the leading ``_`` keeps the pass loader from importing it as a pass); it is separate so
that both rule modules can use these helpers without importing each other.
"""
from __future__ import annotations

import numpy as np

from tflc.ir.constants import permutation
from tflc.ir.core import Operator, Subgraph, Tensor
from tflc.schema import TYPE_CODES

I32 = TYPE_CODES["INT32"]


def _perm(op: Operator) -> tuple[int, ...] | None:
    """The constant permutation of a TRANSPOSE, or None."""
    if op.type != "TRANSPOSE" or len(op.inputs) != 2 or op.inputs[0] is None:
        return None
    return permutation(op.inputs[1])


def _static(t: Tensor) -> bool:
    return t.shape is not None and (t.shape_signature is None or all(d >= 0 for d in t.shape_signature))


def _reshape_ok(op: Operator) -> bool:
    return (op.type == "RESHAPE" and op.inputs and op.inputs[0] is not None and len(op.outputs) == 1
            and op.outputs[0] is not None and _static(op.inputs[0]) and _static(op.outputs[0]))


def _permute_shape(shape, inv: tuple[int, ...]):
    return None if shape is None else tuple(shape[i] for i in inv)


def _inverse(perm: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(int(i) for i in np.argsort(perm))


def _sole_use(sg: Subgraph, t: Tensor) -> tuple[Operator, int] | None:
    uses = t.uses
    if len(uses) != 1 or sg.is_pinned(t):
        return None
    return uses[0]
