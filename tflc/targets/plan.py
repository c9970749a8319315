"""From per-op decisions to partitions, the way LiteRT builds them.

LiteRT hands a delegate the nodes it accepts, then groups the graph into node subsets of one
kind each (delegated or not): every round gathers all ops of the round's kind whose inputs are
ready, scanning the execution order again and again, so independent ops may join a subset that
starts before them ("greedy" clustering); ops with side effects keep their relative order. Each
delegated subset becomes one delegate kernel; its non-constant inputs and outputs are the
tensors that cross a partition boundary. This module reproduces that grouping on the IR.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from ..ir.core import Model, Operator, Subgraph
from ..schema import TYPE_CODES
from . import Target

_RESOURCE = TYPE_CODES["RESOURCE"]


def _ordered(op: Operator) -> bool:
    """LiteRT keeps these ops in their order: they touch resource variables, or are control flow
    (their bodies may). Other ops may be regrouped freely along their data dependencies."""
    if op.type in ("IF", "WHILE", "CALL_ONCE"):
        return True
    return any(t is not None and t.dtype == _RESOURCE for t in (*op.inputs, *op.outputs))


@dataclass
class Subset:
    delegated: bool
    ops: list[int] = field(default_factory=list)             # op indices in execution order of the file
    inputs: list[str] = field(default_factory=list)          # non-constant tensors read from outside
    outputs: list[str] = field(default_factory=list)         # tensors read outside it, or graph outputs

    def to_json(self) -> dict:
        return {"delegated": self.delegated, "ops": self.ops, "inputs": self.inputs, "outputs": self.outputs}


def partition(sg: Subgraph, delegated: list[bool]) -> list[Subset]:
    """Node subsets of ``sg`` for the per-op decisions ``delegated`` (one per op, in order)."""
    ops = list(sg.operators)
    index = {id(op): i for i, op in enumerate(ops)}
    # an op is ready once every op producing one of its inputs is placed; effectful ops also wait
    # for the effectful op before them
    deps: list[set[int]] = []
    last_effect = -1
    for i, op in enumerate(ops):
        d = {index[id(t.producer)] for t in op.inputs if t is not None and t.producer is not None
             and id(t.producer) in index}
        if _ordered(op):
            if last_effect >= 0:
                d.add(last_effect)
            last_effect = i
        deps.append(d)
    placed = [False] * len(ops)
    subsets: list[Subset] = []
    while not all(placed):
        kind: bool | None = None
        current: list[int] = []
        progress = True
        while progress:
            progress = False
            for i in range(len(ops)):
                if placed[i] or not all(placed[j] for j in deps[i]):
                    continue
                if kind is None:
                    kind = delegated[i]
                if delegated[i] != kind:
                    continue
                placed[i] = True
                current.append(i)
                progress = True
        if not current:               # cannot happen on a verified (acyclic) graph
            raise ValueError("partition: no op is ready (the graph has a cycle)")
        subsets.append(Subset(bool(kind), sorted(current)))
    _boundaries(sg, ops, subsets)
    return subsets


def _boundaries(sg: Subgraph, ops: list[Operator], subsets: list[Subset]) -> None:
    where = {}
    for k, s in enumerate(subsets):
        for i in s.ops:
            where[id(ops[i])] = k
    for k, s in enumerate(subsets):
        ins: dict[str, None] = {}
        outs: dict[str, None] = {}
        for i in s.ops:
            op = ops[i]
            for t in op.inputs:
                if t is None or t.is_constant:
                    continue
                if t.producer is None or where.get(id(t.producer)) != k:
                    ins[t.name] = None
            for t in op.outputs:
                if t is None:
                    continue
                if sg.is_graph_output(t) or any(where.get(id(c)) != k for c in t.consumers):
                    outs[t.name] = None
        s.inputs, s.outputs = list(ins), list(outs)


@dataclass
class OpDecision:
    subgraph: int
    index: int                     # the op's index in its subgraph, as written in the file
    type: str
    delegated: bool
    reason: str = ""               # why not, when not delegated
    partition: int | None = None   # index into PartitionPlan.partitions (delegated ops only)
    #: what the user must know even though the op is taken (e.g. XNNPACK claims it, then fails to
    #: prepare the model)
    warnings: list[str] = field(default_factory=list)

    def to_json(self) -> dict:
        d = {"subgraph": self.subgraph, "index": self.index, "type": self.type, "delegated": self.delegated}
        if not self.delegated:
            d["reason"] = self.reason
        if self.partition is not None:
            d["partition"] = self.partition
        if self.warnings:
            d["warnings"] = list(self.warnings)
        return d


@dataclass
class PartitionPlan:
    """A target's partitioning of a model: every op's decision, the subsets LiteRT would build
    (per subgraph), the delegated partitions among them, and the tensors crossing their edges."""

    target: str
    runtime: str
    source: str
    ops: list[OpDecision]
    subsets: dict[int, list[Subset]]          # subgraph -> node subsets in execution order
    model_reason: str = ""                   # the whole model refused (e.g. a GPU rule on the model)

    @property
    def partitions(self) -> list[tuple[int, Subset]]:
        """The delegated subsets, as (subgraph, subset)."""
        return [(si, s) for si, subs in sorted(self.subsets.items()) for s in subs if s.delegated]

    def delegated_indices(self, subgraph: int = 0) -> list[int]:
        return [d.index for d in self.ops if d.subgraph == subgraph and d.delegated]

    def boundary_tensors(self) -> list[str]:
        """Tensors that enter or leave a delegated partition (each crossing costs a hand-over)."""
        seen: dict[str, None] = {}
        for _, s in self.partitions:
            for t in (*s.inputs, *s.outputs):
                seen[t] = None
        return list(seen)

    def summary(self) -> dict:
        n = len(self.ops)
        taken = sum(d.delegated for d in self.ops)
        return {"ops": n, "delegated": taken, "cpu": n - taken, "partitions": len(self.partitions),
                "boundary_tensors": len(self.boundary_tensors())}

    def to_json(self) -> dict:
        return {"target": self.target, "runtime": self.runtime, "source": self.source,
                "model_reason": self.model_reason, "summary": self.summary(),
                "ops": [d.to_json() for d in self.ops],
                "partitions": [{"subgraph": si, **s.to_json()} for si, s in self.partitions]}


def make_plan(model: Model, target: Target) -> PartitionPlan:
    """Ask ``target`` about every op of every subgraph, then group the ops as LiteRT would."""
    model_reason = target.model_check(model) if target.model_check is not None else ""
    ops: list[OpDecision] = []
    subsets: dict[int, list[Subset]] = {}
    for si, sg in enumerate(model.subgraphs):
        decisions = []
        for i, op in enumerate(sg.operators):
            ok, why = (False, model_reason) if model_reason else target.check(op)
            decisions.append(OpDecision(si, i, op.type, ok, "" if ok else why))
        decisions = target.finalize(sg, decisions) if target.finalize is not None else decisions
        subs = partition(sg, [d.delegated for d in decisions])
        if target.max_partitions is not None:
            _keep_largest(subs, decisions, target)
        k0 = sum(1 for subs_ in subsets.values() for s in subs_ if s.delegated)
        k = k0
        for s in subs:
            if s.delegated:
                for i in s.ops:
                    decisions[i].partition = k
                k += 1
        subsets[si] = subs
        ops.extend(decisions)
    return PartitionPlan(target.name, target.runtime, target.source, ops, subsets, model_reason)


def _keep_largest(subs: list[Subset], decisions: list[OpDecision], target: Target) -> None:
    """A delegate that keeps only ``max_partitions`` partitions keeps the largest (most ops);
    the others run on the CPU, and say why."""
    taken = sorted((s for s in subs if s.delegated), key=lambda s: -len(s.ops))
    for s in taken[target.max_partitions:]:
        s.delegated = False
        for i in s.ops:
            decisions[i].delegated = False
            decisions[i].reason = (f"its partition of {len(s.ops)} op(s) is beyond the {target.max_partitions} "
                                   f"largest that {target.title} keeps (max_delegated_partitions)")
