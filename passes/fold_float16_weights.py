"""fold-float16-weights: turn ``DEQUANTIZE(float16 constant)`` into a float32 constant.

Converters that store weights as float16 (TF's ``supported_types=[tf.float16]``, MediaPipe)
put a DEQUANTIZE op in front of every such constant; LiteRT runs it once, at preparation.
This pass does that conversion ahead of time: the float16 constant becomes a float32 constant
with the same values (float16 -> float32 is exact), consumers read it directly, and the
DEQUANTIZE goes away (its opcode leaves the table when no other DEQUANTIZE remains). The file
grows (weights double in size) but other passes (fold-affine...) can now see the weights, and the
graph has fewer ops. ``store-float16-weights`` is the inverse.

Safe (bit-identical): LiteRT and XNNPACK compute with the dequantized float32 values either way.
Only when the DEQUANTIZE input is a dense float16 constant, its output is float32 and not a
graph output. The float16 tensor is converted in place (it keeps its name and position) when
only DEQUANTIZE ops read it; otherwise a new float32 constant is created.
"""
from __future__ import annotations

import numpy as np

from tflc.ir.core import Model, Operator, Subgraph
from tflc.ir.quant import is_quantized
from tflc.passes_api import Pass, register
from tflc.rewrite import Match, Rule, apply_rules
from tflc.schema import TYPE_CODES

F16, F32 = TYPE_CODES["FLOAT16"], TYPE_CODES["FLOAT32"]


def _foldable(sg: Subgraph, op: Operator) -> bool:
    return (op.type == "DEQUANTIZE" and len(op.inputs) == 1 and len(op.outputs) == 1
            and op.outputs[0] is not None and op.outputs[0].dtype == F32 and not sg.is_pinned(op.outputs[0]))


#: ctx.facts key: {uid of the float32 tensor: DEQUANTIZE version} of the weights this pass
#: unpacked, so that ``restore-float16-weights`` can store the unchanged ones as float16 again.
#: Keyed by uid (not id()): the -O2 latency guard replays the passes on clones of the model.
FACT = "float16_weights"


class FoldFloat16Dequantize(Rule):
    name = "fold-float16-weights"
    roots = ("DEQUANTIZE",)

    def __init__(self, record: dict[int, int] | None = None):
        self.record = record if record is not None else {}

    def match(self, op: Operator, sg: Subgraph) -> Match | None:
        if len(op.inputs) != 1 or len(op.outputs) != 1:
            return None
        c, out = op.inputs[0], op.outputs[0]
        if c is None or out is None or c.dtype != F16 or not c.is_constant:
            return None
        return Match(op, sg, tensors={"c": c, "out": out})

    def check(self, m: Match) -> tuple[bool, str]:
        c, out = m.tensors["c"], m.tensors["out"]
        if out.dtype != F32:
            return False, "the DEQUANTIZE output is not float32"
        if m.sg.is_pinned(out):
            return False, "the DEQUANTIZE output is a graph output"
        if c.sparsity is not None:
            return False, "the float16 constant is sparse"
        if c.expected_nbytes() is None or c.nbytes != c.expected_nbytes():
            return False, "the float16 constant's buffer does not match its shape"
        if is_quantized(c):
            return False, "the float16 constant carries quantization parameters"
        return True, ""

    def apply(self, m: Match) -> None:
        sg, c = m.sg, m.tensors["c"]
        values = np.asarray(c.data, dtype=np.float16).astype(np.float32)
        readers = c.consumers
        if all(_foldable(sg, r) for r in readers):
            # every reader is a DEQUANTIZE: convert the constant itself, fold all of them
            version = m.root.opcode.version
            sg.set_constant(c, values.reshape(c.shape) if c.shape is not None else values, F32)
            self.record[c.uid] = version
            for deq in readers:
                out = deq.outputs[0]
                sg.replace_all_uses(out, c)
                sg.remove_op(deq)
            return
        deq, out = m.root, m.tensors["out"]
        new = sg.new_constant(out.name, values, F32, shape_signature=c.shape_signature)
        self.record[new.uid] = deq.opcode.version
        sg.replace_all_uses(out, new)
        sg.remove_op(deq)


@register
class FoldFloat16Weights(Pass):
    __doc__ = __doc__
    name = "fold-float16-weights"
    description = "Replace DEQUANTIZE of float16 constants by float32 constants (exact)"

    def run(self, model: Model, ctx) -> bool:
        record = ctx.facts.setdefault(FACT, {}) if ctx is not None else {}
        return apply_rules(model, [FoldFloat16Dequantize(record)], ctx)
