"""A pytest plugin (loaded by tests/conftest.py): every test also checks that the passes change
the IR through Subgraph methods only.

A direct write such as ``t.shape = ...`` or ``op.options = ...`` from a pass would leave the
model's version stamp unchanged, so cached analyses (and the networkx view) would describe a
model that no longer exists. While a test runs, writes to the fields of tensors and operators
are watched; one made from a pass's code (passes/, tflc/evaluate.py, tflc/rewrite.py) fails the
test (a new object gets its fields from its constructor). Tests themselves may still set fields up
by hand.
"""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

from tflc.ir.core import OP_FIELDS, TENSOR_FIELDS, Operator, Tensor

REPO = Path(__file__).resolve().parents[1]

#: the code that must not write those fields directly
WATCHED = (str(REPO / "passes") + "/", str(REPO / "tflc" / "evaluate.py"), str(REPO / "tflc" / "rewrite.py"))


def _watched(filename: str) -> bool:
    return filename.startswith(WATCHED[0]) or filename in WATCHED[1:] or "/tflc/passes/" in filename


def _guard(cls: type, fields: frozenset[str], found: list[str]):
    original = cls.__setattr__

    def setattr_(self, name, value):
        if name in fields:      # (the constructors, in tflc.ir.core, are not watched)
            frame = sys._getframe(1)
            if _watched(frame.f_code.co_filename):
                found.append(f"{frame.f_code.co_filename}:{frame.f_lineno}: {cls.__name__}.{name} assigned "
                             "directly (use the Subgraph's set_* methods: the version stamp goes stale)")
        original(self, name, value)
    return setattr_


@pytest.fixture(autouse=True)
def no_direct_ir_writes(monkeypatch):
    found: list[str] = []
    monkeypatch.setattr(Tensor, "__setattr__", _guard(Tensor, TENSOR_FIELDS, found))
    monkeypatch.setattr(Operator, "__setattr__", _guard(Operator, OP_FIELDS, found))
    yield found
    assert not found, "\n".join(dict.fromkeys(found))
