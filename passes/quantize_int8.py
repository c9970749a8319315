"""quantize-int8: full-integer post-training quantization of a float model, from the .tflite itself.

Follows the TFLite 8-bit quantization specification
(https://ai.google.dev/edge/litert/models/quantization_spec):

* weights of CONV_2D, DEPTHWISE_CONV_2D, FULLY_CONNECTED and TRANSPOSE_CONV: int8, symmetric per
  output channel (zero point 0, values in [-127, 127]; quantized dimension 0, 3 for
  DEPTHWISE_CONV_2D; TRANSPOSE_CONV reads (output shape, weights, input, bias), and its bias gets no
  bias correction);
* their biases: int32, zero point 0, scale = input scale x weight scale (per channel);
* activations: int8, asymmetric per tensor, from the ``calibration`` analysis' ranges by the
  ``ranges`` estimator (``passes._ranges``): ``minmax``, ``percentile`` (``percentile=99.99``),
  ``mse`` (per tensor, the clipping range of least expected squared error, clip + rounding, over a
  histogram of its calibration values; the graph outputs keep min/max), ``avgminmax`` (the mean of
  each calibration sample's min and max), or ``auto`` (the default, ``passes._range_search``: the
  model quantized with each, for the shared part of the graph and for each output's own head,
  measured in LiteRT against the float model on calibration samples held out of the ranges
  (k-fold), the best mean output SQNR kept, every candidate's noted); a range always holds 0;
* bias correction (``bias-correction=true``, the default): each weighted op's bias absorbs the
  expected output shift of its weight rounding, (W_q - W) E[x], E[x] the per-channel mean of its
  input on the calibration samples;
* cross-layer equalization (``equalize=true``; ``passes._equalize``): conv -> (ReLU / none) -> conv
  pairs rescaled per channel before calibrating (exact in float; ReLU6 pairs are left alone);
* fixed output parameters: LOGISTIC and SOFTMAX (1/256, -128), TANH (1/128, 0),
  LOG_SOFTMAX (16/256, 127), L2_NORMALIZATION (1/128, 0);
* equal parameters for the inputs and outputs of the ops whose int8 kernels require it
  (pooling, RESHAPE, SQUEEZE, EXPAND_DIMS, TRANSPOSE, PAD, CONCATENATION (all inputs and the
  output), SLICE, STRIDED_SLICE, GATHER, SPLIT, MAXIMUM, MINIMUM, RESIZE_*, SPACE_TO_DEPTH, ...):
  the tensors such ops connect form one group, quantized from the union of their ranges;
* float constants read as activations (an ADD's addend, a CONCATENATION's constant part) are
  quantized with the parameters of the position they are read at; BATCH_MATMUL's constant right
  operand is symmetric (zero point 0), as XNNPACK requires;
* QUANTIZE where an int8 op reads a float tensor (a float input of the model: ``io=float``, the
  default), DEQUANTIZE where a float op or a float graph output reads an int8 one; ``io=int8``
  makes the model's inputs and outputs int8 themselves; ``io=uint8`` makes them uint8 (the same
  scale, zero point + 128: what a uint8 camera frame or an older uint8 pipeline feeds), converted
  to and from int8 at the edges by QUANTIZE ops (exact: the same grid shifted by 128), as the TF
  converter does. XNNPACK does not take those uint8 <-> int8 QUANTIZEs: they run on LiteRT's
  builtin kernels, at the edges only.

Ops not in the tables (no int8 kernel in LiteRT, or not written yet: DIV, EXP, SQRT, LOG, custom
ops, ...) stay float between DEQUANTIZE and QUANTIZE, and are reported. Every result is prepared
and run in LiteRT (builtin kernels and XNNPACK) before the pass returns: an op LiteRT refuses in
int8 (its node is named in the error) stays float and the rewrite is redone, so the model the pass
leaves always loads and runs in stock LiteRT.

Float16-weight models: the DEQUANTIZE ops of float16 constants are folded first
(``fold-float16-weights``' rule), so weights are float32 constants the pass can quantize.

int16x8 (``activations=int16``; ``quantize-int16x8``, ``--quantize int16x8``): TFLite's 16x8 scheme,
activations int16 symmetric per tensor (zero point 0, scale max |x| / 32767), weights int8 as above,
biases int64 (scale = input scale x weight scale); LOGISTIC, TANH and SOFTMAX write (1/32768, 0); the
ops of ``INT16_SUPPORTED`` only (LiteRT's int16 kernels; a refusal demotes the op as above). XNNPACK
takes none of it: every op runs on LiteRT's builtin kernels (a warning says so).

Only the main subgraph is quantized (the calibration analysis covers every subgraph; the ops of a
control-flow body, a WHILE's or an IF's, stay float: their ranges are the last iteration's). The
loss is judged by ``tflc optimize`` as a minimum SQNR per output against the float model
(``min_sqnr_db``, default 10 dB: a floor against broken quantization, not a quality target), and
reported per output; where every op int8 is under that floor on the calibration samples, the
``fallback`` keeps the most sensitive ops float until it holds (``passes._sensitivity``).

Measured in LiteRT by the pass itself (``passes._sensitivity``), on every calibration sample (what
the floor is checked on when --calibration is given and --inputs are not): each output's SQNR, max and mean absolute
error and cosine similarity against the float model (notes, and ``ctx.facts['quantize-int8']``,
which ``tflc optimize --json`` reports as ``quantization``); with ``sensitivity=N``, a per-op
sensitivity table (the model's SQNR with only that op int8, on the first ``samples`` samples: it
only ranks); with ``min-sqnr=DB`` and/or ``max-error=E`` (mixed precision, a target, not a check)
or the ``fallback`` (towards the floor, when every op int8 is under it), the most sensitive ops
are kept float, round by round, until every output reaches it or nothing is left int8.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Callable

import numpy as np

from tflc.ir.build import builtin_opcode
from tflc.ir.core import Model, Operator, Tensor
from tflc.ir.quant import is_quantized, quant_params
from tflc.passes_api import Pass, register
from tflc.schema import TYPE_CODES, fb

from ._range_search import AUTO_FOLDS, AUTO_MARGIN_CV_DB, AUTO_MARGIN_DB  # noqa: F401  (ranges=auto's)
from ._ranges import activation_params, activation_params16  # noqa: F401  (also part of this module's API)

from .fold_float16_weights import FACT, FoldFloat16Dequantize

_F32, _I8, _I32 = TYPE_CODES["FLOAT32"], TYPE_CODES["INT8"], TYPE_CODES["INT32"]
_I16, _I64, _U8 = TYPE_CODES["INT16"], TYPE_CODES["INT64"], TYPE_CODES["UINT8"]

#: ops with weights: (data input, weights input, bias input, the weights' per-channel axis); the
#: TFLite spec's TRANSPOSE_CONV reads (output shape, weights OHWI, input, bias)
WEIGHTED_IO = {"CONV_2D": (0, 1, 2, 0), "DEPTHWISE_CONV_2D": (0, 1, 2, 3), "FULLY_CONNECTED": (0, 1, 2, 0),
               "TRANSPOSE_CONV": (2, 1, 3, 0)}
#: the weights' per-channel axis
WEIGHTED = {k: v[3] for k, v in WEIGHTED_IO.items()}
#: ops whose int8 output has fixed parameters (scale, zero point)
FIXED = {"LOGISTIC": (1 / 256, -128), "SOFTMAX": (1 / 256, -128), "TANH": (1 / 128, 0),
         "LOG_SOFTMAX": (16 / 256, 127), "L2_NORMALIZATION": (1 / 128, 0)}
#: ops whose float inputs and outputs share one scale and zero point
SAME = frozenset({
    "MAX_POOL_2D", "AVERAGE_POOL_2D", "RESHAPE", "SQUEEZE", "EXPAND_DIMS", "TRANSPOSE", "PAD",
    "CONCATENATION", "SPACE_TO_DEPTH", "DEPTH_TO_SPACE", "SLICE", "STRIDED_SLICE", "GATHER", "SPLIT",
    "SPLIT_V", "MAXIMUM", "MINIMUM", "RESIZE_BILINEAR", "RESIZE_NEAREST_NEIGHBOR", "BATCH_TO_SPACE_ND",
    "SPACE_TO_BATCH_ND", "REDUCE_MAX", "REDUCE_MIN", "TILE", "PACK", "UNPACK", "BROADCAST_TO"})
#: ops with an int8 kernel whose inputs and outputs are quantized each on its own range
FREE = frozenset({
    "ADD", "SUB", "MUL", "MEAN", "SUM", "RELU", "RELU6", "RELU_N1_TO_1", "HARD_SWISH", "LEAKY_RELU",
    "PRELU", "BATCH_MATMUL", "SQUARED_DIFFERENCE", "RSQRT", "GELU", "ELU", "NEG", "ABS",
    "ARG_MAX", "ARG_MIN", *FIXED})
SUPPORTED = frozenset(WEIGHTED) | SAME | FREE
#: int16x8: the fixed int16 output parameters, and the ops with an int16 kernel in LiteRT (the TF
#: converter refuses 16x8 for ELU, HARD_SWISH, NEG, PRELU, LOG_SOFTMAX, SPACE_TO_DEPTH, DEPTH_TO_SPACE;
#: LiteRT 2.3.0 refuses an int16 SQUARED_DIFFERENCE)
FIXED16 = {"LOGISTIC": (1 / 32768, 0), "SOFTMAX": (1 / 32768, 0), "TANH": (1 / 32768, 0)}
INT16_SUPPORTED = SUPPORTED - {"ELU", "HARD_SWISH", "NEG", "PRELU", "LOG_SOFTMAX", "L2_NORMALIZATION",
                               "SPACE_TO_DEPTH", "DEPTH_TO_SPACE", "SQUARED_DIFFERENCE", "GELU"}
XNNPACK_INT16_WARNING = ("int16x8: XNNPACK delegates none of it (no int16 activations): every op runs on "
                         "LiteRT's builtin kernels, slower than int8 or float on XNNPACK")


#: the activation range estimators (``ranges=``; ``auto`` tries each)
RANGE_METHODS = ("minmax", "percentile", "mse", "avgminmax")
#: the percentile ranges=percentile uses when the percentile option is left at 100
DEFAULT_PERCENTILE = 99.99


@dataclass
class QuantizeInt8Options:
    io: str = field(default="float", metadata={
        "help": "float: the model keeps float inputs and outputs (QUANTIZE/DEQUANTIZE at the edges); "
                "int8: its inputs and outputs become int8 (int16 with activations=int16); uint8 (int8 "
                "activations only): they become uint8 (zero point + 128), converted to int8 inside by exact QUANTIZE "
                "ops (not taken by XNNPACK)"})
    percentile: float = field(default=100.0, metadata={
        "help": "the percentile ranges=percentile reads each side at (100: 99.99); a value under 100 with "
                "ranges=minmax or auto means ranges=percentile at that value"})
    min_sqnr_db: float = field(default=10.0, metadata={
        "help": "the least SQNR (dB) each output must keep against the float model in tflc optimize's check "
                "(a floor against broken quantization, not a quality target: each output's SQNR is reported)"})
    keep_float: list[str] = field(default_factory=list, metadata={
        "help": "ops to leave float (':'-separated): op types (e.g. SOFTMAX) or ops' output tensor names"})
    min_sqnr: float | None = field(default=None, metadata={
        "help": "mixed precision: a target SQNR (dB) per output against the float model, measured in LiteRT on "
                "the calibration samples; while an output is under it, the ops whose quantization costs the most "
                "(the sensitivity table) are kept float and the model is quantized again, until it holds or "
                "nothing is left; which ops stayed float and why is reported. A target, not a check: "
                "min-sqnr-db is the floor that fails the result"})
    fallback: bool = field(default=True, metadata={
        "help": "where every op int8 falls under the min-sqnr-db floor on the calibration samples (and no "
                "min-sqnr or max-error is asked for), keep the most sensitive ops float until the floor holds "
                "(mixed precision towards the floor), with a warning, rather than fail tflc optimize's check; "
                "false: full int8 or nothing"})
    max_error: float | None = field(default=None, metadata={
        "help": "mixed precision, like min-sqnr (with it or alone): a target largest absolute error per output "
                "against the float model (in the output's units), measured in LiteRT on the calibration samples; "
                "the most sensitive ops stay float until every output's largest error is at most this"})
    sensitivity: int = field(default=0, metadata={
        "help": "measure every quantized op's sensitivity in LiteRT (the model's SQNR with only that op int8) and "
                "report the N most sensitive (0: only with min-sqnr, max-error or the fallback, which report 10)"})
    samples: int = field(default=8, metadata={
        "help": "calibration samples the sensitivity table (one LiteRT trial per op) runs on; whether the "
                "model meets min-sqnr is judged on every calibration sample"})
    activations: str = field(default="int8", metadata={
        "help": "int8, or int16: TFLite's 16x8 scheme (int16 symmetric activations, int8 weights, int64 "
                "biases; --quantize int16x8; XNNPACK takes none of it)"})
    ranges: str = field(default="auto", metadata={
        "help": "activation range estimator: minmax (calibrated min/max), percentile (the percentile option, "
                "99.99 when it is 100), mse (per tensor, the clipping range of least expected squared error, "
                "clip + rounding, over a histogram of its calibration values), avgminmax (the mean of each "
                "sample's min and max), auto (the default: each of them measured in LiteRT against the float "
                "model on calibration samples held out of the ranges (k-fold), one estimator for the shared "
                "graph and, where it measures better, another for an output's own head; the best mean output "
                "SQNR is kept, min/max unless another beats it by 0.25 dB (0.5 dB without k-fold), and every "
                "candidate's SQNR is noted); a percentile < 100 with minmax or auto means ranges=percentile "
                "(the percentile option's old meaning)"})
    bias_correction: bool = field(default=True, metadata={
        "help": "fold the expected output shift of each CONV_2D / DEPTHWISE_CONV_2D / FULLY_CONNECTED from its "
                "weight rounding, (W_q - W) E[x], into its bias (E[x]: the layer input's per-channel mean on the "
                "calibration samples)"})
    equalize: bool = field(default=False, metadata={
        "help": "cross-layer equalization before calibrating: conv -> (none or ReLU) -> conv pairs are rescaled "
                "per channel (exact in float) so that both weights have equal per-channel ranges; ReLU6 and "
                "other clipping activations are left alone (not exact)"})

    def __post_init__(self) -> None:
        if self.io not in ("float", "int8", "uint8"):
            raise ValueError("io must be float, int8 or uint8")
        if self.io == "uint8" and self.activations == "int16":
            raise ValueError("io=uint8 is for int8 activations (int16x8 takes io=float or io=int8: int16 edges)")
        if self.activations not in ("int8", "int16"):
            raise ValueError("activations must be int8 or int16")
        if not 50.0 < self.percentile <= 100.0:
            raise ValueError("percentile must be in (50, 100]")
        if self.ranges not in RANGE_METHODS + ("auto",):
            raise ValueError(f"ranges must be {', '.join(RANGE_METHODS)} or auto")
        if self.sensitivity < 0:
            raise ValueError("sensitivity must be 0 or more (rows)")
        if self.samples < 1:
            raise ValueError("samples must be 1 or more")
        if self.min_sqnr is not None and not (math.isfinite(self.min_sqnr) and self.min_sqnr > 0):
            raise ValueError("min-sqnr must be a finite number of dB above 0 (at 0 dB the error is as large as "
                             "the output)")
        if self.max_error is not None and not (math.isfinite(self.max_error) and self.max_error > 0):
            raise ValueError("max-error must be a finite number above 0")


# --- the maths -------------------------------------------------------------------------------

def weight_scales(w: np.ndarray, axis: int | None) -> np.ndarray:
    """Symmetric scales (max |w| / 127) per channel along ``axis`` (None: one for the tensor)."""
    w = np.asarray(w, np.float64)
    if axis is None:
        amax = np.array([np.abs(w).max() if w.size else 0.0])
    else:
        amax = np.abs(np.moveaxis(w, axis, 0).reshape(w.shape[axis], -1)).max(axis=1)
    return np.where(amax > 0, amax / 127.0, 1.0 / 127).astype(np.float32)


def quantize_weights(w: np.ndarray, scales: np.ndarray, axis: int | None) -> np.ndarray:
    w = np.asarray(w, np.float64)
    s = scales.astype(np.float64)
    if axis is not None:
        shape = [1] * w.ndim
        shape[axis] = -1
        s = s.reshape(shape)
    return np.clip(np.round(w / s), -127, 127).astype(np.int8)


def quantize_bias(b: np.ndarray, scales: np.ndarray, dtype=np.int32) -> np.ndarray:
    q = np.round(np.asarray(b, np.float64) / scales.astype(np.float64))
    return np.clip(q, np.iinfo(dtype).min, np.iinfo(dtype).max).astype(dtype)


def quantize_values(x: np.ndarray, scale: float, zp: int, dtype=np.int8) -> np.ndarray:
    info = np.iinfo(dtype)
    return np.clip(np.round(np.asarray(x, np.float64) / scale) + zp, info.min, info.max).astype(dtype)


def qparams(scale, zero_point, axis: int = 0) -> "fb.QuantizationParametersT":
    q = fb.QuantizationParametersT()
    q.scale = [float(s) for s in np.atleast_1d(scale)]
    q.zeroPoint = [int(z) for z in np.atleast_1d(zero_point)]
    q.quantizedDimension = int(axis)
    return q


# --- deciding --------------------------------------------------------------------------------

def _float_act(t: Tensor | None) -> bool:
    return t is not None and t.dtype == _F32 and not t.is_constant and not is_quantized(t)


def _float_const(t: Tensor | None) -> bool:
    return t is not None and t.dtype == _F32 and t.is_constant and not is_quantized(t)


def why_float(op: Operator, ranges: dict, keep: set[str], activations: str = "int8") -> str:
    """Why ``op`` stays float, or '' when it can be quantized."""
    if op.type in keep or (op.outputs and op.output_name in keep):
        return "asked to stay float (keep-float)"
    if op.opcode.is_custom:
        return f"a custom op (no {activations} kernel known)"
    if op.type not in (SUPPORTED if activations == "int8" else INT16_SUPPORTED):
        return f"no {activations} kernel in tflc's table of LiteRT's {activations} ops"
    ins = [t for t in op.inputs if t is not None]
    if not any(_float_act(t) for t in (*ins, *op.outputs)) and op.type not in WEIGHTED:
        return "no float activation"
    for t in (*ins, *op.outputs):
        if t is None:
            continue
        if is_quantized(t) or t.dtype not in (_F32, _I32, TYPE_CODES["INT64"], TYPE_CODES["BOOL"]):
            return f"tensor '{t.name}' is {t.type_name}{' (quantized)' if is_quantized(t) else ''}"
        if _float_act(t) and t.uid not in ranges:
            return f"tensor '{t.name}' has no calibration range"
    if op.type in WEIGHTED:
        di, wi, bi, _ = WEIGHTED_IO[op.type]
        if len(op.inputs) <= max(di, wi) or not _float_act(op.inputs[di]) or not _float_const(op.inputs[wi]):
            return "its weights are not a float32 constant"
        if len(op.inputs) > bi and op.inputs[bi] is not None and not _float_const(op.inputs[bi]):
            return "its bias is not a float32 constant"
        w = op.inputs[wi]
        if w.shape is None or len(w.shape) <= WEIGHTED[op.type]:
            return "its weights have no usable shape"
    if op.type in ("ARG_MAX", "ARG_MIN") and not _float_act(op.inputs[0]):
        return "no float activation"
    return ""


class _Groups:
    """Union-find over tensor uids: tensors that must share quantization parameters."""

    def __init__(self) -> None:
        self.parent: dict[int, int] = {}

    def find(self, u: int) -> int:
        self.parent.setdefault(u, u)
        while self.parent[u] != u:
            self.parent[u] = self.parent[self.parent[u]]
            u = self.parent[u]
        return u

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[rb] = ra


def _data_tensors(op: Operator) -> list[Tensor]:
    """The float tensors of an op (inputs and outputs) that carry data (not weights or bias)."""
    out = []
    for i, t in enumerate(op.inputs):
        if t is None or t.dtype != _F32:
            continue
        if op.type in WEIGHTED and i != WEIGHTED_IO[op.type][0]:
            continue
        out.append(t)
    out += [t for t in op.outputs if t is not None and t.dtype == _F32]
    return out


def plan_params(ops: list[Operator], ranges: dict, percentile: float,
                activations: str = "int8", method: str | None = None,
                unclipped: set[int] | frozenset = frozenset(),
                methods: dict[int, str] | None = None) -> dict[int, tuple[float, int]]:
    """Parameters per float tensor uid of the quantized ``ops``. ``method``: the range estimator
    (``passes._ranges``: minmax, percentile, mse, avgminmax); None: percentile if ``percentile`` < 100.
    ``methods``: per tensor uid, another estimator for that tensor (``passes._range_search``: per
    output cone); a group's range is the union of its tensors' ranges, each by its own estimator.
    ``unclipped``: tensor uids that keep their min/max whatever the method (mse: the graph outputs).

    A group (tensors that pooling, concatenation, reshape... join: they share one scale and zero
    point) holding the output of an op with fixed output parameters (LOGISTIC, SOFTMAX, ...) takes
    those parameters where the rest of the group fits them (a MAX_POOL or RESHAPE of a LOGISTIC).
    Where it does not (a CONCATENATION of sigmoid scores with box offsets, or of a LOGISTIC with a
    TANH), the group is quantized on its own range, and ``rewrite`` has the fixed op write its
    fixed parameters and requantize into the group's (QUANTIZE int8 -> int8), as the TF converter
    does: forcing [0, 1) on the offsets would clip them."""
    from ._ranges import tensor_range
    if method is None:
        method = "percentile" if percentile < 100 else "minmax"
    pct = percentile if percentile < 100 else DEFAULT_PERCENTILE
    levels = 256 if activations == "int8" else 65536
    FIXED_, act_params = (FIXED, activation_params) if activations == "int8" else (FIXED16, activation_params16)
    g = _Groups()
    fixed: dict[int, tuple[float, int]] = {}
    for op in ops:
        ts = _data_tensors(op)
        for t in ts:
            g.find(t.uid)
        if op.type in SAME:
            for t in ts[1:]:
                g.union(ts[0].uid, t.uid)
        if op.type in FIXED_:
            fixed[op.outputs[0].uid] = FIXED_[op.type]
    lo: dict[int, float] = {}
    hi: dict[int, float] = {}
    rest: dict[int, tuple[float, float]] = {}       # per group, the range of its tensors no fixed op writes
    by_uid = {t.uid: t for op in ops for t in _data_tensors(op)}
    for u, t in by_uid.items():
        r = g.find(u)
        if t.is_constant:
            a, b = float(np.min(t.data)), float(np.max(t.data))
        else:
            m = (methods or {}).get(u, method)
            a, b = tensor_range(ranges[u], "minmax" if u in unclipped else m, pct, levels)
        lo[r], hi[r] = min(lo.get(r, a), a), max(hi.get(r, b), b)
        if u not in fixed:
            ra, rb = rest.get(r, (a, b))
            rest[r] = (min(ra, a), max(rb, b))
    group_fixed: dict[int, tuple[float, int] | None] = {}
    for u, p in fixed.items():
        r = g.find(u)
        group_fixed[r] = p if group_fixed.get(r, p) == p and _fits(rest.get(r), p, levels) else None
    params = {}
    for u in by_uid:
        r = g.find(u)
        params[u] = group_fixed.get(r) or act_params(lo[r], hi[r])
    return params


def _fits(span: tuple[float, float] | None, p: tuple[float, int], levels: int) -> bool:
    """Does the range ``span`` fit the grid of fixed parameters ``p`` (to within one step)?"""
    if span is None:
        return True
    s, z = p
    qmin = -levels // 2
    return (qmin - z - 1) * s <= span[0] and span[1] <= (qmin + levels - 1 - z + 1) * s


# --- rewriting -------------------------------------------------------------------------------

def _tap_inside(n_in: int, n_out: int, k: int, stride: int, dil: int, same: bool) -> np.ndarray:
    """Per kernel tap along one axis, the share of output positions whose tap reads the input
    (not SAME padding's zeros)."""
    pad = max((n_out - 1) * stride + (k - 1) * dil + 1 - n_in, 0) // 2 if same else 0
    pos = np.arange(n_out)[:, None] * stride + np.arange(k)[None, :] * dil - pad
    return ((pos >= 0) & (pos < n_in)).mean(axis=0)


def tap_weights(op: Operator, kh: int, kw: int) -> np.ndarray:
    """(kh, kw): the share of a conv's output positions at which each kernel tap reads the input
    rather than SAME padding (1 everywhere for VALID, or where the shapes are unknown)."""
    o, x, y = op.options, op.inputs[0], op.outputs[0]
    if o is None or x is None or y is None or not x.shape or not y.shape or len(x.shape) != 4 or len(y.shape) != 4:
        return np.ones((kh, kw))
    same = getattr(o, "padding", 0) == fb.Padding.SAME
    sh, sw = int(getattr(o, "strideH", 1) or 1), int(getattr(o, "strideW", 1) or 1)
    dh, dw = int(getattr(o, "dilationHFactor", 1) or 1), int(getattr(o, "dilationWFactor", 1) or 1)
    h = _tap_inside(int(x.shape[1]), int(y.shape[1]), kh, sh, dh, same)
    w = _tap_inside(int(x.shape[2]), int(y.shape[2]), kw, sw, dw, same)
    return h[:, None] * w[None, :]


#: the weighted ops bias correction has a shift model for (TRANSPOSE_CONV scatters each input over
#: its output taps: not written)
BIAS_SHIFT_OPS = frozenset({"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"})


def bias_shift(op_type: str, w: np.ndarray, wq: np.ndarray, scales: np.ndarray, mean: np.ndarray | None,
               taps: np.ndarray | None = None) -> np.ndarray | None:
    """The expected output shift per output channel of a weighted op from its weight rounding,
    (W_q - W) E[x], for the input's per-channel mean ``mean`` (None where the shapes do not match:
    nothing to correct). ``taps`` (convolutions): each kernel tap's share of output positions
    that read the input, not SAME padding's zeros (``tap_weights``)."""
    if mean is None or op_type not in BIAS_SHIFT_OPS:
        return None
    axis = WEIGHTED[op_type]
    shape = [1] * w.ndim
    shape[axis] = -1
    dw = wq.astype(np.float64) * scales.astype(np.float64).reshape(shape) - np.asarray(w, np.float64)
    m = np.asarray(mean, np.float64).reshape(-1)
    if op_type == "FULLY_CONNECTED" and dw.ndim == 2 and dw.shape[1] == m.size:
        return dw @ m
    if dw.ndim == 4 and taps is not None and taps.shape == dw.shape[1:3]:
        dw = dw * taps[None, :, :, None]
    if op_type == "CONV_2D" and dw.ndim == 4 and dw.shape[3] == m.size:
        return dw.sum(axis=(1, 2)) @ m
    if op_type == "DEPTHWISE_CONV_2D" and dw.ndim == 4 and m.size and dw.shape[3] % m.size == 0:
        return dw.sum(axis=(0, 1, 2)) * np.repeat(m, dw.shape[3] // m.size)
    return None


def rewrite(model: Model, quantize: set[int], params: dict[int, tuple[float, int]], io: str,
            activations: str = "int8", means: dict[int, np.ndarray] | None = None) -> list[str]:
    """Quantize the ops whose uids are in ``quantize`` (main subgraph), in place. Returns notes.
    ``activations="int16"``: int16 activations and int64 biases (16x8; ``io="int8"``: int16 edges).
    ``means`` (bias correction): per input tensor uid, its per-channel mean on the calibration
    samples; each weighted op's bias then absorbs its weight rounding's expected output shift."""
    _A, _ANP, _B, _BNP = (_I8, np.int8, _I32, np.int32) if activations == "int8" else (_I16, np.int16, _I64, np.int64)
    FIXED_ = FIXED if activations == "int8" else FIXED16
    uint8_io, io = io == "uint8", ("int8" if io == "uint8" else io)
    sg = model.main
    notes: list[str] = []
    order = {id(op): i for i, op in enumerate(sg.operators)}
    qops = [op for op in sg.operators if op.uid in quantize]
    is_q = {id(op) for op in qops}
    # 1. weights, biases and constant activation inputs of the quantized ops
    consts: dict[tuple, Tensor] = {}
    for op in qops:
        for i, t in enumerate(op.inputs):
            if t is None or t.dtype != _F32 or not t.is_constant:
                continue
            if op.type in WEIGHTED and i == WEIGHTED_IO[op.type][1]:
                di, wi, bi, axis = WEIGHTED_IO[op.type]
                x = op.inputs[di]
                s_in = params[x.uid][0]
                ws = weight_scales(t.data, axis)
                key = (t.uid, "weights", axis)          # weights two ops share stay one constant
                wdata = quantize_weights(t.data, ws, axis)
                if key not in consts:
                    consts[key] = wq = sg.new_constant(f"{t.name}/int8", wdata, _I8,
                                                       shape_signature=t.shape_signature)
                    sg.set_quantization(wq, qparams(ws, np.zeros(len(ws), np.int64), axis))
                sg.set_input(op, wi, consts[key])
                b = op.inputs[bi] if len(op.inputs) > bi else None
                if b is not None:
                    bs = (np.float64(s_in) * ws.astype(np.float64))
                    bv = np.broadcast_to(np.asarray(b.data, np.float32).reshape(-1), (len(ws),))
                    shift = None
                    if means and x.uid in means and op.type in BIAS_SHIFT_OPS:
                        taps = tap_weights(op, t.data.shape[1], t.data.shape[2]) if t.data.ndim == 4 else None
                        shift = bias_shift(op.type, t.data, wdata, ws, means[x.uid], taps)
                    if shift is not None and shift.shape == bv.shape:
                        bv = bv.astype(np.float64) - shift
                    bq = sg.new_constant(f"{b.name}/{_BNP.__name__}",
                                         quantize_bias(bv, bs, _BNP).reshape(b.shape or (len(ws),)), _B)
                    sg.set_quantization(bq, qparams(bs.astype(np.float32), np.zeros(len(ws), np.int64), 0))
                    sg.set_input(op, bi, bq)
            elif op.type in WEIGHTED:
                continue
            elif op.type == "BATCH_MATMUL" and i == 1 and activations == "int8":
                s = float(weight_scales(t.data, None)[0])
                key = (t.uid, s, 0, "sym")
                if key not in consts:
                    consts[key] = c = sg.new_constant(f"{t.name}/int8", quantize_weights(t.data, np.array([s]), None),
                                                      _I8, shape_signature=t.shape_signature)
                    sg.set_quantization(c, qparams(s, 0))
                sg.set_input(op, i, consts[key])
            else:
                s, z = params[t.uid]
                key = (t.uid, s, z)
                if key not in consts:
                    consts[key] = c = sg.new_constant(f"{t.name}/{activations}", quantize_values(t.data, s, z, _ANP),
                                                      _A, shape_signature=t.shape_signature)
                    sg.set_quantization(c, qparams(s, z))
                sg.set_input(op, i, consts[key])
    # 2. activations
    touched: dict[int, Tensor] = {}
    for op in qops:
        for t in _data_tensors(op):
            if not t.is_constant:
                touched.setdefault(t.uid, t)
    for t in touched.values():
        s, z = params[t.uid]
        prod = t.producer
        q_uses = [(o, i) for o, i in t.uses if id(o) in is_q]
        f_uses = [(o, i) for o, i in t.uses if id(o) not in is_q]
        graph_in = sg.is_graph_input(t)
        produced_q = prod is not None and id(prod) in is_q
        pinned = sg.is_pinned(t)
        if (produced_q and (io == "int8" or not pinned)) or (graph_in and io == "int8"):
            # the tensor itself becomes int8; float readers get a DEQUANTIZE
            sg.set_dtype(t, _A)
            sg.set_quantization(t, qparams(s, z))
            if f_uses:
                f = sg.new_tensor(f"{t.name}/float", _F32, t.shape, shape_signature=t.shape_signature)
                deq = Operator(builtin_opcode("DEQUANTIZE", 2), [t], [f])
                if prod is not None:
                    sg.add_op(deq, after=prod)
                else:
                    sg.add_op(deq, before=min((o for o, _ in f_uses), key=lambda o: order[id(o)]))
                for o, i in f_uses:
                    sg.set_input(o, i, f)
            if pinned and io == "int8" and not uint8_io:   # what the user quantizes data with, reads back
                notes.append(f"{'input' if graph_in else 'output'} '{t.name}' is {activations} "
                             f"(scale {s:.6g}, zero point {z})")
        elif produced_q:
            # a float graph output: the op writes an int8 twin, DEQUANTIZE writes the output
            q = sg.new_tensor(f"{t.name}/{activations}", _A, t.shape, shape_signature=t.shape_signature,
                              quantization=qparams(s, z))
            sg.set_output(prod, list(prod.outputs).index(t), q)
            sg.add_op(Operator(builtin_opcode("DEQUANTIZE", 2), [q], [t]), after=prod)
            for o, i in q_uses:
                sg.set_input(o, i, q)
        else:
            # read from a float op or a float graph input: QUANTIZE before the first int8 reader
            q = sg.new_tensor(f"{t.name}/{activations}", _A, t.shape, shape_signature=t.shape_signature,
                              quantization=qparams(s, z))
            first = min((o for o, _ in q_uses), key=lambda o: order[id(o)])
            sg.add_op(Operator(builtin_opcode("QUANTIZE", 1), [t], [q]), before=first)
            for o, i in q_uses:
                sg.set_input(o, i, q)
    # 3. a fixed-parameter op whose group has other parameters writes its own, then requantizes
    for op in qops:
        fp = FIXED_.get(op.type)
        out = op.outputs[0] if fp is not None and op.outputs else None
        qp = quant_params(out) if out is not None and out.dtype == _A else None
        if qp is None or (np.float32(qp.scale[0]), qp.zero_point[0]) == (np.float32(fp[0]), fp[1]):
            continue
        own = sg.new_tensor(f"{out.name}/fixed", _A, out.shape, shape_signature=out.shape_signature,
                            quantization=qparams(*fp))
        sg.set_output(op, 0, own)
        sg.add_op(Operator(builtin_opcode("QUANTIZE", 1), [own], [out]), after=op)
    if uint8_io:
        notes += _uint8_edges(sg)
    sg.remove_unused_tensors()
    return notes


def _uint8_edges(sg) -> list[str]:
    """The int8 graph inputs and outputs become uint8 (scale kept, zero point + 128: the same grid,
    so the conversion is exact), with a QUANTIZE between them and the int8 graph inside. The
    tensors keep their names and places (signatures point at them); the int8 twins are new."""
    notes = []
    for t in [t for t in sg.inputs if t.dtype == _I8 and is_quantized(t)]:
        qp = quant_params(t)
        inner = sg.new_tensor(f"{t.name}/int8", _I8, t.shape, shape_signature=t.shape_signature,
                              quantization=qparams(qp.scale[0], qp.zero_point[0]))
        uses = list(t.uses)
        sg.set_dtype(t, _U8)
        sg.set_quantization(t, qparams(qp.scale[0], qp.zero_point[0] + 128))
        if uses:
            first = min((o for o, _ in uses), key=lambda o: o.index)
            sg.add_op(Operator(builtin_opcode("QUANTIZE", 1), [t], [inner]), before=first)
            for o, i in uses:
                sg.set_input(o, i, inner)
        notes.append(f"input '{t.name}' is uint8 (scale {qp.scale[0]:.6g}, zero point {qp.zero_point[0] + 128})")
    for t in [t for t in sg.outputs if t.dtype == _I8 and is_quantized(t) and t.producer is not None]:
        qp, prod = quant_params(t), t.producer
        inner = sg.new_tensor(f"{t.name}/int8", _I8, t.shape, shape_signature=t.shape_signature,
                              quantization=qparams(qp.scale[0], qp.zero_point[0]))
        uses = list(t.uses)
        sg.set_output(prod, list(prod.outputs).index(t), inner)
        for o, i in uses:
            sg.set_input(o, i, inner)
        sg.set_dtype(t, _U8)
        sg.set_quantization(t, qparams(qp.scale[0], qp.zero_point[0] + 128))
        sg.add_op(Operator(builtin_opcode("QUANTIZE", 1), [inner], [t]), after=prod)
        notes.append(f"output '{t.name}' is uint8 (scale {qp.scale[0]:.6g}, zero point {qp.zero_point[0] + 128})")
    return notes


_NODE = re.compile(r"node number (\d+)", re.I)


def _probe(data: bytes) -> str | None:
    """Prepare and run ``data`` in LiteRT (builtin kernels, then XNNPACK); LiteRT's error or None."""
    from tflc.errors import TflcError
    from tflc.runtime import RunOptions, Session, generate, run_isolated

    def go(b: bytes, xnn: bool) -> None:
        s = Session(b, RunOptions(xnnpack=xnn), name="the quantized model")
        s.run(generate(s.input_details, 1, 0)[0])

    for xnn in (False, True):
        try:
            run_isolated(go, data, xnn, what="LiteRT on the quantized model")
        except TflcError as e:
            return str(e)
    return None


def refused_op(trial: Model, chosen: set[int]) -> tuple[str | None, int | None]:
    """Run ``trial`` (a quantized copy) in LiteRT: ``(None, None)`` if it runs, else LiteRT's error
    and the uid of the op it names when that op is one of ``chosen`` (else None: nothing to demote).
    The quantization passes demote that op to float and try again."""
    from tflc.io import serialize
    err = _probe(serialize(trial))
    if err is None:
        return None, None
    m = _NODE.search(err)
    ops = trial.main.operators
    node = ops[int(m.group(1))] if m and int(m.group(1)) < len(ops) else None
    return err, (node.uid if node is not None and node.uid in chosen else None)


@register
class QuantizeInt8(Pass):
    __doc__ = __doc__
    name = "quantize-int8"
    quantizes = True
    description = "full-integer int8 post-training quantization from calibration ranges (TFLite int8 spec)"
    Options = QuantizeInt8Options
    needs = frozenset({"calibration"})
    #: judged by SQNR (``min_sqnr_db``), not by a relative tolerance: see tflc.optimize
    tolerance = 0.0
    max_retries = 12
    _method: str = "minmax"
    _methods: dict = {}
    _means: dict | None = None
    _unclipped: frozenset = frozenset()
    _equalized: dict | None = None

    @property
    def min_sqnr_db(self) -> float:
        return self.options.min_sqnr_db

    def run(self, model: Model, ctx) -> bool:
        from tflc.rewrite import apply_rules
        record = ctx.facts.setdefault(FACT, {}) if ctx is not None else {}
        apply_rules(model, [FoldFloat16Dequantize(record)], ctx)
        if self.options.equalize:
            from ._equalize import equalize
            eq = equalize(model, set(self.options.keep_float))
            ctx.note(f"{self.name}: equalize: {eq['text']}")
            self._equalized = eq
        cal = ctx.analyses.get("calibration", model, ctx)
        if cal.error:
            ctx.note(f"{self.name}: not quantized: calibration failed: {cal.error}")
            return False
        self._method, self._methods = self._range_method(), {}
        self._unclipped = frozenset(t.uid for t in model.main.outputs)
        self._means = ({u: r.channel_mean for u, r in cal.ranges.items() if r.channel_mean is not None}
                       if self.options.bias_correction else None)
        if cal.warning:
            ctx.note(f"{self.name}: warning: {cal.warning}")
        act = self.options.activations
        if act == "int16":
            ctx.note(f"{self.name}: warning: {XNNPACK_INT16_WARNING}")
        keep = set(self.options.keep_float)
        sg = model.main
        reasons: dict[int, str] = {}
        candidates = []
        for op in sg.operators:
            why = why_float(op, cal.ranges, keep, self.options.activations)
            if not why and self.options.io == "float" and op.type in FIXED and act == "int8" and all(
                    sg.is_graph_output(t) and not t.uses for t in op.outputs):
                p = FIXED[op.type]
                why = (f"it writes a float graph output: its fixed int8 output grid ({p[0]:.4g}) would cost the "
                       "output's precision; it runs in float after a DEQUANTIZE")
            if why:
                reasons[op.uid] = why
            else:
                candidates.append(op)
        demoted: dict[int, str] = {}
        planned = self._plan(model, candidates, demoted, cal, ctx)
        if planned is None:
            return False
        ops, params = planned
        if not ops:
            ctx.note(f"{self.name}: nothing to quantize")
            return False
        auto = None
        if self.options.ranges == "auto" and self._method == "minmax":
            auto = self._auto_ranges(model, ops, cal, ctx)
            params = self._params(ops, cal, self._method)
        ops, params, report = self._measure_and_mix(model, candidates, demoted, ops, params, cal, ctx)
        if report is not None:
            report["int8_ops"], report["ops"] = len(ops), len(sg.operators)
            report["ranges"] = self._method
            if auto is not None:
                report["ranges_auto"] = auto
            report["bias_correction"] = bool(self.options.bias_correction)
            if self.options.equalize:
                report["equalize"] = {k: v for k, v in self._equalized.items() if k != "text"}
            ctx.facts[self.name] = report
        if not ops:
            from ._sensitivity import Goal
            label = (Goal(self.options.min_sqnr, self.options.max_error).label
                     or f"the {self.options.min_sqnr_db:g} dB floor (fallback)")
            ctx.note(f"{self.name}: nothing left to quantize: every op stayed float for {label}; the model is "
                     "unchanged")
            return False
        reasons.update(demoted)
        for op in sg.operators:
            if op.uid in reasons and op.type not in ("QUANTIZE", "DEQUANTIZE"):
                ctx.note(f"{self.name}: kept {op.type} '{op.output_name}' float: {reasons[op.uid]}")
        total = len(sg.operators)
        notes = rewrite(model, {op.uid for op in ops}, params, self.options.io, act, self._means)
        if self.options.io != "float":     # an edge a float op reads or writes stays float: which and why
            for kind, edge in [("input", t) for t in sg.inputs] + [("output", t) for t in sg.outputs]:
                if edge.dtype == _F32:
                    op = edge.producer if kind == "output" else next((o for o, _ in edge.uses), None)
                    why = (f": {op.type} '{op.output_name}' {'writes' if kind == 'output' else 'reads'} it and "
                           f"stays float ({reasons.get(op.uid, 'not quantized')})" if op is not None else "")
                    notes.append(f"warning: {kind} '{edge.name}' stays float, not io={self.options.io}{why}")
        for n in notes:
            ctx.note(f"{self.name}: {n}")
        ctx.note(f"{self.name}: {len(ops)} of {total} ops {'int8' if act == 'int8' else 'int16x8'} "
                 f"({total - len(ops)} float); calibrated on "
                 f"{cal.samples} sample(s) from {cal.source}")
        return True

    def _plan(self, model: Model, candidates: list[Operator], demoted: dict[int, str], cal, ctx):
        """The ops to quantize (``candidates`` less ``demoted``, which gains those LiteRT refuses in
        int8) and their parameters; None (noted) on failure."""
        for _ in range(self.max_retries):
            ops = [op for op in candidates if op.uid not in demoted]
            params = self._params(ops, cal, self._method)
            if not ops:
                return [], {}
            trial = model.clone()
            rewrite(trial, {op.uid for op in ops}, params, self.options.io, self.options.activations, self._means)
            err, uid = refused_op(trial, {op.uid for op in ops})
            if err is None:
                return ops, params
            if uid is None:
                ctx.note(f"{self.name}: not quantized: LiteRT refused the result and no quantized op was named: {err}")
                return None
            demoted[uid] = f"LiteRT refused it in {self.options.activations} ({err.split(': ', 1)[-1][:160]})"
        ctx.note(f"{self.name}: not quantized: LiteRT still refused the result after {self.max_retries} tries")
        return None

    def _build(self, model: Model, params: dict, io: str) -> "Callable[[set[int]], bytes]":
        from tflc.io import serialize

        def build(uids: set[int]) -> bytes:
            trial = model.clone()
            rewrite(trial, uids, params, io, self.options.activations, self._means)
            return serialize(trial)
        return build

    def _measure_and_mix(self, model: Model, candidates: list[Operator], demoted: dict[int, str],
                         ops: list[Operator], params: dict, cal, ctx):
        """The measurements in LiteRT and mixed precision (``min_sqnr``): see ``passes._sensitivity``."""
        from ._sensitivity import measure_and_mix
        return measure_and_mix(self, model, demoted, ops, params, ctx,
                               plan=lambda: self._plan(model, candidates, demoted, cal, ctx),
                               build=lambda prm, io: self._build(model, prm, io),
                               params_for=lambda uids: self._params([op for op in candidates if op.uid in uids],
                                                                    cal, self._method),
                               judged_on=cal.samples)

    def _params(self, ops: list[Operator], cal, method: str, methods: dict[int, str] | None = None):
        """``plan_params`` with this pass's options (``methods``: per tensor uid estimators, default
        ``self._methods``); under mse the graph outputs keep min/max (clipping what the float model
        is compared on costs the largest errors there)."""
        methods = self._methods if methods is None else methods
        unclipped = frozenset(u for u in self._unclipped if methods.get(u, method) == "mse")
        return plan_params(ops, cal.ranges, self.options.percentile, self.options.activations, method, unclipped,
                           methods)

    def _range_method(self) -> str:
        """The range estimator ``_plan`` starts from (auto: min/max, until measured)."""
        r = self.options.ranges
        if r in ("minmax", "auto") and self.options.percentile < 100:
            return "percentile"
        return "minmax" if r == "auto" else r

    def _auto_ranges(self, model: Model, ops: list[Operator], cal, ctx) -> dict | None:
        """ranges=auto (``passes._range_search``): an estimator for the shared part of the graph
        and, where it measures better, another for an output's own head; sets ``self._method`` and
        ``self._methods``. Returns the search's record (every candidate's per-output SQNR)."""
        from tflc.analyses.calibration import SEED_OFFSET, calibration_source
        from tflc.errors import TflcError
        from tflc.io import serialize
        from tflc.runtime import RunOptions

        from ._range_search import output_cones, search
        from ._sensitivity import Samples
        seed = int(getattr(ctx, "seed", 0) or 0) + SEED_OFFSET
        # judged on calibration samples the candidates' ranges did not see (k-fold): measured on
        # their own samples, clipping estimators look worse than they are (nothing they clip is new
        # to them), and one small held-out set is too noisy a judge
        n, per = cal.samples, self.options.samples
        k = min(AUTO_FOLDS, n // per) if n >= 2 * per else (2 if n >= 4 else 1)
        size = min(n // k, 2 * per) if k > 1 else per
        src, shapes = calibration_source(ctx), dict(getattr(ctx, "shapes", None) or {}) or None
        opts = getattr(ctx, "run_options", None) or RunOptions()
        folds = []
        for f in range(k):
            fit = cal
            if k > 1:
                held = range(f * size, (f + 1) * size)
                fit = SimpleNamespace(ranges={u: r.without(held) for u, r in cal.ranges.items()})
            folds.append((lambda m, per_uid, fit=fit: self._params(ops, fit, m, per_uid),
                          Samples(src, size, seed, shapes, opts, first=f * size if k > 1 else 0)))
        uids = {op.uid for op in ops}
        try:
            res = search(RANGE_METHODS, folds, lambda prm: self._build(model, prm, self.options.io)(uids),
                         serialize(model), output_cones(model, ops),
                         AUTO_MARGIN_CV_DB if k > 1 and k * size >= 16 else AUTO_MARGIN_DB)
        except TflcError as e:
            ctx.note(f"{self.name}: ranges=auto: could not measure the candidates in LiteRT ({e}); min/max kept")
            return None
        if res["chosen"] is None:
            ctx.note(f"{self.name}: ranges=auto: no candidate ran in LiteRT; min/max kept")
            return res
        self._method, self._methods = res["chosen"], res["methods"]
        pct = self.options.percentile if self.options.percentile < 100 else DEFAULT_PERCENTILE
        label = {m: f"{m} ({pct:g})" if m == "percentile" else m for m in RANGE_METHODS}
        cands = res["candidates"]

        def figures(per_output: dict) -> str:     # the criterion (the mean) first, then the worst output
            vals = [v for v in per_output.values() if v is not None]
            return (f"mean {sum(vals) / len(vals):.2f} / worst {min(vals):.2f} dB" if vals else "identical")
        text = ", ".join(f"{label[m]} " + ("failed" if cands[m] is None else figures(cands[m]["sqnr_db"]))
                         for m in RANGE_METHODS)
        heads = "".join(f", '{o}'s own head {label[m]}" for o, m in sorted(res["heads"].items()))
        where = (f"{res['samples']} calibration samples, each held out of the ranges it is measured with "
                 f"({k} folds)" if k > 1 else f"{res['samples']} calibration sample(s)")
        chosen = figures(res.get("sqnr_db") or {})
        ctx.note(f"{self.name}: ranges=auto: output SQNR per estimator (pooled over {where}; the best mean "
                 f"wins): {text}; kept {label[self._method]}{heads}: {chosen}")
        return {**{key: v for key, v in res.items() if key != "methods"}, "folds": k}


@dataclass
class QuantizeInt16x8Options(QuantizeInt8Options):
    activations: str = field(default="int16", metadata={
        "help": "int16 (TFLite's 16x8 scheme: int16 symmetric activations, int8 weights, int64 biases), or int8"})


@register
class QuantizeInt16x8(QuantizeInt8):
    """quantize-int16x8: ``quantize-int8{activations=int16}`` (``--quantize int16x8``); see quantize-int8."""
    name = "quantize-int16x8"
    description = ("post-training 16x8 quantization: int16 activations, int8 weights, int64 biases (TFLite's "
                   "16x8 scheme); XNNPACK takes none of it")
    Options = QuantizeInt16x8Options
