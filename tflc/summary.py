"""A model summary as data (for ``tflc inspect --json``), and its text rendering."""
from __future__ import annotations

from collections import Counter, defaultdict
from typing import Any

from .ir.core import Model, Tensor


def _tensor_json(t: Tensor) -> dict[str, Any]:
    d: dict[str, Any] = {"name": t.name, "type": t.type_name,
                         "shape": list(t.shape) if t.shape is not None else None}
    if t.shape_signature is not None and list(t.shape_signature) != list(t.shape or []):
        d["shape_signature"] = list(t.shape_signature)
    q = t.quantization
    if q is not None and q.scale is not None and len(q.scale):
        d["quantization"] = {"channels": len(q.scale), "scale": float(q.scale[0]),
                             "zero_point": int(q.zeroPoint[0]) if q.zeroPoint is not None and len(q.zeroPoint) else 0,
                             "axis": int(q.quantizedDimension)}
    return d


def _shape(t: Tensor | None) -> str:
    if t is None:
        return "-"
    shape = t.shape_signature if t.shape_signature is not None else t.shape
    return f"{t.type_name}[{'x'.join(map(str, shape)) if shape is not None else '?'}]" + ("c" if t.is_constant else "")


def op_rows(model: Model) -> list[dict[str, Any]]:
    """One row per operator: subgraph, index, type, input/output types and shapes, output name."""
    return [{"subgraph": si, "index": i, "type": op.type, "version": op.opcode.version,
             "inputs": [_shape(t) for t in op.inputs], "outputs": [_shape(t) for t in op.outputs],
             "name": next((t.name for t in op.outputs if t is not None), "")}
            for si, sg in enumerate(model.subgraphs) for i, op in enumerate(sg.operators)]


def render_ops(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "(no operators)"
    w = max(len(r["type"]) for r in rows)
    return "\n".join(f"  {r['subgraph']}:{r['index']:<4} {r['type']:<{w}}  {', '.join(r['inputs'])} -> "
                     f"{', '.join(r['outputs'])}  {r['name']}" for r in rows)


def summarize(model: Model, path: str | None = None, file_size: int | None = None) -> dict[str, Any]:
    subgraphs = []
    bytes_by_type: dict[str, int] = defaultdict(int)
    seen_buffers: set[int] = set()
    custom: Counter = Counter()
    for si, sg in enumerate(model.subgraphs):
        refs = sg.referenced_tensors()
        tensors = [t for t in sg.tensors if id(t) in refs]
        for t in tensors:
            if t.buffer is not None and t.buffer.nbytes and id(t.buffer) not in seen_buffers:
                seen_buffers.add(id(t.buffer))
                bytes_by_type[t.type_name] += t.buffer.nbytes
        ops = Counter(op.type for op in sg.operators)
        for op in sg.operators:
            if op.opcode.is_custom:
                custom[op.opcode.custom_code] += 1
        subgraphs.append({
            "index": si, "name": sg.name, "operators": len(sg.operators), "tensors": len(tensors),
            "constants": sum(1 for t in tensors if t.is_constant),
            "variables": sum(1 for t in tensors if t.is_variable),
            "resource_variables": sum(1 for op in sg.operators if op.type == "VAR_HANDLE"),
            "dynamic_inputs": any(-1 in (t.shape_signature or ()) for t in sg.inputs),
            "ops_by_type": dict(ops.most_common()),
            "inputs": [_tensor_json(t) for t in sg.inputs],
            "outputs": [_tensor_json(t) for t in sg.outputs],
        })
    return {
        "path": path, "file_size": file_size, "schema_version": model.version,
        "description": model.description,
        "subgraphs": subgraphs,
        "operators": sum(s["operators"] for s in subgraphs),
        "constant_bytes": sum(bytes_by_type.values()),
        "constant_bytes_by_type": dict(sorted(bytes_by_type.items(), key=lambda kv: -kv[1])),
        "custom_ops": dict(custom),
        "operator_codes": sorted({f"{op.type} v{op.opcode.version}" for op in model.operators()}),
        "signatures": [{"key": sd.key, "subgraph": next(i for i, s in enumerate(model.subgraphs) if s is sd.subgraph),
                        "inputs": [n for n, _ in sd.inputs], "outputs": [n for n, _ in sd.outputs]}
                       for sd in model.signature_defs],
        "metadata": [{"name": n, "bytes": b.nbytes} for n, b in model.metadata],
    }


def human_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if abs(n) < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GB"


def _sig(t: dict) -> str:
    shape = t.get("shape_signature", t["shape"])
    s = f"{t['name']}  {t['type']}[{'x'.join(str(d) for d in shape) if shape is not None else '?'}]"
    if "quantization" in t:
        q = t["quantization"]
        s += f"  q(scale={q['scale']:.4g}, zp={q['zero_point']}{', per-channel' if q['channels'] > 1 else ''})"
    return s


def render_text(s: dict[str, Any]) -> str:
    lines = [f"{s['path'] or 'model'}: {human_bytes(s['file_size'] or 0)}, schema v{s['schema_version']}, "
             f"{len(s['subgraphs'])} subgraph(s), {s['operators']} operators, "
             f"{human_bytes(s['constant_bytes'])} of constants"]
    if s["description"]:
        lines.append(f"description: {s['description']}")
    for sg in s["subgraphs"]:
        name = f" {sg['name']!r}" if sg["name"] else ""
        lines.append("")
        lines.append(f"subgraph {sg['index']}{name}: {sg['operators']} ops, {sg['tensors']} tensors "
                     f"({sg['constants']} constant, {sg['variables']} variable"
                     + (f", {sg['resource_variables']} resource variable handle(s)" if sg["resource_variables"] else "")
                     + ")"
                     + ("  [dynamic input shapes]" if sg["dynamic_inputs"] else ""))
        for t in sg["inputs"]:
            lines.append(f"  input   {_sig(t)}")
        for t in sg["outputs"]:
            lines.append(f"  output  {_sig(t)}")
        if sg["ops_by_type"]:
            width = max(len(k) for k in sg["ops_by_type"])
            lines.append("  ops by type:")
            for k, v in sg["ops_by_type"].items():
                lines.append(f"    {k:<{width}}  {v:>5}")
    if s["constant_bytes_by_type"]:
        lines.append("")
        lines.append("constants by type: " + ", ".join(f"{k} {human_bytes(v)}" for k, v in s["constant_bytes_by_type"].items()))
    if s["custom_ops"]:
        lines.append("custom ops: " + ", ".join(f"{k} x{v}" for k, v in s["custom_ops"].items()))
    lines.append("signatures: " + (", ".join(f"{g['key']} (subgraph {g['subgraph']}: {', '.join(g['inputs'])} -> "
                                             f"{', '.join(g['outputs'])})" for g in s["signatures"]) or "none"))
    if s["metadata"]:
        lines.append("metadata: " + ", ".join(f"{m['name']} ({human_bytes(m['bytes'])})" for m in s["metadata"]))
    return "\n".join(lines)
