"""The ``partition`` analysis: how a delegate target splits the model (``tflc.targets``).

The target is the context's ``target`` (default ``xnnpack``). The value is a
``tflc.targets.plan.PartitionPlan``: every op's decision with its reason, the node subsets LiteRT
would build, the delegated partitions and the tensors crossing their edges.
:func:`latency_shares` adds what each partition and each CPU op costs, from the ``profile``.
"""
from __future__ import annotations

from typing import Any

from . import analysis


@analysis("partition", "the delegate target's partitioning of the model (ops, reasons, partitions)")
def partition(model: Any, ctx: Any) -> Any:
    from ..targets import get_target
    from ..targets.plan import make_plan
    return make_plan(model, get_target(getattr(ctx, "target", None) or "xnnpack"))


def latency_shares(plan: Any, profile: Any) -> dict:
    """Measured time of each delegated partition and each CPU op of the main subgraph, from the
    profile's XNNPACK view (the model as LiteRT runs it by default), against its measured latency.

    The per-op times are the profiler's (XNNPACK operators mapped back to the ops they came from);
    a partition's time is the sum over its ops, so its share is of the per-op total, which the
    profiler checks against the measured latency (``View.check``)."""
    view = profile.views.get("xnnpack") or next(iter(profile.views.values()))
    by_index = {op.index: op.avg_us for op in view.ops if op.subgraph == 0}
    total = sum(by_index.values())
    parts = []
    for k, (si, s) in enumerate(plan.partitions):
        if si != 0:
            continue
        us = sum(by_index.get(i, 0.0) for i in s.ops)
        parts.append({"partition": k, "us": us})
    cpu = [{"index": d.index, "us": by_index.get(d.index, 0.0)} for d in plan.ops
           if d.subgraph == 0 and not d.delegated]
    return {"view": view.name, "per_op_total_us": total, "measured_us": view.measured_us,
            "partitions": parts, "cpu_ops": cpu}


def cost_model(plan: Any, profile: Any, per_boundary_us: float) -> dict:
    """Is each delegated partition worth its boundaries? Calibrated by the profile and by the
    measured cost of one boundary on this machine (``tflc.profiler.boundary``).

    A partition saves what its ops cost on the builtin kernels (the profile's builtin view) less
    what they cost delegated (its XNNPACK view), and costs one boundary; it is "not worth it" where
    the saving does not cover the boundary. The whole model: the two views' measured latencies
    (builtin kernels only, and XNNPACK as LiteRT runs it by default) say whether delegating pays."""
    views = profile.views
    if "builtin" not in views or "xnnpack" not in views:
        return {}
    builtin = {op.index: op.avg_us for op in views["builtin"].ops if op.subgraph == 0}
    xnn = {op.index: op.avg_us for op in views["xnnpack"].ops if op.subgraph == 0}
    parts = []
    for k, (si, s) in enumerate(plan.partitions):
        if si != 0:
            continue
        b = sum(builtin.get(i, 0.0) for i in s.ops)
        x = sum(xnn.get(i, 0.0) for i in s.ops)
        saving = b - x - per_boundary_us
        parts.append({"partition": k, "builtin_us": b, "delegated_us": x, "boundary_us": per_boundary_us,
                      "saving_us": saving, "worth_it": saving > 0})
    b_lat, x_lat = views["builtin"].measured_us, views["xnnpack"].measured_us
    whole = None
    if b_lat and x_lat:
        whole = {"builtin_us": b_lat, "delegated_us": x_lat, "worth_it": x_lat < b_lat}
    return {"per_boundary_us": per_boundary_us, "partitions": parts, "model": whole}
