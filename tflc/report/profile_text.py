"""A profile as text and tables: the summary and check lines of each view, the top ops, op types."""
from __future__ import annotations

from typing import Any

from ..profiler.profile import (CHECK_OFF, CHECK_OK, CHECK_UNDECIDABLE, KEEP_FRACTION, SUM_TOLERANCE, Profile, View,
                                op_event_halfwidth)
from .text import Table, fmt_bytes, fmt_us, share

VIEW_TITLES = {"xnnpack": "LiteRT with XNNPACK (the default)", "builtin": "builtin kernels (no XNNPACK)"}
METHOD_TITLES = {"litert-profiler": "LiteRT's profiler", "op-alone": "each op timed alone as a one-op model",
                 "unavailable": "not measured"}


def _io(o: Any, width: int = 60) -> str:
    ins = [x for x in o.inputs if not x.startswith("const ") and x != "-"]
    s = f"{', '.join(ins) or '-'} -> {', '.join(o.outputs)}"
    return s if len(s) <= width else s[: width - 1] + "…"


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def check_text(view: View) -> str:
    """The sum check of one view, in words: ok, FAILED, not checkable (why), or nothing to check."""
    m = view.measured_us
    c = view.check()
    tol = f"±{100 * SUM_TOLERANCE:.0f}%"
    if c is None:
        return "no whole-model measurement to check against: not checkable"
    which = calibration_text(view)
    if c == CHECK_OK:
        return f"{which} within {tol}: ok"
    raw = view.checked_ratio * m        # round by round where the runs came in rounds
    op_w = op_event_halfwidth(view.op_events, view.kept)
    low, high = raw - op_w, raw + view.xnnpack_events + op_w
    res = []
    if view.xnnpack_events:
        res.append(f"{view.xnnpack_events} XNNPACK events, each read up to 1 µs low")
    if view.op_events:
        res.append(f"{view.op_events} op events of µs timestamps, ±{op_w:.1f} µs on the mean over {view.kept} runs")
    if c == CHECK_OFF:
        off = abs(view.checked_ratio - 1.0)
        why = ("" if view.check_is_strong else
               f", even at the far end of the events' 1 µs resolution ({'; '.join(res)})")
        rounds = " round by round" if _paired(view) else ""
        return f"{which} NOT within {tol}: FAILED (off by {100 * off:.0f}%{rounds}{why})"
    assert c == CHECK_UNDECIDABLE
    return (f"{which} not checkable: the events' 1 µs resolution ({'; '.join(res)}) puts the true total anywhere in "
            f"{fmt_us(max(0.0, low))}..{fmt_us(high)}, wider than {tol} of {fmt_us(m)}")


def _paired(view: View) -> bool:
    """Whether the check's ratio is the per-round one (else the ratio of the two medians)."""
    return (view.calibrated_paired_ratio if view.checked_sum == "calibrated" else view.paired_ratio) is not None


def calibration_text(view: View) -> str:
    """Which total the check judges, and how the correction was measured."""
    cal = view.calibration or {}
    if view.checked_sum != "calibrated":
        return "on the raw sum:"
    n = f"{cal['n_short']} vs {cal['n_long']}" if cal.get("n_short") and cal.get("n_long") else "N"
    how = (f"op events less {cal.get('per_event_us', 0.0):.3f} µs each, the profiler's own cost measured on this "
           f"machine (LiteRT {cal.get('litert_version') or '?'}) by timing a chain of {n} 1-element ADDs with and "
           "without the profiler")
    if view.name == "builtin" and cal.get("invoke_us"):
        how += (f"; plus {cal['invoke_us']:.2f} µs per run, the interpreter's fixed cost per invoke outside "
                "any op (the intercept of the same measurement)")
    return f"on the calibrated sum ({how}):"


def _method_line(view: View) -> str:
    title = VIEW_TITLES.get(view.name, view.name)
    line = f"{title}. Measured with {METHOD_TITLES.get(view.method, view.method)}"
    req = view.requested or {}
    if view.method == "litert-profiler" and view.runs:
        line += (f": {view.runs} profiled runs" + (f" of the {req['runs']} asked for" if req.get("runs") and
                                                  req["runs"] != view.runs else "")
                 + f"; per-op times are means over the fastest {view.kept} (the slowest "
                 f"{100 * (1 - KEEP_FRACTION):.0f}% by total are dropped as machine noise)")
    elif view.method == "op-alone" and view.runs:
        line += f": {view.runs} runs per op"
    return line


def _per_round(ratio: float | None, view: View, judged: bool) -> str:
    """The median of the per-round ratios, in words that do not read as "X = P% of Y": it relates
    the two sides round by round, not the two medians printed beside it."""
    if ratio is None:
        return ""
    rounds = (view.measured or {}).get("rounds", 0)
    why = ", what the check judges" if judged else ""
    return f"; round by round (the median of the {rounds} rounds' ratios{why}): {_pct(ratio)}"


