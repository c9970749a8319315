"""The IR's shared readings: quantization (tflc.ir.quant), constant ints (tflc.ir.constants) and
op facts (tflc.ir.opinfo), each checked on hand-made tensors and on converter-built models."""
from __future__ import annotations

import numpy as np
import pytest

from tflc.io import read_model
from tflc.ir.constants import const_ints, permutation
from tflc.ir.core import Tensor
from tflc.ir.opinfo import (DATA_MOVEMENT_OPS, ELEMENTWISE_BINARY, ELEMENTWISE_UNARY, LINEAR_OPS, WEIGHT_INPUTS,
                            is_elementwise, weight_input, weight_inputs)
from tflc.ir.quant import is_per_channel, is_quantized, quant_params, same_quantization
from tflc.schema import TYPE_CODES, fb
from tflc.testing.graphs import add_model

I8, F32, I32 = TYPE_CODES["INT8"], TYPE_CODES["FLOAT32"], TYPE_CODES["INT32"]


def _q(scale, zero_point=None, axis=0, lo=None, hi=None) -> fb.QuantizationParametersT:
    q = fb.QuantizationParametersT()
    q.scale = np.asarray(scale, np.float32)
    q.zeroPoint = None if zero_point is None else np.asarray(zero_point, np.int64)
    q.quantizedDimension = axis
    q.min, q.max = lo, hi
    return q


def _t(q=None, shape=(2, 3)) -> Tensor:
    return Tensor("t", I8 if q is not None else F32, shape, quantization=q)


# --- quantization ---------------------------------------------------------------------------------

def test_same_quantization_compares_scale_zero_point_and_per_channel_axis():
    assert same_quantization(_t(_q([0.5], [3])), _t(_q([0.5], [3])))
    assert not same_quantization(_t(_q([0.5], [3])), _t(_q([0.25], [3])))
    assert not same_quantization(_t(_q([0.5], [3])), _t(_q([0.5], [4])))
    # per channel, the quantized dimension says which scale goes with which element
    assert not same_quantization(_t(_q([0.5, 0.25], [0, 0], axis=0), (2, 2)),
                                 _t(_q([0.5, 0.25], [0, 0], axis=1), (2, 2)))
    assert same_quantization(_t(_q([0.5, 0.25], [0, 0], axis=1), (2, 2)),
                             _t(_q([0.5, 0.25], None, axis=1), (2, 2)))       # missing zero points are 0
    # per tensor, the axis field means nothing; min/max are calibration ranges no kernel reads
    assert same_quantization(_t(_q([0.5], [0], axis=0)), _t(_q([0.5], [0], axis=2)))
    assert same_quantization(_t(_q([0.5], [0], lo=[-1.0], hi=[1.0])), _t(_q([0.5], [0])))
    assert same_quantization(_t(), _t()) and same_quantization(_t(), _t(fb.QuantizationParametersT()))
    assert not same_quantization(_t(), _t(_q([0.5], [0])))


def test_quant_params_normalize():
    p = quant_params(_t(_q([0.5, 0.25], None, axis=1), (3, 2)))
    assert p.scale == (0.5, 0.25) and p.zero_point == (0, 0) and p.axis == 1 and p.per_channel
    assert quant_params(_t()) is None and quant_params(_t(fb.QuantizationParametersT())) is None
    assert quant_params(_t(_q([0.5], [7], axis=3))).axis == 0


def test_quantization_of_a_converted_int8_model(zoo):
    m = read_model(zoo("mobilenet_tiny_int8"))
    conv = m.main.ops_of_type("CONV_2D")[0]
    x, w = conv.inputs[0], conv.inputs[1]
    assert is_quantized(x) and not is_per_channel(x)
    assert is_per_channel(w) and quant_params(w).axis == 0 and len(quant_params(w).scale) == w.shape[0]
    assert same_quantization(w, w) and not same_quantization(x, w)
    assert not any(is_quantized(t) for t in read_model(zoo("tiny_mlp")).main.tensors if t.dtype == F32)


# --- constant ints ----------------------------------------------------------------------------------

def test_const_ints_and_permutation():
    m = add_model()
    sg = m.main
    perm = sg.new_constant("perm", np.asarray([0, 2, 1], np.int32))
    assert const_ints(perm) == (0, 2, 1) and permutation(perm) == (0, 2, 1)
    assert permutation(sg.new_constant("p", np.asarray([0, 0, 1], np.int64))) is None
    assert const_ints(sg.new_constant("axes", np.asarray([[1], [-1]], np.int64))) == (1, -1)
    assert const_ints(sg.tensor("c")) is None                 # float
    assert const_ints(sg.inputs[0]) is None and const_ints(None) is None


# --- op facts -----------------------------------------------------------------------------------------

def test_weight_inputs_by_role():
    m = add_model()
    op = m.main.operators[0]
    assert weight_inputs(op) == ()                            # ADD: none
    assert WEIGHT_INPUTS["CONV_2D"] == {1: "filter", 2: "bias"}
    assert WEIGHT_INPUTS["TRANSPOSE_CONV"] == {1: "filter", 3: "bias"}
    assert WEIGHT_INPUTS["BATCH_MATMUL"] == {}
    assert LINEAR_OPS <= set(WEIGHT_INPUTS)


@pytest.mark.parametrize("name", ["mobilenet_tiny", "mobilenet_tiny_int8", "tiny_mlp", "transformer_encoder"])
def test_weight_inputs_are_constants_in_converted_models(zoo, name):
    """The converter's weighted ops read constants (or DEQUANTIZEd constants) where WEIGHT_INPUTS says."""
    m = read_model(zoo(name))
    seen = 0
    for op in m.operators():
        for i in weight_inputs(op):
            t = op.inputs[i] if i < len(op.inputs) else None
            if t is None:
                continue                                      # an optional bias left out
            src = t.producer.inputs[0] if t.producer is not None and t.producer.type == "DEQUANTIZE" else t
            assert src.is_constant, f"{op.type} input {i} ({WEIGHT_INPUTS[op.type][i]})"
            seen += 1
    assert seen
    fc = next((op for op in m.operators() if op.type in LINEAR_OPS), None)
    assert fc is not None and weight_input(fc, "filter") == 1 and weight_input(fc, "bias") == 2


def test_elementwise_and_data_movement_sets():
    m = add_model(relu=True)
    add, relu = m.main.operators
    assert is_elementwise(add) and is_elementwise(relu)
    assert not ELEMENTWISE_UNARY & ELEMENTWISE_BINARY
    assert {"RESHAPE", "TRANSPOSE", "GATHER", "EQUAL", "LOGICAL_NOT"} <= DATA_MOVEMENT_OPS
    assert not DATA_MOVEMENT_OPS & {"ADD", "MUL", "CONV_2D"}
