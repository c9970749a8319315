"""split-requantize: a QUANTIZE that requantizes int8 <-> uint8, which the delegate refuses, becomes a
DEQUANTIZE and a QUANTIZE from float, which it takes, where LiteRT proves that bit-identical.

XNNPACK in LiteRT 2.3.0 requantizes only int8 -> int8 and uint8 -> uint8 (with an input/output scale
ratio in [1/256, 128]). The TF converter and LiteRT's calibration quantizer write an int8 -> uint8
QUANTIZE at the outputs (and uint8 -> int8 at the inputs) of a model with a uint8 interface
(``inference_output_type=uint8``; pymicro-wakeword's hey_jarvis ends so), and that QUANTIZE runs on
the CPU after the delegate's partition. The rewrite

    y_u8 = QUANTIZE(x_i8)      into      x_f = DEQUANTIZE(x_i8); y_u8 = QUANTIZE(x_f)

keeps ``y``, its quantization and the QUANTIZE op (it now reads float). When the scales are equal (the
usual case: the interface only moves the zero point by 128) it is exact by arithmetic: x_f = (x - zp_in)
* s is within 2^-16 steps of the integer x - zp_in, so it rounds back to it, and both kernels add zp_out
and clamp. Every case is also proved in LiteRT on all 256 input values at every position of the tensor
(``passes/_exhaustive``): a requantization between different scales is applied only when the float
route rounds every value as the fixed-point kernel does. Lossless (tolerance 0).

Refused, with a note: the delegate does not take the DEQUANTIZE or the float QUANTIZE; a constant input
(fold-constants folds it); per-channel or int16 tensors; a proof that finds a difference.
"""
from __future__ import annotations

from dataclasses import dataclass

from tflc.ir.build import builtin_opcode
from tflc.ir.core import Model, Operator, Subgraph
from tflc.ir.quant import quant_params
from tflc.passes_api import Pass, register
from tflc.rewrite import Match, Rule, apply_rules

from ._exhaustive import prove
from ._islands import QTYPES, dequantize_before, float_like, is_activation


@dataclass
class SplitRequantizeOptions:
    pass


def split(sg: Subgraph, op: Operator) -> None:
    """QUANTIZE(x) -> QUANTIZE(DEQUANTIZE(x)) (the caller checked it may)."""
    sg.set_input(op, 0, dequantize_before(sg, op.inputs[0], op))


class SplitRequantize(Rule):
    name = "split-requantize"
    roots = ("QUANTIZE",)

    def __init__(self, target, ctx=None):
        self.target, self.ctx = target, ctx

    def match(self, op: Operator, sg: Subgraph) -> Match | None:
        if len(op.inputs) != 1 or len(op.outputs) != 1:
            return None
        x, y = op.inputs[0], op.outputs[0]
        if x is None or y is None or quant_params(x) is None or quant_params(y) is None:
            return None                     # QUANTIZE from float: not a requantization
        ok, why = self.target.check(op)
        if ok:
            return None
        return Match(op, sg, tensors={"x": x, "y": y}, data={"why": why})

    def check(self, m: Match) -> tuple[bool, str]:
        x, y = m.tensors["x"], m.tensors["y"]
        if x.is_constant:
            return False, "its input is a constant (fold-constants folds it)"
        if not is_activation(x) or not is_activation(y):
            return False, (f"it requantizes {x.type_name} to {y.type_name}; the float route is made for int8/uint8 "
                           "tensors quantized per tensor")
        xf = float_like(x)
        for probe in (Operator(builtin_opcode("DEQUANTIZE", QTYPES[x.dtype]), [x], [xf]),
                      Operator(m.root.opcode, [xf], [y], options=m.root.options, options_type=m.root.options_type)):
            ok, why = self.target.check(probe)
            if not ok:
                return False, f"the float route is not taken either ({why})"
        proof = prove(m.root, split, self.name)
        if not proof.ok and not proof.decided:
            return False, f"no proof that the float route is exact: {proof.reason}"
        if not proof.ok:
            return False, f"through float it is not bit-identical to the fixed-point requantization: {proof.reason}"
        return True, ""

    def apply(self, m: Match) -> None:
        split(m.sg, m.root)
        if self.ctx is not None:
            x, y = m.tensors["x"], m.tensors["y"]
            self.ctx.note(f"{self.name}: QUANTIZE '{y.name}' ({x.type_name.lower()} -> {y.type_name.lower()}) "
                          f"runs as DEQUANTIZE + QUANTIZE inside the partition, proved bit-identical on all 256 "
                          f"input values ({m.data['why']})")


@register
class SplitRequantizePass(Pass):
    name = "split-requantize"
    description = ("run a QUANTIZE that requantizes int8 <-> uint8 (refused by the delegate) as DEQUANTIZE + "
                   "QUANTIZE from float, where LiteRT proves it bit-identical")
    Options = SplitRequantizeOptions
    tolerance = 0.0

    def run(self, model: Model, ctx) -> bool:
        from tflc.targets import get_target
        target = get_target(getattr(ctx, "target", None) or "xnnpack")
        return apply_rules(model, [SplitRequantize(target, ctx)], ctx)

    @classmethod
    def covers(cls, op: Operator, target) -> bool:
        """Would this pass move ``op`` into the partition? (``tflc partition`` lists it as a rewrite.)"""
        return SplitRequantize(target).applies(op)
