"""Rendering profiles and benchmarks: terminal tables (rich when installed, plain text otherwise),
Markdown and self-contained HTML reports with matplotlib plots."""
from __future__ import annotations

import base64
import html
import io
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from ..errors import UsageError
from ..summary import human_bytes
from ..profiler.profile import op_event_halfwidth, CHECK_OFF, CHECK_OK, CHECK_UNDECIDABLE, KEEP_FRACTION, SUM_TOLERANCE, Profile, View

VIEW_TITLES = {"xnnpack": "LiteRT with XNNPACK (the default)", "builtin": "builtin kernels (no XNNPACK)"}
METHOD_TITLES = {"litert-profiler": "LiteRT's profiler", "op-alone": "each op timed alone as a one-op model",
                 "unavailable": "not measured"}


def fmt_us(us: float | None) -> str:
    if us is None:
        return "-"
    if us != us:
        return "nan"
    if abs(us) >= 1e6:
        return f"{us / 1e6:.3g} s"
    if abs(us) >= 1000:
        return f"{us / 1000:.3g} ms"
    if abs(us) >= 10:
        return f"{us:.0f} µs"
    return f"{us:.1f} µs"


def fmt_bytes(n: int | None) -> str:
    """Sizes as everywhere in tflc (``tflc.summary.human_bytes``: KB = 1024 bytes)."""
    return "-" if n is None else human_bytes(n)


def fmt_ratio(r: float | None) -> str:
    return "-" if r is None else f"{r:.2f}x"


# --------------------------------------------------------------------------- tables

@dataclass
class Table:
    title: str
    columns: list[str]
    rows: list[list[str]] = field(default_factory=list)
    align: str = ""          # per column "l"/"r"; default: first column left, others right
    caption: str = ""

    def _al(self, i: int) -> str:
        return self.align[i] if i < len(self.align) else ("l" if i == 0 else "r")

    def plain(self) -> str:
        w = [max([len(c)] + [len(r[i]) for r in self.rows]) for i, c in enumerate(self.columns)]

        def line(cells: Sequence[str]) -> str:
            return "  ".join(c.ljust(w[i]) if self._al(i) == "l" else c.rjust(w[i]) for i, c in enumerate(cells))
        out = [self.title, "  " + line(self.columns), "  " + "  ".join("-" * x for x in w)]
        out += ["  " + line(r) for r in self.rows]
        if self.caption:
            out.append("  " + self.caption)
        return "\n".join(out)

    def markdown(self) -> str:
        def esc(s: str) -> str:
            return s.replace("|", "\\|")
        out = [f"**{self.title}**", "", "| " + " | ".join(esc(c) for c in self.columns) + " |",
               "|" + "|".join(" --- " if self._al(i) == "l" else " ---: " for i in range(len(self.columns))) + "|"]
        out += ["| " + " | ".join(esc(c) for c in r) + " |" for r in self.rows]
        if self.caption:
            out += ["", f"*{self.caption}*"]
        return "\n".join(out)

    def html(self) -> str:
        head = "".join(f"<th>{html.escape(c)}</th>" for c in self.columns)
        body = "".join("<tr>" + "".join(
            f"<td class='{'l' if self._al(i) == 'l' else 'r'}'>{html.escape(c)}</td>" for i, c in enumerate(r)) + "</tr>"
            for r in self.rows)
        cap = f"<p class='cap'>{html.escape(self.caption)}</p>" if self.caption else ""
        return f"<h4>{html.escape(self.title)}</h4><table><tr>{head}</tr>{body}</table>{cap}"

    def rich(self) -> Any:
        from rich.table import Table as RTable
        t = RTable(title=self.title, title_justify="left", caption=self.caption or None, caption_justify="left")
        for i, c in enumerate(self.columns):
            t.add_column(c, justify="left" if self._al(i) == "l" else "right", overflow="fold")
        for r in self.rows:
            t.add_row(*r)
        return t


def _rich_console(stream: Any = None) -> Any:
    if os.environ.get("TFLC_PLAIN") == "1":
        return None
    try:
        from rich.console import Console
    except ImportError:
        return None
    stream = stream or sys.stdout
    if not stream.isatty():
        return None
    return Console(file=stream)


