"""tflc's own kernel library: every ``TFLC_*`` custom code and its kernel.

The registry (``tflc.kernels.lookup``) loads this module on the first lookup of a ``TFLC_*`` code.
Each kernel family lives in a module of its own, with its constraints as ``tflc.capabilities``
predicates: ``CONSTRAINTS`` (what the custom op accepts) and ``REPLACES`` (which builtin ops it
stands for, which is what the kernel pass and ``tflc partition --target tflc`` ask).
"""
from __future__ import annotations

from typing import Any

from . import batch_matmul_i8, lut, softmax_i8

_EXACT = (softmax_i8, batch_matmul_i8)     # integer kernels reproducing LiteRT's builtin ones

#: custom code -> kernel
KERNELS: dict[str, Any] = {**lut.KERNELS, **{m.CODE: m.KERNEL for m in _EXACT}}
#: custom code -> predicate over the custom op
CONSTRAINTS: dict[str, Any] = {**lut.CONSTRAINTS, **{m.CODE: m.CONSTRAINTS for m in _EXACT}}
#: custom code -> predicate over the builtin ops it can replace
REPLACES: dict[str, Any] = {**lut.REPLACES, **{m.CODE: m.REPLACES for m in _EXACT}}
#: custom code -> ``fn(op) -> custom options`` for the kernels whose parameters come from the op
#: itself (table kernels get theirs from LiteRT, in the pass)
OPTIONS: dict[str, Any] = {m.CODE: m.options for m in _EXACT}
#: custom code -> the module that documents it
FAMILIES: dict[str, Any] = {**{code: lut for code in lut.KERNELS}, **{m.CODE: m for m in _EXACT}}
