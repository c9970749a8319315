"""The per-op checks of LiteRT's GPU delegate (private to ``tflc.targets.gpu``): one function per
``case`` of ``CheckGpuDelegateCompatibility`` in ``tflite/tools/versioning/gpu_compatibility.cc``
and per special ``IsSupported`` of ``tflite/delegates/gpu/common/model_builder.cc``, each returning
the reason an op is refused ("" when it passes). Inputs are read as the delegate is shown them:
a float16 weight behind a DEQUANTIZE counts as that constant (FP16GraphPartitionHelper).
"""
from __future__ import annotations

import struct

from ..ir.core import Operator
from ..schema import fb
from ._rules import (ACT, BOOL, F16, F32, I16, I32, act_name, dims, is_const, option, rank, runtime_inputs,
                     seen_inputs, type_name)

WHO = "the GPU delegate"

# --------------------------------------------------------------------------- shared checks


def io(op: Operator, runtime: int, outputs: int, consts: int | None = None) -> str:
    """CheckInputsOutputs / CheckInputsConstsOutputs."""
    if consts is not None:
        n = sum(1 for t in seen_inputs(op) if is_const(t))
        if n != consts:
            return f"{n} constant input(s), needs {consts}"
    n = runtime_inputs(op)
    if n != runtime:
        return f"{n} input(s) computed at run time, needs {runtime}"
    n = len(op.outputs)
    return "" if n == outputs else f"{n} output(s), needs {outputs}"


def activation(op: Operator, field: str = "fusedActivationFunction") -> str:
    """IsActivationSupported: every fused activation but SIGN_BIT."""
    a = option(op, field, ACT.NONE)
    return f"fused activation {act_name(a)}, needs NONE, RELU, RELU_N1_TO_1, RELU6 or TANH" \
        if a == ACT.SIGN_BIT else ""


def strides(h: int, w: int) -> str:
    return "" if h > 0 and w > 0 else f"strides {h}x{w}, needs strides > 0"


def conv_io(op: Operator) -> str:
    """CheckConvolutionInputOutput: 1 or 2 runtime inputs, 1 output; a filter when only 1 is runtime."""
    n = runtime_inputs(op)
    if n < 1 or n > 2:
        return f"{n} input(s) computed at run time, needs 1 or 2"
    if len(op.outputs) != 1:
        return f"{len(op.outputs)} outputs, needs 1"
    if n == 1 and len(op.inputs) < 2:
        return "no input 1 (filter), needs one"
    return ""


def axes_int32_const(op: Operator, i: int) -> str:
    """CheckAxesAreInt32Const."""
    ins = seen_inputs(op)
    t = ins[i] if i < len(ins) else None
    if not is_const(t):
        return f"input {i} (axes) is computed at run time, needs constant axes"
    return "" if t.dtype == I32 else f"input {i} (axes) is {type_name(t.dtype)}, needs INT32 axes"


def _broadcast(op: Operator) -> str:
    """CheckAddMulBroadcastCompatibility as the delegate calls it (GpuCompatibilityFlags::kStandard):
    of two inputs of different ranks (both > 1), a 3-D one broadcasts to 4-D with batch 1, a 2-D
    [1, 1] or [b, c] one to 4-D [1|b, h, w, c]."""
    a, b = dims(op.inputs[0]), dims(op.inputs[1])
    if a is None or b is None or len(a) <= 1 or len(b) <= 1 or len(a) == len(b):
        return ""
    lo, sh = (a, b) if len(a) >= len(b) else (b, a)
    ok = ((len(lo) == 4 and len(sh) == 3 and lo[0] == 1)
          or (len(lo) == 4 and len(sh) == 2 and lo[0] == 1 and sh[0] == 1 and sh[1] == 1)
          or (len(lo) == 4 and len(sh) == 2 and lo[0] == sh[0] and lo[3] == sh[1]))
    return "" if ok else (f"inputs of shapes {list(a)} and {list(b)} broadcast, needs a 3-D input broadcast to 4-D "
                          "with batch 1, or a 2-D [1, 1] or [batch, channels] one")


