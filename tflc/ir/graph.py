"""Graph views of a Subgraph: a networkx MultiDiGraph and a topological order.

The networkx graph is bipartite: nodes ``("op", i)`` for operators (attribute ``op``) and
``("tensor", name_index)`` for tensors (attribute ``tensor``). Edges run tensor -> op (attribute
``index``: the input slot) and op -> tensor (the output slot). It is a view: ``networkx_view``
rebuilds it after a mutation (it is cached per ``Subgraph.version``); mutate through Subgraph
methods. This module builds on ``ir.core``, which never imports it.
"""
from __future__ import annotations

import heapq

import networkx as nx

from .core import Operator, Subgraph


def networkx_view(sg: Subgraph) -> nx.MultiDiGraph:
    """``sg`` as a networkx MultiDiGraph, cached until the next mutation."""
    if sg._nx_cache is None or sg._nx_cache[0] != sg.version:
        sg._nx_cache = (sg.version, build_networkx(sg))
    return sg._nx_cache[1]


def topological_sort(sg: Subgraph) -> bool:
    """Reorder ``sg``'s ops so producers come first, stable w.r.t. the current order. True if changed."""
    order = topological_order(sg)
    changed = any(a is not b for a, b in zip(order, sg.operators))
    if changed:
        sg.reorder(order)
    return changed


def build_networkx(sg: Subgraph) -> nx.MultiDiGraph:
    g = nx.MultiDiGraph(name=sg.name)
    tid = {id(t): i for i, t in enumerate(sg.tensors)}
    for i, t in enumerate(sg.tensors):
        g.add_node(("tensor", i), tensor=t, kind="tensor")
    for i, op in enumerate(sg.operators):
        node = ("op", i)
        g.add_node(node, op=op, kind="op", type=op.type)
        for slot, t in enumerate(op.inputs):
            if t is not None and id(t) in tid:
                g.add_edge(("tensor", tid[id(t)]), node, index=slot)
        for slot, t in enumerate(op.outputs):
            if t is not None and id(t) in tid:
                g.add_edge(node, ("tensor", tid[id(t)]), index=slot)
    return g


def op_graph(sg: Subgraph) -> nx.DiGraph:
    """Operators only: an edge producer -> consumer for every tensor flowing between them."""
    g = nx.DiGraph()
    ops = sg.operators
    g.add_nodes_from(range(len(ops)))
    pos = {id(op): i for i, op in enumerate(ops)}
    for i, op in enumerate(ops):
        for t in op.inputs:
            if t is not None and t.producer is not None and id(t.producer) in pos:
                g.add_edge(pos[id(t.producer)], i)
    return g


def topological_order(sg: Subgraph) -> list[Operator]:
    """Kahn's algorithm, breaking ties by current position (so a sorted graph is unchanged).

    Raises ValueError on a cycle.
    """
    ops = list(sg.operators)
    pos = {id(op): i for i, op in enumerate(ops)}
    indeg = [0] * len(ops)
    succ: list[list[int]] = [[] for _ in ops]
    for i, op in enumerate(ops):
        preds = {pos[id(t.producer)] for t in op.inputs
                 if t is not None and t.producer is not None and id(t.producer) in pos}
        preds.discard(i)
        indeg[i] = len(preds)
        for p in preds:
            succ[p].append(i)
    heap = [i for i, d in enumerate(indeg) if d == 0]
    heapq.heapify(heap)
    order: list[int] = []
    while heap:
        i = heapq.heappop(heap)
        order.append(i)
        for s in succ[i]:
            indeg[s] -= 1
            if indeg[s] == 0:
                heapq.heappush(heap, s)
    if len(order) != len(ops):
        stuck = [ops[i] for i, d in enumerate(indeg) if d > 0][:3]
        raise ValueError(f"subgraph {sg.name!r} has a cycle through {stuck}")
    return [ops[i] for i in order]
