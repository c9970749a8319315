"""Rendering profiles and benchmarks, one module per job (this one gathers their names):

* ``text``: number formats, tables (rich on a terminal, plain text otherwise), ``share`` lines;
* ``progress``: progress on a terminal for long work;
* ``notes``: the pass manager's notes, grouped;
* ``profile_text`` / ``bench_text``: a profile / a benchmark as lines and tables;
* ``plots``: matplotlib plots as small PNGs; ``documents``: Markdown / HTML reports.
"""
from __future__ import annotations

from .bench_text import accuracy_text, bench_blocks, ratio_text, recommendation_text
from .documents import (REPORT_SUFFIXES, bench_report, check_report, check_report_paths, image_dir,
                        profile_report)
from .plots import (plot_distribution, plot_threads, plot_top_ops, plot_tradeoff, plot_types,
                    require_plots)
from .profile_text import (METHOD_TITLES, VIEW_TITLES, calibration_text, check_text, profile_blocks,
                           runtime_table, summary_lines, top_table, type_table)
from .progress import Progress
from .text import Table, fmt_bytes, fmt_ratio, fmt_us, print_blocks, share

__all__ = ["REPORT_SUFFIXES", "METHOD_TITLES", "VIEW_TITLES", "Progress", "Table", "accuracy_text", "bench_blocks",
           "bench_report", "calibration_text", "check_report", "check_report_paths", "check_text", "fmt_bytes",
           "fmt_ratio", "fmt_us", "image_dir", "plot_distribution", "plot_threads", "plot_top_ops", "plot_tradeoff",
           "plot_types", "print_blocks", "profile_blocks", "profile_report", "ratio_text", "recommendation_text",
           "require_plots", "runtime_table", "share", "summary_lines", "top_table", "type_table"]
