"""The verifier: the IR's invariants, checked after reading and after every pass.

Each problem names the subgraph, the operator (index and type) and the tensor involved, so a
failure after a pass points at what the pass broke.
"""
from __future__ import annotations

from typing import Any

from ..errors import VerificationError
from ..schema import OP_NAMES, TYPE_NAMES
from .core import Model, Operator, Subgraph, Tensor


def subgraph_refs(options: Any) -> list[tuple[str, int]]:
    """(field, index) of every subgraph an operator's options refer to (WHILE, IF, CALL_ONCE...)."""
    if options is None:
        return []
    return [(k, int(v)) for k, v in vars(options).items()
            if isinstance(v, int) and (k.endswith("SubgraphIndex") or k == "subgraph")]


def _op_desc(sg_i: int, i: int, op: Operator) -> str:
    return f"subgraph {sg_i} op #{i} {op.type}"


def _t(t: Tensor) -> str:
    return f"tensor {t.name!r}"


def check(model: Model) -> list[str]:
    """Every invariant violation of ``model``, as readable strings (empty if valid)."""
    problems: list[str] = []
    for si, sg in enumerate(model.subgraphs):
        problems += _check_subgraph(model, si, sg)
    for sd in model.signature_defs:
        if not any(s is sd.subgraph for s in model.subgraphs):
            problems.append(f"signature {sd.key!r}: its subgraph is not in the model")
            continue
        members = {id(t) for t in sd.subgraph.tensors}
        for name, t in (*sd.inputs, *sd.outputs):
            if id(t) not in members:
                problems.append(f"signature {sd.key!r} entry {name!r}: {_t(t)} is not in its subgraph")
    return problems


def _check_subgraph(model: Model, si: int, sg: Subgraph) -> list[str]:
    out: list[str] = []
    members = {id(t) for t in sg.tensors}
    graph_inputs = {id(t) for t in sg.inputs}
    produced_at: dict[int, int] = {}
    for t in (*sg.inputs, *sg.outputs):
        if id(t) not in members:
            out.append(f"subgraph {si}: graph input/output {_t(t)} is not one of its tensors")
    for i, op in enumerate(sg.operators):
        d = _op_desc(si, i, op)
        if op.subgraph is not sg:
            out.append(f"{d}: op.subgraph does not point back to its subgraph")
        if op.opcode.builtin_code not in OP_NAMES:
            out.append(f"{d}: unknown builtin operator code {op.opcode.builtin_code}")
        elif op.opcode.is_custom and not op.opcode.custom_code:
            out.append(f"{d}: CUSTOM operator without a custom code")
        for k, t in enumerate(op.outputs):
            if t is None:
                continue
            if id(t) not in members:
                out.append(f"{d}: output {k} {_t(t)} is not in the subgraph")
            if id(t) in produced_at:
                out.append(f"{d}: output {k} {_t(t)} is already produced by op #{produced_at[id(t)]}")
            produced_at[id(t)] = i
            if t.producer is not op:
                out.append(f"{d}: output {k} {_t(t)}: producer link is stale")
            if id(t) in graph_inputs:
                out.append(f"{d}: output {k} {_t(t)} is a graph input")
            if t.is_constant:
                out.append(f"{d}: output {k} {_t(t)} has constant data")
        for field, ref in subgraph_refs(op.options) + subgraph_refs(op.options2):
            if not 0 <= ref < len(model.subgraphs):
                out.append(f"{d}: option {field} refers to subgraph {ref} of {len(model.subgraphs)}")
    for i, op in enumerate(sg.operators):
        d = _op_desc(si, i, op)
        for k, t in enumerate(op.inputs):
            if t is None:
                continue
            if id(t) not in members:
                out.append(f"{d}: input {k} {_t(t)} is not in the subgraph")
                continue
            if not any(o is op and j == k for o, j in t._uses):
                out.append(f"{d}: input {k} {_t(t)}: use list is stale")
            p = produced_at.get(id(t))
            if p is not None and p >= i:
                out.append(f"{d}: input {k} {_t(t)} is produced later, by op #{p} (not in topological order)")
            elif p is None and not _has_value_without_producer(t, graph_inputs):
                out.append(f"{d}: input {k} {_t(t)} has no value: no op produces it and it is not a constant, "
                           "a graph input or a variable (was its producer removed?)")
        for t in op.intermediates:
            if id(t) not in members:
                out.append(f"{d}: intermediate {_t(t)} is not in the subgraph")
    for t in sg.tensors:
        out += [f"subgraph {si} {_t(t)}: {msg}" for msg in _check_tensor(t)]
    return out


def _has_value_without_producer(t: Tensor, graph_inputs: set[int]) -> bool:
    """A tensor an op may read although no op writes it. (Resource tensors of variables are
    written by VAR_HANDLE ops, so they are not listed here.)"""
    return (t.is_constant or id(t) in graph_inputs or t.is_variable
            or t.external_buffer != 0               # constant data kept outside the file's buffers
            or t.num_elements == 0)                 # an empty tensor: there is no value to miss


def _check_tensor(t: Tensor) -> list[str]:
    out = []
    if t.dtype not in TYPE_NAMES:
        out.append(f"unknown tensor type {t.dtype}")
        return out
    if t.shape is not None and any(d < 0 for d in t.shape):
        out.append(f"negative dimension in shape {list(t.shape)}")
        return out
    if t.shape_signature is not None and t.shape is not None and len(t.shape_signature) != len(t.shape):
        out.append(f"shape_signature {list(t.shape_signature)} has another rank than shape {list(t.shape)}")
    if t.buffer is not None and t.buffer.nbytes:
        want = t.expected_nbytes()
        if want is not None and t.buffer.nbytes != want:
            out.append(f"buffer holds {t.buffer.nbytes} bytes, {t.type_name}{list(t.shape or [])} needs {want}")
    q = t.quantization
    if q is not None and q.scale is not None and len(q.scale) > 1:
        zp = q.zeroPoint
        if zp is not None and len(zp) not in (0, len(q.scale)):
            out.append(f"{len(q.scale)} quantization scales but {len(zp)} zero points")
        qd = int(q.quantizedDimension)
        if t.shape is not None and (qd >= len(t.shape) or t.shape[qd] != len(q.scale)):
            out.append(f"{len(q.scale)} per-channel scales do not match dimension {qd} of shape {list(t.shape)}")
    return out


def verify(model: Model, after: str | None = None) -> None:
    """Raise VerificationError naming the first problems (and the pass, if ``after`` is given)."""
    problems = check(model)
    if problems:
        where = f"after pass '{after}': " if after else ""
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise VerificationError(f"verifier: {where}{problems[0]}{more}", problems)
