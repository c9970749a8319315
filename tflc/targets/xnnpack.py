"""LiteRT 2.3.0's XNNPACK delegate (the default CPU delegate of ``ai-edge-litert`` 2.3.0): which
ops it takes, and for every op it leaves on the CPU the precise reason.

The rules are data: ``RULES[op type]`` is a predicate built from the checks of
``Subgraph::Visit*Node`` in ``tflite/delegates/xnnpack/xnnpack_delegate.cc`` (the decision part, before
the XNNPACK graph is built), one type class at a time: float32/float16 ("F"), float or per-tensor
int8/uint8 ("FQ8"), weights per channel ("QC8"), dynamic range (float input, int8 weights: FULLY_CONNECTED,
CONV_2D, BATCH_MATMUL and TRANSPOSE_CONV run it as int8 GEMMs; DEPTHWISE_CONV_2D does not), float16 weights
behind a DEQUANTIZE (unpacked once, "quasi-static"), and int16, which no check accepts. Decisions that
depend on neighbours are made in :func:`finalize`: a constant DEQUANTIZE/DENSIFY is taken only if no
refused op reads it, resource variables are taken as a whole (VAR_HANDLE with its reads/assigns).

What the delegate sees is the file: shapes as stored (not propagated), constants = data in the file.
Some ops pass the checks and then fail when XNNPACK builds its graph ("claimed, then failing"):
``allocate_tensors()`` raises and the model does not run with the default interpreter at all.
:func:`finalize` records these as warnings on the op's decision (``decision.warnings``).

Checked against LiteRT's own partitioning on 441 models (tests/test_partition_xnnpack.py keeps the
zoo and the real models in agreement).
"""
from __future__ import annotations

from .. import capabilities as cap
from ..capabilities import Predicate
from ..ir.core import Operator, Subgraph
from ..ir.quant import same_quantization
from . import Target, register_target
from ._xnnpack_checks import (activation, check, filter_bias_types, io, is_, is_qc8, only_if, padding, phrase,
                              rule as _rule, same_types, shape, static_unpack, weight)
from ._xnnpack_ops import (batch_matmul, block_size, composite_name, concat_axis, concat_uint8_same_quant,
                           conv_params, conv_types, depthwise_params, depthwise_types, fc_bias, fc_types,
                           fc_version, groups, has_bias, input_output_scale, leaky_relu_params, mediapipe_deconv,
                           mediapipe_pool, pad_paddings, pooling, product_output_scale, quantize_combination,
                           reduce_axes, reshape_params, resize_size, sdpa, slice_params, slice_sizes, softmax_beta,
                           split_params, strided_slice_params, transpose_conv, transpose_conv_geometry,
                           transpose_perm)
from ._xnnpack_tensors import F32, FLOATS, I8, I16, RUNTIME, U8, dims, not_taken, quant, quant_text, rank

__all__ = ["RULES", "XNNPACK", "finalize", "prepare_failures"]

SOURCE = ("tflite/delegates/xnnpack/xnnpack_delegate.cc of google-ai-edge/LiteRT at f67457790c (its strings "
          "and behaviour match the ai-edge-litert 2.3.0 wheel), the decision part of every Visit*Node and "
          "Delegate::PrepareOpsToDelegate; confirmed by measuring LiteRT's partitioning of 441 models")


def _no_int16() -> Predicate:
    def run(op: Operator) -> str:
        hit = any(t is not None and t.dtype == I16 for t in (*op.outputs, *op.inputs[:1]))
        return not_taken(op, "int16", "XNNPACK has no int16 kernels") if hit else ""
    return check("no int16 tensor (XNNPACK has no int16 kernels)", run)


def rule(*parts: Predicate) -> Predicate:
    return _rule(_no_int16(), *parts)


def _never(why: str) -> Predicate:
    return cap.predicate("never", lambda op: (False, phrase(op, why)))


# --------------------------------------------------------------------------- type classes of ops

#: float-only elementwise ops (CheckTensorFloatType on input and output)
FLOAT_UNARY = ("ABS", "CEIL", "COS", "EXP", "FLOOR", "GELU", "HARD_SWISH", "LOG", "NEG", "RELU", "RELU6",
               "RELU_N1_TO_1", "ROUND", "RSQRT", "SIN", "SQRT", "SQUARE")