# --------------------------------------------------------------------------- one function per op family

def add(op: Operator) -> str:
    """two inputs, broadcast only 3-D -> 4-D (batch 1) or 2-D [1, 1] / [b, c] -> 4-D."""
    if len(op.inputs) != 2:
        return f"{len(op.inputs)} inputs, needs two"
    return _broadcast(op)


def add_n(op: Operator) -> str:
    """two inputs."""
    return "" if len(op.inputs) == 2 else f"{len(op.inputs)} inputs, needs 2"


def mul(op: Operator) -> str:
    """two inputs, broadcast as ADD's, no SIGN_BIT activation."""
    if len(op.inputs) != 2:
        return f"{len(op.inputs)} inputs, needs two"
    return _broadcast(op) or activation(op)


def pooling(op: Operator) -> str:
    """one runtime input and output, kernel and strides > 0, no SIGN_BIT activation."""
    why = io(op, 1, 1)
    if why:
        return why
    kh, kw = option(op, "filterHeight", 0), option(op, "filterWidth", 0)
    if kh <= 0 or kw <= 0:
        return f"kernel {kh}x{kw}, needs a kernel > 0"
    return strides(option(op, "strideH", 0), option(op, "strideW", 0)) or activation(op)


def batch_matmul(op: Operator) -> str:
    """two inputs, one output."""
    if len(op.inputs) != 2 or len(op.outputs) != 1:
        return f"{len(op.inputs)} inputs and {len(op.outputs)} outputs, needs 2 inputs and 1 output"
    return ""


def _type_pair(a: int, b: int) -> bool:
    floats = (F16, F32)
    return (a == BOOL and b in floats) or (a in floats and b == BOOL) or (a in (F32, I32) and b in (F32, I32))


def cast(op: Operator) -> str:
    """one runtime input; BOOL <-> FLOAT16/FLOAT32 or FLOAT32/INT32 -> FLOAT32/INT32."""
    why = io(op, 1, 1)
    if why:
        return why
    a, b = op.inputs[0].dtype, op.outputs[0].dtype
    return "" if _type_pair(a, b) else (f"a CAST from {type_name(a)} to {type_name(b)}, needs BOOL <-> FLOAT16/FLOAT32 "
                                         "or FLOAT32/INT32 -> FLOAT32/INT32")


def conv_2d(op: Operator) -> str:
    """1-2 runtime inputs, strides and dilations > 0, no SIGN_BIT activation."""
    return (conv_io(op) or strides(option(op, "strideH", 0), option(op, "strideW", 0))
            or _dilation(op) or activation(op))


def _dilation(op: Operator) -> str:
    h, w = option(op, "dilationHFactor", 1), option(op, "dilationWFactor", 1)
    return "" if h > 0 and w > 0 else f"dilation {h}x{w}, needs dilation > 0"


def depthwise_conv_2d(op: Operator) -> str:
    """as CONV_2D; rank-4 input, filter and output; output channels = input channels x multiplier."""
    why = (conv_io(op) or strides(option(op, "strideH", 0), option(op, "strideW", 0)) or _dilation(op)
           or activation(op))
    if why:
        return why
    ins = seen_inputs(op)
    x, f, o = dims(ins[0]), dims(ins[1]), dims(op.outputs[0])
    for name, d in (("input 0", x), ("input 1 (filter)", f), ("output 0", o)):
        if d is None or len(d) != 4:
            return f"{name} has rank {len(d) if d else 0}, needs rank 4"
    if x[0] != o[0]:
        return f"input batch {x[0]} and output batch {o[0]} differ, needs them equal"
    if f[3] != o[3]:
        return f"filter channels {f[3]} and output channels {o[3]} differ, needs them equal"
    mult = option(op, "depthMultiplier", 1)
    if o[3] != x[3] * mult:
        return f"output channels {o[3]} != input channels {x[3]} x depth multiplier {mult}, needs them equal"
    bias = ins[2] if len(ins) > 2 else None
    if bias is not None and dims(bias) is not None:
        n = 1
        for d in dims(bias):
            n *= d
        if n != o[3]:
            return f"a bias of {n} values for {o[3]} output channels, needs one per channel"
    return ""


