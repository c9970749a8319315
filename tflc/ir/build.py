"""Building IR by hand: opcodes for builtin ops, an empty model, one op appended.

Shared by the passes (through ``tflc.rewrite``), the profiler's calibration models and the tests'
tiny graphs, so that none of them reaches into another layer to make an op.
"""
from __future__ import annotations

from typing import Any, Iterable

from ..schema import OP_CODES
from .core import Model, OpCode, Operator, Subgraph, Tensor


def builtin_opcode(name: str, version: int = 1) -> OpCode:
    """An OpCode for a builtin op (``deprecated_builtin_code`` derived as the schema requires)."""
    return OpCode(OP_CODES[name], None, version, None)


def new_model(description: str = "tflc graph") -> tuple[Model, Subgraph]:
    """An empty model with one subgraph ``main``: ``(model, subgraph)``."""
    m = Model(description=description)
    return m, m.add_subgraph("main")


def add_op(sg: Subgraph, name: str, ins: Iterable[Tensor | None], outs: Iterable[Tensor | None],
           options: Any = None, options_type: int = 0) -> Operator:
    """Append a builtin op ``name`` (version 1) reading ``ins`` and writing ``outs``."""
    return sg.add_op(Operator(builtin_opcode(name), ins, outs, options=options, options_type=options_type))


def custom_opcode(code: str, version: int = 1) -> OpCode:
    """An OpCode for a custom op with custom code ``code``."""
    return OpCode(OP_CODES["CUSTOM"], code, version, None)
