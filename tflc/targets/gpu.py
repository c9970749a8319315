"""LiteRT's GPU delegate (OpenCL/OpenGL, ``TfLiteGpuDelegateV2`` with its default options): which ops
it takes, and for every op it leaves on the CPU the precise reason.

The delegate asks three things of an op, in this order (``GetOpsToReplace`` in
``tflite/delegates/gpu/common/model_builder.cc``):

1. its parser (``NewOperationParser``): is there one for the op, and is the op's version at most
   the parser's ``CheckMaxSupportedOpVersion`` (:data:`MAX_VERSION`)? QUANTIZE and DEQUANTIZE have
   parsers because the default options allow quantized models (``ENABLE_QUANT``);
2. the parser's ``IsSupported``: for most ops ``CheckGpuDelegateCompatibility`` of
   ``tflite/tools/versioning/gpu_compatibility.cc`` (:data:`CHECKS`, one function per ``case`` in
   ``_gpu_ops``), called with the standard broadcast rules; the RELU family and PRELU check only
   the version; a comparison is taken only when a CAST or SELECT to floats reads it;
3. ``IsAllAllowedTensors``: no input or output of rank 5 or more (constants included), and every
   tensor computed at run time FLOAT32 or FLOAT16, or INT8/UINT8 (quantized models), plus the
   few types some ops allow (:data:`EXTRA_INPUT_TYPES`, :data:`EXTRA_OUTPUT_TYPES`).

Float16 weights (a DEQUANTIZE of a constant FLOAT16 tensor) are handled by LiteRT's
``FP16GraphPartitionHelper``: the consumers see the float16 constant itself; the DEQUANTIZE ops
run on the GPU only when every other op does (full delegation), else they stay on the CPU
(:func:`finalize`). Of the partitions, the delegate keeps ``max_delegated_partitions`` (1 by
default): the largest (``Target.max_partitions``).

No GPU is needed: this is the delegate's decision, read from its source, not a measurement.
"""
from __future__ import annotations

from typing import Callable

from ..capabilities import Predicate
from ..ir.core import Operator
from . import Target, register_target
from . import _gpu_ops as g
from ._rules import (BOOL, F16, F32, I8, I32, U8, check, dims, fp16_weights_follow, is_const,
                     is_fp16_weight_dequantize, max_version, rule, type_name)

__all__ = ["CHECKS", "GPU", "MAX_VERSION", "RULES"]

LITERT_COMMIT = "f67457790c9c2ab67347d6fe53270e8d3df20868"
SOURCE = ("google-ai-edge/LiteRT at f67457790c (v2.2.0-195; the files are unchanged since v2.2.0 145c7523ff): "
          "tflite/delegates/gpu/common/model_builder.cc (NewOperationParser, each parser's IsSupported, "
          "GetOpsToReplace, IsAllAllowedTensors; last changed in 2bd0c6fabe), "
          "tflite/tools/versioning/gpu_compatibility.cc (CheckGpuDelegateCompatibility; last changed in 297707cbe1), "
          "tflite/delegates/utils.cc (FP16GraphPartitionHelper, GetFirstNLargestPartitions), "
          "tflite/delegates/gpu/delegate_options.cc (defaults: ENABLE_QUANT, max_delegated_partitions = 1)")
RUNTIME = "LiteRT GPU delegate (TfLiteGpuDelegateV2, default options), LiteRT 2.2/2.3 sources"
WHO = g.WHO

