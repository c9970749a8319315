"""A canonical, index-free description of a model, for "is this the same model?" checks.

Two models are structurally identical (what ``-O0`` promises) when their canonical forms are
equal: same subgraphs, referenced tensors (name, type, shape, quantization, data), operators
(code, version, options, wiring), metadata and signatures, whatever the flatbuffer's index order,
buffer sharing or unused entries.
"""
from __future__ import annotations

import hashlib
from typing import Any

import numpy as np

from .core import Buffer, Model, Subgraph


def _obj(x: Any) -> Any:
    if x is None or isinstance(x, (bool, int, float, str, bytes)):
        return x
    if isinstance(x, np.ndarray):
        return ("array", x.dtype.str, x.shape, x.tobytes())
    if isinstance(x, (list, tuple)):
        return tuple(_obj(v) for v in x)
    if hasattr(x, "__dict__"):
        return (type(x).__name__, tuple(sorted((k, _obj(v)) for k, v in vars(x).items())))
    return repr(x)


def _digest(b: Buffer | None) -> Any:
    if b is None or b.nbytes == 0:
        return None
    return (b.nbytes, hashlib.blake2b(memoryview(b.data), digest_size=16).hexdigest())


def _subgraph(sg: Subgraph) -> dict:
    refs = sg.referenced_tensors()
    tensors = [t for t in sg.tensors if id(t) in refs]
    pos = {id(t): i for i, t in enumerate(tensors)}
    ix = lambda t: -1 if t is None else pos.get(id(t), "?")  # noqa: E731
    return {
        "name": sg.name,
        "tensors": [(t.name, t.dtype, t.shape, t.shape_signature, _obj(t.quantization), t.is_variable,
                     _obj(t.sparsity), t.has_rank, _obj(t.variant_tensors), t.external_buffer,
                     _digest(t.buffer)) for t in tensors],
        "operators": [(op.opcode.builtin_code, op.opcode.stored_code(), op.opcode.deprecated_code(),
                       op.opcode.custom_code, op.opcode.version,
                       tuple(map(ix, op.inputs)), tuple(map(ix, op.outputs)),
                       tuple(map(ix, op.intermediates)), op.options_type, _obj(op.options),
                       op.options2_type, _obj(op.options2), op.custom_options, op.custom_options_format,
                       _obj(op.mutating_variable_inputs), op.debug_metadata_index) for op in sg.operators],
        "inputs": tuple(map(ix, sg.inputs)),
        "outputs": tuple(map(ix, sg.outputs)),
    }


def canonical(model: Model) -> dict:
    sg_index = {id(sg): i for i, sg in enumerate(model.subgraphs)}
    subgraphs = [_subgraph(sg) for sg in model.subgraphs]

    def tpos(sg: Subgraph, t: Any) -> Any:
        refs = sg.referenced_tensors()
        return [x for x in sg.tensors if id(x) in refs].index(t)

    return {
        "version": model.version,
        "description": model.description,
        "subgraphs": subgraphs,
        "metadata": [(name, _digest(b)) for name, b in model.metadata],
        "metadata_buffer": None if model.metadata_buffer is None else [_digest(b) for b in model.metadata_buffer],
        "signatures": [(sd.key, sg_index[id(sd.subgraph)],
                        [(n, tpos(sd.subgraph, t)) for n, t in sd.inputs],
                        [(n, tpos(sd.subgraph, t)) for n, t in sd.outputs]) for sd in model.signature_defs],
        "external": (_obj(model.external_buffer_groups), _obj(model.external_buffers)),
    }


def diff(a: Model, b: Model, limit: int = 5) -> list[str]:
    """Human-readable differences between two models' canonical forms (empty if identical)."""
    ca, cb = canonical(a), canonical(b)
    out: list[str] = []
    for key in ca:
        if key == "subgraphs":
            if len(ca[key]) != len(cb[key]):
                out.append(f"subgraph count {len(ca[key])} != {len(cb[key])}")
                continue
            for si, (sa, sb) in enumerate(zip(ca[key], cb[key])):
                for part in sa:
                    if sa[part] == sb[part]:
                        continue
                    if isinstance(sa[part], list) and len(sa[part]) == len(sb[part]):
                        for j, (x, y) in enumerate(zip(sa[part], sb[part])):
                            if x != y:
                                out.append(f"subgraph {si} {part}[{j}] differs")
                                break
                    else:
                        out.append(f"subgraph {si} {part} differ")
        elif ca[key] != cb[key]:
            out.append(f"{key} differ")
    return out[:limit]
