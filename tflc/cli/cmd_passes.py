"""tflc passes: the registered passes, their options and the pipelines that run them."""
from __future__ import annotations

import argparse

from ..passes_api import all_passes, describe_options, origin
from ..passmanager import LEVELS, TARGET_PASSES
from .common import add_json_flag, print_json


def add_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser("passes", help="list the passes (built-in and plug-in) and what -O1/-O2 run",
                       description="List every registered pass: its name (use it in --passes), description, "
                       "options (set as NAME{key=value,...}; lists are ':'-separated), and tags: the levels that run "
                       "it, what it needs, the output error it may cost, and the package it comes from (plug-in "
                       "passes come from installed packages' 'tflc.passes' entry points).")
    add_json_flag(p)
    return p


def _value(v: object) -> str:
    """A default as it is written on the command line."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (list, tuple)):
        return ":".join(map(str, v)) or "''"
    return "''" if v == "" else str(v)


def run(args: argparse.Namespace) -> int:
    passes = all_passes()
    levels = {name: [lvl.name for lvl in LEVELS.values() if name in lvl.passes] for name in passes}
    rows = [{"name": n, "description": c.description, "options": describe_options(c),
             "needs": sorted(c.needs), "preserves": sorted(c.preserves), "tolerance": c.tolerance,
             "quant_steps": c.quant_steps,
             "in": levels[n], "origin": origin(n)}
            for n, c in passes.items()]
    pipelines = {lvl.name: list(lvl.passes) for lvl in LEVELS.values()}
    guard = {lvl.name: lvl.latency_guard for lvl in LEVELS.values()}
    if args.json:
        print_json({"passes": rows, "pipelines": pipelines, "latency_guard": guard, "target_passes": list(TARGET_PASSES)})
        return 0
    width = max((len(r["name"]) for r in rows), default=10)
    for r in rows:
        tags = [f"in {'/'.join('-' + lvl for lvl in r['in'])}"] if r["in"] else []
        if r["needs"]:
            tags.append("needs " + ", ".join(r["needs"]))
        if r["tolerance"] or r["quant_steps"]:
            tags.append("lossy: up to " + " or ".join(
                ([f"{r['tolerance']:.3g} relative"] if r["tolerance"] else [])
                + ([f"{r['quant_steps']} quantization step(s)"] if r["quant_steps"] else [])))
        if r["origin"] != "builtin":
            tags.append(f"from {r['origin']}")
        print(f"  {r['name']:<{width}}  {r['description']}" + (f"  [{'; '.join(tags)}]" if tags else ""))
        for o in r["options"]:
            print(f"  {'':<{width}}    {o['name']}={o['type']} (default {_value(o['default'])})"
                  f"{': ' + o['help'] if o['help'] else ''}")
    print()
    for lvl, names in pipelines.items():
        print(f"  -{lvl}: {', '.join(names) or '(no passes: a lossless rewrite)'}"
              + ("; then the latency guard" if guard[lvl] else ""))
    print(f"  --target NAME adds, before remove-dead-code: {', '.join(TARGET_PASSES)}")
    return 0
