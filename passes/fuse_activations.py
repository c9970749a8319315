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

from tflc.ir.core import Model, Operator, Subgraph
from tflc.ir.opinfo import (APPLIES_FUSED_ACTIVATION, FUSABLE_ACTIVATIONS, FUSED_ACTIVATION_IGNORED,
                             FUSED_ACTIVATION_MIN_VERSION, FUSED_ACTIVATION_REJECTED)
from tflc.ir.quant import is_quantized, same_quantization
from tflc.passes_api import Pass, register
from tflc.rewrite import Match, Rule, apply_rules, fused_activation
from tflc.schema import TYPE_NAMES, fb

NONE = fb.ActivationFunctionType.NONE
_FLOAT_TYPES = {"FLOAT32", "FLOAT16", "BFLOAT16", "FLOAT64"}


class FuseActivation(Rule):
    name = "fuse-activations"
    roots = tuple(FUSABLE_ACTIVATIONS) + tuple(FUSED_ACTIVATION_IGNORED)

    def match(self, op: Operator, sg: Subgraph) -> Match | None:
        if len(op.inputs) != 1 or len(op.outputs) != 1 or op.inputs[0] is None or op.outputs[0] is None:
            return None
        x = op.inputs[0]
        prod = x.producer
        if prod is None or prod.subgraph is not sg:
            return None
        if prod.type not in APPLIES_FUSED_ACTIVATION and prod.type not in FUSED_ACTIVATION_REJECTED:
            return None
        if prod.options is None or not hasattr(prod.options, "fusedActivationFunction"):
            return None
        return Match(op, sg, ops={"act": op, "prod": prod}, tensors={"x": x, "y": op.outputs[0]})

    def check(self, m: Match) -> tuple[bool, str]:
        act, prod, x, y = m.ops["act"], m.ops["prod"], m.tensors["x"], m.tensors["y"]
        if prod.type in FUSED_ACTIVATION_REJECTED:
            return False, FUSED_ACTIVATION_REJECTED[prod.type]
        if act.type in FUSED_ACTIVATION_IGNORED:
            return False, FUSED_ACTIVATION_IGNORED[act.type].format(op=prod.type)
        if fused_activation(prod) != NONE:
            return False, f"{prod.type} already has a fused activation"
        if len(prod.outputs) != 1 or prod.outputs[0] is not x:
            return False, f"{prod.type} has several outputs"
        if m.sg.is_pinned(x):
            return False, f"the {prod.type} result is a graph output"
        if len(x.uses) != 1:
            return False, f"the {prod.type} result is also read by {len(x.uses) - 1} other operator(s)"
        if x.dtype != y.dtype:
            return False, "the activation changes the tensor type"
        if x.shape != y.shape and x.shape is not None and y.shape is not None:
            return False, "the activation changes the tensor shape"
        if TYPE_NAMES.get(x.dtype) not in _FLOAT_TYPES:
            if not is_quantized(x) or not same_quantization(x, y):
                return False, "quantized and the activation's output has other quantization parameters"
        elif is_quantized(x) or is_quantized(y):
            return False, "float tensors carry quantization parameters"
        return True, ""

    def apply(self, m: Match) -> None:
        sg, act, prod, y = m.sg, m.ops["act"], m.ops["prod"], m.tensors["y"]
        sg.update_options(prod, fusedActivationFunction=FUSABLE_ACTIVATIONS[act.type])
        if prod.type in FUSED_ACTIVATION_MIN_VERSION:
            sg.require_version(prod, FUSED_ACTIVATION_MIN_VERSION[prod.type])
        sg.remove_op(act, detach=True)                 # y keeps its name: the producer writes it
        sg.set_output(prod, 0, y)


@register
class FuseActivations(Pass):
    __doc__ = __doc__
    name = "fuse-activations"
    description = "Fuse RELU/RELU6/RELU_N1_TO_1 ops into the producing conv, FC, pool or elementwise op"

    def run(self, model: Model, ctx) -> bool:
        return apply_rules(model, [FuseActivation()], ctx)
