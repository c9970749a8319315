"""quantize-int8: full-integer post-training quantization of a float model, from the .tflite itself.

Follows the TFLite 8-bit quantization specification
(https://ai.google.dev/edge/litert/models/quantization_spec):

* weights of CONV_2D, DEPTHWISE_CONV_2D and FULLY_CONNECTED: int8, symmetric per output channel
  (zero point 0, values in [-127, 127]; quantized dimension 0, 3 for DEPTHWISE_CONV_2D);
* their biases: int32, zero point 0, scale = input scale x weight scale (per channel);
* activations: int8, asymmetric per tensor, from the ``calibration`` analysis' ranges (min/max,
  or a percentile of the values each side with ``percentile=99.99``); a range always holds 0;
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
  makes the model's inputs and outputs int8 themselves.

Ops not in the tables (no int8 kernel in LiteRT, or not written yet: DIV, EXP, SQRT, LOG, custom
ops, ...) stay float between DEQUANTIZE and QUANTIZE, and are reported. Every result is prepared
and run in LiteRT (builtin kernels and XNNPACK) before the pass returns: an op LiteRT refuses in
int8 (its node is named in the error) stays float and the rewrite is redone, so the model the pass
leaves always loads and runs in stock LiteRT.

Float16-weight models: the DEQUANTIZE ops of float16 constants are folded first
(``fold-float16-weights``' rule), so weights are float32 constants the pass can quantize.

Only the main subgraph is quantized. The loss is judged by ``tflc optimize`` as a minimum SQNR per
output against the float model (``min_sqnr_db``, default 10 dB: a floor
against broken quantization, not a quality target), and reported per output.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np

from tflc.ir.build import builtin_opcode
from tflc.ir.core import Model, Operator, Tensor
from tflc.ir.quant import is_quantized
from tflc.passes_api import Pass, register
from tflc.schema import TYPE_CODES, fb

from .fold_float16_weights import FACT, FoldFloat16Dequantize

_F32, _I8, _I32 = TYPE_CODES["FLOAT32"], TYPE_CODES["INT8"], TYPE_CODES["INT32"]

#: weight input 1's per-channel axis
WEIGHTED = {"CONV_2D": 0, "DEPTHWISE_CONV_2D": 3, "FULLY_CONNECTED": 0}
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


@dataclass
class QuantizeInt8Options:
    io: str = field(default="float", metadata={
        "help": "float: the model keeps float inputs and outputs (QUANTIZE/DEQUANTIZE at the edges); "
                "int8: its inputs and outputs become int8"})
    percentile: float = field(default=100.0, metadata={
        "help": "activation ranges: 100 = calibrated min/max; e.g. 99.99 clips each side to that percentile"})
    min_sqnr_db: float = field(default=10.0, metadata={
        "help": "the least SQNR (dB) each output must keep against the float model in tflc optimize's check "
                "(a floor against broken quantization, not a quality target: each output's SQNR is reported)"})
    keep_float: list[str] = field(default_factory=list, metadata={
        "help": "op types to leave float (':'-separated)"})

    def __post_init__(self) -> None:
        if self.io not in ("float", "int8"):
            raise ValueError("io must be float or int8")
        if not 50.0 < self.percentile <= 100.0:
            raise ValueError("percentile must be in (50, 100]")


# --- the maths -------------------------------------------------------------------------------

def activation_params(lo: float, hi: float) -> tuple[float, int]:
    """Asymmetric int8 (scale, zero point) for [lo, hi], widened to hold 0 (exactly representable)."""
    lo, hi = min(float(lo), 0.0), max(float(hi), 0.0)
    if not np.isfinite(lo) or not np.isfinite(hi):
        raise ValueError("non-finite range")
    if hi - lo <= 1e-30:
        return 1.0 / 255, -128
    scale = (hi - lo) / 255.0
    zp = int(np.clip(np.round(-128 - lo / scale), -128, 127))
    return float(np.float32(scale)), zp


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


def quantize_bias(b: np.ndarray, scales: np.ndarray) -> np.ndarray:
    q = np.round(np.asarray(b, np.float64) / scales.astype(np.float64))
    return np.clip(q, np.iinfo(np.int32).min, np.iinfo(np.int32).max).astype(np.int32)


def quantize_values(x: np.ndarray, scale: float, zp: int) -> np.ndarray:
    return np.clip(np.round(np.asarray(x, np.float64) / scale) + zp, -128, 127).astype(np.int8)


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


def why_float(op: Operator, ranges: dict, keep: set[str]) -> str:
    """Why ``op`` stays float, or '' when it can be quantized."""
    if op.type in keep:
        return "asked to stay float (keep-float)"
    if op.opcode.is_custom:
        return "a custom op (no int8 kernel known)"
    if op.type not in SUPPORTED:
        return "no int8 kernel in tflc's table of LiteRT's int8 ops"
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
        if len(op.inputs) < 2 or not _float_act(op.inputs[0]) or not _float_const(op.inputs[1]):
            return "its weights are not a float32 constant"
        if len(op.inputs) > 2 and op.inputs[2] is not None and not _float_const(op.inputs[2]):
            return "its bias is not a float32 constant"
        w = op.inputs[1]
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
        if op.type in WEIGHTED and i > 0:
            continue
        out.append(t)
    out += [t for t in op.outputs if t is not None and t.dtype == _F32]
    return out


def plan_params(ops: list[Operator], ranges: dict, percentile: float) -> tuple[dict[int, tuple[float, int]], set[int]]:
    """Parameters per float tensor uid of the quantized ``ops``, and the uids of ops to drop
    (their group would need two different fixed parameters)."""
    g = _Groups()
    fixed: dict[int, tuple[float, int]] = {}
    for op in ops:
        ts = _data_tensors(op)
        for t in ts:
            g.find(t.uid)
        if op.type in SAME:
            for t in ts[1:]:
                g.union(ts[0].uid, t.uid)
        if op.type in FIXED:
            fixed[op.outputs[0].uid] = FIXED[op.type]
    drop: set[int] = set()
    group_fixed: dict[int, tuple[float, int]] = {}
    for u, p in fixed.items():
        r = g.find(u)
        if group_fixed.setdefault(r, p) != p:
            drop |= {op.uid for op in ops if op.type in SAME and any(g.find(t.uid) == r for t in _data_tensors(op))}
    if drop:
        return {}, drop
    lo: dict[int, float] = {}
    hi: dict[int, float] = {}
    by_uid = {t.uid: t for op in ops for t in _data_tensors(op)}
    for u, t in by_uid.items():
        r = g.find(u)
        if t.is_constant:
            a, b = float(np.min(t.data)), float(np.max(t.data))
        else:
            a, b = ranges[u].range(percentile if percentile < 100 else None)
        lo[r], hi[r] = min(lo.get(r, a), a), max(hi.get(r, b), b)
    params = {}
    for u in by_uid:
        r = g.find(u)
        params[u] = group_fixed.get(r) or activation_params(lo[r], hi[r])
    return params, set()


# --- rewriting -------------------------------------------------------------------------------

def rewrite(model: Model, quantize: set[int], params: dict[int, tuple[float, int]], io: str) -> list[str]:
    """Quantize the ops whose uids are in ``quantize`` (main subgraph), in place. Returns notes."""
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
            if op.type in WEIGHTED and i == 1:
                axis = WEIGHTED[op.type]
                s_in = params[op.inputs[0].uid][0]
                ws = weight_scales(t.data, axis)
                key = (t.uid, "weights", axis)          # weights two ops share stay one constant
                if key not in consts:
                    consts[key] = wq = sg.new_constant(f"{t.name}/int8", quantize_weights(t.data, ws, axis), _I8,
                                                       shape_signature=t.shape_signature)
                    sg.set_quantization(wq, qparams(ws, np.zeros(len(ws), np.int64), axis))
                sg.set_input(op, 1, consts[key])
                b = op.inputs[2] if len(op.inputs) > 2 else None
                if b is not None:
                    bs = (np.float64(s_in) * ws.astype(np.float64))
                    bv = np.broadcast_to(np.asarray(b.data, np.float32).reshape(-1), (len(ws),))
                    bq = sg.new_constant(f"{b.name}/int32", quantize_bias(bv, bs).reshape(b.shape or (len(ws),)), _I32)
                    sg.set_quantization(bq, qparams(bs.astype(np.float32), np.zeros(len(ws), np.int64), 0))
                    sg.set_input(op, 2, bq)
            elif op.type in WEIGHTED:
                continue
            elif op.type == "BATCH_MATMUL" and i == 1:
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
                    consts[key] = c = sg.new_constant(f"{t.name}/int8", quantize_values(t.data, s, z), _I8,
                                                      shape_signature=t.shape_signature)
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
            sg.set_dtype(t, _I8)
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
            if pinned and io == "int8" and not graph_in:
                notes.append(f"output '{t.name}' is int8 (scale {s:.6g}, zero point {z})")
        elif produced_q:
            # a float graph output: the op writes an int8 twin, DEQUANTIZE writes the output
            q = sg.new_tensor(f"{t.name}/int8", _I8, t.shape, shape_signature=t.shape_signature,
                              quantization=qparams(s, z))
            sg.set_output(prod, list(prod.outputs).index(t), q)
            sg.add_op(Operator(builtin_opcode("DEQUANTIZE", 2), [q], [t]), after=prod)
            for o, i in q_uses:
                sg.set_input(o, i, q)
        else:
            # read from a float op or a float graph input: QUANTIZE before the first int8 reader
            q = sg.new_tensor(f"{t.name}/int8", _I8, t.shape, shape_signature=t.shape_signature,
                              quantization=qparams(s, z))
            first = min((o for o, _ in q_uses), key=lambda o: order[id(o)])
            sg.add_op(Operator(builtin_opcode("QUANTIZE", 1), [t], [q]), before=first)
            for o, i in q_uses:
                sg.set_input(o, i, q)
            if graph_in and io == "int8":
                notes.append(f"input '{t.name}' stays float")
            if pinned and io == "int8":
                notes.append(f"output '{t.name}' stays float (a float op writes it)")
    sg.remove_unused_tensors()
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
    description = "full-integer int8 post-training quantization from calibration ranges (TFLite int8 spec)"
    Options = QuantizeInt8Options
    needs = frozenset({"calibration"})
    #: judged by SQNR (``min_sqnr_db``), not by a relative tolerance: see tflc.optimize
    tolerance = 0.0
    max_retries = 12

    @property
    def min_sqnr_db(self) -> float:
        return self.options.min_sqnr_db

    def run(self, model: Model, ctx) -> bool:
        from tflc.rewrite import apply_rules
        record = ctx.facts.setdefault(FACT, {}) if ctx is not None else {}
        apply_rules(model, [FoldFloat16Dequantize(record)], ctx)
        cal = ctx.analyses.get("calibration", model, ctx)
        if cal.error:
            ctx.note(f"{self.name}: not quantized: calibration failed: {cal.error}")
            return False
        if cal.warning:
            ctx.note(f"{self.name}: warning: {cal.warning}")
        keep = set(self.options.keep_float)
        sg = model.main
        reasons: dict[int, str] = {}
        candidates = []
        for op in sg.operators:
            why = why_float(op, cal.ranges, keep)
            if not why and self.options.io == "float" and op.type in FIXED and all(
                    sg.is_graph_output(t) and not t.uses for t in op.outputs):
                p = FIXED[op.type]
                why = (f"it writes a float graph output: its fixed int8 output grid ({p[0]:.4g}) would cost the "
                       "output's precision; it runs in float after a DEQUANTIZE")
            if why:
                reasons[op.uid] = why
            else:
                candidates.append(op)
        demoted: dict[int, str] = {}
        for _ in range(self.max_retries):
            ops = [op for op in candidates if op.uid not in demoted]
            params, drop = plan_params(ops, cal.ranges, self.options.percentile)
            if drop:
                demoted.update(dict.fromkeys(drop, "its inputs would need two different fixed parameters"))
                continue
            if not ops:
                break
            trial = model.clone()
            notes = rewrite(trial, {op.uid for op in ops}, params, self.options.io)
            err, uid = refused_op(trial, {op.uid for op in ops})
            if err is None:
                break
            if uid is None:
                ctx.note(f"{self.name}: not quantized: LiteRT refused the result and no quantized op was named: {err}")
                return False
            demoted[uid] = f"LiteRT refused it in int8 ({err.split(': ', 1)[-1][:160]})"
        else:
            ctx.note(f"{self.name}: not quantized: LiteRT still refused the result after {self.max_retries} tries")
            return False
        ops = [op for op in candidates if op.uid not in demoted]
        if not ops:
            ctx.note(f"{self.name}: nothing to quantize")
            return False
        reasons.update(demoted)
        for op in sg.operators:
            if op.uid in reasons and op.type not in ("QUANTIZE", "DEQUANTIZE"):
                ctx.note(f"{self.name}: kept {op.type} '{op.output_name}' float: {reasons[op.uid]}")
        total = len(sg.operators)
        notes = rewrite(model, {op.uid for op in ops}, params, self.options.io)
        for n in notes:
            ctx.note(f"{self.name}: {n}")
        ctx.note(f"{self.name}: {len(ops)} of {total} ops int8 ({total - len(ops)} float); calibrated on "
                 f"{cal.samples} sample(s) from {cal.source}")
        return True

