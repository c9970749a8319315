"""tflc.capabilities: predicates over real ops of converter-built models, their reasons and docs."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tflc import capabilities as cap
from tflc.io import read_model


@pytest.fixture(scope="module")
def ops(zoo):
    """A few real ops: an int8 and a float32 CONV_2D, a transformer's BATCH_MATMUL and FC."""
    int8 = read_model(zoo("mobilenet_tiny_int8")).main
    f32 = read_model(zoo("mobilenet_tiny")).main
    tr = read_model(zoo("transformer_encoder")).main
    return {"conv_int8": int8.ops_of_type("CONV_2D")[0], "conv": f32.ops_of_type("CONV_2D")[0],
            "bmm": tr.ops_of_type("BATCH_MATMUL")[0], "fc": tr.ops_of_type("FULLY_CONNECTED")[0]}


def test_op_type_and_dtypes(ops):
    conv = cap.op_type("CONV_2D", "DEPTHWISE_CONV_2D")
    assert conv(ops["conv"]) == (True, "")
    assert conv(ops["bmm"]) == (False, "op is BATCH_MATMUL, needs CONV_2D or DEPTHWISE_CONV_2D")
    assert cap.dtype_in(0, "FLOAT32")(ops["conv_int8"]) == (False, "input 0 is INT8, needs FLOAT32")
    assert cap.dtype_in("all", "FLOAT32")(ops["conv"]) == (True, "")
    assert cap.dtype_in("inputs", "INT8")(ops["conv_int8"]) == (False, "input 2 (bias) is INT32, needs INT8")
    assert cap.dtype_in(cap.output_tensor(0), "INT8", "INT16")(ops["conv_int8"]) == (True, "")
    assert cap.dtype_in(5, "FLOAT32")(ops["conv"]) == (False, "CONV_2D has no input 5")
    assert cap.dtype_in(cap.input_tensor(5, optional=True), "FLOAT32")(ops["conv"]) == (True, "")
    with pytest.raises(ValueError, match="tensor type names"):
        cap.dtype_in(0, "FLOAT31")


def test_shapes_and_constants(ops):
    bmm, fc = ops["bmm"], ops["fc"]
    assert cap.rank_le(3, 0)(bmm) == (False, "input 0 has rank 4, needs rank <= 3")
    assert cap.rank_le(4, "all")(bmm) == (True, "")
    assert cap.rank_in(1, 2)(fc) == (True, "")                      # the FC's weights are 2-D
    dyn = tuple(bmm.inputs[0].shape_signature)
    assert cap.static_shape(0)(bmm) == (False, f"input 0 has the dynamic shape {list(dyn)}, needs a static shape")
    mult4 = cap.shape_where(1, lambda s: s[-1] % 4 == 0, "the last dimension a multiple of 4")
    assert mult4(fc) == (True, "")
    odd = cap.shape_where(1, lambda s: s[-1] % 3 == 0, "the last dimension a multiple of 3")
    assert odd(fc) == (False, f"input 1 (filter) has shape {list(fc.inputs[1].shape)}, needs the last dimension "
                              "a multiple of 3")
    assert cap.const_input(1)(fc) == (True, "")
    assert cap.const_input(0)(fc) == (False, "input 0 is computed at run time, needs a constant")


def test_quantization_predicates(ops):
    q8, f = ops["conv_int8"], ops["conv"]
    assert cap.per_channel_quant(1)(q8) == (True, "")
    assert cap.per_tensor_quant(0)(q8) == (True, "")
    assert cap.per_tensor_quant(1)(q8) == (False, "input 1 (filter) is quantized per channel (axis 0), needs "
                                                  "per-tensor quantization")
    assert cap.per_channel_quant(1)(f) == (False, "input 1 (filter) is not quantized, needs per-channel quantization")
    assert cap.quantized("inputs")(q8) == (True, "") and cap.unquantized("all")(f) == (True, "")
    ok, why = cap.same_quant(0, 0)(q8)
    assert not ok and why.startswith("input 0 and output 0 are quantized differently (scale ")
    assert cap.same_quant(0, 0)(f) == (True, "")                     # neither is quantized


