"""The operator checks of the Ethos-U target (private to ``tflc.targets.ethos_u``): each function
returns the reason Vela 5.2 leaves an op on the CPU ("" when it passes), phrased after the
constraint it implements in ``vela --supported-ops-report`` (Ethos-U55/U65 TFLite tables).

Vela reads shapes as 4-D NHWC: a tensor of lower rank is padded with leading 1s, and a higher
rank folds the leading axes into the batch; ``hwc4`` does the same here.
"""
from __future__ import annotations

import itertools
import math

import numpy as np

from ..ir.core import Operator, Tensor
from ..ir.quant import quant_params, same_quantization
from ..schema import fb
from ._rules import I8, I16, I32, I64, U8, const_values, dims, is_const, option, rank, type_name

WHO = "Vela"
EIGHT_BIT = (I8, U8)

# --------------------------------------------------------------------------- tensors

#: which inputs are feature maps (IFM, IFM2); the rest are weights, biases or parameters
IFMS: dict[str, tuple[int, ...] | str] = {
    "ADD": (0, 1), "SUB": (0, 1), "MUL": (0, 1), "MAXIMUM": (0, 1), "MINIMUM": (0, 1),
    "SQUARED_DIFFERENCE": (0, 1), "BATCH_MATMUL": (0, 1), "PRELU": (0, 1),
    "CONCATENATION": "all", "PACK": "all", "SPLIT": (1,), "TRANSPOSE_CONV": (2,),
}
#: the weight input of the MAC ops (quantization is required of it too)
WEIGHTS = {"CONV_2D": 1, "DEPTHWISE_CONV_2D": 1, "FULLY_CONNECTED": 1, "TRANSPOSE_CONV": 1}
BIAS = {"CONV_2D": 2, "DEPTHWISE_CONV_2D": 2, "FULLY_CONNECTED": 2, "TRANSPOSE_CONV": 3}


def ifms(op: Operator) -> list[tuple[str, Tensor]]:
    sel = IFMS.get(op.type, (0,))
    idx = range(len(op.inputs)) if sel == "all" else sel
    return [(f"input {i}", op.inputs[i]) for i in idx if i < len(op.inputs) and op.inputs[i] is not None]


def ofms(op: Operator) -> list[tuple[str, Tensor]]:
    return [(f"output {i}", t) for i, t in enumerate(op.outputs) if t is not None]


def fms(op: Operator) -> list[tuple[str, Tensor]]:
    """The op's feature maps: IFMs and OFMs (a FULLY_CONNECTED's run-time weights included)."""
    out = ifms(op) + ofms(op)
    if op.type == "FULLY_CONNECTED" and len(op.inputs) > 1 and op.inputs[1] is not None and not is_const(op.inputs[1]):
        out.append(("input 1", op.inputs[1]))
    return out


def hwc4(shape) -> tuple[int, int, int, int]:
    """(N, H, W, C) as Vela reads a shape: leading 1s added, leading axes beyond 4 folded into N."""
    s = list(shape or ())
    s = [1] * (4 - len(s)) + s if len(s) < 4 else [math.prod(s[:-3])] + s[-3:]
    return tuple(s)


# --------------------------------------------------------------------------- generic constraints

def dynamic(op: Operator) -> str:
    for name, t in fms(op):
        sig = t.shape_signature
        if sig is not None and any(d < 0 for d in list(sig)[1:]):
            return f"{name} has the dynamic shape {list(sig)}, needs only the first dimension dynamic"
    return ""


FM_TYPES = ("INT8", "UINT8", "INT16", "INT32", "INT64")


def fm_dtype(op: Operator) -> str:
    for name, t in fms(op):
        if type_name(t.dtype) not in FM_TYPES:
            return f"{name} is {type_name(t.dtype)}, needs INT8, UINT8, INT16, INT32 or INT64 feature maps"
    return ""


def has_shape(op: Operator) -> str:
    for name, t in fms(op):
        if not is_const(t) and (t.shape is None or len(t.shape) == 0):
            return f"{name} has no shape (a scalar computed at run time), needs a constant shape"
    return ""


def quantized(op: Operator) -> str:
    ts = fms(op)
    w = WEIGHTS.get(op.type)
    if w is not None and w < len(op.inputs) and op.inputs[w] is not None:
        ts.append((f"input {w} (filter)", op.inputs[w]))
    for name, t in ts:
        if t.dtype in (I8, U8, I16) and quant_params(t) is None:
            return f"{name} has no quantization parameters, needs them"
    return ""


