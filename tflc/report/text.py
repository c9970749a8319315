"""Text at the edge: number formats and tables, printed as rich tables on a terminal (when rich
is installed) and as plain text otherwise; the same tables become Markdown and HTML in reports."""
from __future__ import annotations

import html
import os
import sys
from dataclasses import dataclass, field
from typing import Any, Sequence

from ..summary import human_bytes


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


def fmt_interval(lo: float | None, hi: float | None, digits: int = 2) -> str:
    """A 95% interval as "0.97–1.02" ("-" without one)."""
    if lo is None or hi is None:
        return "-"
    return f"{lo:.{digits}f}–{hi:.{digits}f}"


def share(part_us: float, whole_us: float, digits: int = 1) -> str:
    """"279 µs = 94.6% of 295 µs": the percentage is computed from the two numbers printed beside
    it and from nothing else, so the line is true by construction (to the displayed precision).
    Other ways to relate the two (a median of per-round ratios, say) are said in other words."""
    pct = 100.0 * part_us / whole_us if whole_us else float("nan")
    return f"{fmt_us(part_us)} = {pct:.{digits}f}% of {fmt_us(whole_us)}"


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

