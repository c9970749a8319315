"""Declared rewrites: pattern -> check -> replacement.

A ``Rule`` anchors on operators of some types (``roots``). ``match`` looks at the structure
around the anchor and returns a ``Match`` (or None: not this pattern). ``check`` decides whether
the rewrite is safe and returns ``(ok, reason)``; a refusal with a reason is reported to the user
(``tflc optimize`` prints it as a note), so say *why* in words (an empty reason: a silent skip). ``apply`` performs the rewrite through
the Subgraph's methods. ``RulePass`` runs a list of rules to a fixed point.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Iterable

from .ir.build import builtin_opcode  # noqa: F401  (re-exported: passes build ops with it)
from .ir.core import Model, Operator, Subgraph, Tensor
from .ir.quant import is_quantized
from .passes_api import Pass
from .schema import TYPE_CODES


@dataclass
class Match:
    root: Operator
    sg: Subgraph
    ops: dict[str, Operator] = field(default_factory=dict)
    tensors: dict[str, Tensor] = field(default_factory=dict)
    data: dict[str, Any] = field(default_factory=dict)


class Rule:
    name: ClassVar[str] = ""
    roots: ClassVar[tuple[str, ...]] = ()

    def match(self, op: Operator, sg: Subgraph) -> "Match | list[Match] | None":
        """The pattern at ``op``: None, one Match, or several candidates (tried in order)."""
        raise NotImplementedError

    def check(self, m: Match) -> tuple[bool, str]:
        return True, ""

    def apply(self, m: Match) -> None:
        raise NotImplementedError

    def applies(self, op: Operator) -> bool:
        """Would this rule rewrite ``op`` as it stands (a match that passes the check)? For a pass's
        ``covers`` (``tflc partition`` lists the rewrites that would apply)."""
        if op.subgraph is None or (self.roots and op.type not in self.roots):
            return False
        return any(self.check(m)[0] for m in _matches(self.match(op, op.subgraph)))


class RulePass(Pass):
    """A pass made of rules, applied until nothing matches (bounded by ``max_rounds``)."""

    rules: ClassVar[list[Rule]] = []
    max_rounds: ClassVar[int] = 50

    def run(self, model: Model, ctx) -> bool:
        return apply_rules(model, self.rules, ctx, self.max_rounds)


def apply_rules(model: Model, rules: Iterable[Rule], ctx, max_rounds: int = 50) -> bool:
    rules = list(rules)
    changed = False
    refused: set[tuple[str, int]] = set()
    for sg in model.subgraphs:
        for _ in range(max_rounds):
            progress = False
            for op in sg.operators:
                if op.subgraph is not sg:       # removed by an earlier rewrite this round
                    continue
                for rule in rules:
                    if rule.roots and op.type not in rule.roots:
                        continue
                    applied = False
                    for m in _matches(rule.match(op, sg)):
                        ok, reason = rule.check(m)
                        if not ok:
                            key = (rule.name, id(op), reason)
                            if reason and key not in refused and ctx is not None:
                                refused.add(key)
                                ctx.note(f"{rule.name}: kept {op.type} '{op.output_name}': {reason}")
                            continue
                        rule.apply(m)
                        applied = True
                        break
                    if applied:
                        changed = progress = True
                        break
            if not progress:
                break
    return changed


def _matches(found: "Match | Iterable[Match] | None") -> list[Match]:
    if found is None:
        return []
    return [found] if isinstance(found, Match) else list(found)



def sole_consumer(t: Tensor, sg: Subgraph) -> Operator | None:
    """The only op reading ``t`` (once), if ``t`` is not also a graph output."""
    uses = t.uses
    if len(uses) != 1 or sg.is_graph_output(t):
        return None
    return uses[0][0]


def fused_activation(op: Operator) -> int:
    """The op's ``fusedActivationFunction`` (0, NONE, for ops without one)."""
    return getattr(op.options, "fusedActivationFunction", 0) if op.options is not None else 0


def plain_float32(t: Tensor | None) -> bool:
    """A float32 tensor without quantization parameters."""
    return t is not None and t.dtype == TYPE_CODES["FLOAT32"] and not is_quantized(t)