def cumsum(op: Operator) -> str:
    """FLOAT32/FLOAT16 in and out, a constant INT32 axis."""
    if len(op.inputs) != 2 or len(op.outputs) != 1:
        return "needs 2 inputs and 1 output"
    x, axis = op.inputs
    if x.dtype not in (F16, F32) or op.outputs[0].dtype != x.dtype:
        return f"input 0 is {type_name(x.dtype)}, needs FLOAT32 or FLOAT16 in and out"
    return "" if axis.dtype == I32 and is_const(axis) else "input 1 (axis), needs a constant INT32 axis"


def densify(op: Operator) -> str:
    """no runtime input, one output."""
    return io(op, 0, 1)


def depth_to_space(op: Operator) -> str:
    """one runtime input and output, block size > 1."""
    why = io(op, 1, 1)
    if why:
        return why
    b = option(op, "blockSize", 0)
    return "" if b > 1 else f"block size {b}, needs block size > 1"


space_to_depth = depth_to_space


def dequantize(op: Operator) -> str:
    """one input and output, not INT16."""
    if len(op.inputs) != 1 or len(op.outputs) != 1:
        return "needs 1 input and 1 output"
    return "input 0 is INT16, needs INT8 or UINT8 (int16 dequantization is not supported)" \
        if op.inputs[0].dtype == I16 else ""


def fully_connected(op: Operator) -> str:
    """default weights format, <= 2 runtime inputs, input 0 computed at run time, keep_num_dims only with
    equal ranks."""
    if not op.inputs:
        return "no input, needs one"
    if option(op, "weightsFormat", 0) != fb.FullyConnectedOptionsWeightsFormat.DEFAULT:
        return "shuffled weights (weights_format SHUFFLED4x16INT8), needs the DEFAULT weights format"
    if runtime_inputs(op) > 2:
        return f"{runtime_inputs(op)} inputs computed at run time, needs at most 2"
    if is_const(seen_inputs(op)[0]):
        return "input 0 is constant, needs an input computed at run time"
    if option(op, "keepNumDims", False) and rank(op.inputs[0]) != rank(op.outputs[0]):
        return (f"keep_num_dims with input rank {rank(op.inputs[0])} and output rank {rank(op.outputs[0])}, "
                "needs equal ranks")
    return ""


def gather(op: Operator) -> str:
    """1-2 operands, 1-D INT32 indices."""
    if io(op, 2, 1, consts=0) and io(op, 1, 1, consts=1):
        return "needs 1 or 2 operands (inputs computed at run time) and 1 output"
    idx = op.inputs[1]
    if rank(idx) != 1:
        return f"input 1 (indices) has rank {rank(idx)}, needs 1-D indices"
    return "" if idx.dtype == I32 else f"input 1 (indices) is {type_name(idx.dtype)}, needs INT32 indices"


def hard_swish(op: Operator) -> str:
    """one runtime input and output."""
    return io(op, 1, 1)


