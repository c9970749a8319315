"""tflc partition: which ops a delegate takes, why the rest stays on the CPU, and what would help."""
from __future__ import annotations

import argparse

from .common import add_json_flag, print_json


def add_parser(sub) -> argparse.ArgumentParser:
    from ..targets import target_names
    names = target_names()
    p = sub.add_parser(
        "partition", help="which ops a delegate (XNNPACK, GPU, NNAPI, Ethos-U) takes, and why not the rest",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Predict how a delegate partitions IN: the partitions it takes (their ops and share of the "
        "measured latency), every op left on the CPU with the precise reason, the tensors crossing "
        "partition boundaries, and the rewrites that would raise coverage. The targets' rules are data "
        "kept in the package (tflc.targets), each recording the runtime version and source it describes; "
        "'--rules' prints them. For xnnpack, --check compares the prediction with the nodes LiteRT's own "
        "XNNPACK delegate claims (node fusion disabled, so its decision is visible per node).",
        epilog="targets:\n" + "\n".join(f"  {n}" for n in names))
    p.add_argument("model", metavar="IN", nargs="?", help="the .tflite model")
    p.add_argument("--target", default="xnnpack", choices=names, help="the delegate (default xnnpack)")
    p.add_argument("--check", action="store_true",
                   help="also ask LiteRT which nodes its XNNPACK delegate takes, and compare (exit 1 if they differ)")
    p.add_argument("--no-profile", dest="profile", action="store_false",
                   help="do not measure the model (no latency shares; faster)")
    p.add_argument("--html", metavar="OUT.html", help="write a picture of the graph coloured by partition")
    p.add_argument("--rules", action="store_true", help="print the target's rules (op: condition) and exit")
    p.add_argument("-v", "--verbose", action="store_true", help="list every op left on the CPU")
    add_json_flag(p)
    return p


def run(args: argparse.Namespace) -> int:
    from ..errors import UsageError
    from ..targets import get_target
    target = get_target(args.target)
    if args.rules:
        rules = target.describe()
        if args.json:
            print_json({"target": target.name, "runtime": target.runtime, "source": target.source, "rules": rules})
        else:
            print(f"{target.title} ({target.runtime}); source: {target.source}")
            for op, text in rules.items():
                print(f"  {op}: {text}")
        return 0
    if not args.model:
        raise UsageError("give a model: tflc partition IN --target NAME")
    if args.check and target.name != "xnnpack":
        raise UsageError(f"--check compares with LiteRT's XNNPACK delegate; for --target {target.name} there is "
                         "no runtime here to ask")
    if args.html:
        from ..paths import check_output_path
        check_output_path(args.html, not_same_as=[args.model])
    rep = build_report(args.model, target, profile=args.profile, check=args.check)
    if args.html:
        from ..report.partition_html import write_partition_html
        write_partition_html(rep, args.html)
        rep["html"] = args.html
    if args.json:
        print_json(rep)
    else:
        from ..report.partition_text import partition_blocks
        from ..report.render import print_blocks
        print_blocks(partition_blocks(rep, verbose=args.verbose))
        if args.html:
            print(f"wrote {args.html}")
    chk = rep.get("check")
    return 1 if chk is not None and not chk["agrees"] else 0


def build_report(path: str, target, *, profile: bool, check: bool) -> dict:
    """The report as data: the plan, latency shares, LiteRT's own decision, suggested rewrites."""
    from ..analyses.partition import latency_shares
    from ..optimize import load
    from ..targets.plan import make_plan
    model = load(path)
    plan = make_plan(model, target)
    rep = {"model": path, **plan.to_json()}
    rep["edges"] = {str(si): _edges(sg) for si, sg in enumerate(model.subgraphs)}
    rep["warnings"] = [f"{d['subgraph']}:{d['index']} {d['type']}: {w}" for d in rep["ops"] for w in d.get("warnings", [])]
    rep["rewrites"] = _rewrites(plan, model, target)
    if profile:
        from ..analyses.partition import cost_model
        from ..profiler import get_profile
        from ..profiler.boundary import boundary_cost
        prof = get_profile(path, views=("xnnpack", "builtin"), runs=20, max_seconds=5.0)
        rep["latency"] = latency_shares(plan, prof)
        if target.name == "xnnpack":            # the views measure XNNPACK; other delegates are not at hand
            rep["cost"] = cost_model(plan, prof, boundary_cost()["per_boundary_us"])
    if target.name == "tflc":
        rep["kernels"] = _kernel_coverage(model, rep["ops"])
        if profile:
            from ..splits import measure_splits, op_type_choices
            rep["op_types"] = op_type_choices(path)
            rep["splits"] = measure_splits(path)
    if check:
        from ..runtime.delegation import xnnpack_delegation
        real = xnnpack_delegation(path)
        predicted = set(plan.delegated_indices(0))
        actual = set(real.taken)
        pred_parts = sorted(sorted(s.ops) for si, s in plan.partitions if si == 0)
        rep["check"] = {"agrees": predicted == actual and pred_parts == sorted(real.partitions),
                        "nodes": real.nodes, "taken": len(actual), "partitions": len(real.partitions),
                        "predicted_partitions": len(pred_parts),
                        "predicted_only": sorted(predicted - actual), "actual_only": sorted(actual - predicted)}
    return rep


def _kernel_coverage(model, ops: list[dict]) -> dict:
    """For --target tflc: which tflc kernel would run each op XNNPACK leaves out (``kernel`` on
    the op's JSON), or why none does (``kernel_reason``)."""
    from ..passes.use_kernels import match
    counts: dict[str, int] = {}
    for d in ops:
        if d["delegated"]:
            continue
        code, why = match(model.subgraphs[d["subgraph"]].operators[d["index"]])
        if code is None:
            d["kernel_reason"] = why
        else:
            d["kernel"] = code
            counts[code] = counts.get(code, 0) + 1
    return {"ops": sum(counts.values()), "by_kernel": counts}


def _edges(sg) -> list[list[int]]:
    """(producer, consumer) op index pairs of one subgraph: the data flow the picture draws."""
    index = {id(op): i for i, op in enumerate(sg.operators)}
    out = set()
    for i, op in enumerate(sg.operators):
        for t in op.inputs:
            if t is not None and t.producer is not None and id(t.producer) in index:
                out.add((index[id(t.producer)], i))
    return [list(e) for e in sorted(out)]


def _rewrites(plan, model, target) -> list[str]:
    """What tflc can do about the ops left on the CPU (the coverage passes say what they fix)."""
    from ..passes_api import all_passes
    out = []
    for name, cls in all_passes().items():
        covers = getattr(cls, "covers", None)
        if covers is None:
            continue
        hits = [d for d in plan.ops if not d.delegated
                and covers(model.subgraphs[d.subgraph].operators[d.index], target)]
        if hits:
            out.append(f"{name}: {cls.description} ({len(hits)} op(s) here; tflc optimize --passes {name} "
                       f"or --target {plan.target})")
    return out
