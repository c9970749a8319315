"""Op-specific XNNPACK checks (private to ``tflc.targets.xnnpack``): the conditions one op type
adds to the type classes -- scale ratios, parameters, constant operands -- each a predicate with
its condition in words and a reason naming what is wrong and what XNNPACK needs."""
from __future__ import annotations

import numpy as np

from ..capabilities import Predicate
from ..ir.core import Operator
from ._xnnpack_checks import _label, _tensor, check, f32, int_values, opt
from ._xnnpack_tensors import (F16, F32, FLOATS, I2, I4, I8, I32, I64, MAX_RANK, RUNTIME, U8, check_float32, dims,
                               isnormal, numel, quant, quant_text, rank, scale_or_nan, type_name,
                               xnn_datatype)


def _is8(t) -> bool:
    return t is not None and t.dtype in (I8, U8)


# --------------------------------------------------------------------------- binary

def input_output_scale(low: float, high: float, bounds: str) -> Predicate:
    """ADD/SUB: each input's scale / the output's scale in [low, high) (8-bit only)."""
    def run(op: Operator) -> str:
        out = _tensor(op, "out")
        for i in (0, 1):
            t = _tensor(op, i)
            if t is None or out is None or t.dtype != out.dtype or not _is8(t):
                continue
            r = f32(quant(t).scales[0]) / f32(quant(out).scales[0])
            if not (f32(low) <= r < f32(high)):
                return (f"{_label(i, op)}'s scale / the output's scale = {float(r):.3g}, XNNPACK needs it in "
                        f"{bounds}")
        return ""
    return check(f"for int8/uint8: each input's scale / the output's scale is in {bounds}", run)


def product_output_scale(low: float, high: float, bounds: str) -> Predicate:
    """MUL: input 0's scale x input 1's scale / the output's scale in [low, high) (8-bit only)."""
    def run(op: Operator) -> str:
        a, b, out = _tensor(op, 0), _tensor(op, 1), _tensor(op, "out")
        if a is None or b is None or out is None or not (a.dtype == b.dtype == out.dtype) or not _is8(a):
            return ""
        r = (f32(quant(a).scales[0]) * f32(quant(b).scales[0])) / f32(quant(out).scales[0])
        if f32(low) <= r < f32(high):
            return ""
        return (f"input 0's scale x input 1's scale / the output's scale = {float(r):.3g}, XNNPACK needs it in "
                f"{bounds}")
    return check(f"for int8/uint8: input 0's scale x input 1's scale / the output's scale is in {bounds}", run)


# --------------------------------------------------------------------------- unary

def leaky_relu_params() -> Predicate:
    def run(op: Operator) -> str:
        alpha = f32(opt(op, "alpha", 0.0))
        if not isnormal(float(alpha)):
            return f"alpha is {float(alpha):g}, XNNPACK needs a normal non-zero alpha"
        si, so = scale_or_nan(op.inputs[0]), scale_or_nan(op.outputs[0])
        if isnormal(si) and isnormal(so):
            pos = f32(si) / f32(so)
            if pos < f32(1 / 256) or pos > f32(128):
                return f"the input scale / output scale = {float(pos):.3g}, XNNPACK needs it in [1/256, 128]"
            neg = pos * alpha
            if neg < f32(-127.99609375) or neg > f32(128) or abs(neg) < f32(1 / 256):
                return (f"the input scale / output scale x alpha = {float(neg):.3g}, XNNPACK needs it in "
                        "[-127.99609375, 128] and at least 1/256 in magnitude")
        return ""
    return check("alpha is normal and non-zero; for int8/uint8 the scale ratio is in [1/256, 128] and, times "
                 "alpha, in [-127.99609375, 128] and at least 1/256 in magnitude", run)


