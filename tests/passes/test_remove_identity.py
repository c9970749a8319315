"""remove-identity: every rule on a tiny hand-built graph (exact: outputs must be bit-identical
in LiteRT, with and without XNNPACK), the refusals, and converter-built / real models."""
from __future__ import annotations

import numpy as np
import pytest

from tflc.io import read_model, serialize
from tflc.ir.core import Model, Operator
from tflc.ir.verify import verify
from tflc.passes_api import get_pass
from tflc.passes_api import parse_pipeline
from tflc.passmanager import PassContext, run_pipeline
from tflc.rewrite import builtin_opcode
from tflc.runtime import RunOptions, compare_models
from tflc.schema import TYPE_CODES, fb
from tflc.testing.graphs import new_model as _model, add_op as _op

F32, I32, I8, I16 = (TYPE_CODES[n] for n in ("FLOAT32", "INT32", "INT8", "INT16"))


def _reshape(sg, x, shape, name):
    s = sg.new_constant(name + "_shape", np.asarray(shape, np.int32))
    y = sg.new_tensor(name, x.dtype, [abs(d) for d in shape], quantization=x.quantization)
    _op(sg, "RESHAPE", [x, s], [y])
    return y


def _transpose(sg, x, perm, name):
    p = sg.new_constant(name + "_perm", np.asarray(perm, np.int32))
    y = sg.new_tensor(name, x.dtype, [x.shape[i] for i in perm], quantization=x.quantization)
    _op(sg, "TRANSPOSE", [x, p], [y])
    return y


def _relu(sg, x, name):
    y = sg.new_tensor(name, x.dtype, x.shape, quantization=x.quantization)
    _op(sg, "RELU", [x], [y])
    return y


def _q(scale, zp):
    q = fb.QuantizationParametersT()
    q.scale, q.zeroPoint = [float(scale)], [int(zp)]
    return q


def _run(m: Model, ctx: PassContext | None = None):
    """Apply remove-identity to a copy read from the serialized model; return (before, after, ctx)."""
    ctx = ctx or PassContext()
    data = serialize(m)
    verify(m)
    from tflc.io import read_model_bytes
    after = read_model_bytes(data)
    changed = get_pass("remove-identity")().run(after, ctx)
    verify(after, after="remove-identity")
    return data, after, ctx, changed


def _assert_identical(before: bytes, after: Model, shapes=None):
    for xnn in (True, False):
        cmp, _ = compare_models(before, serialize(after), options=RunOptions(xnnpack=xnn), steps=2, shapes=shapes)
        assert cmp.identical, cmp.to_json()


def _types(m: Model) -> list[str]:
    return [op.type for op in m.main.operators]


# --------------------------------------------------------------------------- each rule

def test_reshape_to_same_shape_is_removed():
    m, sg = _model()
    x = sg.new_tensor("x", F32, (2, 3))
    h = _relu(sg, x, "h")
    r = _reshape(sg, h, (2, 3), "r")
    y = _relu(sg, r, "y")
    sg.set_graph_inputs([x]), sg.set_graph_outputs([y])
    before, after, _, changed = _run(m)
    assert changed and _types(after) == ["RELU", "RELU"]
    _assert_identical(before, after)


def test_reshape_with_dynamic_batch_spelled_out_is_removed():
    m, sg = _model()
    x = sg.new_tensor("x", F32, (1, 4, 8), shape_signature=(-1, 4, 8))
    h = _relu(sg, x, "h")
    h.shape_signature = (-1, 4, 8)
    r = _reshape(sg, h, (-1, 4, 8), "r")
    r.shape, r.shape_signature = (1, 4, 8), (-1, 4, 8)
    y = _relu(sg, r, "y")
    y.shape_signature = (-1, 4, 8)
    sg.set_graph_inputs([x]), sg.set_graph_outputs([y])
    before, after, _, _ = _run(m)
    assert _types(after) == ["RELU", "RELU"]
    for batch in (1, 3):
        _assert_identical(before, after, shapes={"x": (batch, 4, 8)})


def test_reshape_with_dynamic_batch_that_moves_elements_is_kept():
    m, sg = _model()
    x = sg.new_tensor("x", F32, (1, 4, 8), shape_signature=(-1, 4, 8))
    r = _reshape(sg, x, (4, -1, 8), "r")           # [-1,4,8] -> [4,-1,8]: not the same layout
    r.shape_signature = (4, -1, 8)
    y = _relu(sg, r, "y")
    sg.set_graph_inputs([x]), sg.set_graph_outputs([y])
    _, after, _, changed = _run(m)
    assert not changed and _types(after) == ["RESHAPE", "RELU"]