#: CheckMaxSupportedOpVersion of each parser (ops whose parser checks no version are absent)
MAX_VERSION: dict[str, int] = {
    "CONCATENATION": 2, "CONV_2D": 6, "CUMSUM": 1, "DENSIFY": 1, "DEPTHWISE_CONV_2D": 6, "DEQUANTIZE": 3,
    "FULLY_CONNECTED": 9, "GATHER": 1, "LSTM": 4, "ONE_HOT": 1, "PRELU": 1, "PAD": 2, "PADV2": 2, "MIRROR_PAD": 2,
    "AVERAGE_POOL_2D": 2, "MAX_POOL_2D": 2, "QUANTIZE": 2, "RELU": 2, "RELU6": 2, "RELU_0_TO_1": 2,
    "RELU_N1_TO_1": 2, "LEAKY_RELU": 2, "RESHAPE": 1, "RESIZE_BILINEAR": 3, "RESIZE_NEAREST_NEIGHBOR": 3,
    "SELECT": 1, "SELECT_V2": 1, "SLICE": 2, "SOFTMAX": 2, "SPACE_TO_DEPTH": 2, "STRIDED_SLICE": 4,
    "TRANSPOSE_CONV": 3, "TRANSPOSE": 4,
    # ElementwiseOperationParser: MUL <= 3, every other elementwise op <= 2
    "MUL": 3, **{op: 2 for op in ("ABS", "ADD", "ADD_N", "COS", "DIV", "EQUAL", "ELU", "EXP", "FLOOR", "FLOOR_DIV",
                                  "FLOOR_MOD", "GELU", "GREATER", "GREATER_EQUAL", "LESS", "LESS_EQUAL", "LOGISTIC",
                                  "LOG", "LOGICAL_AND", "MAXIMUM", "MINIMUM", "NEG", "NOT_EQUAL", "POW", "RSQRT",
                                  "SIGN", "SIN", "SQRT", "SQUARE", "SQUARED_DIFFERENCE", "SUB", "TANH")},
}

UNARY = ("ABS", "COS", "ELU", "EXP", "FLOOR", "GELU", "LOG", "LOGISTIC", "NEG", "RSQRT", "SIGN", "SIN", "SQRT",
         "SQUARE", "TANH")
BINARY = ("DIV", "FLOOR_DIV", "FLOOR_MOD", "LOGICAL_AND", "MAXIMUM", "MINIMUM", "POW", "SQUARED_DIFFERENCE",
          "SUB")

#: the op's IsSupported beyond the version: a gpu_compatibility.cc case, or a parser's own check
CHECKS: dict[str, Callable[[Operator], str] | None] = {
    "ADD": g.add, "ADD_N": g.add_n, "AVERAGE_POOL_2D": g.pooling, "MAX_POOL_2D": g.pooling,
    "BATCH_MATMUL": g.batch_matmul, "CAST": g.cast_op, "CONCATENATION": None, "CONV_2D": g.conv_2d,
    "CUMSUM": g.cumsum, "DENSIFY": g.densify, "DEPTHWISE_CONV_2D": g.depthwise_conv_2d,
    "DEPTH_TO_SPACE": g.depth_to_space, "DEQUANTIZE": g.dequantize, "FULLY_CONNECTED": g.fully_connected,
    "GATHER": g.gather, "HARD_SWISH": g.hard_swish, "LSTM": g.lstm, "MEAN": g.reduce, "MUL": g.mul,
    "ONE_HOT": g.one_hot, "PACK": None, "PAD": g.pad, "PADV2": g.pad, "MIRROR_PAD": g.pad, "PRELU": None,
    "QUANTIZE": g.quantize, "REDUCE_MAX": g.reduce, "REDUCE_MIN": g.reduce, "REDUCE_PROD": g.reduce,
    "SUM": g.reduce, "RELU": None, "RELU6": None, "RELU_0_TO_1": None, "RELU_N1_TO_1": None, "LEAKY_RELU": None,
    "RESHAPE": g.reshape, "RESIZE_BILINEAR": g.resize, "RESIZE_NEAREST_NEIGHBOR": g.resize,
    "SELECT": g.select, "SELECT_V2": g.select, "SLICE": g.slice_, "SOFTMAX": g.softmax,
    "SPACE_TO_DEPTH": g.space_to_depth, "SPLIT": None, "SPLIT_V": None, "STRIDED_SLICE": g.strided_slice,
    "TILE": g.tile, "TRANSPOSE": g.transpose, "TRANSPOSE_CONV": g.transpose_conv, "UNPACK": None,
    **{op: g.unary for op in UNARY}, **{op: g.binary for op in BINARY},
    **{op: g.comparison for op in g.COMPARISONS},
}

#: custom ops with a parser of their own (checked in _gpu_ops.custom)
CUSTOM = ("Convolution2DTransposeBias", "MaxPoolingWithArgmax2D", "MaxUnpooling2D", "Resampler")

# --------------------------------------------------------------------------- IsAllAllowedTensors