def per_tensor(op: Operator) -> str:
    for name, t in fms(op):
        q = quant_params(t)
        if q is not None and q.per_channel:
            return f"{name} is quantized per axis ({len(q.scale)} scales), needs per-tensor quantization"
    return ""


def no_64bit(op: Operator) -> str:
    for name, t in fms(op):
        if t.dtype == I64:
            return f"{name} is INT64, needs no 64-bit feature maps"
    return ""


def zero_points(op: Operator) -> str:
    for name, t in fms(op):
        q = quant_params(t)
        if t.dtype == U8 and q is not None and min(q.zero_point) < 0:
            return f"{name} is UINT8 with zero point {min(q.zero_point)}, needs a non-negative zero point"
    return ""


def no_32bit(op: Operator) -> str:
    for name, t in fms(op):
        if t.dtype == I32:
            return f"{name} is INT32, needs no 32-bit feature maps"
    return ""


# --------------------------------------------------------------------------- specific constraints

def _weights(op: Operator) -> Tensor | None:
    i = WEIGHTS.get(op.type)
    return op.inputs[i] if i is not None and i < len(op.inputs) else None


def weights_8bit(op: Operator) -> str:
    w = _weights(op)
    return "" if w is None or w.dtype in EIGHT_BIT else \
        f"input {WEIGHTS[op.type]} (filter) is {type_name(w.dtype)}, needs 8-bit weights"


#: "The sum of absolute weights cannot exceed 8323072" (per output channel, zero point removed)
WEIGHT_SUM_LIMIT = 127 * 65536


def weight_sum(op: Operator) -> str:
    w = _weights(op)
    v = const_values(w)
    if v is None:
        return ""
    q = quant_params(w)
    zp = np.asarray(q.zero_point if q is not None else (0,), dtype=np.int64)
    a = v.astype(np.int64)
    axis = 3 if op.type == "DEPTHWISE_CONV_2D" else 0          # output channels: O of OHWI, or the last of 1HWC
    a = np.moveaxis(a, axis, 0).reshape(a.shape[axis], -1)
    zp = zp.reshape(-1, 1) if zp.size == a.shape[0] else zp[:1].reshape(1, 1)
    worst = int(np.abs(a - zp).sum(axis=1).max()) if a.size else 0
    return "" if worst <= WEIGHT_SUM_LIMIT else \
        f"an output channel's absolute weight sum {worst}, needs at most {WEIGHT_SUM_LIMIT}"


BIAS_LIMIT = 1099511627775          # "Int64 bias must be smaller than 1099511627775" (40 bits)


def bias(op: Operator) -> str:
    i = BIAS[op.type]
    b = op.inputs[i] if i < len(op.inputs) else None
    if b is None:
        return ""
    if not is_const(b):
        return f"input {i} (bias) is computed at run time, needs a constant bias"
    if b.dtype not in (I32, I64):
        return f"input {i} (bias) is {type_name(b.dtype)}, needs an INT32 or INT64 bias"
    d = dims(b) or ()
    if any(x != 1 for x in d[:-1]):
        return f"input {i} (bias) has shape {list(d)}, needs its values along the channel axis"
    v = const_values(b)
    if b.dtype == I64 and v is not None and v.size and int(np.abs(v).max()) > BIAS_LIMIT:
        return f"input {i} (bias) holds {int(np.abs(v).max())}, needs INT64 bias values <= {BIAS_LIMIT}"
    return ""


