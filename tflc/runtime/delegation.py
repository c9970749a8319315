"""What a delegate really took: LiteRT's own partitioning of a model, read back node by node.

After ``allocate_tensors`` the interpreter's execution plan holds one DELEGATE node per delegated
partition; the original nodes it replaced are found from its inputs and outputs. With node fusion
disabled (``RunOptions(delegate_node_fusion=False)``) every delegated node becomes a DELEGATE
node of its own, so the decision is visible per node: this is the ground truth ``tflc partition``
is checked against.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from .interpreter import RunOptions, Session
from .isolate import run_isolated


def delegate_partitions(interp: Any, taken: list[int] | None = None) -> list[list[int]]:
    """For each DELEGATE node of the main subgraph (in node order), the original nodes it took.

    A node is found from the tensors it produces (walking back from the DELEGATE node's outputs to
    its inputs). A taken node whose outputs nobody reads outside its partition (ASSIGN_VARIABLE has
    none) is not reached that way: without node fusion such a DELEGATE node has no outputs and is
    matched by its inputs (the original node's, de-duplicated); with fusion, the nodes ``taken``
    per node but not reached join the partition that holds everything they read."""
    details = interp._get_ops_details()
    producer: dict[int, int] = {}
    for d in details:
        if d["op_name"] == "DELEGATE":
            continue
        for t in d["outputs"]:
            producer.setdefault(int(t), int(d["index"]))
    originals = [d for d in details if d["op_name"] != "DELEGATE"]
    delegates = [d for d in details if d["op_name"] == "DELEGATE"]
    parts: list[set[int]] = []
    for d in delegates:
        boundary = {int(t) for t in d["inputs"]}
        members: set[int] = set()
        stack = [int(t) for t in d["outputs"]]
        seen: set[int] = set()
        while stack:
            t = stack.pop()
            if t in seen or t in boundary or t < 0:
                continue
            seen.add(t)
            p = producer.get(t)
            if p is None or p in members:
                continue
            members.add(p)
            stack.extend(int(x) for x in details[p]["inputs"])
        parts.append(members)
    claimed = set().union(*parts) if parts else set()
    for k, d in enumerate(delegates):          # no outputs: match by the input set
        if parts[k]:
            continue
        key = sorted({int(t) for t in d["inputs"] if int(t) >= 0})
        cands = [int(o["index"]) for o in originals if int(o["index"]) not in claimed
                 and sorted({int(t) for t in o["inputs"] if int(t) >= 0}) == key]
        if cands:
            parts[k] = {cands[0]}
            claimed.add(cands[0])
    orphans = [i for i in (taken or []) if i not in claimed]
    while orphans:
        placed = False
        for i in list(orphans):
            ins = {int(t) for t in details[i]["inputs"] if int(t) >= 0}
            homes = [k for k, d in enumerate(delegates)
                     if all(t in {int(x) for x in d["inputs"]} or producer.get(t) in parts[k] for t in ins)]
            if len(homes) == 1:
                parts[homes[0]].add(i)
                orphans.remove(i)
                placed = True
        if not placed:
            break
    return [sorted(p) for p in parts]


@dataclass
class Delegation:
    """LiteRT's decision for the main subgraph: which original nodes a delegate took, and the
    partitions it built with node fusion on (as the model runs by default)."""

    nodes: int
    taken: list[int]                 # original node indices claimed by a delegate
    partitions: list[list[int]]      # with fusion: each delegate kernel's original nodes

    def to_json(self) -> dict:
        return {"nodes": self.nodes, "taken": self.taken, "partitions": self.partitions}


def _delegation_child(model: Any, threads: int, name: str) -> Delegation:
    per_node = Session(model, RunOptions(threads=threads, delegate_node_fusion=False), name=name)
    per_node.allocate()
    n = sum(1 for d in per_node.interp._get_ops_details() if d["op_name"] != "DELEGATE")
    taken = sorted(i for part in delegate_partitions(per_node.interp) for i in part)
    fused = Session(model, RunOptions(threads=threads), name=name)
    fused.allocate()
    return Delegation(n, taken, delegate_partitions(fused.interp, taken))


def xnnpack_delegation(model: str | os.PathLike | bytes, *, threads: int = 1, name: str = "") -> Delegation:
    """Which nodes of the main subgraph LiteRT's default XNNPACK delegate takes (isolated child)."""
    label = name or (str(model) if not isinstance(model, (bytes, bytearray)) else "the model")
    return run_isolated(_delegation_child, model if isinstance(model, (bytes, bytearray)) else str(model),
                        threads, label, what=f"reading LiteRT's partitioning of {label}")
