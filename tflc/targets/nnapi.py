"""LiteRT's NNAPI delegate on Android API level 30 (Android 11, NNAPI 1.3): which ops it takes,
and for every op it leaves on the CPU the precise reason.

The rules are ``NNAPIDelegateKernel::Validate`` of ``tflite/delegates/nnapi/nnapi_delegate.cc``
resolved for ``android_sdk_version = 30`` (``kMinSdkVersionForNNAPI13``) with the delegate's
default options: no accelerator named (so ``is_accelerator_specified`` is false: MUL up to
version 2, the quantized AVERAGE_POOL_2D window limit of the reference CPU path applies), no
vendor plugin, ``max_number_delegated_partitions = 3`` (the three largest partitions are kept),
``allow_dynamic_dimensions = false``. Ops that need a later feature level (BATCH_MATMUL,
MIRROR_PAD, REVERSE_V2 need NNAPI feature level 6 or 7) are refused with that reason. Float16
weights behind a DEQUANTIZE follow LiteRT's FP16GraphPartitionHelper, as for the GPU delegate.

What this cannot know: the device. With ``disallow_nnapi_cpu`` (the default) a phone with no
NNAPI accelerator gets nothing delegated; an accelerator's driver may refuse more (that needs
``accelerator_name``, which these rules assume unset).
"""
from __future__ import annotations

from typing import Callable

from ..capabilities import Predicate
from ..ir.core import Operator
from . import Target, register_target
from ._rules import (ACT, BOOL, F16, F32, I8, I16, I32, I64, U8, act_name, alternatives, check, const_values, dims,
                     fp16_weights_follow, is_const, is_fp16_weight_dequantize, max_version, never, option, rank, rule, seen_inputs,
                     type_name)

__all__ = ["API_LEVEL", "NNAPI", "RULES"]

API_LEVEL = 30
WHO = f"NNAPI at API level {API_LEVEL}"
SOURCE = ("NNAPIDelegateKernel::Validate in tflite/delegates/nnapi/nnapi_delegate.cc of google-ai-edge/LiteRT at "
          "f67457790c (unchanged since v2.2.0; last changed in aab71d0ad6), resolved for android_sdk_version 30 "
          "(kMinSdkVersionForNNAPI13), StatefulNnApiDelegate::DoPrepare and LimitDelegatedPartitions, "
          "the defaults of StatefulNnApiDelegate::Options in nnapi_delegate.h")
RUNTIME = f"LiteRT NNAPI delegate, Android API level {API_LEVEL} (NNAPI 1.3), default options"

FLOAT = (F32,)
QUANT8 = (U8, I8)
FLOAT_Q8 = (F32, U8, I8)
FLOAT_Q8_I32 = (F32, U8, I8, I32)


# --------------------------------------------------------------------------- checks (each: op -> reason or "")

def _t(op: Operator, i: int, kind: str = "in"):
    ts = seen_inputs(op) if kind == "in" else list(op.outputs)
    return ts[i] if -len(ts) <= i < len(ts) else None


def typ(i: int, *types: int, kind: str = "in", what: str | None = None) -> Predicate:
    names = alternatives(type_name(c) for c in types)
    name = what or f"{'input' if kind == 'in' else 'output'} {i}"

    def run(op: Operator) -> str:
        t = _t(op, i, kind)
        if t is None:
            return f"no {name}, needs one"
        return "" if t.dtype in types else f"{name} is {type_name(t.dtype)}, needs {names}"
    return check(f"{name} is {names}", run)


def ranks_le(n: int, *inputs: int) -> Predicate:
    def run(op: Operator) -> str:
        for i in inputs:
            t = _t(op, i)
            if t is not None and rank(t) > n:
                return f"input {i} has rank {rank(t)}, needs rank <= {n}"
        return ""
    return check(f"inputs {', '.join(map(str, inputs))} of rank <= {n}", run)


def out_rank(cond: Callable[[int], bool], text: str, i: int = 0, kind: str = "out") -> Predicate:
    def run(op: Operator) -> str:
        t = _t(op, i, kind)
        r = rank(t)
        name = f"{'output' if kind == 'out' else 'input'} {i}"
        return "" if t is None or cond(r) else f"{name} has rank {r}, needs {text}"
    return check(f"{'output' if kind == 'out' else 'input'} {i}: {text}", run)