def test_reshape_chain_becomes_one_reshape():
    m, sg = _model()
    x = sg.new_tensor("x", F32, (2, 3, 4))
    h = _relu(sg, x, "h")
    a = _reshape(sg, h, (6, 4), "a")
    b = _reshape(sg, a, (4, 6), "b")
    y = _relu(sg, b, "y")
    sg.set_graph_inputs([x]), sg.set_graph_outputs([y])
    before, after, _, _ = _run(m)
    assert _types(after) == ["RELU", "RESHAPE", "RELU"]
    assert after.main.operators[1].inputs[0].name == "h"
    _assert_identical(before, after)


def test_reshape_chain_with_shared_middle_is_kept_with_a_note():
    m, sg = _model()
    x = sg.new_tensor("x", F32, (2, 3, 4))
    h = _relu(sg, x, "h")
    a = _reshape(sg, h, (6, 4), "a")
    b = _reshape(sg, a, (4, 6), "b")
    y1, y2 = _relu(sg, b, "y1"), _relu(sg, a, "y2")
    sg.set_graph_inputs([x]), sg.set_graph_outputs([y1, y2])
    _, after, ctx, changed = _run(m)
    assert not changed and _types(after).count("RESHAPE") == 2
    assert any("reshape-chain" in n and "other readers" in n for n in ctx.messages)


def test_identity_transpose_is_removed():
    m, sg = _model()
    x = sg.new_tensor("x", F32, (2, 3, 4))
    h = _relu(sg, x, "h")
    t = _transpose(sg, h, (0, 1, 2), "t")
    y = _relu(sg, t, "y")
    sg.set_graph_inputs([x]), sg.set_graph_outputs([y])
    before, after, _, _ = _run(m)
    assert _types(after) == ["RELU", "RELU"]
    _assert_identical(before, after)


@pytest.mark.parametrize("p1,p2,cancels", [((0, 2, 3, 1), (0, 3, 1, 2), True),
                                           ((1, 0, 2, 3), (1, 0, 2, 3), True),
                                           ((0, 2, 3, 1), (0, 2, 3, 1), False)])
def test_transpose_pairs(p1, p2, cancels):
    m, sg = _model()
    x = sg.new_tensor("x", F32, (1, 2, 3, 4))
    h = _relu(sg, x, "h")
    t1 = _transpose(sg, h, p1, "t1")
    t2 = _transpose(sg, t1, p2, "t2")
    y = _relu(sg, t2, "y")
    sg.set_graph_inputs([x]), sg.set_graph_outputs([y])
    before, after, _, changed = _run(m)
    assert changed == cancels
    assert _types(after) == (["RELU", "RELU"] if cancels else ["RELU", "TRANSPOSE", "TRANSPOSE", "RELU"])
    _assert_identical(before, after)


def test_transpose_pair_with_shared_inner_keeps_the_inner_one():
    m, sg = _model()
    x = sg.new_tensor("x", F32, (2, 3))
    h = _relu(sg, x, "h")
    t1 = _transpose(sg, h, (1, 0), "t1")
    t2 = _transpose(sg, t1, (1, 0), "t2")
    y1, y2 = _relu(sg, t2, "y1"), _relu(sg, t1, "y2")
    sg.set_graph_inputs([x]), sg.set_graph_outputs([y1, y2])
    before, after, _, _ = _run(m)
    assert _types(after) == ["RELU", "TRANSPOSE", "RELU", "RELU"]
    assert after.main.operators[2].inputs[0].name == "h"
    _assert_identical(before, after)


@pytest.mark.parametrize("dtype,zp", [(I8, -3), (I16, 0)])
def test_quantize_of_dequantize_with_same_params_is_removed(dtype, zp):
    m, sg = _model()
    q = sg.new_tensor("q", dtype, (1, 64), quantization=_q(0.037, zp))
    h = _relu(sg, q, "h")
    f = sg.new_tensor("f", F32, (1, 64))
    _op(sg, "DEQUANTIZE", [h], [f])
    r = sg.new_tensor("r", dtype, (1, 64), quantization=_q(0.037, zp))
    _op(sg, "QUANTIZE", [f], [r])
    y = _relu(sg, r, "y")
    sg.set_graph_inputs([q]), sg.set_graph_outputs([y])
    before, after, _, _ = _run(m)
    assert _types(after) == ["RELU", "RELU"]            # the DEQUANTIZE is dead: removed with it
    _assert_identical(before, after)


