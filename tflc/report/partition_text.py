"""``tflc partition`` as text: the partitions, the ops left on the CPU and why, and what to do.

Built from the report's data (``tflc.cli.cmd_partition`` assembles it; ``--json`` prints it as is),
so the text says nothing the JSON does not hold.
"""
from __future__ import annotations

import re
from collections import Counter, defaultdict
from typing import Any, Sequence

_NUMBER = re.compile(r"(?<![\w.])-?\d+(?:\.\d+)?(?:e-?\d+)?(?![\w.])")


def _reason_key(reason: str) -> str:
    """The reason with its numbers taken out: "zero point -3" and "zero point -6" group together."""
    return _NUMBER.sub("#", reason)

from .text import Table, fmt_us


def _types(ops: Sequence[dict]) -> str:
    c = Counter(o["type"] for o in ops)
    return ", ".join(f"{n}x {t}" if n > 1 else t for t, n in c.most_common(4)) + (" ..." if len(c) > 4 else "")


def _pct(us: float | None, total: float | None) -> str:
    if us is None or not total:
        return "-"
    return f"{fmt_us(us)} ({100 * us / total:.1f}%)"


def partition_blocks(rep: dict, *, verbose: bool = False) -> list[Table | str]:
    s = rep["summary"]
    blocks: list[Table | str] = []
    head = (f"{rep['model']}: target {rep['target']} ({rep['runtime']})\n"
            f"  {s['delegated']} of {s['ops']} ops delegated in {s['partitions']} partition(s); {s['cpu']} op(s) "
            f"on the CPU; {s['boundary_tensors']} tensor(s) cross a partition boundary")
    if rep.get("model_reason"):
        head += f"\n  the whole model stays on the CPU: {rep['model_reason']}"
    blocks.append(head)
    lat = rep.get("latency")
    total = lat["per_op_total_us"] if lat else None
    ops = rep["ops"]
    by_part: dict[int, list[dict]] = defaultdict(list)
    for o in ops:
        if o.get("partition") is not None:
            by_part[o["partition"]].append(o)
    part_us = {p["partition"]: p["us"] for p in (lat or {}).get("partitions", [])}
    if rep["partitions"]:
        t = Table("Partitions the delegate takes", ["#", "subgraph", "ops", "first-last", "op types",
                                                   "time (share)" if lat else "time",
                                                   "in/out tensors"])
        for k, p in enumerate(rep["partitions"]):
            members = by_part.get(k, [])
            t.rows.append([str(k), str(p["subgraph"]), str(len(p["ops"])), f"{p['ops'][0]}-{p['ops'][-1]}",
                           _types(members), _pct(part_us.get(k), total) if lat else "-",
                           f"{len(p['inputs'])}/{len(p['outputs'])}"])
        blocks.append(t)
    cpu = [o for o in ops if not o["delegated"]]
    if cpu:
        cpu_us = {c["index"]: c["us"] for c in (lat or {}).get("cpu_ops", [])}
        groups: dict[str, list[dict]] = defaultdict(list)
        for o in cpu:
            groups[_reason_key(o["reason"])].append(o)
        t = Table("Ops left on the CPU, by reason", ["ops", "reason", "time (share)" if lat else "ops (index)"])
        for _, members in sorted(groups.items(), key=lambda kv: -sum(cpu_us.get(o["index"], 0) for o in kv[1])
                                 if lat else -len(kv[1])):
            reason = members[0]["reason"]
            if any(o["reason"] != reason for o in members):
                reason += " (values vary; -v lists each)"
            where = (_pct(sum(cpu_us.get(o["index"], 0.0) for o in members if o["subgraph"] == 0), total) if lat
                     else ", ".join(f"{o['subgraph']}:{o['index']}" for o in members[:6])
                     + (" ..." if len(members) > 6 else ""))
            t.rows.append([_types(members), reason, where])
        t.align = "llr"
        blocks.append(t)
        if verbose:
            v = Table("Every op on the CPU", ["subgraph:index", "type", "reason"])
            v.align = "lll"
            v.rows = [[f"{o['subgraph']}:{o['index']}", o["type"], o["reason"]] for o in cpu]
            blocks.append(v)
    if rep.get("warnings"):
        blocks.append("warnings:\n" + "\n".join(f"  {w}" for w in rep["warnings"]))
    if rep.get("kernels") is not None:
        k = rep["kernels"]
        by = ", ".join(f"{n} on {c}" for c, n in sorted(k["by_kernel"].items())) or "none"
        blocks.append(f"tflc kernels: {k['ops']} of the {s['cpu']} op(s) on the CPU have a tflc kernel ({by}); "
                      "-v lists why the others have none")
        if verbose:
            for o in cpu:
                if o.get("kernel_reason"):
                    blocks.append(f"  {o['subgraph']}:{o['index']} {o['type']}: no tflc kernel ({o['kernel_reason']})")
    if rep.get("op_types"):
        t = Table("Per op type XNNPACK leaves out: builtin kernel, tflc kernel or float island "
                  "(whole-model latency against the model as is)",
                  ["ops", "tflc kernel", "alone: builtin -> kernel", "with the kernel [95%]", "with islands [95%]",
                   "fastest"])
        for d in rep["op_types"]:
            pattern, _, code = d["pattern"].partition(" => ")

            def cell(r):
                return "-" if not r else f"{r['ratio']:.3f}x [{r['ci'][0]:.3f}-{r['ci'][1]:.3f}]"
            alone = (f"{fmt_us(d['builtin_us'])} -> {fmt_us(d['kernel_us'])}" if d.get("kernel_us") else "-")
            t.rows.append([f"{len(d['ops'])}x {pattern}", code, alone, cell(d.get("kernel")), cell(d.get("island")),
                           d["fastest"]])
        blocks.append(t)
    if rep.get("splits"):
        t = Table("Splits tried (latency against the model as is, paired in LiteRT)",
                  ["split", "XNNPACK ops", "tflc kernels", "builtin ops", "partitions", "latency x [95%]",
                   "reading", "outputs"])
        for r in rep["splits"]:
            cell = "1" if r["split"] == "as is" else ("-" if r.get("ratio") is None else
                                                    f"{r['ratio']:.3f}x [{r['ci'][0]:.3f}-{r['ci'][1]:.3f}]")
            outs = "identical" if r.get("identical") else (f"up to {r['max_steps']} step(s)"
                                                           if r.get("max_steps") is not None else "differ")
            t.rows.append([r["split"], str(r["xnnpack"]), str(r["tflc_kernels"]), str(r["builtin"]),
                           str(r["partitions"]), cell, r["verdict"], outs])
        blocks.append(t)
        for r in rep["splits"]:
            for d in r.get("decisions", []):
                parts = [f"kernel {d['kernel']['ratio']:.3f}x" if d.get("kernel") else "",
                         f"float island {d['island']['ratio']:.3f}x" if d.get("island") else "",
                         f"alone {d['builtin_us']:.1f} -> {d['kernel_us']:.1f} us" if d.get("builtin_us") else ""]
                blocks.append(f"  chosen: {d['pattern']} on {len(d['ops'])} op(s): "
                              + ", ".join(p for p in parts if p) + f" -> {d['chosen']}")
    if rep.get("rewrites"):
        blocks.append("rewrites that would raise coverage:\n" + "\n".join(f"  - {r}" for r in rep["rewrites"]))
    chk = rep.get("check")
    if chk is not None:
        if chk["agrees"]:
            blocks.append(f"checked against LiteRT: the same {chk['taken']} of {chk['nodes']} nodes delegated, "
                          f"{chk['partitions']} partition(s)")
        else:
            blocks.append("checked against LiteRT: DIFFERS: predicted but not taken "
                          f"{chk['predicted_only'] or '-'}; taken but not predicted {chk['actual_only'] or '-'}"
                          f"; partitions predicted {chk['predicted_partitions']}, actual {chk['partitions']}")
    cost = rep.get("cost")
    if cost:
        losers = [p for p in cost["partitions"] if not p["worth_it"]]
        lines = [f"cost model (one boundary measured at {fmt_us(cost['per_boundary_us'])} on this machine):"]
        for p in losers:
            lines.append(f"  partition {p['partition']} is not worth delegating: its ops take {fmt_us(p['builtin_us'])} "
                         f"on the builtin kernels and {fmt_us(p['delegated_us'])} delegated, less than its boundary saves")
        if not losers and cost["partitions"]:
            lines.append(f"  every partition saves more than its boundary costs")
        m = cost.get("model")
        if m:
            lines.append(f"  the whole model: {fmt_us(m['builtin_us'])} on the builtin kernels, {fmt_us(m['delegated_us'])} "
                         "with the delegate: " + ("delegating pays" if m["worth_it"] else
                                                   "delegating does not pay for this model"))
        blocks.append("\n".join(lines))
    if lat:
        blocks.append(f"times: the profiler's XNNPACK view; shares of the per-op total {fmt_us(total)} "
                      f"(measured latency {fmt_us(lat['measured_us'])})")
    return blocks
