"""Facts about operators that passes need: side effects, elementwise-ness, ...

Kept as data so that a pass asks ``has_side_effects(op)`` instead of hard-coding lists.
"""
from __future__ import annotations

from .core import Operator

#: Ops that must run even when nothing reads their outputs (state, control flow, randomness).
SIDE_EFFECT_OPS = frozenset({
    "ASSIGN_VARIABLE", "CALL_ONCE", "WHILE", "IF", "CALL", "HASHTABLE_IMPORT", "HASHTABLE",
    "RANDOM_UNIFORM", "RANDOM_STANDARD_NORMAL", "MULTINOMIAL", "STABLEHLO_WHILE", "STABLEHLO_CASE",
    "STABLEHLO_RNG_BIT_GENERATOR", "STABLEHLO_COMPOSITE",
})


def has_side_effects(op: Operator) -> bool:
    """Conservative: custom ops, ops writing variables or with no outputs are effectful."""
    if op.opcode.is_custom or op.type in SIDE_EFFECT_OPS:
        return True
    if op.mutating_variable_inputs and any(op.mutating_variable_inputs):
        return True
    if any(t is not None and t.is_variable for t in op.inputs):
        return True  # e.g. LSTM/SVDF update their state tensors in place
    return not any(t is not None for t in op.outputs)