def lstm(op: Operator) -> str:
    """full kernel: 20/24 inputs, TANH; basic kernel: 3 runtime + 2 constant inputs, depth % 4 == 0, no clipping."""
    kernel = option(op, "kernelType", 0)
    a = option(op, "fusedActivationFunction", ACT.NONE)
    if kernel == fb.LSTMKernelType.FULL:
        if len(op.inputs) not in (20, 24):
            return f"{len(op.inputs)} inputs, needs 20 or 24"
        if len(op.outputs) != 1:
            return f"{len(op.outputs)} outputs, needs 1"
        return "" if a == ACT.TANH else f"activation {act_name(a)}, needs TANH (or sigmoid)"
    why = io(op, 3, 4, consts=2)
    if why:
        return why
    d = dims(op.outputs[3])
    if d and d[-1] % 4:
        return f"output 3 depth {d[-1]}, needs a multiple of 4 (BasicLSTM)"
    if a != ACT.TANH:
        return f"activation {act_name(a)}, needs TANH"
    if option(op, "cellClip", 0.0) != 0.0:
        return "cell_clip is set, needs none"
    return "proj_clip is set, needs none" if option(op, "projClip", 0.0) != 0.0 else ""


def reduce(op: Operator) -> str:
    """one runtime input, constant INT32 axes.

    MEAN, SUM, REDUCE_MAX/MIN/PROD: one runtime input, constant INT32 axes."""
    return io(op, 1, 1, consts=1) or axes_int32_const(op, 1)


def one_hot(op: Operator) -> str:
    """INT32 indices, constant scalar FLOAT32 on/off values, axis -1 or the last dimension."""
    if len(op.inputs) != 4 or len(op.outputs) != 1:
        return "needs 4 inputs and 1 output"
    idx, _, on, off = op.inputs
    bad = "needs INT32 indices, constant scalar FLOAT32 on/off values and axis -1 or the last dimension"
    if idx.dtype != I32:
        return f"input 0 (indices) is {type_name(idx.dtype)}, {bad}"
    d = dims(idx) or ()
    axis = option(op, "axis", -1)
    if axis != -1 and (not d or axis != d[-1]):
        return f"axis {axis}, {bad}"
    for i in range(len(d) - 1):
        if not (len(d) > 3 and i == 0) and d[i] != 1:
            return f"input 0 has a non-singleton dimension {i}, needs only batch and channels non-singleton"
    for name, t in (("input 2 (on value)", on), ("input 3 (off value)", off)):
        td = dims(t) or ()
        if t.dtype != F32 or not is_const(t) or len(td) > 1 or (td and td[0] > 1):
            return f"{name}, {bad}"
    return ""


def quantize(op: Operator) -> str:
    """one runtime input and output."""
    return io(op, 1, 1)


def reshape(op: Operator) -> str:
    """one runtime input (a constant shape) and one output."""
    return io(op, 1, 1)


def select(op: Operator) -> str:
    """BOOL/float condition broadcasting to the output; if/else of the output's shape or scalars (2-D ones constant).

    CheckSelectV2GpuDelegateCompatibility (SELECT and SELECT_V2)."""
    if len(op.inputs) != 3 or len(op.outputs) != 1:
        return "needs 3 inputs and 1 output"
    cond, a, b = seen_inputs(op)
    out = list(dims(op.outputs[0]) or ())
    bad = "needs a BOOL or float condition and if/else tensors of the output's shape or constant scalars"
    if cond.dtype not in (BOOL, F16, F32):
        return f"input 0 (condition) is {type_name(cond.dtype)}, {bad}"
    cd = list(dims(cond) or ())
    if cd:
        off = len(out) - len(cd)
        if off < 0 or any(c != out[off + i] and c != 1 for i, c in enumerate(cd)):
            return f"input 0 (condition) of shape {cd} does not broadcast to {out}, {bad}"
    for i, t in ((1, a), (2, b)):
        td = list(dims(t) or ())
        if td and td != out and (len(td) > 1 or td[0] > 1):
            return f"input {i} of shape {td} for an output {out}, {bad}"
        if not is_const(t) and len(td) == 2:
            return f"input {i} is a 2-D tensor computed at run time, needs a 2-D if/else tensor to be constant"
    return ""