def quantize_combination() -> Predicate:
    def run(op: Operator) -> str:
        i, o = op.inputs[0], op.outputs[0]
        di, do = xnn_datatype(i), xnn_datatype(o)
        if di in ("fp32", "fp16"):
            return ""
        if di in ("qint8", "quint8") and di == do:
            r = f32(scale_or_nan(i)) / f32(scale_or_nan(o))
            if r < f32(1 / 256) or r > f32(128) or np.isnan(r):
                return f"the input scale / output scale = {float(r):.3g}, XNNPACK needs it in [1/256, 128]"
            return ""
        if di in ("qint8", "quint8") and do in ("qint8", "quint8"):
            return (f"requantizes {type_name(i)} to {type_name(o)}, XNNPACK requantizes only int8 to int8 "
                    "or uint8 to uint8")
        return f"input 0 is {quant_text(i)} and output 0 is {quant_text(o)}: XNNPACK cannot convert these"
    return check("float input, or int8 -> int8 / uint8 -> uint8 with input scale / output scale in [1/256, 128]",
                 run)


# --------------------------------------------------------------------------- pooling, convolution

def pooling() -> Predicate:
    def run(op: Operator) -> str:
        sw, sh = opt(op, "strideW"), opt(op, "strideH")
        fw, fh = opt(op, "filterWidth"), opt(op, "filterHeight")
        if min(sw, sh, fw, fh) <= 0:
            return (f"has stride {sh}x{sw} and filter {fh}x{fw} (HxW), XNNPACK needs both > 0"
                    + (" (the op has no options)" if op.options is None else ""))
        if sw > fw or sh > fh:
            return f"has stride {sh}x{sw} larger than its filter {fh}x{fw} (HxW), XNNPACK needs stride <= filter"
        if fw == 1 and fh == 1 and max(sw, sh) > 1:
            return f"is a 1x1 pooling with stride {sh}x{sw} (a subsampling), which XNNPACK does not take"
        return ""
    return check("stride and filter > 0, stride <= filter, and not a 1x1 filter with stride > 1", run)


def conv_params() -> Predicate:
    return check("strides and dilations > 0", lambda op: "" if min(
        opt(op, "strideW"), opt(op, "strideH"), opt(op, "dilationWFactor"), opt(op, "dilationHFactor")) > 0 else
        f"has stride {opt(op, 'strideH')}x{opt(op, 'strideW')} and dilation "
        f"{opt(op, 'dilationHFactor')}x{opt(op, 'dilationWFactor')}, XNNPACK needs all > 0"
        + (" (the op has no options)" if op.options is None else ""))


def has_bias(index: int = 2) -> Predicate:
    return check(f"input {index} (bias) is present",
                 lambda op: "" if len(op.inputs) > index and op.inputs[index] is not None else
                 "has no bias, XNNPACK needs one (a zero bias works)")


def conv_types() -> Predicate:
    """CONV_2D: input and output of one type; the filter too, or float32 input with int8 filter."""
    def run(op: Operator) -> str:
        i, f, o = op.inputs[0], op.inputs[1], op.outputs[0]
        dyn = i.dtype == F32 and f.dtype == I8
        if i.dtype == o.dtype and (i.dtype == f.dtype or dyn):
            return ""
        if i.dtype == F16 and f.dtype == I8:
            return ("float16 input with an int8 filter is not dynamically quantized by XNNPACK (it needs a "
                    "float32 input for that)")
        return (f"input 0 is {type_name(i)}, input 1 (filter) {type_name(f)}, output 0 {type_name(o)}: XNNPACK "
                "needs one type for all three, or float32 input and output with an int8 filter (dynamic range)")
    return check("input and output of one type, and the filter too (or float32 input with an int8 filter)", run)


def groups() -> Predicate:
    def run(op: Operator) -> str:
        i, f = dims(op.inputs[0]), dims(op.inputs[1])
        return "" if i[3] // f[3] >= 1 else (f"the input has {i[3]} channels, fewer than the filter's {f[3]}, "
                                             "XNNPACK needs at least as many")
    return check("input channels // filter input channels >= 1", run)


