"""Progress on a terminal: shown only on a TTY with rich installed, never with --json or in a pipe."""
from __future__ import annotations

import io
import sys

import pytest

from tflc.report.progress import Progress, progress_enabled


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_only_on_a_terminal(monkeypatch):
    pytest.importorskip("rich")
    monkeypatch.delenv("TFLC_PLAIN", raising=False)
    assert progress_enabled(stream=_Tty())
    assert not progress_enabled(stream=io.StringIO())              # a pipe or a file
    assert not progress_enabled(json=True, stream=_Tty())          # --json: machines read the output
    monkeypatch.setenv("TFLC_PLAIN", "1")
    assert not progress_enabled(stream=_Tty())
    monkeypatch.delenv("TFLC_PLAIN")
    monkeypatch.setitem(sys.modules, "rich.progress", None)        # rich not installed: silent, no error
    assert not progress_enabled(stream=_Tty())


def test_progress_draws_and_goes_away(monkeypatch):
    pytest.importorskip("rich")
    monkeypatch.delenv("TFLC_PLAIN", raising=False)
    tty = _Tty()
    with Progress(3, "benchmarking", stream=tty) as bar:
        assert bar.shown
        bar.step("model a")
        bar.stage("model b")
    quiet = io.StringIO()
    with Progress(None, "profiling", stream=quiet) as bar:
        assert not bar.shown
        bar.step("x")
        bar.stage("y")
    assert quiet.getvalue() == ""
    with Progress(None, "profiling", enabled=False, stream=_Tty()) as bar:
        assert not bar.shown
