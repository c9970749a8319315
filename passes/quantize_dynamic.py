"""quantize-dynamic: dynamic-range quantization (int8 weights, float activations) in the form
XNNPACK accelerates.

Each weight of a FULLY_CONNECTED, CONV_2D, TRANSPOSE_CONV or DEPTHWISE_CONV_2D, and the constant
right operand of a BATCH_MATMUL, becomes int8, symmetric per output channel (zero point 0, values
in [-127, 127]; quantized dimension 0, 3 for DEPTHWISE_CONV_2D, the last (adj_y: second last) for
BATCH_MATMUL's right operand); inputs, outputs and biases stay float32. LiteRT quantizes the input
per row at run time.

Where it is applied is decided by the target's rules (``target``, default xnnpack: LiteRT 2.3.0's
delegate, ``tflc.targets``): an op is quantized only where the target takes the dynamic-range op.
XNNPACK runs FULLY_CONNECTED, CONV_2D, BATCH_MATMUL and TRANSPOSE_CONV with int8 weights as integer
("qd8") GEMMs; it refuses a dynamic-range DEPTHWISE_CONV_2D, which would then run on the builtin
hybrid kernel and split the delegate's partition, so such an op keeps float weights (and its
reason is noted). Unlike the converter's dynamic-range mode, the model then runs in one partition.

Float16-weight models: the DEQUANTIZE ops of float16 constants are folded first
(``fold-float16-weights``' rule). Every result is prepared and run in LiteRT (builtin kernels and
XNNPACK) before the pass returns; an op LiteRT refuses keeps its float weights.

Judged by ``tflc optimize`` as a minimum SQNR per output against the float model (``min_sqnr_db``,
default 20 dB: a floor against broken quantization), reported per output.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from tflc.ir.core import Model, Operator, Tensor
from tflc.ir.quant import is_quantized
from tflc.passes_api import Pass, register
from tflc.schema import TYPE_CODES

from .fold_float16_weights import FACT, FoldFloat16Dequantize
from .quantize_int8 import qparams, quantize_weights, refused_op, weight_scales

_F32, _I8 = TYPE_CODES["FLOAT32"], TYPE_CODES["INT8"]

#: op type -> (index of the weight input, index of the float activation input)
WEIGHTED = {"FULLY_CONNECTED": (1, 0), "CONV_2D": (1, 0), "DEPTHWISE_CONV_2D": (1, 0),
            "TRANSPOSE_CONV": (1, 2), "BATCH_MATMUL": (1, 0)}
DEFAULT_OPS = ("FULLY_CONNECTED", "CONV_2D", "BATCH_MATMUL", "TRANSPOSE_CONV", "DEPTHWISE_CONV_2D")


@dataclass
class QuantizeDynamicOptions:
    ops: list[str] = field(default_factory=lambda: list(DEFAULT_OPS), metadata={
        "help": "op types whose weights may become int8 (':'-separated); the target still decides each op"})
    target: str = field(default="xnnpack", metadata={
        "help": "the delegate whose rules decide where a dynamic-range op is taken (tflc.targets)"})
    min_elements: int = field(default=1, metadata={
        "help": "leave weights with fewer elements float"})
    min_sqnr_db: float = field(default=20.0, metadata={
        "help": "the least SQNR (dB) each output must keep against the float model in tflc optimize's check"})

    def __post_init__(self) -> None:
        unknown = [o for o in self.ops if o not in WEIGHTED]
        if unknown:
            raise ValueError(f"ops: {', '.join(unknown)} (choose from {', '.join(WEIGHTED)})")
        if self.min_elements < 1:
            raise ValueError("min-elements must be 1 or more")


def weight_axis(op: Operator) -> int:
    """The output-channel axis of ``op``'s weight (its per-channel quantized dimension)."""
    w = op.inputs[WEIGHTED[op.type][0]]
    if op.type == "DEPTHWISE_CONV_2D":
        return 3
    if op.type == "BATCH_MATMUL":
        adj_y = bool(getattr(op.options, "adjY", False)) if op.options is not None else False
        return len(w.shape) - (2 if adj_y else 1)
    return 0