def depthwise_types() -> Predicate:
    def run(op: Operator) -> str:
        i, f, o = op.inputs[0], op.inputs[1], op.outputs[0]
        if i.dtype == o.dtype == f.dtype:
            return ""
        if i.dtype in FLOATS and f.dtype == I8 and o.dtype in FLOATS:
            return (f"{op.type} with int8 weights and float input (dynamic range) is not taken by XNNPACK in "
                    f"{RUNTIME} (it has no dynamic-range depthwise kernel; CONV_2D and FULLY_CONNECTED have one)")
        return (f"input 0 is {type_name(i)}, input 1 (filter) {type_name(f)}, output 0 {type_name(o)}: XNNPACK "
                "needs one type for all three")
    return check("input, filter and output of one type (no dynamic range)", run)


def depthwise_params() -> Predicate:
    def run(op: Operator) -> str:
        sw, sh, dm = opt(op, "strideW"), opt(op, "strideH"), opt(op, "depthMultiplier")
        dw, dh = opt(op, "dilationWFactor"), opt(op, "dilationHFactor")
        out_ch = dims(op.inputs[1])[3]
        if min(sw, sh) <= 0:
            return f"has stride {sh}x{sw}, XNNPACK needs > 0"
        if dm <= 0:
            return f"has depth multiplier {dm}, XNNPACK needs > 0"
        if out_ch % dm:
            return f"has {out_ch} output channels, not a multiple of its depth multiplier {dm}"
        if min(dw, dh) <= 0:
            return f"has dilation {dh}x{dw}, XNNPACK needs > 0"
        return ""
    return check("strides, dilations and depth multiplier > 0, output channels a multiple of the multiplier", run)


# --------------------------------------------------------------------------- fully connected

def fc_version() -> Predicate:
    return check("op version is not 8 (sparse)", lambda op: "" if op.opcode.version != 8 else
                 "version 8 (sparse weights) is not taken by XNNPACK")


def fc_bias() -> Predicate:
    def run(op: Operator) -> str:
        if len(op.inputs) < 3 or op.inputs[2] is None:
            return ""
        b, f = op.inputs[2], op.inputs[1]
        out_ch = dims(f)[0]
        if numel(b) != out_ch:
            return f"input 2 (bias) has {numel(b)} values for {out_ch} output channels, XNNPACK needs one per channel"
        return ""
    return check("the bias (if any) has one value per output channel", run)


def fc_types() -> Predicate:
    def run(op: Operator) -> str:
        i, f, o = op.inputs[0], op.inputs[1], op.outputs[0]
        dyn = i.dtype in FLOATS and f.dtype in (I2, I4, I8)
        srq = i.dtype == I8 and f.dtype in (I2, I4, I8)
        if i.dtype != o.dtype or (i.dtype != f.dtype and not (dyn or srq)):
            return (f"input 0 is {type_name(i)}, input 1 (filter) {type_name(f)}, output 0 {type_name(o)}: XNNPACK "
                    "needs input and output of one type, and the filter of that type too, or int8/int4 weights "
                    "with a float or int8 input")
        if not dyn and f.dtype == I8 and quant(f).legacy_zero_point != 0:
            return (f"int8 {op.type}: the weights have zero point {quant(f).legacy_zero_point}, XNNPACK needs "
                    "symmetric weights (zero point 0)")
        in_ch = dims(f)[1]
        if f.dtype == I4 and in_ch % 2:
            return f"int4 weights with an odd number of input channels ({in_ch}) are not taken by XNNPACK"
        if f.dtype == I2 and in_ch % 4:
            return f"int2 weights need a multiple of 4 input channels (has {in_ch})"
        return ""
    return check("input and output of one type and the filter too, or int8/int4/int2 weights with a float or int8 "
                 "input; static int8 weights symmetric", run)


# --------------------------------------------------------------------------- batch matmul

