"""Passes change the IR through Subgraph methods only, so the version stamp is never stale.

Two checks: no pass source assigns a tensor or operator field (or a field inside options or
quantization parameters) directly; and on converter-built models, every pass that changes the
written bytes also changes the model's version stamp (what the analysis cache is keyed by).
tests/ir_write_guard.py watches the same fields while every test runs.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tflc.io import read_model, serialize
from tflc.ir.core import OP_FIELDS, TENSOR_FIELDS
from tflc.passes_api import get_pass
from tflc.passmanager import PassContext, pipeline_passes

REPO = Path(__file__).resolve().parents[2]
SOURCES = sorted((REPO / "passes").glob("*.py")) + [REPO / "tflc" / "evaluate.py", REPO / "tflc" / "rewrite.py"]
#: objects whose fields are the IR's too: a write into them changes a tensor or an op in place
INNER = frozenset({"options", "options2", "quantization", "sparsity", "opcode"})


def _assigned(node: ast.AST):
    targets = node.targets if isinstance(node, ast.Assign) else (
        [node.target] if isinstance(node, (ast.AugAssign, ast.AnnAssign)) else [])
    stack = list(targets)
    while stack:
        t = stack.pop()
        if isinstance(t, (ast.Tuple, ast.List)):
            stack.extend(t.elts)
        elif isinstance(t, ast.Attribute):
            yield t


def direct_writes(source: str) -> list[str]:
    """``x.shape = ...``, ``op.options.padding = ...``: IR fields assigned outside tflc.ir.
    (``self.<field>`` is the pass's own state, not the IR.)"""
    found = []
    for node in ast.walk(ast.parse(source)):
        for t in _assigned(node):
            base = t.value
            if isinstance(base, ast.Name) and base.id == "self":
                continue
            if t.attr in TENSOR_FIELDS | OP_FIELDS or (isinstance(base, ast.Attribute) and base.attr in INNER):
                found.append(f"line {node.lineno}: {ast.unparse(t)} = ...")
    return found


def test_the_check_finds_direct_writes():
    src = "t.shape = (1,)\nout.shape, out.shape_signature = a, b\nop.options.padding = 1\nself.options = o\n"
    assert direct_writes(src) == ["line 1: t.shape = ...", "line 2: out.shape_signature = ...",
                                  "line 2: out.shape = ...", "line 3: op.options.padding = ..."]


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: p.name)
def test_passes_mutate_only_through_subgraph_methods(path):
    assert direct_writes(path.read_text()) == [], f"{path.name} writes IR fields directly"


def _context(model) -> PassContext:
    """A context whose input shapes make every dynamic dimension 1 (specialize-shapes runs)."""
    shapes = {}
    for t in model.main.inputs:
        sig = t.shape_signature if t.shape_signature is not None else t.shape
        if sig is not None and any(d < 0 for d in sig):
            shapes[t.name] = tuple(1 if d < 0 else d for d in sig)
    return PassContext(shapes=shapes)


@pytest.mark.parametrize("name", ["transformer_encoder", "transformer_encoder_fp16", "transformer_encoder_tfkeras",
                                  "mobilenet_tiny", "mobilenet_tiny_fp16", "stateful_counter"])
def test_every_change_to_the_bytes_moves_the_version_stamp(zoo, name):
    model = read_model(zoo(name))
    ctx = _context(model)
    passes = pipeline_passes("O2") + [get_pass("store-float16-weights")()]
    changed_any = False
    for p in passes:
        before_bytes, before_stamp = serialize(model), model.version_stamp
        changed = p.run(model, ctx)
        after_bytes = serialize(model)
        if after_bytes != before_bytes:
            changed_any = True
            assert changed, f"{p.name} changed {name} but says it did not"
            assert model.version_stamp != before_stamp, f"{p.name} changed {name} without moving the version stamp"
    assert changed_any
