"""tflc.capabilities, the predicates the delegate targets added: input/output counts, stored
dimensions, constants behind an unpacking op, scale ratios, option conditions, constant values."""
from __future__ import annotations

import numpy as np

from tflc import capabilities as cap
from tflc.ir.build import add_op, new_model
from tflc.schema import TYPE_CODES, fb

F32, F16, I8, I32 = (TYPE_CODES[n] for n in ("FLOAT32", "FLOAT16", "INT8", "INT32"))


def _q(scale, zero_point=0):
    q = fb.QuantizationParametersT()
    q.scale = np.atleast_1d(np.asarray(scale, np.float32))
    q.zeroPoint = np.atleast_1d(np.asarray(zero_point, np.int64))
    return q


def _graph():
    """x (int8) + eps (int8 constant, tiny scale) -> y; DEQUANTIZE(fp16 const) -> w; FC(x2, w);
    SOFTMAX(beta 2); a RESHAPE whose output is stored with a zero dimension."""
    m, sg = new_model()
    x = sg.new_tensor("x", I8, (1, 4), quantization=_q(0.05))
    eps = sg.new_constant("eps", np.ones((1, 4), np.int8), I8, quantization=_q(1e-5))
    y = sg.new_tensor("y", I8, (1, 4), quantization=_q(0.05))
    add = add_op(sg, "ADD", [x, eps], [y], fb.AddOptionsT(), fb.BuiltinOptions.AddOptions)
    w16 = sg.new_constant("w16", np.ones((3, 4), np.float16))
    w = sg.new_tensor("w", F32, (3, 4))
    dq = add_op(sg, "DEQUANTIZE", [w16], [w])
    x2 = sg.new_tensor("x2", F32, (1, 4))
    h = sg.new_tensor("h", F32, (1, 3))
    fc = add_op(sg, "FULLY_CONNECTED", [x2, w, None], [h], fb.FullyConnectedOptionsT(),
                fb.BuiltinOptions.FullyConnectedOptions)
    s = sg.new_tensor("s", F32, (1, 3))
    softmax = add_op(sg, "SOFTMAX", [h], [s], fb.SoftmaxOptionsT(beta=2.0), fb.BuiltinOptions.SoftmaxOptions)
    e = sg.new_tensor("e", F32, (1, 0, 3))
    reshape = add_op(sg, "RESHAPE", [s, sg.new_constant("shape", np.array([1, 0, 3], np.int32))], [e])
    return {"add": add, "dq": dq, "fc": fc, "softmax": softmax, "reshape": reshape}


def test_counts():
    ops = _graph()
    assert cap.num_inputs(3)(ops["fc"]) == (True, "")                       # the absent bias counts
    assert cap.num_inputs(2)(ops["fc"]) == (False, "FULLY_CONNECTED has 3 inputs, needs 2")
    assert cap.num_inputs(2, 5)(ops["add"]) == (True, "")
    assert cap.num_outputs(2, 4)(ops["add"]) == (False, "ADD has 1 output, needs 2 to 4")
    assert cap.num_inputs(1).describe() == "the op has 1 input"
    assert cap.num_outputs(2, 4).describe() == "the op has 2 to 4 outputs"


def test_positive_dims():
    ops = _graph()
    assert cap.positive_dims("all")(ops["add"]) == (True, "")
    assert cap.positive_dims(cap.output_tensor(0))(ops["reshape"]) == (
        False, "output 0 has shape [1, 0, 3], needs every dimension to be at least 1")


def test_constant_or_from():
    ops = _graph()
    unpack = cap.predicate("a DEQUANTIZE of a constant", lambda op: (
        (True, "") if op.type == "DEQUANTIZE" and op.inputs[0].is_constant else (False, "not an unpacking")))
    assert cap.constant_or_from(1, unpack)(ops["fc"]) == (True, "")           # weights behind a DEQUANTIZE
    assert cap.const_input(1)(ops["fc"])[0] is False                         # not constant themselves
    assert cap.constant_or_from(1, unpack)(ops["add"]) == (True, "")          # a plain constant
    assert cap.constant_or_from(0, unpack)(ops["fc"]) == (
        False, "input 0 is computed at run time, needs a constant or a DEQUANTIZE of a constant")
    assert cap.constant_or_from(0, unpack)(ops["softmax"]) == (
        False, "input 0 is computed at run time (made by FULLY_CONNECTED), needs a constant or a DEQUANTIZE of a "
               "constant")


def test_scale_ratio():
    ops = _graph()
    ratio = cap.scale_ratio(1, cap.output_tensor(0), 1 / 1024, 256, bounds="[1/1024, 256)")
    assert ratio(ops["add"]) == (False, "input 1's scale / output 0's scale = 0.0002, needs it in [1/1024, 256)")
    assert cap.scale_ratio(0, cap.output_tensor(0), 1 / 1024, 256)(ops["add"]) == (True, "")
    product = cap.scale_ratio([0, 1], cap.output_tensor(0), 1 / 65536, 256, bounds="[1/65536, 256)")
    assert product(ops["add"]) == (False, "input 0's scale x input 1's scale / output 0's scale = 1e-05, needs it "
                                          "in [1/65536, 256)")                # 0.05 * 1e-5 / 0.05 < 2^-16
    assert cap.scale_ratio([0, 1], cap.output_tensor(0), 1 / 1e6, 256)(ops["add"]) == (True, "")
    assert cap.scale_ratio(0, cap.output_tensor(0), 2, 3, high_inclusive=True).describe() == (
        "input 0's scale / output 0's scale is in [2, 3]")
    assert ratio(ops["softmax"]) == (False, "SOFTMAX has no input 1")
    assert cap.scale_ratio(0, cap.output_tensor(0), 2, 3)(ops["softmax"]) == (True, "")   # float: no constraint


def test_option_where_and_const_values():
    ops = _graph()
    beta = cap.option_where("beta", lambda b: b == 1.0, "beta == 1")
    assert beta(ops["softmax"]) == (False, "beta is 2.0, needs beta == 1")
    act = cap.option_where("fusedActivationFunction", lambda v: v == 0, "NONE")
    assert act(ops["add"]) == (True, "")
    assert cap.option_where("beta", lambda b: b == 1.0, "beta == 1")(ops["dq"]) == (
        False, "DEQUANTIZE has no options (beta reads as 0), needs beta == 1")
    positive = cap.const_values(1, lambda v: (v > 0).all(), "every value > 0")
    assert positive(ops["reshape"]) == (False, "input 1 is [1, 0, 3], needs every value > 0")
    assert positive(ops["softmax"]) == (False, "SOFTMAX has no input 1")
    assert cap.const_values(0, lambda v: True, "anything")(ops["softmax"]) == (
        False, "input 0 is computed at run time, needs a constant with anything")
