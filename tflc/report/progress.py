"""Progress on the terminal for long work (profiling, calibration, the latency guard, big models).

Shown only where a person watches: stderr is a terminal, rich (from the ``report`` extra) is
installed, the output is not --json and ``TFLC_PLAIN`` is not 1. Everywhere else it is silent,
so pipes, logs and tests see nothing of it. The bar is transient: it is gone once the work is done.
"""
from __future__ import annotations

import os
import sys
from typing import Any, TextIO


def progress_enabled(json: bool = False, stream: TextIO | None = None) -> bool:
    """Whether progress would be shown (see the module docstring)."""
    stream = stream or sys.stderr
    if json or os.environ.get("TFLC_PLAIN") == "1":
        return False
    try:
        if not stream.isatty():
            return False
    except (AttributeError, ValueError):
        return False
    try:
        import rich.progress  # noqa: F401
    except ImportError:
        return False
    return True


class Progress:
    """A progress bar (``total`` steps) or, with ``total`` None, a spinner with the elapsed time,
    on stderr; ``step`` advances it, ``stage`` only says what runs now."""

    def __init__(self, total: int | None, label: str, enabled: bool = True, stream: TextIO | None = None):
        self._p: Any = None
        self._task: Any = None
        stream = stream or sys.stderr
        if not enabled or not progress_enabled(stream=stream):
            return
        from rich.console import Console
        from rich.progress import (BarColumn, MofNCompleteColumn, Progress as RProgress, SpinnerColumn,
                                   TextColumn, TimeElapsedColumn)
        cols: list[Any] = [SpinnerColumn(), TextColumn("{task.description}")]
        if total is not None:
            cols += [BarColumn(), MofNCompleteColumn()]
        cols.append(TimeElapsedColumn())
        self._p = RProgress(*cols, console=Console(file=stream), transient=True)
        self._task = self._p.add_task(label, total=total)

    @property
    def shown(self) -> bool:
        return self._p is not None

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

    def stage(self, label: str) -> None:
        if self._p is not None:
            self._p.update(self._task, description=label)
