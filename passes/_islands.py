"""Islands: an int8 op run in float between a DEQUANTIZE and a QUANTIZE.

Shared by the passes that move quantized ops into a delegate's float partition (exact-islands,
float-islands) and split-requantize: which tensors an island dequantizes, the float constants it
makes, the detached float version of an op that a target is asked about before anything changes,
and the rewrite itself. A private module, not a pass.
"""
from __future__ import annotations

from typing import Iterable, Mapping

import numpy as np

from tflc.ir.build import builtin_opcode
from tflc.ir.core import Operator, Subgraph, Tensor
from tflc.ir.quant import quant_params
from tflc.schema import TYPE_CODES

F32 = TYPE_CODES["FLOAT32"]
#: the 8-bit types an island converts, and the QUANTIZE/DEQUANTIZE version each needs
QTYPES = {TYPE_CODES["INT8"]: 2, TYPE_CODES["UINT8"]: 1}


def is_activation(t: Tensor | None) -> bool:
    """An int8/uint8 tensor quantized per tensor: what an island dequantizes or quantizes back."""
    q = quant_params(t)
    return t is not None and t.dtype in QTYPES and q is not None and not q.per_channel


def dequantized(t: Tensor) -> np.ndarray:
    """A quantized constant as float32 (per tensor or per channel)."""
    q = quant_params(t)
    assert q is not None and t.data is not None
    v = t.data.astype(np.float64)
    if q.per_channel:
        shape = [1] * v.ndim
        shape[q.axis] = -1
        scale, zp = np.asarray(q.scale).reshape(shape), np.asarray(q.zero_point).reshape(shape)
    else:
        scale, zp = q.scale[0], q.zero_point[0]
    return ((v - zp) * scale).astype(np.float32)


def float_like(t: Tensor, constant: bool = False) -> Tensor:
    """A detached float32 stand-in for ``t`` (same name and shapes), for asking a target."""
    return Tensor(t.name, F32, t.shape, shape_signature=t.shape_signature, buffer=t.buffer if constant else None)


def float_probe(op: Operator, inputs: Iterable[int], outputs: Iterable[int]) -> Operator:
    """``op`` as its island would hold it (float at ``inputs`` and ``outputs``), detached from any
    subgraph: a target's rules can judge it before the model changes."""
    ins, outs = set(inputs), set(outputs)
    fake_in = [float_like(t, t.is_constant) if i in ins else t for i, t in enumerate(op.inputs)]
    fake_out = [float_like(t) if i in outs else t for i, t in enumerate(op.outputs)]
    return Operator(op.opcode, fake_in, fake_out, options=op.options, options_type=op.options_type)


def dequantize_before(sg: Subgraph, t: Tensor, op: Operator) -> Tensor:
    """A float version of ``t`` available to ``op``: an earlier DEQUANTIZE of ``t`` (an island made
    before this one), or a new DEQUANTIZE placed just before ``op``."""
    at = op.index
    for c in t.consumers:
        out = c.outputs[0] if c.outputs else None
        if c.type == "DEQUANTIZE" and out is not None and out.dtype == F32 and c.index < at:
            return out
    f = sg.new_tensor(f"{t.name}/float", F32, t.shape, shape_signature=t.shape_signature)
    sg.add_op(Operator(builtin_opcode("DEQUANTIZE", QTYPES[t.dtype]), [t], [f]), before=op)
    return f


def make_island(sg: Subgraph, op: Operator, inputs: Mapping[int, str], outputs: Iterable[int]) -> None:
    """Rewrite ``op`` into DEQUANTIZE -> float ``op`` -> QUANTIZE. ``inputs[i]`` is "dequantize" (an
    activation, converted at run time) or "constant" (a quantized constant, made float now);
    each of ``outputs`` is quantized back into its original tensor, which keeps its parameters."""
    for i, how in inputs.items():
        t = op.inputs[i]
        f = (sg.new_constant(f"{t.name}/float", dequantized(t)) if how == "constant"
             else dequantize_before(sg, t, op))
        sg.set_input(op, i, f)
    after = op
    for i in outputs:
        t = op.outputs[i]
        f = sg.new_tensor(f"{t.name}/float", F32, t.shape, shape_signature=t.shape_signature)
        sg.set_output(op, i, f)
        after = sg.add_op(Operator(builtin_opcode("QUANTIZE", QTYPES[t.dtype]), [f], [t]), after=after)