def batch_matmul() -> Predicate:
    """VisitBatchMatMulNode, in its order."""
    from ._xnnpack_tensors import check_fq8, check_qc8

    def run(op: Operator) -> str:
        if len(op.inputs) < 2 or not op.outputs:
            return f"has {len(op.inputs)} inputs, XNNPACK needs 2"
        a, b, o = op.inputs[0], op.inputs[1], op.outputs[0]
        why = check_fq8(op, "input 0 (the left operand)", a)
        if why:
            return why
        adj_y = bool(opt(op, "adjY", False))
        why = check_qc8(op, "input 1 (the right operand)", b, rank(b) - 2 if adj_y else rank(b) - 1)
        if why:
            return why
        dyn = a.dtype == F32 and b.dtype == I8
        qb = quant(b)
        if b.dtype == I8 and not dyn and qb.affine:
            zp = qb.zero_points[0] if len(qb.scales) > 1 else qb.legacy_zero_point
            if zp != 0:
                return (f"int8 {op.type}: the right operand has zero point {zp}, XNNPACK needs 0 and per-tensor "
                        "quantization")
        why = check_fq8(op, "output 0", o)
        if why:
            return why
        da, db = xnn_datatype(a), xnn_datatype(b)
        if da != db and not dyn:
            if b.dtype == I8 and len(qb.scales) > 1:
                return (f"int8 {op.type}: the right operand is quantized per channel ({len(qb.scales)} scales), "
                        "XNNPACK needs a per-tensor right operand with zero point 0")
            return (f"the left operand is {quant_text(a)} and the right {quant_text(b)}: XNNPACK needs one type, or "
                    "a float32 left operand with an int8 right operand (dynamic range)")
        for label, t in (("input 0 (the left operand)", a), ("input 1 (the right operand)", b)):
            if rank(t) < 2:
                return f"{label} has rank {rank(t)}, XNNPACK needs rank >= 2"
        return ""
    return check("left operand float or per-tensor int8/uint8; right operand of the same XNNPACK type (int8: "
                 "per tensor with zero point 0), or int8 with a float32 left operand (dynamic range); output float "
                 "or per-tensor int8/uint8; both ranks >= 2", run)


# --------------------------------------------------------------------------- data movement

def concat_axis() -> Predicate:
    def run(op: Operator) -> str:
        axis = opt(op, "axis")
        for k, t in enumerate(op.inputs):
            if t is not None and axis >= rank(t):
                return f"concatenates along axis {axis} of input {k}, which has rank {rank(t)}"
        return ""
    return check("the axis is within every input's rank", run)


def concat_uint8_same_quant() -> Predicate:
    def run(op: Operator) -> str:
        o = op.outputs[0]
        if o is None or o.dtype != U8:
            return ""
        qo = quant(o)
        for k, t in enumerate(op.inputs):
            q = quant(t)
            if q.legacy_zero_point != qo.legacy_zero_point or f32(q.legacy_scale) != f32(qo.legacy_scale):
                return (f"uint8 {op.type}: input {k} is {quant_text(t)} but the output {quant_text(o)}, XNNPACK "
                        "needs every input quantized like the output")
        return ""
    return check("uint8: every input has the output's scale and zero point", run)


def reduce_axes() -> Predicate:
    def run(op: Operator) -> str:
        ax = op.inputs[1]
        if ax.dtype != I32:
            return f"the axes (input 1) are {type_name(ax)}, XNNPACK needs int32"
        if rank(ax) > 1:
            return f"the axes (input 1) have rank {rank(ax)}, XNNPACK needs a vector"
        vals = int_values(ax)
        if vals is None:
            return "the axes (input 1) are computed at run time, XNNPACK needs constant axes"
        n = numel(ax)
        if n <= 0 or (n == 1 and vals[0] == 0 and rank(op.inputs[0]) == 0):
            return "reduces over no axis (or axis 0 of a scalar), which XNNPACK does not take"
        if n > MAX_RANK:
            return f"reduces over {n} axes, XNNPACK takes at most {MAX_RANK}"
        return ""
    return check("the axes are a constant int32 vector of 1 to 6 axes", run)