def slice_(op: Operator) -> str:
    """3 inputs, input rank 3 or 4."""
    if len(op.inputs) < 3:
        return f"{len(op.inputs)} inputs, needs 3"
    r = rank(op.inputs[0])
    return "" if r in (3, 4) else f"input 0 has rank {r}, needs rank 3 or 4"


def softmax(op: Operator) -> str:
    """beta 1."""
    beta = option(op, "beta", 0.0)          # no options: LiteRT zero-initialises beta
    return "" if beta == 1 else f"beta {beta:g}, needs beta 1"


def strided_slice(op: Operator) -> str:
    """no ellipsis/new-axis/shrink masks, 4 inputs, input rank 3 or 4."""
    for field, what in (("ellipsisMask", "ellipsis_mask"), ("newAxisMask", "new_axis_mask"),
                        ("shrinkAxisMask", "shrink_axis_mask")):
        if option(op, field, 0):
            return f"{what} is set, needs no {what}"
    if len(op.inputs) < 4:
        return f"{len(op.inputs)} inputs, needs 4"
    r = rank(op.inputs[0])
    return "" if r in (3, 4) else f"input 0 has rank {r}, needs rank 3 or 4"


def tile(op: Operator) -> str:
    """one runtime input and output."""
    return io(op, 1, 1)


def transpose(op: Operator) -> str:
    """one runtime input (a constant permutation) and one output."""
    return io(op, 1, 1)


def transpose_conv(op: Operator) -> str:
    """1-2 runtime inputs, strides > 0."""
    return conv_io(op) or strides(option(op, "strideH", 0), option(op, "strideW", 0))


def resize(op: Operator) -> str:
    """one runtime input and output; not align_corners with half_pixel_centers."""
    why = io(op, 1, 1)
    if why:
        return why
    if op.type == "RESIZE_BILINEAR" and option(op, "alignCorners", False) and option(op, "halfPixelCenters", False):
        return "align_corners and half_pixel_centers are both set, needs at most one"
    return ""


def pad(op: Operator) -> str:
    """REFLECT mirror padding; one runtime input; paddings 4x2 or 3x2."""
    if op.type == "MIRROR_PAD" and option(op, "mode", 0) != fb.MirrorPadMode.REFLECT:
        return "SYMMETRIC mirror padding, needs REFLECT"
    why = io(op, 1, 1)
    if why:
        return why
    if len(op.inputs) < 2:
        return "no input 1 (paddings), needs one"
    d = dims(op.inputs[1]) or ()
    if len(d) != 2:
        return f"input 1 (paddings) has rank {len(d)}, needs a 2-D paddings tensor"
    return "" if d[0] in (3, 4) and d[1] == 2 else f"paddings of shape {list(d)}, needs 4x2 or 3x2"


def unary(op: Operator) -> str:
    """one runtime input, no constant input, one output.

    One-input elementwise ops (ABS, EXP, LOGISTIC, TANH, ...)."""
    return io(op, 1, 1, consts=0)


def binary(op: Operator) -> str:
    """two runtime inputs, or one and a constant; DIV/SUB: no SIGN_BIT activation.

    Two-input elementwise ops (SUB, DIV, MAXIMUM, ...): two runtime inputs, or one and a constant."""
    if io(op, 2, 1, consts=0) and io(op, 1, 1, consts=1):
        n = runtime_inputs(op)
        return f"{n} input(s) computed at run time and {len(op.inputs) - n} constant(s), needs 1 or 2 operands"
    return activation(op) if op.type in ("DIV", "SUB") else ""


#: the comparisons: taken only when their one consumer turns the BOOL into floats
COMPARISONS = ("EQUAL", "GREATER", "GREATER_EQUAL", "LESS", "LESS_EQUAL", "NOT_EQUAL")


