"""Splits of one model between XNNPACK, tflc's kernels and LiteRT's builtin kernels, each measured.

``tflc partition IN --target tflc`` answers "which of my ops could run where, and what does each
choice cost": it builds the model's variants and times each against the model as it is, paired
and interleaved in LiteRT (95% intervals), and checks each one's outputs against the original:

* ``as is``: XNNPACK takes what it takes, the rest runs on the builtin kernels;
* ``tflc kernels``: every op XNNPACK leaves out that a tflc kernel stands for runs on it
  (``use-kernels{measure=false}``; bit-identical);
* ``exact islands + tflc kernels``: first the ops whose float version LiteRT proves bit-identical run
  in float inside XNNPACK's partition (``exact-islands``), then kernels for the rest (bit-identical);
* ``float islands``: every such int8 op in float inside the partition (``float-islands``: within
  one quantization step per op, not bit-identical);
* ``chosen``: what ``tflc optimize --target xnnpack --kernels`` keeps (exact islands, then
  use-kernels deciding per op type by measurement, then float islands for what is left).

Data only; ``tflc.report.partition_text`` renders it.
"""
from __future__ import annotations

from typing import Any, Callable

SPLITS: dict[str, str] = {
    "tflc kernels": "use-kernels{measure=false}",
    "exact islands + tflc kernels": "exact-islands,use-kernels{measure=false}",
    "float islands": "float-islands",
    "chosen": "exact-islands,use-kernels,float-islands",
}


def _where(model: Any) -> dict[str, int]:
    from .targets import get_target
    from .targets.plan import make_plan
    plan = make_plan(model, get_target("xnnpack"))
    kernels = sum(1 for d in plan.ops if not d.delegated and d.type.startswith("TFLC_"))
    delegated = sum(1 for d in plan.ops if d.delegated)
    return {"xnnpack": delegated, "tflc_kernels": kernels, "builtin": len(plan.ops) - delegated - kernels,
            "partitions": len(plan.partitions)}


def measure_splits(path: str, *, threads: int = 1, max_seconds: float = 4.0,
                   on_split: Callable[[str], None] | None = None) -> list[dict]:
    """Every split of :data:`SPLITS` (and the model as is): where its ops run, its latency against
    the model as is, and whether its outputs are bit-identical (else the largest quantization steps)."""
    from .io import read_model, serialize
    from .passes_api import parse_pipeline
    from .passmanager import PassContext, run_pipeline
    from .profiler import compare_latency
    from .runtime import RunOptions, compare_models

    original = read_model(path)
    base = serialize(original)
    rows: list[dict] = [{"split": "as is", **_where(original), "ratio": 1.0, "ci": [1.0, 1.0],
                         "verdict": "(reference)", "identical": True}]
    for name, spec in SPLITS.items():
        if on_split is not None:
            on_split(name)
        m = original.clone()
        ctx = PassContext(target="xnnpack", run_options=RunOptions(threads=threads))
        changed = any(r.changed for r in run_pipeline(m, parse_pipeline(spec), ctx))
        row: dict[str, Any] = {"split": name, "passes": spec, **_where(m)}
        if not changed:
            row.update({"ratio": None, "verdict": "nothing to change", "identical": True})
            rows.append(row)
            continue
        data = serialize(m)
        cmp = compare_latency(base, data, threads=threads, max_seconds=max_seconds)
        outs, _ = compare_models(base, data, options=RunOptions(threads=threads))
        steps = [d.max_steps for d in outs.diffs if d.max_steps is not None]
        row.update({"ratio": round(cmp.ratio, 4), "ci": [round(cmp.ci_low, 4), round(cmp.ci_high, 4)],
                    "verdict": cmp.verdict, "p50_us": [round(cmp.a.p50_us, 1), round(cmp.b.p50_us, 1)],
                    "identical": outs.identical, "max_steps": max(steps) if steps else None})
        if name == "chosen":
            row["decisions"] = ctx.facts.get("use-kernels", [])
        rows.append(row)
    return rows


def op_type_choices(path: str, *, threads: int = 1, max_seconds: float = 4.0) -> list[dict]:
    """For every op type XNNPACK leaves out that a tflc kernel stands for (chains fused): the op
    alone on the builtin kernel and on the tflc kernel, and the whole model with the kernel and with
    a float island instead, each against the model as is (use-kernels' measurement, on the model as
    it is, before any other rewrite), and which of the three is fastest."""
    from .io import read_model
    from .passes_api import parse_pipeline
    from .passmanager import PassContext, run_pipeline
    from .runtime import RunOptions
    m = read_model(path)
    ctx = PassContext(target="xnnpack", run_options=RunOptions(threads=threads))
    run_pipeline(m, parse_pipeline(f"use-kernels{{islands=true,max-seconds={max_seconds:g}}}"), ctx)
    out = []
    for d in ctx.facts.get("use-kernels", []):
        # only a ratio faster beyond the noise band counts; the builtin kernel is the default
        faster = [(r["ratio"], name) for name, r in (("tflc kernel", d.get("kernel")), ("float island", d.get("island")))
                  if r and r["verdict"] == "faster"]
        out.append({**d, "fastest": min(faster)[1] if faster else "builtin (no difference beyond noise)"})
    return out

