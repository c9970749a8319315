"""Facts about operators, as data: the one place passes (and capabilities, and docs) look them up.

A pass asks ``is_elementwise(op)`` or ``op.type in LAYOUT_OPS`` instead of keeping its own list,
so that a new op is taught to tflc once. Each set says what membership promises; a pass that
handles only part of a set says so where it narrows it.
"""
from __future__ import annotations

from types import MappingProxyType
from typing import Mapping

from ..schema import fb
from .core import Operator

# --------------------------------------------------------------------------- elementwise

#: One input, one output of the same shape; output element i depends on input element i only.
ELEMENTWISE_UNARY = frozenset({
    "RELU", "RELU6", "RELU_N1_TO_1", "RELU_0_TO_1", "TANH", "LOGISTIC", "ABS", "NEG", "EXP", "LOG", "SQRT",
    "RSQRT", "SQUARE", "SIN", "COS", "CEIL", "FLOOR", "ROUND", "SIGN", "HARD_SWISH", "ELU", "GELU",
    "LEAKY_RELU", "LOGICAL_NOT", "CAST", "QUANTIZE", "DEQUANTIZE",
})

#: Two inputs broadcast against each other (numpy rules); output element i depends on the two
#: input elements broadcast to i. (PRELU: input 1 is the slope, broadcast to input 0's shape.)
ELEMENTWISE_BINARY = frozenset({
    "ADD", "SUB", "MUL", "DIV", "MAXIMUM", "MINIMUM", "SQUARED_DIFFERENCE", "POW", "FLOOR_DIV", "FLOOR_MOD",
    "PRELU",
})

#: Elementwise comparisons and logic (boolean results), for shape reasoning.
ELEMENTWISE_COMPARISONS = frozenset({
    "LESS", "LESS_EQUAL", "GREATER", "GREATER_EQUAL", "EQUAL", "NOT_EQUAL", "LOGICAL_AND", "LOGICAL_OR",
})


def is_elementwise(op: Operator) -> bool:
    return op.type in ELEMENTWISE_UNARY or op.type in ELEMENTWISE_BINARY


# --------------------------------------------------------------------------- layout, data movement

#: Change only the layout of one tensor: its elements pass unchanged, in another order
#: (TRANSPOSE) or grouping (RESHAPE). These are the two the layout passes rewrite.
LAYOUT_OPS = frozenset({"TRANSPOSE", "RESHAPE"})

#: Ops that only move, select or compare values (and shape queries): their result is the same
#: whichever kernels compute it, as long as no requantization happens (one set of quant params).
DATA_MOVEMENT_OPS = frozenset({
    "RESHAPE", "TRANSPOSE", "GATHER", "GATHER_ND", "CONCATENATION", "PACK", "UNPACK", "SLICE",
    "STRIDED_SLICE", "SPLIT", "SPLIT_V", "SQUEEZE", "EXPAND_DIMS", "TILE", "BROADCAST_TO", "PAD",
    "PADV2", "MIRROR_PAD", "REVERSE_V2", "FILL", "ZEROS_LIKE", "ONES_LIKE", "SHAPE", "RANK", "SELECT",
    "SELECT_V2", "DEPTH_TO_SPACE", "SPACE_TO_DEPTH", "BATCH_TO_SPACE_ND", "SPACE_TO_BATCH_ND",
    "EMBEDDING_LOOKUP", "BROADCAST_ARGS", "ONE_HOT", "MATRIX_DIAG", "MATRIX_SET_DIAG",
    "REVERSE_SEQUENCE", "DYNAMIC_UPDATE_SLICE", "ARG_MAX", "ARG_MIN", "WHERE",
}) | ELEMENTWISE_COMPARISONS | {"LOGICAL_NOT"}

# --------------------------------------------------------------------------- reductions

#: Reductions that combine numbers (float or quantized): the order of the sum/product matters
#: for rounding. Input 1 holds the axes; ``ReducerOptions.keepDims``.
ARITHMETIC_REDUCTIONS = frozenset({"MEAN", "SUM", "REDUCE_MAX", "REDUCE_MIN", "REDUCE_PROD"})
#: Reductions of booleans.
LOGICAL_REDUCTIONS = frozenset({"REDUCE_ANY", "REDUCE_ALL"})
REDUCTIONS = ARITHMETIC_REDUCTIONS | LOGICAL_REDUCTIONS

# --------------------------------------------------------------------------- shapes

