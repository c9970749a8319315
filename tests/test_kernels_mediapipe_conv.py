"""MediaPipe's Convolution2DTransposeBias: XNNPACK runs it; without XNNPACK tflc's fallback kernel
does (what calibration needs), agreeing with XNNPACK's own kernel to float32 rounding."""
from __future__ import annotations

import struct

import numpy as np
import pytest

from tflc.io import serialize
from tflc.ir.build import custom_opcode, new_model
from tflc.ir.core import Operator
from tflc.runtime import RunOptions, Session
from tflc.schema import TYPE_CODES

from tflc.kernels import mediapipe_conv as MC

F32 = TYPE_CODES["FLOAT32"]


def _model(x_shape, k, ci, co, stride, padding):
    rng = np.random.default_rng(sum(x_shape) + k + stride + padding)
    m, sg = new_model("transpose conv bias")
    x = sg.new_tensor("x", F32, x_shape)
    w = sg.new_constant("w", rng.standard_normal((co, k, k, ci)).astype(np.float32))
    b = sg.new_constant("b", rng.standard_normal(co).astype(np.float32))
    opts = struct.pack("<iii", padding, stride, stride)
    out_shape = MC.output_shape(x_shape, (co, k, k, ci), opts)
    y = sg.new_tensor("y", F32, out_shape)
    sg.add_op(Operator(custom_opcode(MC.CODE), [x, w, b], [y], custom_options=opts))
    sg.set_graph_inputs([x])
    sg.set_graph_outputs([y])
    return serialize(m)


@pytest.mark.parametrize("k,stride,padding", [(2, 2, MC.SAME), (3, 2, MC.SAME), (4, 2, MC.SAME), (3, 1, MC.SAME),
                                              (2, 2, MC.VALID), (3, 2, MC.VALID)])
def test_without_xnnpack_the_fallback_kernel_matches_xnnpack(k, stride, padding):
    data = _model((1, 9, 7, 5), k, 5, 3, stride, padding)
    with_x = Session(data, RunOptions(xnnpack=True))
    assert with_x.kernel_delegate is None          # XNNPACK keeps the op: the fallback is not used
    without = Session(data, RunOptions(xnnpack=False))
    assert without.kernel_delegate is not None
    x = np.random.default_rng(0).standard_normal((1, 9, 7, 5)).astype(np.float32)
    a, b = with_x.run([x])[0], without.run([x])[0]
    assert a.shape == b.shape
    np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-5 * float(np.abs(a).max()))


def test_bad_options_are_refused_with_the_reason():
    with pytest.raises(ValueError, match="12-byte"):
        MC.transpose_conv_bias([np.zeros((1, 2, 2, 1), np.float32), np.zeros((1, 2, 2, 1), np.float32),
                                np.zeros(1, np.float32)], b"\x01")
