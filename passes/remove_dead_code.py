"""remove-dead-code: delete operators whose results nobody uses, then unused tensors.

Safe because an operator is removed only when none of its outputs is read by another operator
or is a graph output, and it has no side effects (variables, control flow, custom ops, randomness
are kept: see ``tflc.ir.opinfo``). Iterates to a fixed point, so chains of dead ops go at once.
"""
from __future__ import annotations

from tflc.ir.core import Model, Subgraph
from tflc.ir.opinfo import has_side_effects
from tflc.passes_api import Pass, register


def _dead(sg: Subgraph, op) -> bool:
    if has_side_effects(op):
        return False
    return all(t is None or (not t.uses and not sg.is_graph_output(t)) for t in op.outputs)


@register
class RemoveDeadCode(Pass):
    name = "remove-dead-code"
    description = "Remove operators whose outputs are never used, and unused tensors"

    def run(self, model: Model, ctx) -> bool:
        changed = False
        for sg in model.subgraphs:
            for op in reversed(sg.operators):  # consumers first: one sweep removes whole chains
                if _dead(sg, op):
                    sg.remove_op(op)
                    changed = True
            sg.remove_unused_tensors()  # bookkeeping only: the writer drops them anyway
        return changed
