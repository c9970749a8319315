"""fold-constants: evaluate operators whose inputs are all constants, and store their results.

What it rewrites: every operator whose inputs are constants (directly, or through a chain of such
operators) is run once, at compile time, by LiteRT itself -- the ops are copied into a small
model, serialized, and invoked with the builtin kernels and no delegate -- and its outputs become
constant tensors that keep their names, types and quantization. The op disappears.

Why it is safe: the value is computed by LiteRT's kernels from the same bytes. By default only
ops whose value does not depend on which kernels compute it are folded: data movement and
shape ops (reshape, gather, concatenation, slicing, ...), comparisons, plain integer arithmetic
(the shape computations of dynamic models), and float32 add/sub/mul/div/min/max/neg/abs/...
whose values are normal and finite (XNNPACK flushes subnormals and the builtin kernels clamp
overflows, so such values are refused). Outputs then stay bit-identical with the builtin kernels
and with XNNPACK. ``fold-inexact=true`` also folds the rest (transcendental functions,
reductions, convolutions, quantized arithmetic): their values come from the builtin reference
kernels and may differ in the last bits from what XNNPACK computes, so the pass then declares a
tolerance of 1e-5 (relative). Ops are never folded when they have side effects (variables, randomness, control
flow, custom ops: ``tflc.ir.opinfo``), read or write variable/resource/string tensors, or
produce a graph output. DEQUANTIZE of constant weights (float16 or int8) is weight compression
that the ``fold-float16-weights`` pass decides on; it is left alone unless
``fold-dequantize=true``.

Size: a result is stored only if it is at most ``max(max-bytes, its constant inputs' bytes)``;
``max-bytes=0`` means no limit. A large intermediate whose consumer is small is skipped and its
consumer folded, so the large op becomes dead code (``remove-dead-code`` deletes it).
"""
from __future__ import annotations

from dataclasses import dataclass, field

from tflc.evaluate import fold

#: Relative output error declared with fold-inexact=true (reference kernels vs XNNPACK's).
INEXACT_TOLERANCE = 1e-5
from tflc.ir.core import Model
from tflc.passes_api import Pass, register


@dataclass
class FoldConstantsOptions:
    max_bytes: int = field(default=1 << 20, metadata={
        "help": "largest folded result in bytes, unless its constant inputs are larger (0: no limit)"})
    fold_dequantize: bool = field(default=False, metadata={
        "help": "also fold DEQUANTIZE of constant weights (float16/int8 -> float32 constants: larger files)"})
    fold_inexact: bool = field(default=False, metadata={
        "help": "also fold ops whose value depends on the kernels (tanh, exp, reductions, conv, quantized "
                "arithmetic...): computed by the builtin kernels, may differ from XNNPACK's in the last bits"})

    def __post_init__(self) -> None:
        if self.max_bytes < 0:
            raise ValueError(f"max-bytes must be 0 (no limit) or more, got {self.max_bytes}")


@register
class FoldConstants(Pass):
    name = "fold-constants"
    description = "Evaluate ops with all-constant inputs in LiteRT and replace them by constants"
    Options = FoldConstantsOptions

    def __init__(self, options=None, **kwargs):
        super().__init__(options, **kwargs)
        if self.options.fold_inexact:
            self.tolerance = INEXACT_TOLERANCE   # the pipeline's budget follows (see optimize.py)

    def run(self, model: Model, ctx) -> bool:
        if self.options.max_bytes < 0:
            from tflc.errors import UsageError
            raise UsageError("pass 'fold-constants': max-bytes must be >= 0 (0: no limit)")
        n = fold(model, ctx, max_bytes=self.options.max_bytes, fold_dequantize=self.options.fold_dequantize,
                 inexact=self.options.fold_inexact)
        if n and ctx is not None:
            ctx.note(f"fold-constants: folded {n} op(s)")
        return n > 0