def print_blocks(blocks: Sequence[Table | str], stream: Any = None) -> None:
    """Tables and text lines to the terminal: rich tables when possible, plain text otherwise."""
    stream = stream or sys.stdout
    con = _rich_console(stream)
    for b in blocks:
        if isinstance(b, Table):
            if con is not None:
                con.print(b.rich())
            else:
                stream.write(b.plain() + "\n")
        else:
            if con is not None:
                con.print(b, highlight=False, markup=False)
            else:
                stream.write(b + "\n")


class Progress:
    """A progress bar on stderr (rich) when it is a terminal; silent otherwise."""

    def __init__(self, total: int | None, label: str, enabled: bool = True):
        self._p = None
        self._task = None
        if not enabled or os.environ.get("TFLC_PLAIN") == "1" or not sys.stderr.isatty():
            return
        try:
            from rich.progress import BarColumn, Progress as RProgress, TextColumn, TimeElapsedColumn
        except ImportError:
            return
        from rich.console import Console
        self._p = RProgress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                            TimeElapsedColumn(), console=Console(file=sys.stderr), transient=True)
        self._task = self._p.add_task(label, total=total)

    def __enter__(self) -> "Progress":
        if self._p is not None:
            self._p.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._p is not None:
            self._p.__exit__(*exc)

    def step(self, label: str | None = None, advance: int = 1) -> None:
        if self._p is not None:
            self._p.update(self._task, advance=advance, description=label or None)


# --------------------------------------------------------------------------- profile tables

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
        return f"{which} NOT within {tol}: FAILED (off by {100 * off:.0f}%{why})"
    assert c == CHECK_UNDECIDABLE
    return (f"{which} not checkable: the events' 1 µs resolution ({'; '.join(res)}) puts the true total anywhere in "
            f"{fmt_us(max(0.0, low))}..{fmt_us(high)}, wider than {tol} of {fmt_us(m)}")


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


def summary_lines(profile: Profile, view: View) -> list[str]:
    m = view.measured
    lines = [_method_line(view)]
    what = ("raw per-op events: " + (f"{fmt_us(view.raw_sum_us)} per run (median)" if view.method ==
                                     "litert-profiler" else f"{fmt_us(view.raw_sum_us)} (sum of the ops timed alone)"))
    if m:
        how = (f"median of {m['runs']} runs of the stock interpreter with no profiler, "
               f"in {m.get('rounds', 1)} round(s) of {m.get('warmup', 0)} warm-up runs then timed runs"
               + (", alternating with the profiled rounds" if view.method == "litert-profiler" else "")
               + "; as tflc bench measures")
        lines.append(f"  measured whole model: {fmt_us(m['median_us'])} ({how})")
        paired = " (the median of the per-round ratios)" if view.paired_ratio is not None else ""
        if view.calibrated_ratio is not None:
            cpaired = " (per round)" if view.calibrated_paired_ratio is not None else ""
            lines.append(f"  {what} = {_pct(view.raw_ratio)} of measured{paired}")
            lines.append(f"  calibrated per-op events: {fmt_us(view.calibrated_sum_us)} per run (median) = "
                         f"{_pct(view.calibrated_ratio)} of measured{cpaired}; check: {check_text(view)}")
        else:
            lines.append(f"  {what} = {_pct(view.raw_ratio)} of measured{paired}; check: {check_text(view)}")
    else:
        lines.append(f"  {what}; check: {check_text(view)}")
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
    return t


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
    return t


def type_table(view: View, n: int = 12) -> Table:
    t = Table(f"By op type ({view.name})", ["type", "count", "total", "avg per op", "%", "cum %"])
    for a in view.by_type()[:n]:
        t.rows.append([a["type"], str(a["count"]), fmt_us(a["total_us"]), fmt_us(a["avg_us"]), f"{a['percent']:.1f}",
                       f"{a['cum_percent']:.1f}"])
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


# --------------------------------------------------------------------------- bench tables

