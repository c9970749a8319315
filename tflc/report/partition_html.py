"""A picture of the graph coloured by partition: one self-contained HTML page with an SVG.

Ops are laid out in layers by their depth from the graph inputs (the longest chain of ops before
them), one row per layer, so the data flows top to bottom and a long chain scrolls down the page. Each delegated partition has a
colour; ops on the CPU are grey with a red border. Hovering an op shows its index, type and, on
the CPU, the reason. Good for graphs up to a few thousand ops.
"""
from __future__ import annotations

import html
import os
from collections import defaultdict

from ..paths import atomic_writer

_PALETTE = ["#4e79a7", "#59a14f", "#f28e2b", "#b07aa1", "#76b7b2", "#edc948", "#ff9da7", "#9c755f", "#e15759"]
_W, _H, _GX, _GY = 150, 20, 12, 14


def _layers(ops: list[dict], edges: list[tuple[int, int]]) -> dict[int, int]:
    depth = {o["index"]: 0 for o in ops}
    for a, b in sorted(edges, key=lambda e: e[1]):          # producers come first in a valid file
        depth[b] = max(depth[b], depth[a] + 1)
    return depth


def partition_svg(rep: dict, subgraph: int = 0) -> str:
    ops = [o for o in rep["ops"] if o["subgraph"] == subgraph]
    edges = [tuple(e) for e in rep.get("edges", {}).get(str(subgraph), [])]
    depth = _layers(ops, edges)
    rows: dict[int, list[int]] = defaultdict(list)
    for o in ops:
        rows[depth[o["index"]]].append(o["index"])
    pos = {}
    for y, members in rows.items():
        for x, i in enumerate(members):
            pos[i] = (10 + x * (_W + _GX), 10 + y * (_H + _GY))
    width = 20 + max((len(m) for m in rows.values()), default=1) * (_W + _GX)
    height = 20 + (max(rows) + 1 if rows else 1) * (_H + _GY)
    out = [f"<svg xmlns='http://www.w3.org/2000/svg' width='{width}' height='{height}' font-family='sans-serif' "
           "font-size='10'>"]
    for a, b in edges:
        (x1, y1), (x2, y2) = pos[a], pos[b]
        out.append(f"<line x1='{x1 + _W / 2}' y1='{y1 + _H}' x2='{x2 + _W / 2}' y2='{y2}' stroke='#bbb'/>")
    for o in ops:
        x, y = pos[o["index"]]
        part = o.get("partition")
        fill = _PALETTE[part % len(_PALETTE)] if part is not None else "#d9d9d9"
        stroke = "#c00" if not o["delegated"] else "#333"
        tip = f"#{o['index']} {o['type']}" + (f" (partition {part})" if part is not None else f": {o.get('reason', '')}")
        out.append(f"<g><title>{html.escape(tip)}</title><rect x='{x}' y='{y}' width='{_W}' height='{_H}' rx='3' "
                   f"fill='{fill}' stroke='{stroke}' stroke-width='{1 if o['delegated'] else 2}'/>"
                   f"<text x='{x + 4}' y='{y + 14}' fill='{'#fff' if part is not None else '#000'}'>"
                   f"{html.escape(str(o['index']) + ' ' + o['type'][:20])}</text></g>")
    out.append("</svg>")
    return "".join(out)


def write_partition_html(rep: dict, path: str | os.PathLike) -> None:
    s = rep["summary"]
    subgraphs = sorted({o["subgraph"] for o in rep["ops"]})
    legend = "".join(f"<span class='k' style='background:{_PALETTE[k % len(_PALETTE)]}'>partition {k}</span>"
                     for k in range(len(rep["partitions"])))
    cpu_rows = "".join(f"<tr><td>{o['subgraph']}:{o['index']}</td><td>{html.escape(o['type'])}</td>"
                       f"<td>{html.escape(o.get('reason', ''))}</td></tr>" for o in rep["ops"] if not o["delegated"])
    pictures = "".join(f"<h3>subgraph {si}</h3><div class='pic'>{partition_svg(rep, si)}</div>" for si in subgraphs)
    page = f"""<!doctype html><html><head><meta charset='utf-8'><title>tflc partition: {html.escape(rep['model'])}</title>
<style>body{{font-family:sans-serif;margin:1.5em}} .k{{color:#fff;padding:2px 6px;margin-right:4px;border-radius:3px}}
.cpu{{background:#d9d9d9;border:2px solid #c00;padding:1px 5px}} .pic{{overflow:auto;border:1px solid #ddd}}
table{{border-collapse:collapse}} td{{border-bottom:1px solid #eee;padding:2px 8px;vertical-align:top}}</style></head><body>
<h2>{html.escape(rep['model'])}: target {html.escape(rep['target'])}</h2>
<p>{html.escape(rep['runtime'])}. {s['delegated']} of {s['ops']} ops delegated in {s['partitions']} partition(s);
{s['cpu']} on the CPU; {s['boundary_tensors']} tensor(s) cross a partition boundary.</p>
<p>{legend} <span class='cpu'>on the CPU</span> (hover an op for its reason)</p>
{pictures}
<h3>Ops on the CPU</h3><table>{cpu_rows or '<tr><td>none</td></tr>'}</table>
<p style='color:#777'>rules: {html.escape(rep['source'])}</p></body></html>"""
    with atomic_writer(path, "w") as f:
        f.write(page)