#: Ops whose output shapes are a function of their input shapes and options only.
SHAPE_ONLY_OPS = frozenset({
    "ABS", "NEG", "EXP", "LOG", "SQRT", "RSQRT", "SQUARE", "SIN", "COS", "TANH", "LOGISTIC", "RELU",
    "RELU6", "RELU_N1_TO_1", "RELU_0_TO_1", "LEAKY_RELU", "ELU", "GELU", "HARD_SWISH", "FLOOR", "CEIL",
    "ROUND", "SIGN", "LOGICAL_NOT", "CAST", "QUANTIZE", "DEQUANTIZE", "ZEROS_LIKE", "ONES_LIKE",
    "SOFTMAX", "LOG_SOFTMAX", "L2_NORMALIZATION", "LOCAL_RESPONSE_NORMALIZATION", "FAKE_QUANT",
    "ADD", "SUB", "MUL", "DIV", "POW", "MAXIMUM", "MINIMUM", "SQUARED_DIFFERENCE", "FLOOR_DIV",
    "FLOOR_MOD", "LESS", "LESS_EQUAL", "GREATER", "GREATER_EQUAL", "EQUAL", "NOT_EQUAL", "LOGICAL_AND",
    "LOGICAL_OR", "SELECT", "SELECT_V2", "PRELU", "ATAN2", "ADD_N", "RIGHT_SHIFT", "BITWISE_XOR",
    "CONV_2D", "DEPTHWISE_CONV_2D", "CONV_3D", "FULLY_CONNECTED", "BATCH_MATMUL", "AVERAGE_POOL_2D",
    "MAX_POOL_2D", "L2_POOL_2D", "CONCATENATION", "PACK", "UNPACK", "GATHER", "GATHER_ND",
    "EMBEDDING_LOOKUP", "SQUEEZE", "DEPTH_TO_SPACE", "SPACE_TO_DEPTH", "CUMSUM", "REVERSE_V2",
    "MATRIX_DIAG", "MATRIX_SET_DIAG", "DYNAMIC_UPDATE_SLICE", "SHAPE", "RANK",
})

#: Ops whose output shapes also depend on the *values* of some inputs (their indices); the
#: shape-only ops are listed with no such input.
VALUE_SHAPE_INPUTS: Mapping[str, frozenset[int]] = MappingProxyType({
    "RESHAPE": frozenset({1}), "FILL": frozenset({0}), "BROADCAST_TO": frozenset({1}),
    "SLICE": frozenset({1, 2}), "STRIDED_SLICE": frozenset({1, 2, 3}), "TILE": frozenset({1}),
    "PAD": frozenset({1}), "PADV2": frozenset({1}), "MIRROR_PAD": frozenset({1}),
    "RESIZE_BILINEAR": frozenset({1}), "RESIZE_NEAREST_NEIGHBOR": frozenset({1}),
    "TRANSPOSE": frozenset({1}), "EXPAND_DIMS": frozenset({1}), "MEAN": frozenset({1}),
    "SUM": frozenset({1}), "REDUCE_PROD": frozenset({1}), "REDUCE_MAX": frozenset({1}),
    "REDUCE_MIN": frozenset({1}), "REDUCE_ANY": frozenset({1}), "REDUCE_ALL": frozenset({1}),
    "SPLIT": frozenset({0}), "SPLIT_V": frozenset({1, 2}), "ARG_MAX": frozenset({1}),
    "ARG_MIN": frozenset({1}), "ONE_HOT": frozenset({1}), "TRANSPOSE_CONV": frozenset({0}),
    "SPACE_TO_BATCH_ND": frozenset({1, 2}), "BATCH_TO_SPACE_ND": frozenset({1, 2}),
    "TOPK_V2": frozenset({1}), "SCATTER_ND": frozenset({2}), "SPARSE_TO_DENSE": frozenset({1}),
    "RANGE": frozenset({0, 1, 2}), "UNSORTED_SEGMENT_SUM": frozenset({2}),
    "UNSORTED_SEGMENT_PROD": frozenset({2}), "UNSORTED_SEGMENT_MAX": frozenset({2}),
    "UNSORTED_SEGMENT_MIN": frozenset({2}), "SEGMENT_SUM": frozenset({1}),
    "BROADCAST_ARGS": frozenset({0, 1}),
    **{name: frozenset() for name in SHAPE_ONLY_OPS},
})

# --------------------------------------------------------------------------- weights