def why_not(op: Operator, ops: frozenset, min_elements: int) -> str | None:
    """None: not a candidate at all (no note); '' a candidate; else why it keeps float weights."""
    if op.type not in ops:
        return None
    wi, xi = WEIGHTED[op.type]
    w = op.inputs[wi] if len(op.inputs) > wi else None
    x = op.inputs[xi] if len(op.inputs) > xi else None
    if w is None or not w.is_constant:
        return None if op.type == "BATCH_MATMUL" else "its weights are not constant"
    if w.dtype != _F32 or is_quantized(w) or w.sparsity is not None:
        return None if w.dtype == _I8 else f"its weights are {w.type_name}{' (quantized)' if is_quantized(w) else ''}"
    if x is None or x.dtype != _F32 or is_quantized(x) or any(t.dtype != _F32 for t in op.outputs if t is not None):
        return "its input or output is not float32"
    if w.shape is None or len(w.shape) < 2 or (op.type != "BATCH_MATMUL" and len(w.shape) <= weight_axis(op)):
        return "its weights have no usable shape"
    if w.num_elements is not None and w.num_elements < min_elements:
        return f"its weights have fewer than {min_elements} elements (min-elements)"
    if any(o.type not in ops for o in w.consumers):
        return "its weights are also read by " + ", ".join(sorted({o.type for o in w.consumers if o.type not in ops}))
    return ""


def rewrite(model: Model, quantize: set[int]) -> int:
    """Give the ops whose uids are in ``quantize`` (main subgraph) int8 per-channel weights, in place."""
    sg = model.main
    made: dict[tuple, Tensor] = {}
    n = 0
    for op in list(sg.operators):
        if op.uid not in quantize:
            continue
        wi = WEIGHTED[op.type][0]
        w = op.inputs[wi]
        axis = weight_axis(op)
        key = (w.uid, axis)                      # a weight two ops share stays one constant
        if key not in made:
            scales = weight_scales(w.data, axis)
            made[key] = q = sg.new_constant(f"{w.name}/int8", quantize_weights(w.data, scales, axis), _I8,
                                            shape_signature=w.shape_signature)
            sg.set_quantization(q, qparams(scales, np.zeros(len(scales), np.int64), axis))
        sg.set_input(op, wi, made[key])
        n += 1
    sg.remove_unused_tensors()
    return n


@register
class QuantizeDynamic(Pass):
    __doc__ = __doc__
    name = "quantize-dynamic"
    quantizes = True
    description = ("dynamic-range quantization: int8 per-channel weights, float activations, where the target "
                   "(xnnpack) takes the op so")
    Options = QuantizeDynamicOptions
    #: judged by SQNR (``min_sqnr_db``), not by a relative tolerance: see tflc.optimize
    tolerance = 0.0
    max_retries = 12

    @property
    def min_sqnr_db(self) -> float:
        return self.options.min_sqnr_db

    def run(self, model: Model, ctx) -> bool:
        from tflc.rewrite import apply_rules
        from tflc.targets import get_target
        record = ctx.facts.setdefault(FACT, {}) if ctx is not None else {}
        apply_rules(model, [FoldFloat16Dequantize(record)], ctx)
        target = get_target(self.options.target)
        ops = frozenset(self.options.ops)
        sg = model.main
        reasons: dict[int, str] = {}
        candidates: list[Operator] = []
        for op in sg.operators:
            why = why_not(op, ops, self.options.min_elements)
            if why is None:
                continue
            if why:
                reasons[op.uid] = why
            else:
                candidates.append(op)
        # the target's rules decide, on the op as it would be (a trial copy, all candidates at once)
        trial = model.clone()
        rewrite(trial, {op.uid for op in candidates})
        by_uid = {op.uid: op for op in trial.main.operators}
        for op in candidates:
            ok, why = target.check(by_uid[op.uid])
            if not ok:
                reasons[op.uid] = f"{target.title} does not take it with dynamic-range int8 weights ({why})"
        chosen = {op.uid for op in candidates if op.uid not in reasons}
        for _ in range(self.max_retries):
            if not chosen:
                break
            trial = model.clone()
            rewrite(trial, chosen)
            err, uid = refused_op(trial, chosen)
            if err is None:
                break
            if uid is None:
                ctx.note(f"{self.name}: not quantized: LiteRT refused the result and no quantized op was named: {err}")
                return False
            chosen.discard(uid)
            reasons[uid] = f"LiteRT refused it with int8 weights ({err.split(': ', 1)[-1][:160]})"
        else:
            ctx.note(f"{self.name}: not quantized: LiteRT still refused the result after {self.max_retries} tries")
            return False
        for op in sg.operators:
            if op.uid in reasons:
                ctx.note(f"{self.name}: kept {op.type} '{op.output_name}' float: {reasons[op.uid]}")
        if not chosen:
            ctx.note(f"{self.name}: nothing to quantize")
            return False
        n = rewrite(model, chosen)
        ctx.note(f"{self.name}: {n} op(s) with int8 per-channel weights (dynamic range), {len(reasons)} kept float")
        return True
