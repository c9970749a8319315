"""Small int8 graphs shared by the kernel tests."""
from __future__ import annotations

from tflc.ir.build import add_op, new_model
from tflc.schema import TYPE_CODES, fb

I8 = TYPE_CODES["INT8"]


def _q(scale: float, zp: int) -> fb.QuantizationParametersT:
    q = fb.QuantizationParametersT()
    q.scale, q.zeroPoint = [scale], [zp]
    return q


def layer_norm_piece(n_rows: int = 64, width: int = 192):
    """x -> ADD (XNNPACK) -> SQUARED_DIFFERENCE(x, mean) (builtin in int8) -> ADD (XNNPACK)."""
    m, sg = new_model("int8 squared difference between delegated ops")
    x = sg.new_tensor("x", I8, (1, n_rows, width), quantization=_q(0.05, 0))
    mu = sg.new_tensor("mu", I8, (1, n_rows, 1), quantization=_q(0.05, 0))
    a = sg.new_tensor("a", I8, (1, n_rows, width), quantization=_q(0.1, 0))
    d = sg.new_tensor("d", I8, (1, n_rows, width), quantization=_q(0.5, -128))
    y = sg.new_tensor("y", I8, (1, n_rows, width), quantization=_q(1.0, -128))
    add_op(sg, "ADD", [x, x], [a], fb.AddOptionsT(), fb.BuiltinOptions.AddOptions)
    add_op(sg, "SQUARED_DIFFERENCE", [a, mu], [d], fb.SquaredDifferenceOptionsT(),
           fb.BuiltinOptions.SquaredDifferenceOptions)
    add_op(sg, "ADD", [d, d], [y], fb.AddOptionsT(), fb.BuiltinOptions.AddOptions)
    sg.set_graph_inputs([x, mu])
    sg.set_graph_outputs([y])
    return m
