"""Small helpers shared by cancel-transposes' rules (``cancel_transposes.py``) and its reduction-region
rule (``_layout_reductions.py``): reading TRANSPOSE permutations and static RESHAPEs, the elementwise
op sets, and the "pinned" / single-reader / quantization checks.

A private module (the leading ``_`` keeps the pass loader from importing it as a pass); it is separate so
that both rule modules can use these helpers without importing each other.
"""
from __future__ import annotations

import numpy as np

from tflc.ir.core import Operator, Subgraph, Tensor
from tflc.schema import TYPE_CODES

I32 = TYPE_CODES["INT32"]

UNARY = frozenset({
    "RELU", "RELU6", "RELU_N1_TO_1", "RELU_0_TO_1", "TANH", "LOGISTIC", "ABS", "NEG", "EXP", "LOG", "SQRT",
    "RSQRT", "SQUARE", "SIN", "COS", "CEIL", "FLOOR", "ROUND", "SIGN", "HARD_SWISH", "ELU", "GELU",
    "LEAKY_RELU", "LOGICAL_NOT", "CAST", "QUANTIZE", "DEQUANTIZE",
})
BINARY = frozenset({
    "ADD", "SUB", "MUL", "DIV", "MAXIMUM", "MINIMUM", "SQUARED_DIFFERENCE", "POW", "FLOOR_DIV", "FLOOR_MOD",
    "PRELU",
})


def _pinned(sg: Subgraph, t: Tensor) -> bool:
    if sg.is_graph_output(t):
        return True
    model = sg.model
    return model is not None and any(
        sd.subgraph is sg and any(x is t for _, x in (*sd.inputs, *sd.outputs)) for sd in model.signature_defs)


def _per_tensor(t: Tensor) -> bool:
    q = t.quantization
    return q is None or q.scale is None or len(q.scale) <= 1


def _qparams(t: Tensor):
    q = t.quantization
    if q is None or not q.scale:
        return None
    return tuple(q.scale), tuple(q.zeroPoint if q.zeroPoint is not None else ())


def _perm(op: Operator) -> tuple[int, ...] | None:
    """The constant permutation of a TRANSPOSE, or None."""
    if op.type != "TRANSPOSE" or len(op.inputs) != 2 or op.inputs[0] is None or op.inputs[1] is None:
        return None
    p = op.inputs[1]
    if not p.is_constant:
        return None
    perm = tuple(int(v) for v in np.asarray(p.data).reshape(-1))
    rank = len(perm)
    if sorted(perm) != list(range(rank)):
        return None
    return perm


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
    if len(uses) != 1 or _pinned(sg, t):
        return None
    return uses[0]