def pad_paddings() -> Predicate:
    def run(op: Operator) -> str:
        p, x = op.inputs[1], op.inputs[0]
        if p.dtype != I32:
            return f"the paddings (input 1) are {type_name(p)}, XNNPACK needs int32"
        d = dims(p)
        if len(d) != 2 or d[0] != rank(x) or d[1] != 2:
            return f"the paddings (input 1) have shape {list(d)}, XNNPACK needs [{rank(x)}, 2]"
        vals = int_values(p)
        if vals is None:
            return "the paddings (input 1) are computed at run time, XNNPACK needs constant paddings"
        if any(v < 0 for v in vals[: 2 * min(d[0], MAX_RANK)]):
            return f"has a negative padding ({vals}), XNNPACK needs paddings >= 0"
        return ""
    return check("the paddings are a constant int32 [rank, 2] tensor, all >= 0", run)


def reshape_params() -> Predicate:
    def run(op: Operator) -> str:
        i, o = op.inputs[0], op.outputs[0]
        if o.dtype in (I8, U8):
            qi, qo = quant(i), quant(o)
            if qi.legacy_zero_point != qo.legacy_zero_point or f32(qi.legacy_scale) != f32(qo.legacy_scale):
                return (f"quantized {op.type}: the input is {quant_text(i)} but the output {quant_text(o)}, XNNPACK "
                        "needs the same scale and zero point")
        if len(op.inputs) == 2:
            s = op.inputs[1]
            if s is None:
                return ""
            if s.dtype != I32:
                return f"the new shape (input 1) is {type_name(s)}, XNNPACK needs int32"
            d = dims(s)
            if len(d) != 1 and any(x != 1 for x in d[:-1]):
                return f"the new shape (input 1) has shape {list(d)}, XNNPACK needs a vector"
            vals = int_values(s)
            if vals is None:
                return ("the new shape (input 1) is computed at run time, XNNPACK needs a constant shape "
                        "(a dynamic RESHAPE stays on the CPU)")
            new = vals[: numel(s)]
        else:
            shape_opt = opt(op, "newShape", None)
            new = [int(v) for v in shape_opt] if shape_opt is not None else []
        if len(new) == 1 and new[0] in (-1, 0):
            return f"flattens to new shape {new}, which XNNPACK does not take (write the size instead of -1)"
        return ""
    return check("8-bit: the same scale and zero point in and out; the new shape is a constant int32 vector (or "
                 "the options'), not [-1]", run)


def resize_size() -> Predicate:
    def run(op: Operator) -> str:
        s = op.inputs[1]
        if s.dtype != I32:
            return f"the size (input 1) is {type_name(s)}, XNNPACK needs int32"
        if rank(s) != 1:
            return f"the size (input 1) has shape {list(dims(s))}, XNNPACK needs a vector"
        vals = int_values(s)
        if vals is None:
            return "the size (input 1) is computed at run time, XNNPACK needs a constant size"
        if vals and vals[0] <= 0:
            return f"the size is {vals}, XNNPACK needs positive sizes"
        return ""
    return check("the size is a constant int32 vector of positive sizes", run)


def _param_vector(op: Operator, index: int, name: str, types: tuple[int, ...]) -> str:
    t = _tensor(op, index)
    if t is None:
        return f"has no {name} (input {index})"
    if rank(t) != 1:
        return f"the {name} (input {index}) has shape {list(dims(t))}, XNNPACK needs a vector"
    if not t.is_constant:
        return f"the {name} (input {index}) is computed at run time, XNNPACK needs a constant"
    if t.dtype not in types:
        return f"the {name} (input {index}) is {type_name(t)}, XNNPACK needs " + " or ".join(
            type_name_of(c) for c in types)
    return ""


def type_name_of(code: int) -> str:
    from ..schema import TYPE_NAMES
    return TYPE_NAMES.get(code, str(code))


def slice_params() -> Predicate:
    def run(op: Operator) -> str:
        for index, name in ((1, "begin"), (2, "size")):
            why = _param_vector(op, index, name, (I32, I64))
            if why:
                return why
        b, s = op.inputs[1], op.inputs[2]
        if dims(b)[0] != dims(s)[0]:
            return f"begin has {dims(b)[0]} values and size {dims(s)[0]}, XNNPACK needs as many"
        return ""
    return check("begin and size are constant int32/int64 vectors of one length", run)