def summary_lines(profile: Profile, view: View) -> list[str]:
    """The view's method, the measured latency, the per-op totals against it, and the check.

    Every "X = P% of Y" line computes P from the X and Y it prints (``text.share``); the check
    judges the per-round ratio where the runs came in rounds, and that is printed as such."""
    m = view.measured
    lines = [_method_line(view)]
    what = "raw per-op events: " + ("per run (median) " if view.method == "litert-profiler"
                                    else "(sum of the ops timed alone) ")
    if m:
        how = (f"median of {m['runs']} runs of the stock interpreter with no profiler, "
               f"in {m.get('rounds', 1)} round(s) of {m.get('warmup', 0)} warm-up runs then timed runs"
               + (", alternating with the profiled rounds" if view.method == "litert-profiler" else "")
               + "; as tflc bench measures")
        mu = m["median_us"]
        lines.append(f"  measured whole model: {fmt_us(mu)} ({how})")
        calibrated = view.checked_sum == "calibrated"
        raw = f"  {what}{share(view.raw_sum_us, mu)} measured{_per_round(view.paired_ratio, view, not calibrated)}"
        if view.calibrated_sum_us is not None and view.calibrated_ratio is not None:
            lines.append(raw)
            lines.append(f"  calibrated per-op events: per run (median) {share(view.calibrated_sum_us, mu)} measured"
                         f"{_per_round(view.calibrated_paired_ratio, view, True)}; check: {check_text(view)}")
        else:
            lines.append(f"{raw}; check: {check_text(view)}")
    else:
        lines.append(f"  {what}{fmt_us(view.raw_sum_us)}; check: {check_text(view)}")
    if view.method == "litert-profiler" and view.ops:
        res = []
        if view.xnnpack_events:
            res.append(f"XNNPACK truncates each of its {view.xnnpack_events} events to whole µs (an op under "
                       "1 µs reads 0)")
        if view.op_events:
            res.append(f"{view.op_events} op events, differences of µs timestamps")
        if view.calibrated_sum_us is not None:
            lines.append(f"  per-op times: means over the kept runs, each op less the calibrated "
                         f"{view.calibration['per_event_us']:.3f} µs per op event (never below 0; XNNPACK's own "
                         f"events as read), "
                         f"not padded to the measured latency: sum {fmt_us(view.sum_us)}"
                         + (f"; {'; '.join(res)}" if res else ""))
        else:
            lines.append(f"  per-op times: the events as read, means over the kept runs, not corrected or padded "
                         f"to the measured latency: sum {fmt_us(view.sum_us)}" + (f"; {'; '.join(res)}" if res else ""))
    if view.profiled_invoke_us:
        lines.append(f"  LiteRT's Invoke event in the profiled runs: {fmt_us(view.profiled_invoke_us)} (median; the "
                     "profiler's own cost included)")
    for n in view.notes:
        lines.append(f"  note: {n}")
    return lines


def runtime_table(view: View, n: int = 10) -> Table | None:
    rows = view.runtime_rows()
    if not rows or not view.partitions:
        return None
    t = Table("As LiteRT runs it (a delegated partition is one line)",
              ["what", "ops", "avg", "min", "max", "%", "ops inside (hottest first)"], align="lrrrrrl")
    for r in rows[:n]:
        inner = ", ".join(r["inner"][:8]) + (" …" if len(r["inner"]) > 8 else "")
        t.rows.append([r["what"], str(r["ops"]), fmt_us(r["avg_us"]), fmt_us(r["min_us"]), fmt_us(r["max_us"]),
                       f"{r['percent']:.1f}", inner])
    t.caption = _pct_caption(view)
    return t


def _pct_caption(view: View) -> str:
    """What the "%" columns are a share of: the per-op times shown, which add up to it."""
    return (f"%: share of the per-op sum, {fmt_us(view.sum_us)} (the per-op times of this view add up to it; "
            "it is not the measured latency)")


def top_table(view: View, n: int = 10) -> Table:
    t = Table(f"Top {min(n, len(view.ops))} ops ({view.name})",
              ["#", "op", "where", "inputs -> outputs", "avg", "min", "max", "%", "cum %"], align="rllllrrrrr")
    for k, o in enumerate(view.top(n), 1):
        where = o.where + (f" [{', '.join(sorted(set(x.split(' (')[0] for x in o.xnn_ops)))}]" if o.xnn_ops else "")
        if o.note and o.where == "alone":
            where += f" ({o.note})"
        t.rows.append([str(k), f"{o.type}#{o.index}" if o.subgraph == 0 else f"{o.type}#{o.key}", where, _io(o),
                       fmt_us(o.avg_us), fmt_us(o.min_us), fmt_us(o.max_us), f"{o.percent:.1f}",
                       f"{o.cum_percent:.1f}"])
    t.caption = _pct_caption(view)
    return t


def type_table(view: View, n: int = 12) -> Table:
    t = Table(f"By op type ({view.name})", ["type", "count", "total", "avg per op", "%", "cum %"])
    for a in view.by_type()[:n]:
        t.rows.append([a["type"], str(a["count"]), fmt_us(a["total_us"]), fmt_us(a["avg_us"]), f"{a['percent']:.1f}",
                       f"{a['cum_percent']:.1f}"])
    t.caption = _pct_caption(view)
    return t


def _cache_text(profile: Profile) -> str:
    if not profile.cached:
        return ""
    runs = sorted({v.runs for v in profile.views.values() if v.runs})
    return (f", from cache: measured {profile.created}"
            + (f" ({'/'.join(str(r) for r in runs)} runs per view)" if runs else "") + "; --no-cache measures again")


def profile_blocks(profile: Profile, top: int = 10) -> list[Table | str]:
    blocks: list[Table | str] = [
        f"{profile.model}  ({fmt_bytes(profile.size_bytes)}, sha256 {profile.sha256[:12]}, {profile.threads} thread(s), "
        f"ai-edge-litert {profile.litert_version}{_cache_text(profile)})"]
    blocks += [f"note: {n}" for n in profile.notes]
    for view in profile.views.values():
        blocks.append("")
        blocks += summary_lines(profile, view)
        if not view.ops:
            continue
        rt = runtime_table(view)
        if rt is not None:
            blocks.append(rt)
        blocks.append(top_table(view, top))
        blocks.append(type_table(view))
    return blocks