def accuracy_text(acc: dict | None) -> str:
    if acc is None:
        return "-"
    if acc.get("comparable") is False:
        return f"not comparable ({acc.get('reason', 'different inputs or outputs')})"
    if acc.get("identical"):
        return "identical"
    return f"{acc['max_rel']:.3g} rel ({acc['max_abs']:.3g} abs)"


def recommendation_text(rec: dict | None) -> str:
    if not rec:
        return ""
    if rec.get("threads") is None:
        return f"no recommendation: {rec['reason']}"
    return f"recommended: {rec['reason']}" + (f". Note: {rec['warning']}" if rec.get("warning") else "")


def bench_blocks(result: Any) -> list[Table | str]:
    blocks: list[Table | str] = []
    ratios = result.ratios()          # by position: two models may share a file name
    made = sorted({m.latency.runs for m in result.models if m.latency})
    if not made or made == [result.runs]:
        runs = f"{result.runs} runs"
    else:
        runs = f"{made[0] if len(made) == 1 else f'{made[0]}..{made[-1]}'} of the {result.runs} runs asked for"
    t = Table(f"Latency (XNNPACK, {result.threads[0]} thread(s), {runs}, in {result.rounds} round(s) of "
              f"{result.warmup} warm-up runs then timed runs)",
              ["model", "size", "x", "p50", "x", "p90", "p99", "mean ± std", "peak memory", "x", "max error vs first"])
    for k, m in enumerate(result.models):
        lat, r = m.latency, ratios[k]
        acc = "(reference)" if k == 0 and len(result.models) > 1 else accuracy_text(m.accuracy)
        t.rows.append([m.name, fmt_bytes(m.size_bytes), fmt_ratio(r.get("size")),
                       fmt_us(lat.p50_us if lat else None), fmt_ratio(r.get("p50")), fmt_us(lat.p90_us if lat else None),
                       fmt_us(lat.p99_us if lat else None),
                       f"{fmt_us(lat.mean_us)} ± {fmt_us(lat.std_us)}" if lat else "-",
                       fmt_bytes(m.peak_memory_bytes), fmt_ratio(r.get("memory")), acc])
    if len(result.models) > 1:
        t.caption = f"x: against the first model, {result.models[0].name}"
    blocks.append(t)
    if len(result.threads) > 1 or result.contention:
        for m in result.models:
            base = m.threads[0].isolated.p50_us if m.threads else None
            base_l = m.threads[0].loaded.p90_us if m.threads and m.threads[0].loaded else None
            cols = ["threads", "p50 alone", "speed-up", "cv"]
            if result.contention:
                cols += ["p50 under load", "p90 under load", "speed-up (p90)", "cv", "p90 load/alone"]
            tt = Table(f"Threads: {m.name}" + (f" (load: {result.contention} busy process(es) on "
                                               f"{result.cpu_count} cores)" if result.contention else ""), cols)
            for p in m.threads:
                row = [str(p.threads), fmt_us(p.isolated.p50_us), fmt_ratio(base / p.isolated.p50_us if base else None),
                       f"{p.isolated.cv:.2f}"]
                if result.contention and p.loaded:
                    row += [fmt_us(p.loaded.p50_us), fmt_us(p.loaded.p90_us),
                            fmt_ratio(base_l / p.loaded.p90_us if base_l else None), f"{p.loaded.cv:.2f}",
                            fmt_ratio(p.loaded.p90_us / p.isolated.p90_us)]
                tt.rows.append(row)
            tt.caption = recommendation_text(m.recommendation)
            blocks.append(tt)
    if any(len(m.configs) > 1 for m in result.models):
        tflc = any("tflc" in m.configs for m in result.models)      # only where a model holds tflc kernels
        cols = ["model", "XNNPACK p50", "builtin p50", "builtin / XNNPACK"]
        if tflc:
            cols += ["tflc delegate p50", "tflc / XNNPACK"]
        ct = Table(f"Kernels ({result.threads[0]} thread(s))", cols)
        for m in result.models:
            x, b, tf = m.configs.get("xnnpack"), m.configs.get("builtin"), m.configs.get("tflc")
            row = [m.name, fmt_us(x.p50_us if x else None), fmt_us(b.p50_us if b else None),
                   fmt_ratio(b.p50_us / x.p50_us if b and x else None)]
            if tflc:
                row += [fmt_us(tf.p50_us if tf else None), fmt_ratio(tf.p50_us / x.p50_us if tf and x else None)]
            ct.rows.append(row)
        blocks.append(ct)
    for m in result.models:
        for n in m.notes:
            blocks.append(f"note ({m.name}): {n}")
    for n in getattr(result, "notes", []):
        blocks.append(f"note: {n}")
    return blocks


