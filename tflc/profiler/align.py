"""Map XNNPACK's operators back to the TFLite operators they came from.

Inside a delegated partition LiteRT's profiler reports one event per *XNNPACK* operator, tagged
like ``Convolution (NHWC, F32) IGEMM`` and numbered in XNNPACK's own order. XNNPACK builds its
graph from the partition's TFLite nodes in execution order, so its operators follow the TFLite
order, except that some TFLite ops vanish (constant DEQUANTIZEs, PADs fused into the next
convolution, reshapes it elides) and some split in two (a Clamp for an activation it could not
fuse, a Copy). :func:`align` finds the best such correspondence with a small dynamic programme:
each XNNPACK operator either matches a TFLite op of a compatible kind, or is an extra piece of
the TFLite op matched just before it; TFLite ops may stay without an XNNPACK operator.
"""
from __future__ import annotations

import re
from typing import Sequence

# XNNPACK operator name (start of the tag) -> family
_XNN_FAMILIES: list[tuple[str, str]] = [
    ("Convolution", "conv"), ("Deconvolution", "deconv"), ("Fully Connected", "fc"),
    ("Batch Matrix Multiply", "bmm"), ("Dynamic Fully Connected", "fc"),
    ("Squared Difference", "sqdiff"), ("Add", "add"), ("Subtract", "sub"), ("Multiply", "mul"),
    ("Divide", "div"), ("Maximum", "maximum"), ("Minimum", "minimum"), ("Copy Sign", "copysign"),
    ("Clamp", "clamp"), ("HardSwish", "hardswish"), ("Sigmoid", "sigmoid"), ("Tanh", "tanh"),
    ("PReLU", "prelu"), ("Leaky ReLU", "leakyrelu"), ("ELU", "elu"), ("GELU", "gelu"),
    ("Softmax", "softmax"), ("Negate", "neg"), ("Reciprocal Square Root", "rsqrt"),
    ("Square Root", "sqrt"), ("Square", "square"), ("Abs", "abs"), ("Floor", "floor"),
    ("Ceiling", "ceil"), ("Exp", "exp"), ("Log", "log"), ("Bankers Rounding", "round"),
    ("Sine", "sin"), ("Cosine", "cos"), ("Max Pooling", "maxpool"), ("Average Pooling", "avgpool"),
    ("Argmax Pooling", "argmaxpool"), ("Unpooling", "unpool"), ("Mean", "mean"), ("Sum", "sum"),
    ("Max (ND)", "reducemax"), ("Min (ND)", "reducemin"), ("Static Reshape", "reshape"),
    ("Reshape", "reshape"), ("Copy", "copy"), ("Transpose", "transpose"), ("Constant Pad", "pad"),
    ("Resize Bilinear", "resize"), ("Resize Nearest", "resize"), ("Slice", "slice"),
    ("Strided Slice", "slice"), ("Concatenate", "concat"), ("Even Split", "split"), ("Split", "split"),
    ("Depth To Space", "d2s"), ("Space To Depth", "s2d"), ("Convert", "convert"),
    ("Fully Connected Nc", "fc"), ("RoPE", "rope"), ("Scaled Dot", "sdpa"),
]

# TFLite op type -> families its XNNPACK lowering may show (first: the main one)
_TFL_FAMILIES: dict[str, tuple[str, ...]] = {
    "CONV_2D": ("conv", "fc"), "DEPTHWISE_CONV_2D": ("conv",), "CONV_3D": ("conv",),
    "TRANSPOSE_CONV": ("deconv",), "Convolution2DTransposeBias": ("deconv",),
    "FULLY_CONNECTED": ("fc", "bmm"), "BATCH_MATMUL": ("bmm", "fc"),
    "ADD": ("add",), "SUB": ("sub",), "MUL": ("mul",), "DIV": ("div",), "MAXIMUM": ("maximum",),
    "MINIMUM": ("minimum",), "SQUARED_DIFFERENCE": ("sqdiff",),
    "RELU": ("clamp",), "RELU6": ("clamp",), "RELU_N1_TO_1": ("clamp",), "RELU_0_TO_1": ("clamp",),
    "HARD_SWISH": ("hardswish",), "LOGISTIC": ("sigmoid",), "TANH": ("tanh",), "PRELU": ("prelu",),
    "LEAKY_RELU": ("leakyrelu",), "ELU": ("elu",), "GELU": ("gelu",), "SOFTMAX": ("softmax",),
    "NEG": ("neg",), "RSQRT": ("rsqrt",), "SQRT": ("sqrt",), "SQUARE": ("square",), "ABS": ("abs",),
    "FLOOR": ("floor",), "CEIL": ("ceil",), "EXP": ("exp",), "LOG": ("log",), "ROUND": ("round",),
    "SIN": ("sin",), "COS": ("cos",),
    "MAX_POOL_2D": ("maxpool",), "AVERAGE_POOL_2D": ("avgpool",),
    "MaxPoolingWithArgmax2D": ("argmaxpool",), "MaxUnpooling2D": ("unpool",),
    "MEAN": ("mean",), "SUM": ("sum",), "REDUCE_MAX": ("reducemax",), "REDUCE_MIN": ("reducemin",),
    "RESHAPE": ("reshape", "copy"), "SQUEEZE": ("reshape", "copy"), "EXPAND_DIMS": ("reshape", "copy"),
    "TRANSPOSE": ("transpose",), "PAD": ("pad",), "PADV2": ("pad",), "MIRROR_PAD": ("pad",),
    "RESIZE_BILINEAR": ("resize",), "RESIZE_NEAREST_NEIGHBOR": ("resize",),
    "SLICE": ("slice", "copy"), "STRIDED_SLICE": ("slice", "copy"),
    "CONCATENATION": ("concat", "copy"), "SPLIT": ("split", "slice", "copy"),
    "SPLIT_V": ("split", "slice", "copy"), "DEPTH_TO_SPACE": ("d2s",), "SPACE_TO_DEPTH": ("s2d",),
    "QUANTIZE": ("convert",), "DEQUANTIZE": ("convert",),
    "READ_VARIABLE": ("copy",), "ASSIGN_VARIABLE": ("copy",),
}