FLOAT_BINARY = ("DIV", "MAXIMUM", "MINIMUM", "SQUARED_DIFFERENCE")
REDUCTIONS = ("MEAN", "SUM", "REDUCE_MAX", "REDUCE_MIN")
SDPA = "odml.scaled_dot_product_attention"


def unary(cls: str, *extra: Predicate) -> Predicate:
    """One input of rank <= 6 (no empty dimension) and one output, both of type class ``cls``."""
    return rule(io(1, 1), shape(0, 0, 6), is_(0, cls), is_("out", cls), *extra)


def binary(cls: str, *extra: Predicate) -> Predicate:
    """Two inputs of rank <= 6 (no empty dimension), one output, all three of type class ``cls``."""
    return rule(io(2, 1), shape(0, 0, 6), shape(1, 0, 6), is_(0, cls), is_(1, cls), is_("out", cls), *extra)


def arithmetic(*scale_check: Predicate) -> Predicate:
    """ADD/SUB/MUL: float or per-tensor int8/uint8, one type for all, a rescale XNNPACK can do."""
    return binary("FQ8", _same_type(), *scale_check, activation())


def _same_type() -> Predicate:
    return same_types(0, 1, "out")


def _dequantize() -> Predicate:
    """A DEQUANTIZE of a constant (float16, or int8 with quantization parameters, to float32) is
    unpacked once (taken unless a refused op reads it, see finalize); otherwise the activation
    path: per-tensor int8/uint8 to float."""
    activation_path = _rule(io(1, 1), shape(0, 0, 6), is_(0, "Q8"), is_("out", "F"))

    def run(op: Operator) -> str:
        if static_unpack(op):
            return ""
        ok, why = activation_path(op)
        if ok:
            return ""
        t = op.inputs[0] if op.inputs else None
        if t is not None and t.dtype in FLOATS:
            return (f"{op.type} of a {t.type_name} tensor computed at run time is not taken by XNNPACK in {RUNTIME} "
                    "(it unpacks float16 constants only)")
        return why
    return check("a constant float16 or quantized int8 input unpacked to float32 (taken unless a refused op reads "
                 "it), or a per-tensor int8/uint8 input of rank <= 6 dequantized to float", run)


def _densify() -> Predicate:
    return check("a constant sparse float32/float16/int8 input, densified once (taken unless a refused op reads it)",
                 lambda op: "" if static_unpack(op) else
                 f"{op.type} is taken by XNNPACK in {RUNTIME} only for a constant sparse float32, float16 or int8 "
                 "tensor")


def _conv_weights() -> tuple[Predicate, ...]:
    return (shape(1, 4), weight(1), has_bias(2), is_(2, "BIAS"), shape(2, 1), weight(2), filter_bias_types(1, 2))


def _optional_bias(index: int) -> Predicate:
    present = lambda op: len(op.inputs) > index and op.inputs[index] is not None  # noqa: E731
    return only_if(present, f"input {index} (bias) is present",
                   cap.all_of(is_(index, "BIAS"), weight(index), filter_bias_types(1, index)))


def _variable_value(index: int | str) -> Predicate:
    return is_(index, "FQ8")


def _read_variable() -> Predicate:
    return rule(check("the variable is not a scalar", lambda op: "" if op.outputs and rank(op.outputs[0]) > 0 else
                      "reads a scalar (rank-0) variable, which XNNPACK does not take"), _variable_value("out"))