def test_options(ops):
    conv = ops["conv"]                                              # SAME padding, fused RELU6
    assert cap.option_eq("padding", "SAME")(conv) == (True, "")
    assert cap.option_eq("padding", "VALID")(conv) == (False, "padding is SAME, needs VALID")
    assert cap.option_eq("fusedActivationFunction", 3)(conv) == (True, "")      # (values by number too)
    assert cap.option_in("fusedActivationFunction", "NONE", "RELU")(conv) == (False, "fusedActivationFunction is "
                                                                                    "RELU6, needs NONE or RELU")
    assert cap.option_eq("keepNumDims", True)(conv) == (False, "CONV_2D has no option keepNumDims")
    with pytest.raises(ValueError, match="has no value 'RELU7'"):
        cap.option_eq("fusedActivationFunction", "RELU7")


def test_combinators_explain_the_failing_part(ops):
    xnn_conv = cap.all_of(cap.op_type("CONV_2D"), cap.dtype_in("all", "FLOAT32"), cap.const_input(1),
                          cap.rank_le(4, 0))
    assert xnn_conv(ops["conv"]) == (True, "")
    assert xnn_conv(ops["conv_int8"]) == (False, "input 0 is INT8, needs FLOAT32")
    float_or_int8 = cap.any_of(cap.dtype_in(0, "FLOAT32"), cap.all_of(cap.dtype_in(0, "INT8"), cap.per_channel_quant(1)))
    assert float_or_int8(ops["conv"]) == float_or_int8(ops["conv_int8"]) == (True, "")
    assert cap.any_of(cap.dtype_in(0, "INT16"), cap.rank_le(2, 0))(ops["conv"]) == (
        False, "input 0 is FLOAT32, needs INT16; or input 0 has rank 4, needs rank <= 2")
    int8_per_tensor = cap.implies(cap.dtype_in(0, "INT8"), cap.per_tensor_quant(1))
    assert int8_per_tensor(ops["conv"]) == (True, "")                # not INT8: no constraint
    assert int8_per_tensor(ops["conv_int8"]) == (
        False, "input 1 (filter) is quantized per channel (axis 0), needs per-tensor quantization (as input 0 is INT8)")
    no_bmm = cap.not_(cap.op_type("BATCH_MATMUL"), "BATCH_MATMUL runs on the CPU")
    assert no_bmm(ops["bmm"]) == (False, "BATCH_MATMUL runs on the CPU") and no_bmm(ops["fc"]) == (True, "")
    custom = cap.predicate("has at most 3 inputs", lambda op: (len(op.inputs) <= 3, f"{len(op.inputs)} inputs"))
    assert custom(ops["fc"])[0] and custom.describe() == "has at most 3 inputs"


def test_descriptions_for_docs():
    xnn_conv = cap.all_of(cap.op_type("CONV_2D", "DEPTHWISE_CONV_2D"), cap.dtype_in("all", "FLOAT32"),
                          cap.const_input(1), cap.rank_le(4, 0))
    assert xnn_conv.describe() == ("(op is CONV_2D or DEPTHWISE_CONV_2D) and every tensor is FLOAT32 and input 1 is "
                                   "constant and input 0 has rank <= 4")
    either = cap.any_of(cap.dtype_in(0, "FLOAT32"), cap.all_of(cap.dtype_in(0, "INT8"), cap.per_channel_quant(1)))
    assert either.describe() == "input 0 is FLOAT32 or (input 0 is INT8 and input 1 is quantized per channel)"
    assert cap.implies(cap.dtype_in(0, "INT8"), cap.same_quant(0, 0)).describe() == \
        "if input 0 is INT8: input 0 and output 0 have the same quantization"
    assert cap.option_eq("fusedActivationFunction", "NONE").describe() == "fusedActivationFunction is NONE"
    assert cap.not_(cap.op_type("CUSTOM_X")).describe() == "not (op is CUSTOM_X)"


def test_capabilities_sit_just_above_the_ir():
    """It may import tflc.ir and tflc.schema only (kernels, delegates and docs build on it)."""
    src = Path(cap.__file__).read_text()
    imported = set()
    for node in ast.walk(ast.parse(src)):
        if isinstance(node, ast.ImportFrom) and node.level:
            imported.add((node.module or "").split(".")[0])
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("tflc"):
            imported.add(node.module.split(".")[1])
        elif isinstance(node, ast.Import):
            imported.update(a.name.split(".")[1] for a in node.names if a.name.startswith("tflc."))
    assert imported <= {"ir", "schema"}, imported
