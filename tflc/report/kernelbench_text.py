"""``tflc bench-kernels`` as tables and a plot: each kernel against the builtin ops it replaces,
XNNPACK, and a copy of the same bytes (``tflc.kernelbench`` makes the numbers)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import UsageError
from ..profiler.paired import NOISE_BAND
from .text import Table, fmt_bytes, fmt_us

PLOT_SUFFIXES = (".png", ".svg")
#: variant -> (label, colour) in the plot
SERIES = {"kernel": ("tflc kernel", "#c44e52"), "builtin": ("LiteRT builtin int8", "#dd8452"),
          "xnnpack_int8": ("XNNPACK int8", "#8172b3"), "xnnpack_f32": ("XNNPACK float32", "#4c72b0"),
          "copy": ("copy of the same bytes", "#888888")}


def _num(x: float) -> str:
    """Two decimals, three significant digits below 0.1 (a 250x faster kernel is 0.004x, not 0.00x)."""
    return f"{x:.2f}" if abs(x) >= 0.1 or x == 0 else f"{x:.2g}"


def _ratio(r: dict | None) -> str:
    if not r:
        return "-"
    if r.get("ci_low") is None:
        return f"{_num(r['ratio'])}x"
    return f"{_num(r['ratio'])}x [{_num(r['ci_low'])}–{_num(r['ci_high'])}]"


def _verdict(r: dict | None) -> str:
    if not r:
        return "-"
    v = r.get("verdict", "")
    return {"no difference beyond noise": "same (noise)"}.get(v, v)


def _gbps(v: float | None) -> str:
    return "-" if v is None else (f"{v:.1f}" if v < 100 else f"{v:.0f}")


def _shape(row: dict) -> str:
    shapes = row.get("shapes") or []
    return " · ".join("x".join(str(d) for d in s) for s in shapes) or "-"


def _exact(row: dict) -> str:
    e = row.get("exact")
    if e is None:
        return "-"
    if not e:
        return "NO"
    vs = row.get("exact_vs") or {}
    return "yes (= XNNPACK int8)" if vs.get("xnnpack_int8") and not vs.get("builtin") else "yes"


def case_table(title: str, rows: list[dict]) -> Table:
    t = Table(title, ["op", "layout", "shapes", "bytes", "builtin", "kernel", "kernel/builtin [95%]", "reading",
                      "XNNPACK i8", "kernel/XNN i8", "XNNPACK f32", "kernel/XNN f32", "kernel GB/s", "copy GB/s",
                      "% of copy", "exact"], align="lllr" + "r" * 3 + "l" + "r" * 7 + "l")
    for r in rows:
        if r.get("error"):
            t.rows.append([r["op"], r["layout"], _shape(r), fmt_bytes(r.get("bytes")), "-", "-", "-",
                           f"error: {r['error']}", *["-"] * 7, "-"])
            continue
        us, gb = r["us"], r["gbps"]
        frac = r.get("copy_fraction")
        t.rows.append([r["op"], r["layout"], _shape(r), fmt_bytes(r["bytes"]), fmt_us(us.get("builtin")),
                       fmt_us(us.get("kernel")), _ratio(r.get("kernel_vs_builtin")),
                       _verdict(r.get("kernel_vs_builtin")),
                       fmt_us(us.get("xnnpack_int8")), _ratio(r.get("kernel_vs_xnnpack_int8")),
                       fmt_us(us.get("xnnpack_f32")), _ratio(r.get("kernel_vs_xnnpack_f32")),
                       _gbps(gb.get("kernel")), _gbps(gb.get("copy")),
                       "-" if frac is None else f"{100 * frac:.0f}%", _exact(r)])
    return t


def caption(result: dict) -> str:
    s = result.get("settings", {})
    return (f"µs: p50 of one invocation ({s.get('threads', 1)} thread(s); rounds of {s.get('per_round', '?')} runs, "
            "every variant and the copy interleaved in the same rounds in one process). builtin: LiteRT's builtin "
            "int8 kernel (XNNPACK off); XNNPACK i8/f32: the int8 op / the float32 op with XNNPACK, '-' where XNNPACK "
            "does not take it. kernel/x: the median over the rounds of each round's ratio of medians, [95% bootstrap "
            "interval]; below 1 the kernel is faster; reading 'faster'/'slower' only beyond "
            f"±{100 * NOISE_BAND:.0f}%. "
            "bytes: the int8 op's inputs read + output written; GB/s: those bytes per p50 (the float op moves 4x as "
            "many). copy: numpy.copyto of half those bytes (as many bytes read + written, same footprint), the "
            "memory or cache bandwidth at that size; % of copy: kernel GB/s / copy GB/s (at small sizes every "
            "variant is mostly call overhead). exact: the kernel's outputs equal LiteRT's byte for byte (random "
            "inputs, ramps of every value, extremes), against XNNPACK's int8 op where it takes the op "
            "(the kernel pass makes its tables with XNNPACK on and replaces only ops the target refuses).")


def custom_table(result: dict) -> Table:
    t = Table(f"{result['custom']} against {result['against']}",
              ["model", "bytes", "reference", "model", "model/reference [95%]", "reading", "model GB/s", "copy GB/s",
               "% of copy", "identical outputs"], align="lrrrrlrrrl")
    for r in result.get("cases", []):
        us, gb, frac = r["us"], r["gbps"], r.get("copy_fraction")
        t.rows.append([r["kernel"], fmt_bytes(r["bytes"]), fmt_us(us.get("builtin")), fmt_us(us.get("kernel")),
                       _ratio(r.get("kernel_vs_builtin")), _verdict(r.get("kernel_vs_builtin")),
                       _gbps(gb.get("kernel")),
                       _gbps(gb.get("copy")), "-" if frac is None else f"{100 * frac:.0f}%",
                       {True: "yes", False: "NO", None: "-"}[r.get("exact")]])
    s = result.get("settings", {})
    t.caption = (f"µs: p50 of one invocation ({s.get('threads', 1)} thread(s), both models with XNNPACK and tflc's "
                 "kernel delegate, interleaved in the same rounds with the copy in one process); model/reference: the "
                 "median of per-round ratios [95% bootstrap interval]; bytes: the model's inputs + outputs; copy: "
                 "numpy.copyto of as many bytes read + written; identical outputs: byte for byte on generated inputs.")
    return t


def kernelbench_blocks(result: dict) -> list[Table | str]:
    """The result of ``tflc.kernelbench.run`` (or ``bench_models``, as ``{"cases": [row]}``) as tables."""
    m = result.get("machine") or {}
    blocks: list[Table | str] = []
    if m:
        vnni = {True: "with avx512_vnni", False: "without avx512_vnni"}.get(m.get("avx512_vnni"), "")
        blocks.append(f"machine: {m.get('cpu', '?')}, {m.get('cores', '?')} core(s) {vnni}".rstrip())
    if result.get("custom"):
        blocks.append(custom_table(result))
        if any(r.get("exact") is False for r in result.get("cases", [])):
            blocks.append("warning: the model's outputs differ from the reference's")
        return blocks
    by_kernel: dict[str, list[dict]] = {}
    for r in result.get("cases", []):
        by_kernel.setdefault(r["kernel"], []).append(r)
    for code, rows in by_kernel.items():
        fam = sorted({r["op"] for r in rows})
        blocks.append(case_table(f"{code} against the builtin ops it replaces ({', '.join(fam)})", rows))
    if by_kernel:
        blocks.append(caption(result))
    else:
        blocks.append("no case to measure (see --op/--kernel)")
    for u in result.get("uncovered", []):
        why = "; ".join(f"{k}: {v}" for k, v in u.get("reasons", {}).items()) or "no kernel selected"
        blocks.append(f"note: no kernel replaces {u['op']} ({u['layout']}): {why}")
    for code, why in (result.get("unbenchmarked") or {}).items():
        blocks.append(f"note: {code} not benchmarked: {why}")
    bad = [r for r in result.get("cases", []) if r.get("exact") is False]
    for r in bad:
        blocks.append(f"warning: {r['kernel']} differs from LiteRT on {r['op']} {_shape(r)}")
    return blocks


# --------------------------------------------------------------------------- the plot

def check_plot(path: str) -> None:
    """Refuse ``--plot PATH`` before measuring: its suffix, its folder, matplotlib."""
    p = Path(path)
    if p.suffix.lower() not in PLOT_SUFFIXES:
        raise UsageError(f"--plot {path}: the plot is a .png or .svg file")
    if not p.parent.is_dir() and str(p.parent) not in ("", "."):
        raise UsageError(f"--plot {path}: no such folder {p.parent}")
    _plt()


def _plt() -> Any:
    from .plots import pyplot
    return pyplot("--plot needs matplotlib")


def plot_kernelbench(result: dict, path: str) -> str:
    """GB/s against size, one panel per (kernel, op, layout): kernel, builtin, XNNPACK, copy.
    Written to ``path`` (.png or .svg); returns the path."""
    plt = _plt()
    groups: dict[tuple[str, str, str], list[dict]] = {}
    for r in result.get("cases", []):
        if not r.get("error") and r.get("gbps_int8"):
            groups.setdefault((r["kernel"], r["op"], r["layout"]), []).append(r)
    n = max(1, len(groups))
    cols = min(4, n)
    rows = (n + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(3.6 * cols, 2.9 * rows), squeeze=False)
    for ax in axes.flat[len(groups):]:
        ax.axis("off")
    for ax, ((code, op, layout), rs) in zip(axes.flat, groups.items()):
        rs = sorted(rs, key=lambda r: r["bytes"])
        x = [r["bytes"] for r in rs]
        for key, (label, colour) in SERIES.items():
            pts = [(xi, r["gbps_int8"].get(key)) for xi, r in zip(x, rs) if r["gbps_int8"].get(key)]
            if pts:
                ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", ms=3, label=label, color=colour,
                        linestyle="--" if key == "copy" else "-")
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_title(f"{op} ({layout}) · {code}", fontsize=9)
        ax.set_xlabel("bytes moved by the int8 op", fontsize=8)
        ax.set_ylabel("GB/s (int8 bytes / time)", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(True, which="both", alpha=0.3)
    handles, labels = [], []
    for ax in axes.flat:
        for h, lab in zip(*ax.get_legend_handles_labels()):
            if lab not in labels:
                handles.append(h)
                labels.append(lab)
    if handles:
        fig.legend(handles, labels, loc="lower center", ncol=len(labels), fontsize=8, frameon=False,
                   bbox_to_anchor=(0.5, -0.02))
    m = result.get("machine") or {}
    fig.suptitle(f"tflc kernels vs LiteRT: the int8 op's bytes (inputs + output) per second, higher is faster "
                 f"(the float op moves 4x as many) · {m.get('cpu', '')}", fontsize=9)
    fig.tight_layout(rect=(0, 0.04, 1, 0.96))
    fmt = Path(path).suffix.lower().lstrip(".")
    fig.savefig(path, format=fmt, dpi=90, bbox_inches="tight")
    plt.close(fig)
    return path