RULES: dict[str, Predicate] = {
    **{name: unary("F") for name in FLOAT_UNARY},
    "ELU": unary("FQI8"),
    "LOGISTIC": unary("FQ8"),
    "TANH": unary("FQ8"),
    "LEAKY_RELU": unary("FQ8", leaky_relu_params()),
    "QUANTIZE": unary("FQ8", quantize_combination()),
    "DEQUANTIZE": rule(_dequantize()),
    "DENSIFY": rule(_densify()),
    "ADD": arithmetic(input_output_scale(1 / 1024, 256, "[1/1024, 256)")),
    "SUB": arithmetic(input_output_scale(1 / 1024, 256, "[1/1024, 256)")),
    "MUL": arithmetic(product_output_scale(1 / 65536, 256, "[1/65536, 256)")),
    "DIV": binary("F", activation()),
    **{name: binary("F") for name in FLOAT_BINARY if name != "DIV"},
    "PRELU": binary("F", weight(1)),
    "AVERAGE_POOL_2D": rule(io(1, 1), is_(0, "F"), is_("out", "F"), pooling(), padding(), activation()),
    "MAX_POOL_2D": rule(io(1, 1), is_(0, "F32Q8"), is_("out", "FQ8"), pooling(), padding(), activation()),
    "BATCH_MATMUL": rule(batch_matmul()),
    "CONCATENATION": rule(io((2, 5), 1), is_("out", "FQ8"), concat_axis(), concat_uint8_same_quant(),
                          is_("ins", "FQ8")),
    "CONV_2D": rule(conv_params(), io(3, 1), is_(0, "FQ8"), shape(0, 4), is_qc8(1, 0), *_conv_weights(),
                    is_("out", "FQ8"), shape("out", 4), conv_types(), groups(), padding(), activation()),
    "DEPTHWISE_CONV_2D": rule(io(3, 1), is_(0, "FQ8"), shape(0, 4), is_qc8(1, 3), *_conv_weights(),
                              is_("out", "FQ8"), shape("out", 4), depthwise_types(), depthwise_params(), padding(),
                              activation()),
    "DEPTH_TO_SPACE": rule(io(1, 1), is_(0, "FQ8"), is_("out", "FQ8"), block_size()),
    "SPACE_TO_DEPTH": rule(io(1, 1), is_(0, "F32Q8"), is_("out", "FQ8"), block_size(divides_hw=True)),
    "EXPAND_DIMS": _never(f"EXPAND_DIMS is not taken by XNNPACK in {RUNTIME} (its check is disabled in the "
                          "delegate; a RESHAPE does the same and is taken)"),
    "FULLY_CONNECTED": rule(fc_version(), cap.option_where("weightsFormat", lambda v: v == 0,
                                                            "DEFAULT (shuffled weights are not taken)"),
                            io((2, 3), 1), is_(0, "FQ8"), shape(1, 2), is_(1, "WFC"), weight(1), fc_bias(),
                            _optional_bias(2), is_("out", "FQ8"), fc_types(), activation()),
    **{name: rule(io(2, 1), is_(0, "FQ8"), reduce_axes(), is_("out", "FQ8")) for name in REDUCTIONS},
    "PAD": rule(io(2, 1), is_(0, "FQ8"), shape(0, 1, 6), pad_paddings(), is_("out", "FQ8"), shape("out", 1, 6)),
    "RESHAPE": rule(io((1, 2), 1), is_(0, "FQ8"), shape(0, 0, 6), is_("out", "FQ8"), shape("out", 0, 6),
                    reshape_params()),
    "RESIZE_BILINEAR": rule(io(2, 1), is_(0, "F32Q8"), shape(0, 4), resize_size(), is_("out", "FQ8"),
                            shape("out", 4)),
    "SLICE": rule(slice_params(), is_(0, "FQ8"), is_("out", "FQ8"), slice_sizes()),
    "SOFTMAX": rule(softmax_beta(), io(1, 1), is_(0, "F"), is_("out", "F")),
    "SPLIT": rule(split_params(), is_(1, "FQ8"), is_("outs", "FQ8")),
    "STRIDED_SLICE": rule(strided_slice_params(), is_(0, "FQ8"), is_("out", "FQ8")),
    "TRANSPOSE": rule(io(2, 1), is_(0, "FQ8"), shape(0, 1, 6), transpose_perm()),
    "TRANSPOSE_CONV": rule(io((3, 4), 1), transpose_conv(), shape(1, 4), weight(1), is_(2, "F32Q8"), shape(2, 4),
                           is_qc8(1, 0), only_if(lambda op: len(op.inputs) > 3 and op.inputs[3] is not None,
                                                 "input 3 (bias) is present",
                                                 cap.all_of(is_(3, "BIAS"), shape(3, 1), weight(3))),
                           is_("out", "F32Q8"), shape("out", 4), transpose_conv_geometry(), activation()),
    "READ_VARIABLE": _read_variable(),
    "ASSIGN_VARIABLE": rule(_variable_value(1)),
    "VAR_HANDLE": _never("VAR_HANDLE is taken only together with a READ_VARIABLE or ASSIGN_VARIABLE of its "
                         "variable that XNNPACK takes (none here)"),
    "Convolution2DTransposeBias": rule(mediapipe_deconv()),
    "MaxPoolingWithArgmax2D": rule(mediapipe_pool(unpool=False)),
    "MaxUnpooling2D": rule(mediapipe_pool(unpool=True)),
    SDPA: rule(sdpa()),
    "STABLEHLO_COMPOSITE": rule(composite_name(SDPA), sdpa()),
}


