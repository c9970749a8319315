"""Plots for reports (matplotlib, from the ``report`` extra), as small PNGs."""
from __future__ import annotations

import io
from typing import Any, Sequence

from ..errors import UsageError
from ..profiler.profile import View
from .profile_text import VIEW_TITLES


REPORT_DEPS_HINT = "pip install 'tflc[report]' (matplotlib for the plots, rich for tables and progress on a terminal)"


def require_plots() -> None:
    """Refuse a report before any measuring where its plots cannot be drawn (matplotlib missing
    or broken). rich is not needed for a report file: without it, terminal output is plain."""
    pyplot()


def pyplot(needs: str = "--report needs matplotlib for its plots") -> Any:
    """matplotlib's pyplot (headless), or a UsageError ``needs (why): how to install it``."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as e:
        raise UsageError(f"{needs} ({e}): {REPORT_DEPS_HINT}") from None
    return plt


def _png(fig: Any) -> bytes:
    """The figure as a small PNG: 90 dpi, and a 64-colour palette where Pillow is there (plots
    have few colours; this makes the files 3-4x smaller)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    pyplot().close(fig)
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
    plt = pyplot()
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
    plt = pyplot()
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
    plt = pyplot()
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
    plt = pyplot()
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
    plt = pyplot()
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