def const(i: int, what: str) -> Predicate:
    def run(op: Operator) -> str:
        t = _t(op, i)
        return "" if is_const(t) else f"input {i} ({what}) is {'absent' if t is None else 'computed at run time'}, " \
                                      f"needs a constant {what}"
    return check(f"input {i} ({what}) is constant", run)


def act_none_if_int32() -> Predicate:
    def run(op: Operator) -> str:
        t = _t(op, 0)
        a = option(op, "fusedActivationFunction", ACT.NONE)
        return f"an INT32 op with fused {act_name(a)}, needs no fused activation" \
            if t is not None and t.dtype == I32 and a != ACT.NONE else ""
    return check("no fused activation on INT32", run)


def act_none() -> Predicate:
    def run(op: Operator) -> str:
        a = option(op, "fusedActivationFunction", ACT.NONE)
        return "" if a == ACT.NONE else f"fused activation {act_name(a)}, needs none"
    return check("no fused activation", run)


def needs_level(level: int, name: str) -> Predicate:
    return never(f"needs {name} (Android sdk version >= {level}), {WHO} has NNAPI 1.3")


def fn(text: str, f: Callable[[Operator], str]) -> Predicate:
    return check(text, f)


def _inputs_exactly(n: int) -> Predicate:
    return fn(f"{n} inputs", lambda op: "" if len(op.inputs) == n else f"{len(op.inputs)} inputs, needs {n}")


def _hybrid(w: int) -> Predicate:
    def run(op: Operator) -> str:
        x, wt = _t(op, 0), _t(op, w)
        return "a hybrid op (float input, quantized weights), needs none" \
            if x is not None and wt is not None and x.dtype == F32 and wt.dtype in QUANT8 else ""
    return check("not hybrid", run)


def _no_zero_dims(op: Operator) -> str:
    d = dims(_t(op, 0)) or ()
    return f"input 0 of shape {list(d)} has no elements, needs a non-empty input" if 0 in d else ""


def _avg_pool_window(op: Operator) -> str:
    if _t(op, 0).dtype in QUANT8 and option(op, "filterWidth", 0) * option(op, "filterHeight", 0) > 256:
        return "a quantized window of more than 256 values, needs <= 256 (the reference CPU path overflows)"
    return ""


def _scalar_operands_const(op: Operator) -> str:
    for i in (0, 1):
        t = _t(op, i)
        if t is not None and rank(t) == 0 and not is_const(t):
            return f"input {i} is a scalar computed at run time, needs a scalar operand to be constant"
    return ""


def _argmax(op: Operator) -> str:
    axis = _t(op, 1)
    if axis is not None and axis.dtype == I64:
        v = const_values(axis)
        if v is None or not all(-2**31 <= int(x) < 2**31 for x in v.reshape(-1)):
            return "an INT64 axis that is not a constant within int32, needs an INT32 (or small constant) axis"
    elif axis is None or axis.dtype != I32:
        return "input 1 (axis), needs an INT32 axis"
    return "" if option(op, "outputType", I32) == I32 else "an INT64 output, needs INT32"


def _reshape(op: Operator) -> str:
    if len(op.inputs) >= 2 and not is_const(_t(op, 1)):
        return "input 1 (shape) is computed at run time, needs a constant shape"
    if len(op.inputs) == 1:
        ns = option(op, "newShape", None)
        shape = [int(x) for x in ns] if ns is not None else []
        if len(shape) == 0 or shape == [0]:
            return "a scalar new shape, needs rank > 0"
    return ""


def _batch_to_space(op: Operator) -> str:
    crops = const_values(_t(op, 2))
    return "" if crops is not None and crops.size == 4 and not crops.any() else "crops, needs constant zero crops"


def _transpose_conv(op: Operator) -> str:
    if len(op.inputs) > 1 and is_const(_t(op, 0)) and is_const(_t(op, 1)):
        return ""
    return "the output shape or the weights computed at run time, needs both constant"