def test_quantize_of_dequantize_with_other_params_is_kept():
    m, sg = _model()
    q = sg.new_tensor("q", I8, (1, 64), quantization=_q(0.037, -3))
    h = _relu(sg, q, "h")
    f = sg.new_tensor("f", F32, (1, 64))
    _op(sg, "DEQUANTIZE", [h], [f])
    r = sg.new_tensor("r", I8, (1, 64), quantization=_q(0.05, -3))
    _op(sg, "QUANTIZE", [f], [r])
    y = _relu(sg, r, "y")
    sg.set_graph_inputs([q]), sg.set_graph_outputs([y])
    _, after, ctx, changed = _run(m)
    assert not changed and "QUANTIZE" in _types(after)
    assert any("quantize-dequantize" in n and "differ" in n for n in ctx.messages)


def test_requantize_to_the_same_params_is_removed():
    m, sg = _model()
    q = sg.new_tensor("q", I8, (1, 16), quantization=_q(0.1, 2))
    h = _relu(sg, q, "h")
    r = sg.new_tensor("r", I8, (1, 16), quantization=_q(0.1, 2))
    _op(sg, "QUANTIZE", [h], [r])
    y = _relu(sg, r, "y")
    sg.set_graph_inputs([q]), sg.set_graph_outputs([y])
    before, after, _, _ = _run(m)
    assert _types(after) == ["RELU", "RELU"]
    _assert_identical(before, after)


def test_cast_to_same_type_is_removed():
    m, sg = _model()
    x = sg.new_tensor("x", F32, (3, 5))
    h = _relu(sg, x, "h")
    c = sg.new_tensor("c", F32, (3, 5))
    _op(sg, "CAST", [h], [c])
    y = _relu(sg, c, "y")
    sg.set_graph_inputs([x]), sg.set_graph_outputs([y])
    before, after, _, _ = _run(m)
    assert _types(after) == ["RELU", "RELU"]
    _assert_identical(before, after)


def _fc(sg, x, units, name, keep=False):
    rng = np.random.default_rng(1)
    w = sg.new_constant(name + "_w", rng.normal(size=(units, x.shape[-1])).astype(np.float32))
    b = sg.new_constant(name + "_b", rng.normal(size=(units,)).astype(np.float32))
    o = fb.FullyConnectedOptionsT()
    o.keepNumDims = keep
    shape = (*x.shape[:-1], units) if keep else (int(np.prod(x.shape[:-1])), units)
    y = sg.new_tensor(name, F32, shape)
    _op(sg, "FULLY_CONNECTED", [x, w, b], [y], o, fb.BuiltinOptions.FullyConnectedOptions)
    return y


def test_reshapes_around_fully_connected_are_removed():
    m, sg = _model()
    x = sg.new_tensor("x", F32, (1, 6, 8))
    h = _relu(sg, x, "h")
    flat = _reshape(sg, h, (6, 8), "flat")
    z = _fc(sg, flat, 5, "fc")
    w = _reshape(sg, z, (1, 6, 5), "unflat")
    sg.set_graph_inputs([x]), sg.set_graph_outputs([w])
    before, after, _, _ = _run(m)
    assert _types(after) == ["RELU", "FULLY_CONNECTED"]
    fc = after.main.operators[1]
    assert fc.options.keepNumDims and fc.opcode.version >= 5
    assert fc.outputs[0].name == "unflat" and after.main.outputs[0].name == "unflat"
    _assert_identical(before, after)


def test_reshape_that_changes_the_depth_of_fully_connected_is_kept():
    m, sg = _model()
    x = sg.new_tensor("x", F32, (1, 4, 6))
    flat = _reshape(sg, x, (3, 8), "flat")
    z = _fc(sg, flat, 5, "fc")
    sg.set_graph_inputs([x]), sg.set_graph_outputs([z])
    _, after, _, changed = _run(m)
    assert not changed and _types(after) == ["RESHAPE", "FULLY_CONNECTED"]


# --------------------------------------------------------------------------- graph outputs