# XNNPACK operators that commonly appear as an extra piece of another TFLite op
_HELPERS = {"clamp", "copy", "reshape", "convert", "transpose", "pad", "slice"}


def xnn_family(tag: str) -> str:
    for prefix, fam in _XNN_FAMILIES:
        if tag.startswith(prefix):
            return fam
    return re.sub(r"[^a-z0-9]", "", tag.split("(")[0].lower()) or "?"


def tfl_families(op_type: str) -> tuple[str, ...]:
    fams = _TFL_FAMILIES.get(op_type)
    if fams is not None:
        return fams
    return (re.sub(r"[^a-z0-9]", "", op_type.lower()),)


MATCH, MATCH_ALT, SKIP, EXTRA_HELPER, EXTRA_OTHER = 3.0, 2.0, -0.05, 0.5, -2.5


def align(tfl_types: Sequence[str], xnn_tags: Sequence[str]) -> list[int]:
    """For each XNNPACK operator, the position (in ``tfl_types``) of the TFLite op it belongs to.

    Every XNNPACK operator is assigned; an operator before any match goes to the first op whose
    family it fits (or the first op). ``tfl_types`` empty: all -1.
    """
    n, m = len(tfl_types), len(xnn_tags)
    if m == 0:
        return []
    if n == 0:
        return [-1] * m
    fam_a = [tfl_families(t) for t in tfl_types]
    fam_b = [xnn_family(t) for t in xnn_tags]
    neg = float("-inf")
    # score[i][j]: best with i TFLite ops and j XNNPACK ops consumed, where (if j > 0) XNNPACK op
    # j-1 belongs to TFLite op i-1 ("open"), or i ops were consumed with op i-1 skipped/closed.
    # Two layers: S (last TFLite op i-1 owns XNNPACK op j-1) and T (free state).
    S = [[neg] * (m + 1) for _ in range(n + 1)]
    T = [[neg] * (m + 1) for _ in range(n + 1)]
    backS: list[list[tuple]] = [[()] * (m + 1) for _ in range(n + 1)]
    backT: list[list[tuple]] = [[()] * (m + 1) for _ in range(n + 1)]
    T[0][0] = 0.0
    for i in range(n + 1):
        for j in range(m + 1):
            # T[i][j] from skipping TFLite op i-1
            if i > 0:
                for src, arr in (("S", S), ("T", T)):
                    v = arr[i - 1][j] + SKIP
                    if v > T[i][j]:
                        T[i][j], backT[i][j] = v, (src, i - 1, j, "skip")
            if i > 0 and j > 0:
                fams = fam_a[i - 1]
                f = fam_b[j - 1]
                # match XNNPACK op j-1 with TFLite op i-1 (opening it)
                if f in fams:
                    sc = MATCH if f == fams[0] else MATCH_ALT
                    for src, arr in (("S", S), ("T", T)):
                        v = arr[i - 1][j - 1] + sc
                        if v > S[i][j]:
                            S[i][j], backS[i][j] = v, (src, i - 1, j - 1, "match")
                # extra XNNPACK op owned by the already-open TFLite op i-1
                if S[i][j - 1] > neg:
                    v = S[i][j - 1] + (EXTRA_HELPER if f in _HELPERS or f in fams else EXTRA_OTHER)
                    if v > S[i][j]:
                        S[i][j], backS[i][j] = v, ("S", i, j - 1, "extra")
            # an XNNPACK op before anything opened: forced open of op i-1 even if incompatible
            if i > 0 and j > 0 and S[i][j] == neg:
                for src, arr in (("S", S), ("T", T)):
                    v = arr[i - 1][j - 1] + EXTRA_OTHER * 2
                    if v > S[i][j]:
                        S[i][j], backS[i][j] = v, (src, i - 1, j - 1, "force")
    # best end state
    layer, i, j = ("S", n, m) if S[n][m] >= T[n][m] else ("T", n, m)
    owner = [-1] * m
    while i > 0 or j > 0:
        back = backS[i][j] if layer == "S" else backT[i][j]
        if not back:
            break
        src, pi, pj, kind = back
        if layer == "S":
            owner[j - 1] = i - 1
        layer, i, j = src, pi, pj
    # any left unassigned (should not happen): attach to the previous owner
    last = 0
    for k in range(m):
        if owner[k] < 0:
            owner[k] = last
        last = owner[k]
    return owner