# --------------------------------------------------------------------------- neighbours

def finalize(sg: Subgraph, decisions: list) -> list:
    """The decisions that depend on other ops, in the delegate's order: resource variables (a
    READ/ASSIGN needs the variable's VAR_HANDLE before it and one type and shape for all its uses;
    the VAR_HANDLE is taken iff one of them is), then constant unpacking (a DEQUANTIZE/DENSIFY of
    a constant is taken only if no refused op reads it), then the define-time failures as warnings."""
    ops = list(sg.operators)
    _variables(ops, decisions)
    refused = [not d.delegated and not static_unpack(op) for op, d in zip(ops, decisions)]
    index = {id(op): i for i, op in enumerate(ops)}
    for i, op in enumerate(ops):
        if not refused[i]:
            continue
        for t in op.inputs:
            p = t.producer if t is not None else None
            if p is None or not static_unpack(p) or id(p) not in index:
                continue
            d = decisions[index[id(p)]]
            if d.delegated:
                d.delegated = False
                d.reason = (f"{p.type}: its output is read by {op.type} (op {i}), which XNNPACK does not take; "
                            f"XNNPACK takes a constant {p.type} only when no reader stays on the CPU")
    for op, d in zip(ops, decisions):
        if d.delegated:
            for text in prepare_failure(op):
                _warn(d, text)
    return decisions


def _variables(ops: list[Operator], decisions: list) -> None:
    handles: dict[int, int] = {}                       # resource tensor -> its (last) VAR_HANDLE
    proxies: dict[int, tuple] = {}                     # resource tensor -> (type, shape) of its uses
    for i, op in enumerate(ops):
        if op.type == "VAR_HANDLE" and op.outputs and op.outputs[0] is not None:
            handles[id(op.outputs[0])] = i
            continue
        if op.type not in ("READ_VARIABLE", "ASSIGN_VARIABLE") or not decisions[i].delegated:
            continue
        res = op.inputs[0] if op.inputs else None
        value = op.outputs[0] if op.type == "READ_VARIABLE" else (op.inputs[1] if len(op.inputs) > 1 else None)
        if res is None or value is None:
            continue
        d = decisions[i]
        if id(res) not in handles:
            d.delegated = False
            d.reason = (f"{op.type}: the variable's VAR_HANDLE is not before it in this subgraph, XNNPACK needs it "
                        "there")
            continue
        seen = (value.dtype, dims(value))
        if id(res) not in proxies:
            proxies[id(res)] = seen
        elif proxies[id(res)] != seen:
            t, s = proxies[id(res)]
            d.delegated = False
            d.reason = (f"{op.type}: uses the variable as {value.type_name}{list(seen[1])} but another use as "
                        f"{_type(t)}{list(s)}, XNNPACK needs one type and shape")
    for res, i in handles.items():
        if res in proxies:
            decisions[i].delegated = True
            decisions[i].reason = ""


def _type(code: int) -> str:
    from ..schema import TYPE_NAMES
    return TYPE_NAMES.get(code, str(code))


def _warn(decision, text: str) -> None:
    warnings = getattr(decision, "warnings", None)
    if warnings is None:
        warnings = []
        decision.warnings = warnings
    if text not in warnings:
        warnings.append(text)


# --------------------------------------------------------------------------- claimed, then failing

_FAILS = (f"XNNPACK claims this op but cannot build it: allocate_tensors() raises ('failed to prepare') and the "
          f"model does not run with {RUNTIME}'s default interpreter")
_DATA_MOVEMENT = ("TRANSPOSE", "SLICE", "STRIDED_SLICE", "SPLIT", "PAD", "DEPTH_TO_SPACE", "SPACE_TO_DEPTH",
                  "MAX_POOL_2D", "RESIZE_BILINEAR", "CONCATENATION")