def slice_sizes() -> Predicate:
    def run(op: Operator) -> str:
        size = int_values(op.inputs[2])[: dims(op.inputs[1])[0]]
        if any(v <= 0 for v in size):
            return f"has size {size}, XNNPACK needs explicit positive sizes (no -1 for 'to the end')"
        return ""
    return check("every size > 0", run)


def strided_slice_params() -> Predicate:
    def run(op: Operator) -> str:
        masks = {m: opt(op, m) for m in ("ellipsisMask", "newAxisMask", "shrinkAxisMask")}
        used = [m for m, v in masks.items() if v]
        if used:
            return (f"uses {', '.join(used)}, which XNNPACK does not take (x[:, 0]-style indexing; slice "
                    "x[:, 0:1] and RESHAPE instead)")
        why = _param_vector(op, 3, "strides", (I32,))
        if why:
            return why
        strides = int_values(op.inputs[3])
        if any(v != 1 for v in strides[: dims(op.inputs[3])[0]]):
            return f"has strides {strides}, XNNPACK needs every stride to be 1"
        for index, name in ((1, "begin"), (2, "end")):
            why = _param_vector(op, index, name, (I32,))
            if why:
                return why
        r = rank(op.inputs[0])
        for index, name in ((1, "begin"), (2, "end"), (3, "strides")):
            n = dims(op.inputs[index])[0]
            if n != r:
                return f"the {name} has {n} values for a rank-{r} input, XNNPACK needs one per dimension"
        return ""
    return check("no ellipsis/new-axis/shrink-axis masks; begin, end and strides constant int32 vectors with one "
                 "value per input dimension; every stride 1", run)


def split_params() -> Predicate:
    def run(op: Operator) -> str:
        n = len(op.outputs)
        if opt(op, "numSplits") != n:
            return f"num_splits is {opt(op, 'numSplits')} for {n} outputs"
        if len(op.inputs) != 2:
            return f"has {len(op.inputs)} inputs, XNNPACK needs 2"
        if not 2 <= n <= 4:
            return f"splits into {n} parts, XNNPACK takes 2 to 4"
        ax = op.inputs[0]
        if ax.dtype != I32:
            return f"the axis (input 0) is {type_name(ax)}, XNNPACK needs int32"
        if not ax.is_constant:
            return "the axis (input 0) is computed at run time, XNNPACK needs a constant"
        return ""
    return check("2 to 4 outputs (num_splits), a constant int32 axis", run)


def block_size(divides_hw: bool = False) -> Predicate:
    def run(op: Operator) -> str:
        b = opt(op, "blockSize")
        if b <= 1:
            return f"has block size {b}, XNNPACK needs > 1"
        if divides_hw:
            d = dims(op.inputs[0])
            if len(d) >= 3 and (d[1] % b or d[2] % b):
                return f"the input's height and width ({d[1]}x{d[2]}) are not multiples of the block size {b}"
        return ""
    return check("block size > 1" + (" dividing the input's height and width" if divides_hw else ""), run)


def softmax_beta() -> Predicate:
    return check("beta == 1", lambda op: "" if f32(opt(op, "beta", 0.0)) == f32(1.0) else
                 f"has beta {opt(op, 'beta', 0.0):g}, XNNPACK needs beta == 1")


def transpose_perm() -> Predicate:
    return check("the permutation is a constant", lambda op: "" if len(op.inputs) > 1 and op.inputs[1] is not None
                 and op.inputs[1].is_constant else "the permutation (input 1) is computed at run time, XNNPACK "
                 "needs a constant")


# --------------------------------------------------------------------------- transposed convolution