def test_identity_producing_a_graph_output_keeps_the_output_name():
    m, sg = _model()
    x = sg.new_tensor("x", F32, (2, 3))
    h = _relu(sg, x, "h")
    y = _reshape(sg, h, (2, 3), "out")
    z = _relu(sg, h, "other")                       # h has another reader
    sg.set_graph_inputs([x]), sg.set_graph_outputs([y, z])
    before, after, _, changed = _run(m)
    assert changed and _types(after) == ["RELU", "RELU"]
    assert [t.name for t in after.main.outputs] == ["out", "other"]
    assert after.main.operators[0].outputs[0].name == "out"
    assert after.main.operators[1].inputs[0].name == "out"
    _assert_identical(before, after)


def test_identity_between_graph_input_and_output_is_kept_with_a_note():
    m, sg = _model()
    x = sg.new_tensor("x", F32, (2, 3))
    y = _reshape(sg, x, (2, 3), "out")
    sg.set_graph_inputs([x]), sg.set_graph_outputs([y])
    _, after, ctx, changed = _run(m)
    assert not changed and _types(after) == ["RESHAPE"]
    assert any("reshape-same-shape" in n and "graph output" in n for n in ctx.messages)


# --------------------------------------------------------------------------- converter-built and real models

def test_transformer_dynamic_reshapes(zoo):
    """The dynamic-batch encoder has 4 RESHAPEs that spell out their input's [-1,4,32,32]-like
    shape; they go without any shape specialization."""
    path = zoo("transformer_encoder")
    m = read_model(path)
    n = len(m.main.operators)
    assert get_pass("remove-identity")().run(m, PassContext())
    verify(m)
    assert len(m.main.operators) == n - 4
    for batch in (1, 2):
        cmp, _ = compare_models(str(path), serialize(m), steps=1, shapes={"serving_default_token_ids:0": (batch, 32)})
        assert cmp.identical, cmp.to_json()


def test_real_models(shared_model):
    m = read_model(shared_model)
    n = sum(len(sg.operators) for sg in m.subgraphs)
    get_pass("remove-identity")().run(m, PassContext())
    verify(m)
    assert sum(len(sg.operators) for sg in m.subgraphs) <= n
    cmp, _ = compare_models(str(shared_model), serialize(m), steps=2)
    assert cmp.identical, cmp.to_json()


def _arith_model(op_type, value, swap=False):
    from tflc.ir.core import Model
    from tflc.schema import fb as _fb
    m = Model()
    sg = m.add_subgraph("main")
    x = sg.new_tensor("x", 0, (1, 4))
    c = sg.new_constant("c", np.full((1, 4), value, np.float32))
    y = sg.new_tensor("y", 0, (1, 4))
    z = sg.new_tensor("z", 0, (1, 4))
    opts_t = {"MUL": "MulOptions", "DIV": "DivOptions", "SUB": "SubOptions", "ADD": "AddOptions"}[op_type]
    sg.add_op(Operator(builtin_opcode(op_type), [c, x] if swap else [x, c], [y],
                       options=getattr(_fb, opts_t + "T")(), options_type=getattr(_fb.BuiltinOptions, opts_t)))
    sg.add_op(Operator(builtin_opcode("RELU"), [y], [z]))
    sg.set_graph_inputs([x])
    sg.set_graph_outputs([z])
    return m


@pytest.mark.parametrize("op_type,value,swap,removed", [
    ("MUL", 1.0, False, True), ("MUL", 1.0, True, True), ("DIV", 1.0, False, True),
    ("SUB", 0.0, False, True), ("ADD", -0.0, False, True),
    ("ADD", 0.0, False, False),      # -0 + 0 = +0: not an identity
    ("DIV", 1.0, True, False),       # 1 / x
    ("SUB", 0.0, True, False),       # 0 - x
    ("MUL", 2.0, False, False),
])
def test_arith_identity(op_type, value, swap, removed):
    from tflc.io import serialize
    from tflc.runtime import Session
    m = _arith_model(op_type, value, swap)
    before = serialize(m)
    run_pipeline(m, parse_pipeline("remove-identity"), PassContext())
    assert (len(m.main.operators) == 1) is removed
    x = np.array([[-0.0, 1.5, -2.25, 3e-39]], np.float32)   # signed zero and a subnormal
    a, b = Session(before).run([x])[0], Session(serialize(m)).run([x])[0]
    assert a.tobytes() == b.tobytes()