def _lstm(op: Operator) -> str:
    n = len(op.inputs)
    if n == 5:                                              # the basic kernel
        w = _t(op, 2)
        if w is None or w.dtype != U8:
            return "a basic LSTM kernel without UINT8 weights, needs UINT8 weights"
        return "" if is_const(_t(op, 2)) and is_const(_t(op, 3)) else "basic LSTM weights/biases, needs them constant"
    w = _t(op, 4)
    return "" if w is not None and w.dtype in (F32, U8, I8) else "weights (input 4), needs FLOAT32, UINT8 or INT8"


def _select(op: Operator) -> str:
    c, x = _t(op, 0), _t(op, 1)
    return "" if dims(c) == dims(x) else (f"condition of shape {list(dims(c) or ())} and inputs of shape "
                                          f"{list(dims(x) or ())}, needs the same shape")


def _split_axis(i: int) -> Predicate:
    def run(op: Operator) -> str:
        a = _t(op, i)
        return "" if a is not None and a.dtype == I32 and is_const(a) else "an axis, needs a constant INT32 axis"
    return check("constant INT32 axis", run)


def _split_v(op: Operator) -> str:
    s = _t(op, 1)
    if s is None or s.dtype != I32 or rank(s) != 1 or not is_const(s):
        return "size_splits, needs a constant INT32 vector"
    sizes = [int(v) for v in const_values(s).reshape(-1)]
    if 0 in sizes:
        return "a zero split size, needs non-zero split sizes"
    axis_v = const_values(_t(op, 2))
    if axis_v is not None and -1 in sizes:
        d = dims(_t(op, 0)) or ()
        ax = int(axis_v.reshape(-1)[0])
        ax = ax + len(d) if ax < 0 else ax
        if 0 <= ax < len(d) and d[ax] - sum(v for v in sizes if v != -1) == 0:
            return "an inferred split size of 0, needs non-zero split sizes"
    return ""


def _quantize(op: Operator) -> str:
    x, y = _t(op, 0), _t(op, 0, "out")
    from ..ir.quant import quant_params
    if x.dtype in QUANT8 and ((q := quant_params(x)) is None or q.scale[0] <= 0):
        return "input 0 with a scale <= 0, needs a positive scale"
    q = quant_params(y)
    return "" if q is not None and q.scale[0] > 0 else "output 0 with a scale <= 0, needs a positive scale"


def _fill(op: Operator) -> str:
    d = _t(op, 0)
    if not is_const(d):
        return "input 0 (dims) is computed at run time, needs constant dims"
    if d.dtype not in (I32, I64):
        return f"input 0 (dims) is {type_name(d.dtype)}, needs INT32 or INT64"
    if (dims(d) or (0,))[0] == 0:
        return "a scalar output, needs rank > 0"
    v = const_values(d)
    if d.dtype == I64 and v is not None and not all(-2**31 <= int(x) < 2**31 for x in v.reshape(-1)):
        return "INT64 dims beyond int32, needs dims within int32"
    val = _t(op, 1)
    if val.dtype not in (F32, I32, I64):
        return f"input 1 (value) is {type_name(val.dtype)}, needs FLOAT32, INT32 or INT64"
    return ""


def _pack_axis(op: Operator) -> str:
    axis = option(op, "axis", 0)
    return "" if axis != -1 and axis != rank(_t(op, 0)) else "packing along a new last axis, needs another axis"


def _unpack(op: Operator) -> str:
    r = rank(_t(op, 0))
    if r <= 1:
        return "a rank-1 input, needs rank > 1"
    if r > 4:
        return f"input 0 has rank {r}, needs rank <= 4"
    axis = option(op, "axis", 0)
    return "" if axis != -1 and axis != r - 1 else "unpacking the last axis, needs another axis"


def _topk(op: Operator) -> str:
    k = _t(op, 1)
    return "" if k is not None and k.dtype == I32 and is_const(k) else "k, needs a constant INT32 k"


def _gather(op: Operator) -> str:
    p = _t(op, 1)
    if p is None or p.dtype != I32:
        return "positions, needs INT32 positions"
    return "" if rank(p) != 0 else "scalar positions, needs rank > 0"


def _fc_output(op: Operator) -> str:
    return "output 0 is INT16, needs another output type" if _t(op, 0, "out").dtype == I16 else ""


