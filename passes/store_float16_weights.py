"""store-float16-weights: store float32 constant weights as float16 behind a DEQUANTIZE op.

What TF's converter does with ``supported_types=[tf.float16]``: every float32 constant read by
a weight-carrying or elementwise op (conv, depthwise, fully-connected, transpose-conv, batch
matmul, gather/embedding tables, add/sub/mul/div/prelu/max/min constants; biases included)
becomes a float16 constant (same name) followed by ``DEQUANTIZE`` (version 3, as the converter
emits for float16 input) producing ``<name>_dequantize``, placed just before the first reader.
Constant bytes are halved; LiteRT dequantizes once, at preparation (XNNPACK reads the float16
data directly). It is the inverse of ``fold-float16-weights``: a float16 model folded and stored
again has the same weights, bit for bit, and the same graph (op order aside).

Lossy: each weight is rounded to the nearest float16 (relative error <= 2^-11), so outputs
change by about 1e-3 relative; the pass declares ``tolerance = 1e-2`` (a budget, not a typical
error). Not part of -O1/-O2: opt in with ``--passes store-float16-weights``.

Only when the constant is dense, float32, unquantized, not a variable or graph output, has at
least ``min-elements`` elements, every reader of it is one of ``ops`` and none has int8
(dynamic-range) weights (XNNPACK then fails to prepare the model: measured, LiteRT 2.3.0), and
every value fits in float16 (|x| <= 65504; larger values would become inf: refused with a note).
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field

import numpy as np

from tflc.ir.core import Buffer, Model, Operator, Subgraph
from tflc.ir.quant import is_quantized
from tflc.passes_api import Pass, register
from tflc.rewrite import Match, Rule, apply_rules, builtin_opcode
from tflc.schema import TYPE_CODES

F16, F32 = TYPE_CODES["FLOAT16"], TYPE_CODES["FLOAT32"]
F16_MAX = float(np.finfo(np.float16).max)

DEFAULT_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "TRANSPOSE_CONV", "CONV_3D",
               "CONV_3D_TRANSPOSE", "BATCH_MATMUL", "GATHER", "EMBEDDING_LOOKUP", "ADD", "SUB", "MUL",
               "DIV", "PRELU", "MAXIMUM", "MINIMUM", "SQUARED_DIFFERENCE",
               # MediaPipe's custom transposed conv: MediaPipe itself feeds it DEQUANTIZE outputs
               "Convolution2DTransposeBias")


@dataclass
class Options:
    min_elements: int = field(default=1, metadata={
        "help": "leave constants with fewer elements as float32 (1: convert all, like the TF converter)"})
    ops: list[str] = field(default_factory=lambda: list(DEFAULT_OPS), metadata={
        "help": "operator types whose float32 constant inputs may be stored as float16 (':'-separated)"})
    dequantize_version: int = field(default=3, metadata={
        "help": "operator version of the DEQUANTIZE ops (3: TF converter; MediaPipe models use 2)"})
    suffix: str = field(default="_dequantize", metadata={"help": "name suffix of the DEQUANTIZE outputs"})

    def __post_init__(self) -> None:
        if self.min_elements < 1:
            raise ValueError(f"min-elements must be 1 or more, got {self.min_elements}")
        if not self.ops or not all(self.ops):
            raise ValueError("ops must name at least one operator type (':'-separated)")
        if self.dequantize_version not in (2, 3):
            raise ValueError(f"dequantize-version must be 2 (as MediaPipe writes) or 3 (as the TF converter "
                             f"writes), got {self.dequantize_version}")
        if not self.suffix:
            raise ValueError("suffix must not be empty (the DEQUANTIZE outputs need names of their own)")


def _dynamic_range(op: Operator) -> bool:
    """``op`` computes in float with int8 (dynamic-range) constant weights."""
    return (any(t is not None and t.dtype == F32 for t in op.outputs)
            and any(t is not None and t.is_constant and t.dtype == TYPE_CODES["INT8"] and is_quantized(t)
                    for t in op.inputs))


class StoreFloat16(Rule):
    """Anchored on a reader op; each match is one of its float32 constant inputs."""

    name = "store-float16-weights"

    def __init__(self, options: Options):
        self.options = options
        self.ops = frozenset(options.ops)
        self.decided: set[int] = set()       # uids of tensors refused (noted once) or skipped

    def match(self, op: Operator, sg: Subgraph) -> Match | None:
        if op.type not in self.ops:
            return None
        for t in op.inputs:
            if t is None or t.uid in self.decided or t.dtype != F32 or not t.is_constant:
                continue
            if t.num_elements is not None and t.num_elements < self.options.min_elements:
                self.decided.add(t.uid)      # the user's choice: no note
                continue
            return Match(op, sg, tensors={"c": t})
        return None

    def check(self, m: Match) -> tuple[bool, str]:
        ok, reason = self._check(m)
        if not ok:
            self.decided.add(m.tensors["c"].uid)
            reason = f"constant '{m.tensors['c'].name}' stays float32: {reason}"
        return ok, reason

    def _check(self, m: Match) -> tuple[bool, str]:
        c = m.tensors["c"]
        if c.is_variable or c.sparsity is not None:
            return False, "it is a variable or sparse"
        if is_quantized(c):
            return False, "it carries quantization parameters"
        if m.sg.is_boundary(c):
            return False, "it is a graph input or output"
        if c.expected_nbytes() is None or c.nbytes != c.expected_nbytes():
            return False, "its buffer does not match its shape"
        others = sorted({op.type for op in c.consumers if op.type not in self.ops})
        if others:
            return False, f"it is also read by {', '.join(others)}"
        hybrid = next((op for op in c.consumers if _dynamic_range(op)), None)
        if hybrid is not None:
            # measured, LiteRT 2.3.0: behind a DEQUANTIZE, XNNPACK fails to prepare the model
            # ("failed to delegate CONV_2D node"), it does not fall back
            return False, (f"{hybrid.type} '{hybrid.output_name}' has int8 weights and float activations "
                           "(dynamic range): XNNPACK needs its other constants static float32")
        data = np.asarray(c.data, dtype=np.float32)
        finite = data[np.isfinite(data)]
        if finite.size and float(np.abs(finite).max()) > F16_MAX:
            return False, f"a value ({float(np.abs(finite).max()):.6g}) exceeds the float16 range"
        return True, ""

    def apply(self, m: Match) -> None:
        sg, c = m.sg, m.tensors["c"]
        half = np.asarray(c.data, dtype=np.float32).astype(np.float16)
        readers = c.consumers
        first = min(readers, key=lambda op: op.index)
        out = sg.new_tensor(c.name + self.options.suffix, F32, c.shape, shape_signature=c.shape_signature,
                            quantization=copy.deepcopy(c.quantization))   # empty or None, as the constant's
        sg.replace_all_uses(c, out)
        # the constant itself becomes the float16 one (same tensor: same name and uid)
        sg.set_buffer(c, Buffer(half.reshape(-1).view(np.uint8).copy()), dtype=F16)
        sg.add_op(Operator(builtin_opcode("DEQUANTIZE", self.options.dequantize_version), [c], [out]),
                  before=first)
        self.decided.add(c.uid)


@register
class StoreFloat16Weights(Pass):
    __doc__ = __doc__
    name = "store-float16-weights"
    description = "Store float32 constant weights as float16 behind DEQUANTIZE (halves weights; lossy)"
    Options = Options
    tolerance = 1e-2

    def run(self, model: Model, ctx) -> bool:
        rule = StoreFloat16(self.options)
        changed = False
        while True:
            seen = len(rule.decided)
            changed |= apply_rules(model, [rule], ctx, max_rounds=1000)
            if len(rule.decided) == seen:       # no new refusal: nothing left to look at
                return changed