#: Which inputs hold weights (constant in a converted model), by role. BATCH_MATMUL has none:
#: both operands are activations (or constants that are not weights of a fixed layout).
WEIGHT_INPUTS: Mapping[str, Mapping[int, str]] = MappingProxyType({
    "CONV_2D": {1: "filter", 2: "bias"},
    "DEPTHWISE_CONV_2D": {1: "filter", 2: "bias"},
    "FULLY_CONNECTED": {1: "filter", 2: "bias"},
    "TRANSPOSE_CONV": {1: "filter", 3: "bias"},        # input 0: output shape, 2: the activations
    "CONV_3D": {1: "filter", 2: "bias"},
    "CONV_3D_TRANSPOSE": {1: "filter", 3: "bias"},     # input 0: output shape, 2: the activations
    "EMBEDDING_LOOKUP": {1: "table"},                  # input 0: the ids
    "PRELU": {1: "alpha"},
    "BATCH_MATMUL": {},
})


def weight_inputs(op: Operator) -> tuple[int, ...]:
    """Indices of ``op``'s weight inputs (filter, bias, table...), in order; () if none or unknown."""
    return tuple(sorted(WEIGHT_INPUTS.get(op.type, {})))


def weight_input(op: Operator, role: str) -> int | None:
    """The index of ``op``'s ``role`` input (``"filter"``, ``"bias"``...), or None."""
    return next((i for i, r in WEIGHT_INPUTS.get(op.type, {}).items() if r == role), None)


#: Ops computing ``W x + b`` per output channel with the filter in input 1 (output channels first,
#: DEPTHWISE_CONV_2D: last), the bias in input 2 and the channels last in the activations: a
#: per-channel scale or shift next to them folds into W and b.
LINEAR_OPS = frozenset({"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"})

# --------------------------------------------------------------------------- fused activations

_ACT = {k: v for k, v in vars(fb.ActivationFunctionType).items() if not k.startswith("_")}

#: Separate activation op -> the ActivationFunctionType it becomes when fused (the RELU family:
#: kernels apply these as a clamp of the result, exactly what the separate op computes).
FUSABLE_ACTIVATIONS: Mapping[str, int] = MappingProxyType(
    {name: _ACT[name] for name in ("RELU", "RELU6", "RELU_N1_TO_1", "RELU_0_TO_1") if name in _ACT})

#: Fused activations that are clamps (NONE, RELU, RELU_N1_TO_1, RELU6): exact in every kernel.
CLAMP_ACTIVATIONS = frozenset({_ACT["NONE"], _ACT["RELU"], _ACT["RELU_N1_TO_1"], _ACT["RELU6"]})

#: Ops whose fused activation LiteRT applies (builtin kernels and XNNPACK).
APPLIES_FUSED_ACTIVATION = frozenset({
    "CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "TRANSPOSE_CONV", "ADD", "SUB", "MUL", "DIV",
    "AVERAGE_POOL_2D", "MAX_POOL_2D",
})

#: Activations the schema can express but LiteRT does not apply when fused (why, per activation).
FUSED_ACTIVATION_IGNORED: Mapping[str, str] = MappingProxyType({
    "TANH": "LiteRT's kernels ignore a fused TANH on {op} (only the RELU family is applied)",
})

#: Ops with the field whose kernels refuse (or silently skip) a fused activation (why, per op).
FUSED_ACTIVATION_REJECTED: Mapping[str, str] = MappingProxyType({
    "CONCATENATION": "LiteRT's CONCATENATION kernel rejects a fused activation (and XNNPACK would silently "
                     "ignore it)",
})

#: The first operator version of an op that may carry a fused activation (older runtimes would
#: skip the clamp silently, so a rewrite that adds one raises the version).
FUSED_ACTIVATION_MIN_VERSION: Mapping[str, int] = MappingProxyType({"TRANSPOSE_CONV": 4})

# --------------------------------------------------------------------------- exactness

#: float32 ops that every LiteRT kernel (builtin or XNNPACK) computes with the same IEEE
#: roundings -- as long as no value is subnormal, infinite, NaN or overflows (XNNPACK flushes
#: subnormals to zero; the builtin kernels clamp overflows to FLT_MAX).
FLOAT_EXACT_OPS = frozenset({
    "ADD", "SUB", "MUL", "DIV", "MAXIMUM", "MINIMUM", "SQUARED_DIFFERENCE", "NEG", "ABS", "SQUARE",
    "FLOOR", "CEIL", "ROUND", "RELU", "RELU6", "RELU_N1_TO_1", "RELU_0_TO_1", "LEAKY_RELU", "PRELU",
    "CAST",
})

# --------------------------------------------------------------------------- side effects

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