# --------------------------------------------------------------------------- plots

def _plt() -> Any:
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise UsageError("reports with plots need matplotlib: pip install 'tflc[report]'") from None
    return plt


def _png(fig: Any) -> bytes:
    """The figure as a small PNG: 90 dpi, and a 64-colour palette where Pillow is there (plots
    have few colours; this makes the files 3-4x smaller)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    _plt().close(fig)
    data = buf.getvalue()
    try:
        from PIL import Image
    except ImportError:
        return data
    img = Image.open(io.BytesIO(data)).convert("RGB").quantize(colors=64, method=Image.Quantize.MEDIANCUT)
    out = io.BytesIO()
    img.save(out, format="PNG", optimize=True)
    return out.getvalue() if out.tell() < len(data) else data


def _unit(max_us: float) -> tuple[float, str]:
    return (1000.0, "ms") if max_us >= 1000 else (1.0, "µs")


def plot_top_ops(view: View, n: int = 15) -> bytes:
    plt = _plt()
    ops = view.top(n)[::-1]
    sc, un = _unit(max((o.max_us for o in ops), default=0.0))
    fig, ax = plt.subplots(figsize=(8, 0.32 * len(ops) + 1.2))
    labels = [f"{o.type}#{o.index}" for o in ops]
    vals = [o.avg_us / sc for o in ops]
    err = [[(o.avg_us - o.min_us) / sc for o in ops], [(o.max_us - o.avg_us) / sc for o in ops]]
    colors = ["#4c72b0" if o.where.startswith("XNNPACK") else "#dd8452" for o in ops]
    ax.barh(labels, vals, xerr=err, color=colors, ecolor="#888", capsize=2)
    for y, o in enumerate(ops):
        ax.text(o.max_us / sc, y, f" {o.percent:.1f}%", va="center", fontsize=8)
    ax.set_xlabel(f"{un} per invocation (bar: mean, whiskers: min..max)")
    ax.set_title(f"Top {len(ops)} ops: {VIEW_TITLES.get(view.name, view.name)}", fontsize=10)
    ax.margins(x=0.15)
    return _png(fig)


def plot_types(view: View, n: int = 10) -> bytes:
    plt = _plt()
    rows = view.by_type()
    head, rest = rows[:n], rows[n:]
    labels = [a["type"] for a in head] + (["other"] if rest else [])
    sc, un = _unit(max((a["total_us"] for a in rows), default=0.0))
    vals = [a["total_us"] / sc for a in head] + ([sum(a["total_us"] for a in rest) / sc] if rest else [])
    counts = [a["count"] for a in head] + ([sum(a["count"] for a in rest)] if rest else [])
    fig, ax = plt.subplots(figsize=(8, 0.32 * len(labels) + 1.2))
    ax.barh(labels[::-1], vals[::-1], color="#55a868")
    total = sum(vals) or 1.0
    for y, (v, c) in enumerate(zip(vals[::-1], counts[::-1])):
        ax.text(v, y, f" {100 * v / total:.1f}% ({c} ops)", va="center", fontsize=8)
    ax.set_xlabel(f"{un} per invocation")
    ax.set_title(f"Time by op type: {VIEW_TITLES.get(view.name, view.name)}", fontsize=10)
    ax.margins(x=0.2)
    return _png(fig)


def plot_distribution(series: dict[str, Sequence[float]], title: str) -> bytes:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(8, 0.5 * len(series) + 1.6))
    names = list(series)[::-1]
    sc, un = _unit(max((max(v) for v in series.values() if len(v)), default=0.0))
    data = [[x / sc for x in series[k]] for k in names]
    try:
        ax.boxplot(data, orientation="horizontal", showfliers=True, widths=0.6)   # matplotlib >= 3.10
    except TypeError:
        ax.boxplot(data, vert=False, showfliers=True, widths=0.6)
    ax.set_yticks(range(1, len(names) + 1), names)
    ax.set_xlabel(f"{un} per invocation")
    ax.set_title(title, fontsize=10)
    return _png(fig)


def plot_threads(result: Any) -> bytes:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 4))
    allp = [q for m in result.models for p in m.threads for q in (p.isolated, p.loaded) if q is not None]
    sc, un = _unit(max((q.p90_us for q in allp), default=0.0))

    def series(stats: list) -> tuple[list, list]:
        y = [q.p50_us / sc if q else float("nan") for q in stats]
        err = [[(q.p50_us - q.min_us) / sc if q else 0.0 for q in stats],
               [(q.p90_us - q.p50_us) / sc if q else 0.0 for q in stats]]
        return y, err
    for m in result.models:
        ts = [p.threads for p in m.threads]
        y, err = series([p.isolated for p in m.threads])
        ax.errorbar(ts, y, yerr=err, marker="o", capsize=3, label=f"{m.name} alone")
        if any(p.loaded for p in m.threads):
            y, err = series([p.loaded for p in m.threads])
            ax.errorbar(ts, y, yerr=err, marker="s", linestyle="--", capsize=3, label=f"{m.name} under load")
    ax.set_xticks(result.threads)
    ax.set_xlabel("threads")
    ax.set_ylabel(f"p50 latency, {un} (whiskers: min..p90)")
    ax.set_title("Thread scaling" + (f" (load: {result.contention} busy process(es))" if result.contention else ""),
                 fontsize=10)
    ax.legend(fontsize=8)
    ax.set_ylim(bottom=0)
    return _png(fig)


def plot_tradeoff(result: Any) -> bytes | None:
    """Size vs latency. Each model is a numbered point; the legend beside the plot names it and
    gives its output error against the first model (labels next to points overlap when models are
    close in size and speed, and run off the axes)."""
    pts = [(k, m) for k, m in enumerate(result.models) if m.latency]
    if len(pts) < 2:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 3.6))
    sc, un = _unit(max(m.latency.p50_us for _, m in pts))
    colors = plt.rcParams["axes.prop_cycle"].by_key().get("color", ["C0"])
    xy = [(m.size_bytes / 2**20, m.latency.p50_us / sc) for _, m in pts]
    xmax, ymax = max(x for x, _ in xy) * 1.15 or 1.0, max(y for _, y in xy) * 1.2 or 1.0
    groups: list[list[int]] = []          # points on top of each other share one label, "1, 2"
    for n, (x, y) in enumerate(xy):
        for g in groups:
            gx, gy = xy[g[0]]
            if abs(x - gx) / xmax < 0.03 and abs(y - gy) / ymax < 0.03:
                g.append(n)
                break
        else:
            groups.append([n])
    for n, ((k, m), (x, y)) in enumerate(zip(pts, xy)):
        if k == 0:
            err = "reference"
        elif not m.accuracy:
            err = "error not measured"
        elif m.accuracy.get("comparable") is False:
            err = "not comparable"
        elif m.accuracy.get("identical"):
            err = "identical outputs"
        else:
            err = f"max rel. error {m.accuracy['max_rel']:.2g}"
        ax.scatter([x], [y], s=60, color=colors[n % len(colors)], label=f"{n + 1}: {m.name} ({err})", zorder=3,
                   alpha=0.85)
    for g in groups:
        x, y = xy[g[0]]
        ax.annotate(", ".join(str(n + 1) for n in g), (x, y), fontsize=8, xytext=(6, 5), textcoords="offset points",
                    fontweight="bold", annotation_clip=False)
    ax.set_xlim(0, xmax)
    ax.set_ylim(0, ymax)
    ax.set_xlabel("size, MB")
    ax.set_ylabel(f"p50 latency, {un}")
    ax.set_title("Size vs speed", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(0.0, -0.18), frameon=False)
    return _png(fig)


# --------------------------------------------------------------------------- documents

_CSS = """body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:.5em 0 1.5em;font-size:13px}td,th{border:1px solid #ddd;padding:3px 8px}
th{background:#f4f4f4}td.r{text-align:right;font-variant-numeric:tabular-nums}.cap{color:#555;font-size:13px}
img{max-width:100%}pre{background:#f7f7f7;padding:.6em;font-size:12px}"""


class _Doc:
    """Blocks (headings, text, tables, images) written as Markdown (images beside it) or HTML (inline)."""

    def __init__(self, title: str):
        self.title = title
        self.parts: list[tuple[str, Any]] = []

    def h(self, text: str, level: int = 2) -> None:
        self.parts.append(("h", (level, text)))

    def p(self, text: str) -> None:
        self.parts.append(("p", text))

    def table(self, t: Table) -> None:
        self.parts.append(("t", t))

    def image(self, name: str, png: bytes | None, alt: str) -> None:
        if png:
            self.parts.append(("i", (name, png, alt)))

    def write(self, path: str | os.PathLike, img_dir: str | os.PathLike | None = None) -> list[Path]:
        """Write the document (and a Markdown report's images) atomically, with a normal file's
        permissions; missing folders are an error (``check_report_paths``), except the images'
        own folder, which is made inside an existing one."""
        from ..paths import atomic_writer
        p = Path(path)
        target = check_report_paths(p, img_dir)       # a symbolic link's target is replaced, not the link
        written = [p]
        if p.suffix.lower() in (".html", ".htm"):
            out = [f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(self.title)}</title>"
                   f"<style>{_CSS}</style></head><body><h1>{html.escape(self.title)}</h1>"]
            for kind, v in self.parts:
                if kind == "h":
                    out.append(f"<h{v[0]}>{html.escape(v[1])}</h{v[0]}>")
                elif kind == "p":
                    out.append(f"<p>{html.escape(v)}</p>" if "\n" not in v else f"<pre>{html.escape(v)}</pre>")
                elif kind == "t":
                    out.append(v.html())
                else:
                    b64 = base64.b64encode(v[1]).decode()
                    out.append(f"<p><img alt='{html.escape(v[2])}' src='data:image/png;base64,{b64}'></p>")
            out.append("</body></html>")
            text = "\n".join(out)
        else:
            idir = image_dir(p, img_dir)
            out = [f"# {self.title}", ""]
            for kind, v in self.parts:
                if kind == "h":
                    out += ["#" * v[0] + " " + v[1], ""]
                elif kind == "p":
                    out += ([v, ""] if "\n" not in v else ["```", v, "```", ""])
                elif kind == "t":
                    out += [v.markdown(), ""]
                else:
                    if not idir.is_dir():
                        idir.mkdir()
                    f = idir / v[0]
                    with atomic_writer(f, "wb") as fh:
                        fh.write(v[1])
                    written.append(f)
                    rel = os.path.relpath(f, p.parent)
                    out += [f"![{v[2]}]({rel})", ""]
            text = "\n".join(out)
        with atomic_writer(target, "w") as fh:
            fh.write(text)
        return written


REPORT_SUFFIXES = (".md", ".markdown", ".html", ".htm")


def image_dir(report: str | os.PathLike, img_dir: str | os.PathLike | None = None) -> Path:
    """Where a Markdown report's images go: ``img_dir``, else ``<report without extension>-img/``
    beside it (``prof.md`` -> ``prof-img/``)."""
    p = Path(report)
    return Path(img_dir) if img_dir is not None else p.with_name(p.stem + "-img")


def check_report_paths(report: str | os.PathLike, img_dir: str | os.PathLike | None = None) -> Path:
    """Refuse a report path tflc cannot write (a missing folder, a directory, a read-only file...),
    before any measuring: one line, exit 2, as ``tflc optimize -o``."""
    from ..paths import check_output_path
    p = Path(report)
    if p.suffix.lower() not in REPORT_SUFFIXES:
        raise UsageError(f"--report {p}: write .md or .html (use --json for machines)")
    target = check_output_path(p, flag="--report")
    if p.suffix.lower() in (".md", ".markdown"):
        idir = image_dir(p, img_dir)
        flag = "--img-dir" if img_dir is not None else f"--report {p}: its image folder"
        if idir.exists() and not idir.is_dir():
            raise UsageError(f"{flag} {idir}: exists and is not a directory")
        if not idir.exists() and not idir.parent.is_dir():
            raise UsageError(f"{flag} {idir}: no such directory {idir.parent}")
    return target


def _slug(s: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in Path(s).stem).strip("-").lower() or "model"


def profile_report(profile: Profile, path: str | os.PathLike, *, top: int = 10, command: str | None = None,
                   img_dir: str | os.PathLike | None = None, extra: Sequence[Profile] = ()) -> list[Path]:
    """A report on one profile (``extra``: more profiles of the same model, e.g. other thread counts)."""
    doc = _Doc(f"Profile of {Path(profile.model).name}")
    slug = _slug(profile.model)
    doc.p(f"{profile.model}: {fmt_bytes(profile.size_bytes)}, sha256 {profile.sha256[:16]}…, "
          f"{profile.threads} thread(s), ai-edge-litert {profile.litert_version}, tflc {profile.tflc_version}, "
          f"measured {profile.created}{' (from the profile cache)' if profile.cached else ''}.")
    if command:
        doc.p(command if "\n" in command else f"Command: {command}")
    for n in profile.notes:
        doc.p(f"Note: {n}")
    series: dict[str, list[float]] = {}
    for view in profile.views.values():
        doc.h(VIEW_TITLES.get(view.name, view.name))
        doc.p("\n".join(ln.strip() for ln in summary_lines(profile, view)))
        if not view.ops:
            continue
        rt = runtime_table(view)
        if rt is not None:
            doc.table(rt)
        doc.table(top_table(view, top))
        doc.image(f"{slug}-{view.name}-top-ops.png", plot_top_ops(view, top), f"top ops ({view.name})")
        doc.table(type_table(view))
        doc.image(f"{slug}-{view.name}-op-types.png", plot_types(view), f"time by op type ({view.name})")
        if view.measured and view.measured.get("samples"):
            series[f"{view.name} (no profiler)"] = view.measured["samples"]
    for other in extra:
        for view in other.views.values():
            if view.measured and view.measured.get("samples"):
                series[f"{view.name}, {other.threads} thr"] = view.measured["samples"]
    if series:
        doc.h("Whole-model latency distribution")
        doc.image(f"{slug}-latency.png", plot_distribution(series, "Whole-model latency per invocation "
                                                           "(stock interpreter, no profiler)"),
                  "latency distribution")
    return doc.write(path, img_dir)


def bench_report(result: Any, path: str | os.PathLike, *, command: str | None = None,
                 img_dir: str | os.PathLike | None = None) -> list[Path]:
    doc = _Doc("Benchmark: " + ", ".join(m.name for m in result.models))
    slug = _slug(result.models[0].name) if result.models else "bench"
    if command:
        doc.p(f"Command: {command}")
    for b in bench_blocks(result):
        if isinstance(b, Table):
            doc.table(b)
        else:
            doc.p(b)
    series = {}
    for m in result.models:
        for p in m.threads:
            series[f"{m.name}, {p.threads} thr"] = p.isolated.samples
            if p.loaded:
                series[f"{m.name}, {p.threads} thr, load"] = p.loaded.samples
    doc.h("Latency distribution")
    doc.image(f"{slug}-bench-latency.png", plot_distribution(series, "Latency per invocation"), "latency distribution")
    if len(result.threads) > 1 or result.contention:
        doc.h("Thread scaling")
        doc.image(f"{slug}-bench-threads.png", plot_threads(result), "thread scaling")
    tr = plot_tradeoff(result)
    if tr:
        doc.h("Size, speed and accuracy")
        doc.image(f"{slug}-bench-tradeoff.png", tr, "size vs speed")
    return doc.write(path, img_dir)
