"""exact-islands: an int8 elementwise op the delegate leaves on the CPU runs in float inside its
partition, where LiteRT proves the float version bit-identical on every input.

XNNPACK in LiteRT 2.3.0 takes many elementwise ops in float32 only (RELU, RELU6, HARD_SWISH, PRELU,
ABS, ...). Such an int8 op runs on a builtin kernel and splits the delegate's partition in two. The
rewrite

    y_q = OP(x_q, c_q)                    (int8/uint8, refused by the target; c: constants)
into
    x_f = DEQUANTIZE(x_q); y_f = OP(x_f, c_f); y_q = QUANTIZE(y_f)

(``y_q`` keeps its tensor and quantization; quantized constants become float constants) is what
``float-islands`` does too, within a declared error. This pass applies it only where it changes no
output bit: the op has one input computed at run time (every other input constant), so it is a
function of (value, position), 256 values at each position of its stored shape, and the rewrite is
run against the original, each alone in LiteRT as the model runs them (the original on its builtin
kernel, the island in XNNPACK), on inputs that show every position every value (``passes/_exhaustive``).
Only a rewrite equal on all of them is applied, so the pass is lossless (tolerance 0) and runs also
under ``tflc optimize --target xnnpack --tolerance 0``, where ``float-islands`` is left out.

Measured (LiteRT 2.3.0, x86-64): all 17 int8 RELUs of face_detection_short_range quantized by LiteRT's
calibration quantizer (in and out quantized differently) are exact in float (18 partitions -> 1); of the
TF converter's MobileNetV3-Small int8, 8 of 19 HARD_SWISH; of int8 PRELU, 2 of 13 in hand_recrop and none
of iris_landmark's 53 (the fixed-point kernel rounds the slope product, or a tie, differently: one step
on some values). What differs is refused with the value where it does; ``float-islands`` may still take
it within its declared error.

Refused, with a note: the float version is not taken either; two inputs computed at run time (65,536
pairs per position: not enumerated); the activation broadcasts to another shape; a quantized constant
over ``max-const-bytes``; int16/per-channel activations; a proof that finds a difference (its input
value, position and the two results).
"""
from __future__ import annotations

from dataclasses import dataclass, field

from tflc.ir.core import Model, Operator, Subgraph
from tflc.ir.opinfo import ELEMENTWISE_BINARY, ELEMENTWISE_UNARY
from tflc.ir.quant import quant_params
from tflc.passes_api import Pass, register
from tflc.rewrite import Match, Rule, apply_rules

from ._exhaustive import activation_input, prove, refusal
from ._islands import QTYPES, float_probe, is_activation, make_island

#: elementwise ops with a float version (conversions are not islands)
ROOTS = tuple(sorted((ELEMENTWISE_UNARY | ELEMENTWISE_BINARY) - {"QUANTIZE", "DEQUANTIZE", "CAST", "LOGICAL_NOT"}))


@dataclass
class ExactIslandsOptions:
    ops: list[str] = field(default_factory=list, metadata={
        "help": "op types to consider (':'-separated; default: every elementwise op the target refuses in int8)"})
    max_const_bytes: int = field(default=1 << 16, metadata={
        "help": "largest quantized constant input turned into a float constant (bytes of float32)"})

    def __post_init__(self) -> None:
        if self.max_const_bytes < 0:
            raise ValueError("max-const-bytes must be 0 or more")


def _float_inputs(op: Operator) -> dict[int, str]:
    """The island's inputs: the activation, dequantized at run time; quantized constants, made float."""
    i = activation_input(op)
    inputs = {i: "dequantize"}
    inputs.update({j: "constant" for j, t in enumerate(op.inputs)
                   if j != i and t is not None and t.is_constant and quant_params(t) is not None})
    return inputs


def island(sg: Subgraph, op: Operator) -> None:
    """Rewrite ``op`` into DEQUANTIZE -> float op -> QUANTIZE (the caller checked it may)."""
    make_island(sg, op, _float_inputs(op), [0])


class ExactIsland(Rule):
    name = "exact-islands"
    roots = ROOTS

    def __init__(self, target, max_const_bytes: int = 1 << 16, wanted: frozenset[str] = frozenset(), ctx=None):
        self.target, self.max_const_bytes, self.wanted, self.ctx = target, max_const_bytes, wanted, ctx

    def match(self, op: Operator, sg: Subgraph) -> Match | None:
        if (self.wanted and op.type not in self.wanted) or op.opcode.is_custom or len(op.outputs) != 1:
            return None
        y = op.outputs[0]
        if not is_activation(y):
            return None                                  # not an int8 op: nothing this pass does
        ok, why = self.target.check(op)
        if ok:
            return None
        return Match(op, sg, tensors={"y": y}, data={"why": why})

    def check(self, m: Match) -> tuple[bool, str]:
        op = m.root
        why = refusal(op)
        if why:
            return False, why
        i = activation_input(op)
        x, y = op.inputs[i], m.tensors["y"]
        if not is_activation(x):
            return False, f"its input {x.name!r} is not an int8/uint8 tensor quantized per tensor"
        if x.shape != y.shape:
            return False, f"its input {list(x.shape)} broadcasts to the output {list(y.shape or ())}"
        for j, t in enumerate(op.inputs):
            if j == i or t is None or quant_params(t) is None:
                continue
            if t.dtype not in QTYPES:
                return False, f"input {j} is a {t.type_name} quantized constant; islands dequantize int8/uint8 ones"
            if (t.num_elements or 0) * 4 > self.max_const_bytes:
                return False, f"input {j} is a quantized constant of {t.num_elements} values, over max-const-bytes"
        floats = [j for j, t in enumerate(op.inputs) if j == i or (t is not None and quant_params(t) is not None)]
        ok, float_why = self.target.check(float_probe(op, floats, [0]))
        if not ok:
            return False, f"its float version is not taken either ({float_why})"
        proof = prove(op, island, self.name)
        if not proof.ok and not proof.decided:
            return False, f"no proof that it is exact in float: {proof.reason}"
        if not proof.ok:
            return False, (f"in float it is not bit-identical to the {x.type_name.lower()} kernel: {proof.reason} "
                           "(float-islands may run it in float within its declared tolerance)")
        m.data["cases"] = proof.cases
        return True, ""

    def apply(self, m: Match) -> None:
        island(m.sg, m.root)
        if self.ctx is not None:
            y = m.tensors["y"]
            self.ctx.note(f"{self.name}: {m.root.type} '{y.name}' runs in float inside the partition, proved "
                          f"bit-identical on all 256 input values at each of its {y.num_elements} positions "
                          f"({m.data['why']})")


@register
class ExactIslands(Pass):
    name = "exact-islands"
    description = ("run int8 elementwise ops the delegate leaves on the CPU in float inside its partition, where "
                   "LiteRT proves it bit-identical on every input value")
    Options = ExactIslandsOptions
    tolerance = 0.0

    def run(self, model: Model, ctx) -> bool:
        from tflc.targets import get_target
        target = get_target(getattr(ctx, "target", None) or "xnnpack")
        rule = ExactIsland(target, self.options.max_const_bytes, frozenset(self.options.ops), ctx)
        return apply_rules(model, [rule], ctx)

    @classmethod
    def covers(cls, op: Operator, target) -> bool:
        """Would this pass move ``op`` into the partition? (``tflc partition`` lists it as a rewrite.)"""
        return ExactIsland(target).applies(op)
