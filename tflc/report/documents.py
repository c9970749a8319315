"""Reports: Markdown (images beside it) or self-contained HTML, written all or nothing."""
from __future__ import annotations

import base64
import html
import os
from pathlib import Path
from typing import Any, Sequence

from ..errors import UsageError
from ..profiler.profile import Profile
from . import plots
from .bench_text import bench_blocks
from .profile_text import VIEW_TITLES, runtime_table, summary_lines, top_table, type_table
from .text import Table, fmt_bytes


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
        """Write the document (and a Markdown report's images) with a normal file's permissions,
        all or nothing: the images go first, the document last, and if anything fails the files
        and the image folder this call made are removed again (a failed report leaves no partial
        report and no image folder). Missing folders are an error (``check_report_paths``), except
        the images' own folder, which is made inside an existing one."""
        from ..paths import atomic_writer
        p = Path(path)
        target = check_report_paths(p, img_dir)       # a symbolic link's target is replaced, not the link
        images: list[tuple[Path, bytes]] = []
        if p.suffix.lower() in (".html", ".htm"):
            text = self._html()
        else:
            idir = image_dir(p, img_dir)
            text = self._markdown(p, idir, images)
        made: list[Path] = []                         # files and folder this call created, for the undo
        try:
            if images:
                idir = images[0][0].parent
                if not idir.is_dir():
                    idir.mkdir()
                    made.append(idir)
                for f, data in images:
                    existed = f.exists()
                    with atomic_writer(f, "wb") as fh:
                        fh.write(data)
                    if not existed:
                        made.append(f)
            with atomic_writer(target, "w") as fh:
                fh.write(text)
        except BaseException:
            for f in reversed(made):
                try:
                    f.rmdir() if f.is_dir() else f.unlink()
                except OSError:
                    pass
            raise
        return [p] + [f for f, _ in images]

    def _html(self) -> str:
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
        return "\n".join(out)

    def _markdown(self, p: Path, idir: Path, images: list[tuple[Path, bytes]]) -> str:
        """The Markdown text; the images it links are appended to ``images`` (written by ``write``)."""
        out = [f"# {self.title}", ""]
        for kind, v in self.parts:
            if kind == "h":
                out += ["#" * v[0] + " " + v[1], ""]
            elif kind == "p":
                out += ([v, ""] if "\n" not in v else ["```", v, "```", ""])
            elif kind == "t":
                out += [v.markdown(), ""]
            else:
                f = idir / v[0]
                images.append((f, v[1]))
                out += [f"![{v[2]}]({os.path.relpath(f, p.parent)})", ""]
        return "\n".join(out)


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


def check_report(report: str | os.PathLike, img_dir: str | os.PathLike | None = None) -> Path:
    """Everything a report needs, checked before any measuring: a path it can write
    (``check_report_paths``) and the optional dependencies of its plots (``plots.require_plots``)."""
    target = check_report_paths(report, img_dir)
    plots.require_plots()
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
        doc.image(f"{slug}-{view.name}-top-ops.png", plots.plot_top_ops(view, top), f"top ops ({view.name})")
        doc.table(type_table(view))
        doc.image(f"{slug}-{view.name}-op-types.png", plots.plot_types(view), f"time by op type ({view.name})")
        if view.measured and view.measured.get("samples"):
            series[f"{view.name} (no profiler)"] = view.measured["samples"]
    for other in extra:
        for view in other.views.values():
            if view.measured and view.measured.get("samples"):
                series[f"{view.name}, {other.threads} thr"] = view.measured["samples"]
    if series:
        doc.h("Whole-model latency distribution")
        doc.image(f"{slug}-latency.png", plots.plot_distribution(series, "Whole-model latency per invocation "
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
    doc.image(f"{slug}-bench-latency.png", plots.plot_distribution(series, "Latency per invocation"), "latency distribution")
    if len(result.threads) > 1 or result.contention:
        doc.h("Thread scaling")
        doc.image(f"{slug}-bench-threads.png", plots.plot_threads(result), "thread scaling")
    tr = plots.plot_tradeoff(result)
    if tr:
        doc.h("Size, speed and accuracy")
        doc.image(f"{slug}-bench-tradeoff.png", tr, "size vs speed")
    return doc.write(path, img_dir)
