"""Exhaustive proofs, by LiteRT itself, that a rewrite of one quantized elementwise op is bit-identical.

An int8/uint8 elementwise op with one activation input (every other input constant) is a function of
(input value, position): at most 256 values times the tensor's positions. So whether a rewrite of it
computes the same bytes can be decided completely, not sampled: run the op and its rewrite, each alone
in a one-op model of the op's own (stored) shape, on 256 inputs where position p holds the value
``lo + (p + k) mod 256`` (k = 0..255). Every position then sees every value once, so the positions a
constant broadcasts over, and any SIMD main-loop/tail split of the kernels at that shape, are all
covered. Both models run as the real one does: LiteRT's default interpreter with XNNPACK applied (the
refused op on its builtin kernel, the rewrite in the delegate).

``prove(op, rewrite)`` copies ``op`` (its constants, quantization and options) into a model, applies
``rewrite(sg, op_copy)`` to a clone, and compares the two in a forked child (a crashing kernel
cannot take tflc down). Results are cached by the bytes of the one-op model and the rewrite's name.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Callable

import numpy as np

from tflc.errors import RuntimeFailure
from tflc.ir.build import new_model
from tflc.ir.core import Model, Operator, Subgraph, Tensor
from tflc.schema import TYPE_CODES

_LOW = {TYPE_CODES["INT8"]: -128, TYPE_CODES["UINT8"]: 0}

#: the largest activation the probe runs (elements): 512 runs of the op and its rewrite at this size
MAX_ELEMENTS = 1 << 20


@dataclass(frozen=True)
class Proof:
    ok: bool
    reason: str = ""          # why not (or why it could not be decided)
    cases: int = 0            # (position, value) pairs compared (before the first difference)
    decided: bool = True      # False: no proof was made (the op does not fit it, or LiteRT failed)


_CACHE: dict[tuple[str, str], Proof] = {}


def activation_input(op: Operator) -> int | None:
    """The index of ``op``'s only non-constant input (None: none, or several)."""
    live = [i for i, t in enumerate(op.inputs) if t is not None and not t.is_constant]
    return live[0] if len(live) == 1 else None


def one_op_model(op: Operator) -> tuple[Model, Operator]:
    """A model computing a copy of ``op`` alone: its non-constant input is the graph input, its
    constants are copied (buffer, quantization, sparsity), its outputs are the graph outputs."""
    m, sg = new_model("tflc exhaustive proof")
    ins: list[Tensor | None] = []
    graph_in: list[Tensor] = []
    for i, t in enumerate(op.inputs):
        if t is None:
            ins.append(None)
            continue
        nt = sg.add_tensor(Tensor(f"in{i}", t.dtype, t.shape, buffer=t.buffer if t.is_constant else None,
                                  quantization=t.quantization, sparsity=t.sparsity if t.is_constant else None))
        ins.append(nt)
        if not t.is_constant:
            graph_in.append(nt)
    outs = [sg.add_tensor(Tensor(f"out{i}", t.dtype, t.shape, quantization=t.quantization))
            if t is not None else None for i, t in enumerate(op.outputs)]
    copy = sg.add_op(Operator(op.opcode, ins, outs, options=op.options, options_type=op.options_type,
                              options2=op.options2, options2_type=op.options2_type,
                              custom_options=op.custom_options, custom_options_format=op.custom_options_format))
    sg.set_graph_inputs(graph_in)
    sg.set_graph_outputs([t for t in outs if t is not None])
    return m, copy


def refusal(op: Operator) -> str:
    """Why ``op`` cannot be proved exhaustively ('' when it can)."""
    i = activation_input(op)
    if i is None:
        n = sum(1 for t in op.inputs if t is not None and not t.is_constant)
        return (f"it reads {n} tensors computed at run time; an exhaustive proof covers ops with one "
                "(every other input constant)")
    x = op.inputs[i]
    if x.dtype not in _LOW:
        return f"its input {x.name!r} is {x.type_name}, the proof enumerates int8/uint8 values"
    if x.shape is None or any(d <= 0 for d in x.shape):
        return f"its input {x.name!r} has no static shape ({x.shape})"
    if (x.num_elements or 0) > MAX_ELEMENTS:
        return f"its input has {x.num_elements} elements, over the {MAX_ELEMENTS} the proof runs"
    return ""


def prove(op: Operator, rewrite: Callable[[Subgraph, Operator], None], name: str) -> Proof:
    """Is ``rewrite`` (applied to a copy of ``op`` in a one-op model) bit-identical to ``op`` on every
    input value at every position? ``name`` keys the cache (one per rewrite)."""
    from tflc.io import serialize
    why = refusal(op)
    if why:
        return Proof(False, why, decided=False)
    original, _ = one_op_model(op)
    data = serialize(original)
    key = (name, hashlib.sha256(data).hexdigest())
    if key in _CACHE:
        return _CACHE[key]
    rewritten = original.clone()
    sg = rewritten.subgraphs[0]
    rewrite(sg, sg.operators[0])
    from tflc.runtime.isolate import run_isolated
    x = op.inputs[activation_input(op)]
    try:
        proof = run_isolated(_compare, data, serialize(rewritten), int(x.dtype), tuple(x.shape),
                             what="LiteRT exhaustive proof")
    except RuntimeFailure as e:
        proof = Proof(False, f"LiteRT could not run it ({str(e).splitlines()[0]})", decided=False)
    _CACHE[key] = proof
    return proof


def _compare(a: bytes, b: bytes, dtype: int, shape: tuple[int, ...]) -> Proof:
    from tflc.runtime.interpreter import RunOptions, Session
    opts = RunOptions(threads=1, xnnpack=True)
    sa = Session(a, opts, name="the original op")
    sb = Session(b, opts, name="its rewrite")
    n = int(np.prod(shape))
    lo = _LOW[dtype]
    np_type = np.int8 if lo < 0 else np.uint8
    pattern = (lo + np.arange(n + 256, dtype=np.int64) % 256).astype(np_type)   # x_k = pattern[k : k + n]
    for k in range(256):
        x = pattern[k:k + n].reshape(shape)
        ya, yb = sa.run([x]), sb.run([x])
        for j, (u, v) in enumerate(zip(ya, yb)):
            if u.dtype == v.dtype and u.shape == v.shape and u.tobytes() == v.tobytes():
                continue
            if u.dtype != v.dtype or u.shape != v.shape:
                return Proof(False, f"output {j} is {v.dtype}{list(v.shape)} instead of {u.dtype}{list(u.shape)}")
            bad = np.flatnonzero(u.reshape(-1).view(np.uint8) != v.reshape(-1).view(np.uint8)) \
                if u.dtype.itemsize == 1 else np.flatnonzero(u.reshape(-1) != v.reshape(-1))
            if bad.size:
                p = int(bad[0])
                val = int(lo + (p + k) % 256)
                steps = int(np.max(np.abs(u.reshape(-1)[bad].astype(np.int64) - v.reshape(-1)[bad].astype(np.int64))))
                return Proof(False, f"the rewrite differs from the original on {bad.size} of {n} positions for one "
                                    f"input pattern (e.g. input value {val} at position {p}: {v.reshape(-1)[p]} "
                                    f"instead of {u.reshape(-1)[p]}; up to {steps} step(s))", k * n)
    return Proof(True, "", 256 * n)