BASE_TYPES = (F32, F16, I8, U8)          # FLOAT32/FLOAT16, and INT8/UINT8 with allow_quant_ops (the default)
MAX_RANK = 4                             # "t->dims->size >= 5" refuses the op
EXTRA_INPUT_TYPES: dict[str, tuple[int, ...]] = {
    "CAST": (BOOL, F32, I32), "ONE_HOT": (I32,), "SELECT": (BOOL,), "SELECT_V2": (BOOL,), "LOGICAL_AND": (BOOL,),
    "GATHER": (I32,),
}
EXTRA_OUTPUT_TYPES: dict[str, tuple[int, ...]] = {
    "CAST": (F32, I32, BOOL), "LOGICAL_AND": (BOOL,), **{op: (BOOL,) for op in g.COMPARISONS},
}


def _names(codes) -> str:
    from ._rules import alternatives
    return alternatives(dict.fromkeys(type_name(c) for c in codes))


def _tensors(op: Operator) -> str:
    ins = [(f"input {i}", t) for i, t in enumerate(op.inputs) if t is not None]
    outs = [(f"output {i}", t) for i, t in enumerate(op.outputs) if t is not None]
    for name, t in ins + outs:
        d = dims(t)
        if d is not None and len(d) > MAX_RANK:
            return f"{name} has rank {len(d)}, needs rank <= {MAX_RANK}"
    allowed_in = BASE_TYPES + EXTRA_INPUT_TYPES.get(op.type, ())
    allowed_out = BASE_TYPES + EXTRA_OUTPUT_TYPES.get(op.type, ())
    for group, allowed in ((ins, allowed_in), (outs, allowed_out)):
        for name, t in group:
            if is_const(t) or t.is_variable or (t.producer is not None and is_fp16_weight_dequantize(t.producer)):
                continue                                        # only tensors computed at run time
            if t.dtype not in allowed:
                return f"{name} is {type_name(t.dtype)}, needs {_names(allowed)}"
    return ""


TENSORS = check(f"inputs and outputs of rank <= {MAX_RANK}, run-time tensors FLOAT32/FLOAT16/INT8/UINT8 (or a type "
                "the op allows)", _tensors)


# --------------------------------------------------------------------------- the rules

def _op_check(fn) -> Predicate | None:
    return check((fn.__doc__ or fn.__name__).strip().splitlines()[0].rstrip("."), fn) if fn is not None else None


def _fp16_weights(op: Operator) -> str:
    return ("a DEQUANTIZE of float16 weights, taken only when the delegate takes the whole graph "
            "(FP16GraphPartitionHelper keeps it on the CPU under partial delegation)") \
        if is_fp16_weight_dequantize(op) else ""


def _rule(op_type: str) -> Predicate:
    parts = [max_version(MAX_VERSION[op_type])] if op_type in MAX_VERSION else []
    if op_type == "DEQUANTIZE":
        parts.insert(0, check("not a DEQUANTIZE of float16 weights (those follow the whole graph)", _fp16_weights))
    if (own := _op_check(CHECKS[op_type])) is not None:
        parts.append(own)
    parts.append(TENSORS)
    return rule(WHO, *parts)


RULES: dict[str, Predicate] = {op: _rule(op) for op in CHECKS}
RULES.update({code: rule(WHO, _op_check(g.custom), TENSORS) for code in CUSTOM})


GPU = register_target(Target(
    name="gpu",
    title="LiteRT's GPU delegate",
    runtime=RUNTIME,
    source=SOURCE,
    rules=RULES,
    unlisted="{op} is not supported by the GPU delegate (model_builder.cc has no parser for it)",
    max_partitions=1,
    finalize=fp16_weights_follow,
    notes=(
        "default options: allow_quant_ops (TFLITE_GPU_EXPERIMENTAL_FLAGS_ENABLE_QUANT), max_delegated_partitions=1, "
        "no excluded ops",
        "CheckGpuDelegateCompatibility is called with the standard broadcast rules (the offline checker "
        "assumes kEnhancedBroadcast; the delegate does not)",
        "checked from the source (no GPU was available): an op the checks pass may still fail when the delegate "
        "parses it into its graph (e.g. a BATCH_MATMUL with a constant non-2-D second input), which makes the "
        "whole delegate fail to apply",
    ),
))
