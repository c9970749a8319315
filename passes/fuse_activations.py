"""fuse-activations: fold a separate RELU / RELU6 / RELU_N1_TO_1 op into the producer's
``fusedActivationFunction``.

Rewrites ``y = RELU(OP(...))`` into ``y = OP(..., fused=RELU)`` for OP in CONV_2D,
DEPTHWISE_CONV_2D, FULLY_CONNECTED, TRANSPOSE_CONV, ADD, SUB, MUL, DIV, AVERAGE_POOL_2D and
MAX_POOL_2D. The activation's output tensor (and so its name) becomes the fused op's output.

Safe (bit-identical) because LiteRT's kernels, and XNNPACK's, apply a fused RELU-family
activation as a clamp of the op's result, exactly what the separate op computes. Only when:
the producer's activation is NONE; the producer's output is read by the activation alone and is
not a graph (or signature) output; the types agree and are float, or quantized with the same
scale and zero point on both sides (the fused clamp is then computed in the same quantized
domain).

Refused, with a note: TANH (LiteRT's kernels ignore a fused TANH: measured, wrong results) and
CONCATENATION (its builtin kernel rejects any fused activation, XNNPACK ignores it). A fused
TRANSPOSE_CONV is raised to operator version 4 (fused activations on TRANSPOSE_CONV are a later
addition: an older runtime should refuse the model rather than silently skip the clamp).
"""
from __future__ import annotations

import copy
import dataclasses

from tflc.ir.core import Model, Operator, Subgraph, Tensor
from tflc.passes_api import Pass, register
from tflc.rewrite import Match, Rule, apply_rules
from tflc.schema import TYPE_NAMES, fb

_ACT = {k: v for k, v in vars(fb.ActivationFunctionType).items() if not k.startswith("_")}

#: separate activation op -> ActivationFunctionType it becomes (when the schema has it)
FUSABLE: dict[str, int] = {name: _ACT[name] for name in ("RELU", "RELU6", "RELU_N1_TO_1", "RELU_0_TO_1")
                           if name in _ACT}
#: activations that the schema can express but LiteRT does not apply when fused
NOT_APPLIED: dict[str, str] = {
    "TANH": "LiteRT's kernels ignore a fused TANH on {op} (only the RELU family is applied)",
}
#: producers whose fused activation LiteRT (builtin kernels and XNNPACK) applies
PRODUCERS = frozenset({"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "TRANSPOSE_CONV", "ADD", "SUB",
                       "MUL", "DIV", "AVERAGE_POOL_2D", "MAX_POOL_2D"})
#: producers with the field that must not get one
REJECTS = {"CONCATENATION": "LiteRT's CONCATENATION kernel rejects a fused activation "
                            "(and XNNPACK would silently ignore it)"}
_FLOAT_TYPES = {"FLOAT32", "FLOAT16", "BFLOAT16", "FLOAT64"}


def _pinned(sg: Subgraph, t: Tensor) -> bool:
    """A graph output or a signature tensor: its identity must be kept."""
    if sg.is_graph_output(t):
        return True
    model = sg.model
    if model is not None:
        for sd in model.signature_defs:
            if sd.subgraph is sg and any(x is t for _, x in (*sd.inputs, *sd.outputs)):
                return True
    return False


def _quant_key(t: Tensor):
    q = t.quantization
    if q is None or not q.scale:
        return None
    zp = list(q.zeroPoint) if q.zeroPoint is not None else []
    return (tuple(float(s) for s in q.scale), tuple(int(z) for z in zp), int(q.quantizedDimension))


class FuseActivation(Rule):
    name = "fuse-activations"
    roots = tuple(FUSABLE) + tuple(NOT_APPLIED)

    def match(self, op: Operator, sg: Subgraph) -> Match | None:
        if len(op.inputs) != 1 or len(op.outputs) != 1 or op.inputs[0] is None or op.outputs[0] is None:
            return None
        x = op.inputs[0]
        prod = x.producer
        if prod is None or prod.subgraph is not sg:
            return None
        if prod.type not in PRODUCERS and prod.type not in REJECTS:
            return None
        if prod.options is None or not hasattr(prod.options, "fusedActivationFunction"):
            return None
        return Match(op, sg, ops={"act": op, "prod": prod}, tensors={"x": x, "y": op.outputs[0]})

    def check(self, m: Match) -> tuple[bool, str]:
        act, prod, x, y = m.ops["act"], m.ops["prod"], m.tensors["x"], m.tensors["y"]
        if prod.type in REJECTS:
            return False, REJECTS[prod.type]
        if act.type in NOT_APPLIED:
            return False, NOT_APPLIED[act.type].format(op=prod.type)
        if prod.options.fusedActivationFunction != _ACT["NONE"]:
            return False, f"{prod.type} already has a fused activation"
        if len(prod.outputs) != 1 or prod.outputs[0] is not x:
            return False, f"{prod.type} has several outputs"
        if _pinned(m.sg, x):
            return False, f"the {prod.type} result is a graph output"
        if len(x.uses) != 1:
            return False, f"the {prod.type} result is also read by {len(x.uses) - 1} other operator(s)"
        if x.dtype != y.dtype:
            return False, "the activation changes the tensor type"
        if x.shape != y.shape and x.shape is not None and y.shape is not None:
            return False, "the activation changes the tensor shape"
        if TYPE_NAMES.get(x.dtype) not in _FLOAT_TYPES:
            if _quant_key(x) is None or _quant_key(x) != _quant_key(y):
                return False, "quantized and the activation's output has other quantization parameters"
        elif _quant_key(x) is not None or _quant_key(y) is not None:
            return False, "float tensors carry quantization parameters"
        return True, ""

    def apply(self, m: Match) -> None:
        sg, act, prod, y = m.sg, m.ops["act"], m.ops["prod"], m.tensors["y"]
        options = copy.copy(prod.options)
        options.fusedActivationFunction = FUSABLE[act.type]
        prod.options = options
        if prod.type == "TRANSPOSE_CONV" and prod.opcode.version < 4:
            prod.opcode = dataclasses.replace(prod.opcode, version=4)
        sg.remove_op(act)
        sg.set_output(prod, 0, y)


@register
class FuseActivations(Pass):
    __doc__ = __doc__
    name = "fuse-activations"
    description = "Fuse RELU/RELU6/RELU_N1_TO_1 ops into the producing conv, FC, pool or elementwise op"

    def run(self, model: Model, ctx) -> bool:
        return apply_rules(model, [FuseActivation()], ctx)