def _conv_bias(op: Operator) -> str:
    # node->inputs->size == 3: an absent bias written as input -1 passes (the delegate adds zeros)
    return "" if len(op.inputs) == 3 else f"{len(op.inputs)} inputs (bias omitted), needs 3"


def _lsh(op: Operator) -> str:
    from ..schema import fb
    if option(op, "type", 0) == fb.LSHProjectionType.SPARSE and len(op.inputs) != 2:
        return "a sparse projection with weights, needs no weights"
    return ""


def _dequantize(op: Operator) -> str:
    x = _t(op, 0)
    if x.dtype == F16 and not is_const(x):
        return ""                                           # fp16 -> fp32 at run time is allowed at API >= 30
    if op.opcode.version not in (1, 2):
        return f"version {op.opcode.version}, needs version 1 or 2"
    return "" if x.dtype in QUANT8 else f"input 0 is {type_name(x.dtype)}, needs UINT8 or INT8"


def _densify(op: Operator) -> str:
    return "" if is_const(op.inputs[0]) else "input 0 is computed at run time, needs constant (sparse) weights"


# --------------------------------------------------------------------------- the table: op -> its checks

V = max_version
RANK4_01 = ranks_le(4, 0, 1)

OPS: dict[str, tuple[Predicate, ...]] = {
    "ADD": (V(2), typ(0, *FLOAT_Q8_I32), act_none_if_int32(), RANK4_01),
    "ARG_MAX": (V(2), typ(0, F16, F32, I32, U8, I8), fn("axis and output INT32", _argmax)),
    "ARG_MIN": (V(2), typ(0, F16, F32, I32, U8, I8), fn("axis and output INT32", _argmax)),
    "MUL": (V(2), typ(0, *FLOAT_Q8_I32), act_none_if_int32(), RANK4_01),
    "AVERAGE_POOL_2D": (V(2), typ(0, *FLOAT_Q8), fn("quantized window <= 256", _avg_pool_window)),
    "MAX_POOL_2D": (V(2), typ(0, *FLOAT_Q8)),
    "L2_POOL_2D": (V(1), typ(0, *FLOAT)),
    "CONV_2D": (V(5), fn("a bias", _conv_bias)),
    "DEPTHWISE_CONV_2D": (V(3),),
    "FULLY_CONNECTED": (V(5), fn("output not INT16", _fc_output)),
    "HARD_SWISH": (typ(0, *FLOAT_Q8),),
    "SOFTMAX": (V(2), typ(0, *FLOAT_Q8), typ(0, F32, U8, I8, kind="out"), ranks_le(4, 0)),
    "RESHAPE": (V(1), typ(0, *FLOAT_Q8), ranks_le(4, 0), out_rank(lambda r: r <= 4, "rank <= 4"),
                fn("a constant shape", _reshape)),
    "RESIZE_BILINEAR": (V(3), out_rank(lambda r: r == 4, "rank 4", kind="in"), typ(0, *FLOAT_Q8),
                        fn("2 inputs", lambda op: "" if len(op.inputs) >= 2 else "1 input, needs 2"),
                        const(1, "size")),
    "RESIZE_NEAREST_NEIGHBOR": (V(3), typ(0, *FLOAT_Q8),
                                fn("2 inputs", lambda op: "" if len(op.inputs) >= 2 else "1 input, needs 2"),
                                const(1, "size")),
    "SQUEEZE": (V(1),),
    "UNIDIRECTIONAL_SEQUENCE_LSTM": (V(2), _hybrid(2), fn("20 or 24 inputs", lambda op: "" if len(op.inputs) in (20, 24)
                                                         else f"{len(op.inputs)} inputs, needs 20 or 24")),
    "L2_NORMALIZATION": (V(2), act_none()),
    "LOCAL_RESPONSE_NORMALIZATION": (V(1),),
    "LSH_PROJECTION": (V(1), fn("sparse projection without weights", _lsh)),
    "CONCATENATION": (V(2), act_none(), ranks_le(4, 0), typ(0, F16, F32, U8, I8)),
    "DEQUANTIZE": (fn("UINT8/INT8 input, version 1-2 (or a float16 input computed at run time)", _dequantize),),
    "DENSIFY": (fn("constant input", _densify),),
    "FLOOR": (V(1),),
    "RELU": (V(2), typ(0, *FLOAT_Q8)), "RELU_N1_TO_1": (V(2), typ(0, *FLOAT_Q8)),
    "RELU6": (V(2), typ(0, *FLOAT_Q8)), "LOGISTIC": (V(2), typ(0, *FLOAT_Q8)),
    "TANH": (V(2), typ(0, *FLOAT_Q8)),
    "SUB": (V(3), typ(0, *FLOAT_Q8_I32), act_none_if_int32(), RANK4_01),
    "DIV": (V(1), typ(0, F32), RANK4_01),
    "PAD": (V(2), typ(0, *FLOAT_Q8), fn("a non-empty input", _no_zero_dims),
            fn("2 inputs", lambda op: "" if len(op.inputs) >= 2 else "1 input, needs 2")),
    "PADV2": (V(2), typ(0, *FLOAT_Q8), fn("a non-empty input", _no_zero_dims),
              fn("2 inputs", lambda op: "" if len(op.inputs) >= 2 else "1 input, needs 2")),
    "UNIDIRECTIONAL_SEQUENCE_RNN": (V(1), _hybrid(1)),
    "SPACE_TO_BATCH_ND": (V(2),),
    "BATCH_TO_SPACE_ND": (V(2), fn("zero crops", _batch_to_space)),
    "STRIDED_SLICE": (V(2), typ(0, *FLOAT_Q8)),
    "TRANSPOSE": (V(2), const(1, "permutation")),
    "ABS": (V(1), typ(0, *FLOAT)), "EXP": (V(1), typ(0, *FLOAT)), "LOG": (V(1), typ(0, *FLOAT)),
    "POW": (V(1), typ(0, *FLOAT)),
    "RSQRT": (V(2), typ(0, *FLOAT)),                          # quantized RSQRT needs feature level 7
    "SLICE": (V(2), typ(0, F32, I32, U8, I8), typ(1, I32, what="input 1 (begin)"), typ(2, I32, what="input 2 (size)")),
    "COS": (V(1), typ(0, *FLOAT)), "SIN": (V(1), typ(0, *FLOAT)), "SQRT": (V(1), typ(0, *FLOAT)),
    "TRANSPOSE_CONV": (V(4), fn("constant output shape and weights", _transpose_conv)),
    "RNN": (V(1), _inputs_exactly(5), typ(1, F32, what="input 1 (weights)")),
    "SPACE_TO_DEPTH": (V(2), typ(0, F32, U8, I8)),
    "SVDF": (V(1), _inputs_exactly(5), typ(1, F32, what="input 1 (weights)")),
    "LSTM": (V(3), fn("LSTM weights", _lstm)),
    "MEAN": (V(2), typ(0, F32, U8, I8), out_rank(lambda r: r > 0, "rank > 0 (no scalar output)"), ranks_le(4, 0)),
    "EMBEDDING_LOOKUP": (V(1), typ(1, F32, what="input 1 (values)")),
    "HASHTABLE_LOOKUP": (V(1), typ(0, F32, kind="out")),
    "MAXIMUM": (V(3), typ(0, F32, U8, I8, I32), fn("constant scalar operands", _scalar_operands_const)),
    "MINIMUM": (V(3), typ(0, F32, U8, I8, I32), fn("constant scalar operands", _scalar_operands_const)),
    "CAST": (V(1), typ(0, F32, I32, U8, I8), typ(0, F32, I32, U8, I8, kind="out")),
    "LEAKY_RELU": (V(1), typ(0, F32, U8, I8)), "PRELU": (V(1), typ(0, F32, U8, I8)),
    "TILE": (V(1), typ(0, F32, I8, U8, I32), typ(1, I32, what="input 1 (multipliers)")),
    "LOGICAL_OR": (V(1), typ(0, BOOL)), "LOGICAL_AND": (V(1), typ(0, BOOL)), "LOGICAL_NOT": (V(1), typ(0, BOOL)),
    **{op: (V(2), typ(0, F32, U8, I8, BOOL, I32)) for op in ("LESS", "LESS_EQUAL", "GREATER", "GREATER_EQUAL",
                                                              "EQUAL", "NOT_EQUAL")},
    "NEG": (V(2), typ(0, F32, I32)),
    "TOPK_V2": (V(2), typ(0, F32, I32, U8, I8), fn("constant INT32 k", _topk)),
    "SELECT": (V(2), typ(1, F32, I32, U8, I8), fn("condition of the inputs' shape", _select)),
    "GATHER": (V(2), typ(0, F32, F16, I32, U8, I8), fn("INT32 positions of rank > 0", _gather)),
    "BIDIRECTIONAL_SEQUENCE_LSTM": (V(1), _hybrid(2)),
    "EXPAND_DIMS": (V(1), typ(0, F32, F16, I32, U8, I8), _split_axis(1)),
    "SPLIT": (V(3), typ(1, F32, U8, I8, I32, what="input 1 (value)"), _split_axis(0)),
    "SPLIT_V": (V(2), typ(0, F32, U8, I8, I32), _split_axis(2), fn("constant non-zero split sizes", _split_v)),
    "LOG_SOFTMAX": (V(1), typ(0, F32)),
    "QUANTIZE": (V(2), typ(0, F32, U8, I8), typ(0, U8, I8, kind="out"), fn("positive scales", _quantize)),
    "REDUCE_ANY": (V(2), out_rank(lambda r: r != 0, "rank > 0 (no scalar output)")),
    "REDUCE_MIN": (V(2), typ(0, F32, U8, I8), out_rank(lambda r: r != 0, "rank > 0", kind="in")),
    "REDUCE_MAX": (V(2), typ(0, F32, U8, I8), out_rank(lambda r: r != 0, "rank > 0", kind="in")),
    "DEPTH_TO_SPACE": (typ(0, F32, U8, I8),),
    "REDUCE_PROD": (V(1), out_rank(lambda r: r != 0, "rank > 0 (no scalar output)"), typ(0, F32)),
    "SUM": (V(1), out_rank(lambda r: r != 0, "rank > 0 (no scalar output)"), typ(0, F32)),
    "ELU": (V(1), typ(0, F32)),
    "FILL": (V(1), fn("constant dims, FLOAT32/INT32/INT64 value", _fill)),
    "PACK": (V(2), typ(0, F32, I8), fn("not along a new last axis", _pack_axis)),
    "UNPACK": (V(2), typ(0, F32, U8, I8), fn("rank 2-4, not along the last axis", _unpack)),
    "SQUARED_DIFFERENCE": (V(2), typ(0, F32, U8, I8, I32), RANK4_01),
    "BATCH_MATMUL": (needs_level(1000006, "NNAPI feature level 6"),),
    "MIRROR_PAD": (needs_level(1000007, "NNAPI feature level 7"),),
    "REVERSE_V2": (needs_level(1000007, "NNAPI feature level 7"),),
}