def _padding_needed(op: Operator) -> bool:
    """Whether the op pads: VALID never; SAME when the kernel overhangs the input (Vela treats a SAME
    op that needs no padding as VALID)."""
    if option(op, "padding", fb.Padding.VALID) == fb.Padding.VALID:
        return False
    n, h, w, c = hwc4(dims(op.inputs[0]))
    if op.type in ("AVERAGE_POOL_2D", "MAX_POOL_2D"):
        kh, kw = option(op, "filterHeight", 1), option(op, "filterWidth", 1)
    else:
        f = dims(op.inputs[1]) or (1, 1, 1, 1)
        kh, kw = f[1], f[2]
    dh, dw = option(op, "dilationHFactor", 1), option(op, "dilationWFactor", 1)
    sh, sw = option(op, "strideH", 1), option(op, "strideW", 1)
    for size, k, s, dil in ((h, kh, sh, dh), (w, kw, sw, dw)):
        eff = (k - 1) * dil + 1
        out = -(-size // s)
        if max((out - 1) * s + eff - size, 0) > 0:
            return True
    return False


def big_stride(op: Operator) -> str:
    """Stride > 3 only with dilation 1 and no padding."""
    sh, sw = option(op, "strideH", 1), option(op, "strideW", 1)
    if max(sh, sw) <= 3:
        return ""
    dil = max(option(op, "dilationHFactor", 1), option(op, "dilationWFactor", 1))
    if dil == 1 and not _padding_needed(op):
        return ""
    return f"stride {sw}x{sh} with {'dilation ' + str(dil) if dil > 1 else 'padding'}, " \
           "needs stride <= 3 unless dilation is 1 and padding VALID"


def stride_1_3(op: Operator) -> str:
    sh, sw = option(op, "strideH", 1), option(op, "strideW", 1)
    return "" if 1 <= sh <= 3 and 1 <= sw <= 3 else f"stride {sw}x{sh}, needs a stride in 1..3"


def avg_pool_kernel(op: Operator) -> str:
    kh, kw = option(op, "filterHeight", 1), option(op, "filterWidth", 1)
    if not _padding_needed(op):
        if kh * kw > 256 * 256:
            return f"a {kw}x{kh} kernel, needs a kernel product <= 65536"
        return "" if kh <= 256 else f"kernel height {kh}, needs kernel height <= 256"
    return "" if kh <= 8 and kw <= 8 else f"a {kw}x{kh} kernel with padding, needs kernel width and height <= 8"


def max_pool_kernel(op: Operator) -> str:
    kh, kw = option(op, "filterHeight", 1), option(op, "filterWidth", 1)
    if kh * kw > 256 * 256:
        return f"a {kw}x{kh} kernel, needs a kernel product <= 65536"
    return "" if kh <= 256 else f"kernel height {kh}, needs kernel height <= 256"


def fc_weights_shape(op: Operator) -> str:
    d = dims(op.inputs[1]) or ()
    return "" if len(d) <= 2 or all(x == 1 for x in d[1:-1]) else \
        f"weights of shape {list(d)}, needs weights shaped O,1,..,1,I"


def matmul(op: Operator) -> str:
    """BATCH_MATMUL, and FULLY_CONNECTED with weights computed at run time: int8 IFM, OFM depth and
    reduced axis <= 65536."""
    if op.type == "FULLY_CONNECTED" and is_const(op.inputs[1]):
        return ""
    x = op.inputs[0]
    if x.dtype != I8:
        return f"a matmul with input 0 {type_name(x.dtype)}, needs an INT8 IFM"
    od = (dims(op.outputs[0]) or (1,))[-1]
    if od > 65536:
        return f"output depth {od}, needs <= 65536"
    k = (dims(x) or (1,))[-1]
    return "" if k <= 65536 else f"a reduced axis of {k}, needs <= 65536"


def same_io_types(*types: int) -> str:
    names = " or ".join(type_name(t) for t in types)

    def run(op: Operator) -> str:
        a, b = op.inputs[0].dtype, op.outputs[0].dtype
        if a != b or a not in types:
            return f"input {type_name(a)} and output {type_name(b)}, needs IFM and OFM types equal and {names}"
        return ""
    return run


def same_io_shapes(op: Operator) -> str:
    a, b = dims(op.inputs[0]), dims(op.outputs[0])
    return "" if a == b else f"input shape {list(a or ())} and output shape {list(b or ())}, needs them equal"


def ifm_int8_or_int16(op: Operator) -> str:
    t = op.inputs[0].dtype
    return "" if t in (I8, I16) else f"input 0 is {type_name(t)}, needs an INT8 or INT16 IFM"


def minmax_quant(op: Operator) -> str:
    out = op.outputs[0]
    for i in (0, 1):
        if not same_quantization(op.inputs[i], out):
            return f"input {i} and output 0 are quantized differently, needs both inputs quantized as the output"
    return ""


def params_const(*idx: int):
    def run(op: Operator) -> str:
        for i in idx:
            t = op.inputs[i] if i < len(op.inputs) else None
            if t is not None and not is_const(t):
                return f"input {i} is computed at run time, needs constant parameter tensors"
        return ""
    return run


def pad_params_int(op: Operator) -> str:
    t = op.inputs[1]
    return "" if t.dtype in (I32, I64) else f"input 1 (paddings) is {type_name(t.dtype)}, needs INT32 or INT64"


#: MEAN: reduced elements per IFM precision
MEAN_MAX_ELEMENTS = {I8: 2 ** 24, U8: 2 ** 23, I16: 2 ** 16}


def mean(op: Operator) -> str:
    x = op.inputs[0]
    if x.dtype not in MEAN_MAX_ELEMENTS:
        return f"input 0 is {type_name(x.dtype)}, needs an INT8, UINT8 or INT16 IFM"
    d = list(dims(x) or ())
    axes = const_values(op.inputs[1])
    if axes is None:
        return ""                                           # (a model-level failure, see ethos_u.SEMANTICS)
    axes = sorted({int(a) + len(d) if int(a) < 0 else int(a) for a in np.atleast_1d(axes)})
    n, h, w, c = hwc4(d)
    if n != 1:
        return f"input of shape {d} (batch {n}), needs batch 1"
    reduced = math.prod(d[a] for a in axes if 0 <= a < len(d))
    if reduced > MEAN_MAX_ELEMENTS[x.dtype]:
        return f"{reduced} reduced elements, needs at most {MEAN_MAX_ELEMENTS[x.dtype]} for {type_name(x.dtype)}"
    if any(d[a] > 4096 for a in axes if 0 <= a < len(d)):
        return f"a reduced axis of {max(d[a] for a in axes)}, needs reduced axes <= 4096"
    if (len(d) - 1) in axes and not (h == 1 or w == 1 or c == 1):
        return f"a reduction over depth of shape {d}, needs one of h, w, c to be 1"
    return ""


def softmax(op: Operator) -> str:
    n, h, w, c = hwc4(dims(op.inputs[0]))
    return "" if h * w <= 65536 else f"IFM width x height {w * h}, needs at most 65536"


def num_splits(op: Operator) -> str:
    n = option(op, "numSplits", len(op.outputs))
    return "" if n == len(op.outputs) else f"num_splits {n} with {len(op.outputs)} outputs, needs them equal"


def strided_slice(op: Operator) -> str:
    s = const_values(op.inputs[3])
    if s is None:
        return ""
    r = rank(op.inputs[0])
    for axis, st in enumerate(np.atleast_1d(s)):
        st = int(st)
        if st < 0:
            return f"stride {st} on axis {axis}, needs non-negative strides"
        if st != 1 and axis not in (r - 3, r - 2):
            return f"stride {st} on axis {axis}, needs strides other than 1 only over H or W"
    return ""


def argmax(op: Operator) -> str:
    d = dims(op.inputs[0]) or ()
    axis = const_values(op.inputs[1])
    a = int(np.atleast_1d(axis)[0]) if axis is not None else -1
    if a not in (-1, len(d) - 1):
        return f"axis {a} of a rank-{len(d)} input, needs the depth (last) axis"
    return "" if (d[-1] if d else 1) <= 127 else f"IFM depth {d[-1]}, needs depth <= 127"


def reverse(op: Operator) -> str:
    return "an axis to reverse, Vela supports no axis attribute on the Ethos-U55/U65"


def _resize_factor(op: Operator) -> str:
    _, ih, iw, _ = hwc4(dims(op.inputs[0]))
    _, oh, ow, _ = hwc4(dims(op.outputs[0]))
    if (ih == iw == 1) or dims(op.inputs[0]) == dims(op.outputs[0]):
        return ""
    align = option(op, "alignCorners", False)
    half = option(op, "halfPixelCenters", False) and op.type == "RESIZE_BILINEAR"

    def factor(o, i):
        return (o - 1) / (i - 1) if align and i > 1 else o / i
    fh, fw = factor(oh, ih), factor(ow, iw)
    if fh != fw:
        if not ((oh == 1 and fh == 1) or (ow == 1 and fw == 1)):
            return f"scale factors {fh:g} (H) and {fw:g} (W), needs equal factors unless a dimension of 1 is not scaled"
        f = fw if fh == 1 else fh
    else:
        f = fh
    allowed = (2,) if half else (2, 4, 8)
    return "" if f in allowed else \
        f"scale factor {f:g}{' with half_pixel_centers' if half else ''}, needs {' or '.join(f'{a}x' for a in allowed)}"


resize = _resize_factor


def tconv_stride(op: Operator) -> str:
    sh, sw = option(op, "strideH", 1), option(op, "strideW", 1)
    x, w = dims(op.inputs[2]) or (1, 1, 1, 1), dims(op.inputs[1]) or (1, 1, 1, 1)
    _, ih, iw, _ = hwc4(x)
    kh, kw = w[1], w[2]
    ok = ((sw, sh) in ((1, 1), (2, 2)) or ((sw, sh) == (2, 1) and ih == 1 and kh == 1)
          or ((sw, sh) == (1, 2) and iw == 1 and kw == 1))
    return "" if ok else f"stride {sw}x{sh}, needs 1x1, 2x2, 2x1 (IFM and kernel height 1) or 1x2 (width 1)"


def tconv_shape(op: Operator) -> str:
    sh, sw = option(op, "strideH", 1), option(op, "strideW", 1)
    _, ih, iw, _ = hwc4(dims(op.inputs[2]))
    _, oh, ow, _ = hwc4(dims(op.outputs[0]))
    w = dims(op.inputs[1]) or (1, 1, 1, 1)
    kh, kw = w[1], w[2]
    if option(op, "padding", fb.Padding.SAME) == fb.Padding.SAME:
        ok, need = (oh, ow) == (ih * sh, iw * sw), "OFM = IFM x stride"
    else:
        ok = (oh, ow) == (ih * sh + kh - sh, iw * sw + kw - sw)
        need = "OFM = IFM x stride + (kernel - stride)"
    return "" if ok else f"IFM {ih}x{iw} and OFM {oh}x{ow} at stride {sh}x{sw}, needs {need}"


def _perm(op: Operator) -> list[int] | None:
    v = const_values(op.inputs[1]) if len(op.inputs) > 1 else None
    return None if v is None else [int(p) for p in np.atleast_1d(v)]


#: 4-D permutations of H, W, C that keep N first, by Vela's names
HWC_PERMS = {(0, 2, 1, 3): "NWHC", (0, 1, 3, 2): "NHCW", (0, 3, 2, 1): "NCWH", (0, 2, 3, 1): "NWCH",
             (0, 3, 1, 2): "NCHW"}
LIM = 65536


def _hwc_view(d: list[int], perm: list[int]) -> tuple[tuple[int, ...], list[int]] | None:
    """The 3-D (H, W, C) view Vela's HWC-permutation rule applies to: a tensor of rank <= 3 (leading
    1s added), or a higher rank whose leading axes stay in place and are all 1. None otherwise."""
    r = len(d)
    if r <= 3:
        pad = 3 - r
        return tuple([0] + [p + 1 for p in list(range(pad)) + [q + pad for q in perm]]), [1] * pad + d
    lead = r - 3
    if perm[:lead] == list(range(lead)) and all(x == 1 for x in d[:lead]):
        return tuple([0] + [p - lead + 1 for p in perm[lead:]]), d[lead:]
    return None


def transpose(op: Operator) -> str:
    perm = _perm(op)
    d = list(dims(op.inputs[0]) or ())
    if perm is None:
        return ""                                            # (the constant-parameter check says why)
    r = len(d)
    if r > 8:
        return f"input 0 has rank {r}, needs rank <= 8"
    identity = perm == list(range(r))
    if op.inputs[0].dtype == I32:
        if r > 4:
            return f"an INT32 transpose of rank {r}, needs rank <= 4"
        pad = 4 - r
        n, h, w, c = [1] * pad + d
        p4 = tuple(list(range(pad)) + [p + pad for p in perm])
        if identity:
            ok, name = c <= LIM, "NHWC"
        elif p4 == (0, 2, 1, 3):
            ok, name = n == 1 and h <= LIM and w <= LIM and c <= 2 ** 14, "NWHC"
        elif p4 == (0, 1, 3, 2):
            ok, name = n * h <= LIM and w <= LIM and c <= LIM, "NHCW"
        else:
            return f"an INT32 transpose with permutation {perm}, needs NHWC, NWHC or NHCW"
        return "" if ok else f"an INT32 {name} transpose of shape {d}, needs a shape within the {name} limits"
    if identity:
        return ""
    view = _hwc_view(d, perm)
    if view is not None and view[0] in HWC_PERMS:
        p4, hwc = view
        return "" if all(x <= LIM for x in hwc) else \
            f"a {HWC_PERMS[p4]} transpose of shape {d}, needs H, W and C <= 65536"
    for combo in itertools.combinations(d, max(r - 2, 0)):
        if math.prod(combo) > LIM:
            return (f"a transpose of shape {d} with axes {list(combo)} multiplying past 65536, needs the product "
                    f"of any {r - 2} axes <= 65536")
    return ""


#: LSTM variants Vela does not lower: (inputs whose presence marks it, what it is)
LSTM_VARIANTS = (((9, 10, 11), "a peephole variant"), ((16,), "projection"), ((20, 21, 22, 23), "gate normalization"))


def lstm(op: Operator) -> str:
    ins = op.inputs
    if len(ins) < 2 or ins[1] is None:
        return "implicit gate calculation (CIFG: no input-to-input weights), needs input-to-input weights"
    for idx, what in LSTM_VARIANTS:
        if any(i < len(ins) and ins[i] is not None for i in idx):
            return f"{what}, needs the plain LSTM"
    return ""