def comparison(op: Operator) -> str:
    """its BOOL output read only by a CAST/SELECT/SELECT_V2 writing floats.

    ElementwiseOperationParser::IsSupported for a logical op: its output has one producer and
    one consumer, a CAST, SELECT or SELECT_V2 writing FLOAT16/FLOAT32."""
    out = op.outputs[0] if op.outputs else None
    users = out.consumers if out is not None else []
    if len(users) != 1:
        return f"its BOOL output has {len(users)} consumers, needs exactly one (a CAST or SELECT to floats)"
    nxt = users[0]
    dst = nxt.outputs[0].dtype if nxt.outputs and nxt.outputs[0] is not None else None
    if nxt.type in ("CAST", "SELECT", "SELECT_V2") and dst in (F16, F32):
        return ""
    return (f"its BOOL output feeds {nxt.type} writing {type_name(dst) if dst is not None else 'nothing'}, "
            "needs a CAST, SELECT or SELECT_V2 to FLOAT16/FLOAT32")


def cast_op(op: Operator) -> str:
    """BOOL -> float after a comparison (one reader), else CAST's types.

    CastOperationParser: BOOL -> float right after a comparison is taken (the pair runs on the GPU);
    otherwise the compatibility rules of CAST."""
    if op.inputs and op.outputs and op.inputs[0].dtype == BOOL and op.outputs[0].dtype in (F16, F32):
        src = op.inputs[0]
        if src.producer is not None and len(src.consumers) == 1:
            if len(op.outputs[0].consumers) != 1:
                return "a CAST from BOOL that is a graph output (or has several readers), needs exactly one reader"
            if src.producer.type in COMPARISONS:
                return ""
    return cast(op)


# --------------------------------------------------------------------------- custom ops LiteRT's GPU delegate has

def _ints(op: Operator, n: int) -> tuple[int, ...] | None:
    raw = op.custom_options
    if raw is None or len(raw) < 4 * n:
        return None
    return struct.unpack_from(f"<{n}i", bytes(raw))


def custom(op: Operator) -> str:
    """the custom op's own checks (Resampler, MaxPoolingWithArgmax2D, MaxUnpooling2D, Convolution2DTransposeBias)."""
    code = op.opcode.custom_code
    if code == "Convolution2DTransposeBias":
        if len(op.inputs) < 2:
            return "no input 1 (filter), needs one"
        p = _ints(op, 3)                       # TfLiteTransposeConvParams: padding, stride_w, stride_h
        if p is None:
            return "no TfLiteTransposeConvParams in its custom options, needs them"
        return strides(p[2], p[1])
    if code == "MaxPoolingWithArgmax2D":
        why = io(op, 1, 2)
        p = _ints(op, 6)                       # TfLitePoolParams: padding, stride_w/h, filter_w/h, activation
        if why or p is None:
            return why or "no TfLitePoolParams in its custom options, needs them"
        if p[3] <= 0 or p[4] <= 0:
            return f"kernel {p[4]}x{p[3]}, needs a kernel > 0"
        return strides(p[2], p[1]) or ("fused activation SIGN_BIT, needs another" if p[5] == 5 else "")
    if code == "MaxUnpooling2D":
        why = io(op, 2, 1)
        p = _ints(op, 5)
        if why or p is None:
            return why or "no TfLitePoolParams in its custom options, needs them"
        if p[3] <= 0 or p[4] <= 0:
            return f"kernel {p[4]}x{p[3]}, needs a kernel > 0"
        return strides(p[2], p[1])
    if code == "Resampler":
        why = io(op, 2, 1)
        if why:
            return why
        src, warp = dims(op.inputs[0]), dims(op.inputs[1])
        if src is None or warp is None or len(src) != 4 or len(warp) != 4:
            return "src or warp of rank != 4, needs rank 4"
        if src[0] != warp[0]:
            return "src and warp batches differ, needs them equal"
        return "" if warp[3] >= 2 else f"warp depth {warp[3]}, needs at least 2"
    return f"custom op {code!r} is not supported by {WHO}"