def _fp16_weights(op: Operator) -> str:
    return ("a DEQUANTIZE of float16 weights, taken only when the delegate takes the whole graph "
            "(FP16GraphPartitionHelper keeps it on the CPU under partial delegation)") \
        if is_fp16_weight_dequantize(op) else ""


def _rule(op_type: str) -> Predicate:
    parts = list(OPS[op_type])
    if op_type == "DEQUANTIZE":
        parts.insert(0, check("not a DEQUANTIZE of float16 weights (those follow the whole graph)", _fp16_weights))
    return rule(WHO, *parts)


RULES: dict[str, Predicate] = {op: _rule(op) for op in OPS}


NNAPI = register_target(Target(
    name="nnapi",
    title="LiteRT's NNAPI delegate",
    runtime=RUNTIME,
    source=SOURCE,
    rules=RULES,
    unlisted="{op} is not supported by the NNAPI delegate (Validate: unsupported operation type)",
    max_partitions=3,
    finalize=fp16_weights_follow,
    notes=(
        f"android_sdk_version = {API_LEVEL}; is_accelerator_specified = false (no accelerator_name), no vendor plugin",
        "max_number_delegated_partitions = 3 (the default): the three largest partitions are kept",
        "disallow_nnapi_cpu (default): on a device whose only NNAPI device is the reference CPU nothing is delegated",
        "an op Validate accepts can still fail when mapped (e.g. an INT64 tensor), which fails the delegation",
    ),
))