def _tconv_padding(op: Operator, padding, in_h: int, in_w: int, k_h: int, k_w: int, s_h: int, s_w: int,
                   out_h: int, out_w: int) -> str:
    from ..schema import fb
    if padding == fb.Padding.VALID:
        if k_h > out_h or k_w > out_w:
            return f"VALID padding with a {k_h}x{k_w} kernel larger than the {out_h}x{out_w} output"
        return ""
    if padding == fb.Padding.SAME:
        exp_h = (out_h + s_h - 1) // s_h if s_h else 0
        exp_w = (out_w + s_w - 1) // s_w if s_w else 0
        if (exp_h, exp_w) != (in_h, in_w):
            return (f"SAME padding: a {out_h}x{out_w} output with stride {s_h}x{s_w} needs a {exp_h}x{exp_w} "
                    f"input, the input is {in_h}x{in_w}")
        if k_h < s_h or k_w < s_w:
            return (f"SAME padding with a {k_h}x{k_w} kernel smaller than the stride {s_h}x{s_w}, which XNNPACK "
                    "does not take")
        return ""
    return "padding is neither SAME nor VALID"


def transpose_conv() -> Predicate:
    """VisitTransposeConvNode after the type classes: output shape, channels, padding."""
    def run(op: Operator) -> str:
        oshape = op.inputs[0]
        if oshape.dtype != I32:
            return f"the output shape (input 0) is {type_name(oshape)}, XNNPACK needs int32"
        if rank(oshape) != 1:
            return f"the output shape (input 0) has shape {list(dims(oshape))}, XNNPACK needs a vector"
        vals = int_values(oshape)
        if vals is None:
            return "the output shape (input 0) is computed at run time, XNNPACK needs a constant"
        if dims(oshape)[0] != 4:
            return f"the output shape has {dims(oshape)[0]} values, XNNPACK needs 4"
        return ""
    return check("the output shape is a constant int32 4-vector", run)


def transpose_conv_geometry() -> Predicate:
    def run(op: Operator) -> str:
        f, x = dims(op.inputs[1]), dims(op.inputs[2])
        out = int_values(op.inputs[0])
        if f[0] != out[3]:
            return f"the filter has {f[0]} output channels, the output shape {out[3]}"
        if f[3] != x[3]:
            return f"the filter has {f[3]} input channels, the input {x[3]}"
        return _tconv_padding(op, opt(op, "padding", None), x[1], x[2], f[1], f[2], opt(op, "strideH"),
                              opt(op, "strideW"), out[1], out[2])
    return check("channels match the output shape and input; VALID: kernel <= output; SAME: input = "
                 "ceil(output / stride) and kernel >= stride", run)


# --------------------------------------------------------------------------- custom ops

def _pod(op: Operator, n: int) -> list[int]:
    """A custom op's options read as ``n`` int32 fields of a C struct (missing bytes: 0)."""
    raw = (op.custom_options or b"")[: 4 * n]
    raw = raw + b"\0" * (4 * n - len(raw))
    return [int(v) for v in np.frombuffer(raw, dtype="<i4")]


_TFL_PADDING = {1: "SAME", 2: "VALID"}      # TfLitePadding (0: unknown)


def mediapipe_deconv() -> Predicate:
    """Convolution2DTransposeBias: float32 4-D in/filter/out, float32 bias, constant weights,
    strides > 0, the padding rules of TRANSPOSE_CONV (options: a raw TfLiteTransposeConvParams)."""
    from ..schema import fb

    def run(op: Operator) -> str:
        if len(op.inputs) != 3 or len(op.outputs) != 1:
            return f"has {len(op.inputs)} inputs and {len(op.outputs)} outputs, XNNPACK needs 3 and 1"
        for label, t, r in (("input 0", op.inputs[0], 4), ("input 1 (filter)", op.inputs[1], 4),
                            ("input 2 (bias)", op.inputs[2], 1), ("output 0", op.outputs[0], 4)):
            why = check_float32(op, label, t)
            if why:
                return why
            d = dims(t)
            if len(d) != r or any(x <= 0 for x in d):
                return f"{label} has shape {list(d)}, XNNPACK needs rank {r}"
        from ._xnnpack_checks import quasi_static
        for k in (1, 2):
            t = op.inputs[k]
            if not (t.is_constant or quasi_static(t)):
                return f"input {k} is computed at run time, XNNPACK needs a constant"
        pad, sw, sh = _pod(op, 3)
        if sw <= 0 or sh <= 0:
            return f"has stride {sh}x{sw}, XNNPACK needs > 0"
        padding = {1: fb.Padding.SAME, 2: fb.Padding.VALID}.get(pad)
        f, x, o = dims(op.inputs[1]), dims(op.inputs[0]), dims(op.outputs[0])
        return _tconv_padding(op, padding, x[1], x[2], f[1], f[2], sh, sw, o[1], o[2])
    return check("float32 4-D input, filter and output, float32 bias, constant weights, strides > 0, TRANSPOSE_CONV "
                 "padding rules", run)