def prepare_failure(op: Operator) -> list[str]:
    """Why an op XNNPACK takes will fail when the delegate builds its graph (measured cases):
    [] when none is known. The model then cannot run with the default interpreter."""
    out = []
    if op.type in _DATA_MOVEMENT:
        out += _requantizing_copy(op)
    elif op.type == "CONV_2D" and len(op.inputs) > 2 and op.inputs[1] is not None and op.inputs[2] is not None:
        f, b = quant(op.inputs[1]), quant(op.inputs[2])
        if op.inputs[1].dtype == I8 and f.affine and len(f.scales) == 1 and b.affine and len(b.scales) > 1:
            out.append(f"{op.type}: the int8 filter is quantized per tensor but the bias per channel "
                       f"({len(b.scales)} scales); {_FAILS}")
    elif op.type == "FULLY_CONNECTED" and len(op.inputs) > 1:
        x, w = op.inputs[0], op.inputs[1]
        if x is not None and w is not None and x.dtype in FLOATS and w.dtype == I8:
            if quant(w).affine and any(quant(w).zero_points):
                out.append(f"{op.type}: dynamic range with int8 weights of zero point {quant(w).zero_points[0]} "
                           f"(XNNPACK needs symmetric weights); {_FAILS}")
            if w.producer is not None and w.producer.type == "DENSIFY":
                out.append(f"{op.type}: dynamic range with sparse int8 weights (DENSIFY); {_FAILS}. Store the "
                           "weights dense, or keep them float")
    elif op.type == "BATCH_MATMUL" and len(op.inputs) > 1:
        a, b = op.inputs[0], op.inputs[1]
        if a is not None and b is not None and a.dtype == F32 and b.dtype == I8 and quant(b).affine:
            d = dims(b)
            adj_y = bool(getattr(op.options, "adjY", False)) if op.options is not None else False
            n = d[-2] if adj_y else d[-1]
            batch = 1
            for x in d[:-2]:
                batch *= x
            k = len(quant(b).scales)
            if k != batch * n and (k == 0 or (batch * n) % k):
                out.append(f"{op.type}: the int8 right operand has {k} scales for {batch * n} columns; {_FAILS}")
    elif op.type in ("MaxPoolingWithArgmax2D", "MaxUnpooling2D"):
        out.append(f"{op.type}: XNNPACK rejects its int32 index tensor; {_FAILS} (LiteRT has no CPU kernel for it "
                   "either)")
    return out


def _requantizing_copy(op: Operator) -> list[str]:
    if op.type == "CONCATENATION":
        pairs = [(t, op.outputs[0]) for t in op.inputs if t is not None]
    elif op.type == "SPLIT":
        pairs = [(op.inputs[1], t) for t in op.outputs if t is not None] if len(op.inputs) > 1 else []
    else:
        pairs = [(op.inputs[0], op.outputs[0])] if op.inputs and op.outputs else []
    for a, b in pairs:
        if a is None or b is None or a.dtype not in (I8, U8) or b.dtype not in (I8, U8):
            continue
        if not same_quantization(a, b):
            return [f"{op.type}: {a.type_name.lower()} input {quant_text(a)} but output {quant_text(b)}: XNNPACK "
                    f"moves quantized data without requantizing; {_FAILS}. Give the output the input's "
                    "quantization"]
    return []


def prepare_failures(model) -> list[tuple[int, int, str]]:
    """(subgraph, op index, warning) for every op XNNPACK would take and then fail to build."""
    from .plan import make_plan
    plan = make_plan(model, XNNPACK)
    return [(d.subgraph, d.index, w) for d in plan.ops for w in getattr(d, "warnings", None) or []]


XNNPACK = register_target(Target(
    name="xnnpack",
    title="XNNPACK",
    runtime=f"{RUNTIME} (ai-edge-litert 2.3.0)",
    source=SOURCE,
    rules=RULES,
    unlisted="{op} is not taken by XNNPACK in LiteRT 2.3.0 (the delegate has no {op} kernel)",
    finalize=finalize,
    notes=(
        "Shapes are read as stored in the file (the delegate decides before ops are prepared): a tensor stored "
        "with shape [] is a scalar to it.",
        "Dynamic range (float32 input, int8 weights) runs as int8 GEMMs for FULLY_CONNECTED, CONV_2D, "
        "BATCH_MATMUL and TRANSPOSE_CONV; DEPTHWISE_CONV_2D stays on the CPU.",
        "int16 tensors are never taken.",
        "A DEQUANTIZE or DENSIFY of a constant is unpacked once and taken unless an op left on the CPU reads it.",
        "Some taken ops fail when XNNPACK builds its graph; the model then does not run with the default "
        "interpreter (see each decision's warnings).",
    ),
))