def mediapipe_pool(unpool: bool) -> Predicate:
    def run(op: Operator) -> str:
        n_in, n_out = (2, 1) if unpool else (1, 2)
        if len(op.inputs) != n_in or len(op.outputs) != n_out:
            return f"has {len(op.inputs)} inputs and {len(op.outputs)} outputs, XNNPACK needs {n_in} and {n_out}"
        values = [("input 0", op.inputs[0]), ("output 0", op.outputs[0])]
        for label, t in values:
            why = check_float32(op, label, t)
            if why:
                return why
        for label, t in values + [("input 1" if unpool else "output 1", op.inputs[1] if unpool else op.outputs[1])]:
            d = dims(t)
            if len(d) != 4 or any(x <= 0 for x in d):
                return f"{label} has shape {list(d)}, XNNPACK needs rank 4"
        pad, sw, sh, fw, fh, act = _pod(op, 6)
        if min(sw, sh, fw, fh) <= 0:
            return f"has stride {sh}x{sw} and filter {fh}x{fw}, XNNPACK needs > 0"
        if fw != sw or fh != sh:
            return f"has stride {sh}x{sw} and filter {fh}x{fw}, XNNPACK needs filter == stride"
        if act not in (0, 1, 2, 3):
            return "has a fused activation other than a clamp"
        if pad not in _TFL_PADDING:
            return "padding is neither SAME nor VALID"
        return ""
    return check("float32 4-D values, filter == stride > 0, SAME or VALID padding", run)


def sdpa() -> Predicate:
    """odml.scaled_dot_product_attention: float32 query, key, value (mask) and output, one head
    size; the mask's last dimension equal to the key/value length."""
    def run(op: Operator) -> str:
        if len(op.inputs) < 3 or not op.outputs:
            return f"has {len(op.inputs)} inputs, XNNPACK needs query, key and value"
        names = ["query", "key", "value", "mask"]
        ins = list(op.inputs[:4]) if len(op.inputs) > 3 else list(op.inputs[:3])
        for k, t in enumerate(ins):
            why = check_float32(op, f"input {k} ({names[k]})", t)
            if why:
                return why
        why = check_float32(op, "output 0", op.outputs[0])
        if why:
            return why
        q, k_, v = (dims(t) for t in ins[:3])
        if not (q and k_ and v) or not (q[-1] == k_[-1] == v[-1]):
            return f"query, key and value have shapes {list(q)}, {list(k_)}, {list(v)}: XNNPACK needs one head size"
        if len(ins) > 3:
            m = dims(ins[3])
            if len(k_) < 2 or len(v) < 2 or not m or k_[1] != m[-1] or v[1] != m[-1]:
                return f"the mask has shape {list(m)}, its last dimension must equal the key/value length"
        return ""
    return check("float32 query, key, value, mask and output; one head size; the mask matches the key length", run)


def composite_name(name: str) -> Predicate:
    def run(op: Operator) -> str:
        o2 = op.options2
        got = getattr(o2, "name", None)
        got = got.decode() if isinstance(got, bytes) else got
        return "" if got == name else (f"a STABLEHLO_COMPOSITE named {got!r} is not taken by XNNPACK (only "
                                       f"{name!r})")
    return check(f"the composite is {name!r}", run)
