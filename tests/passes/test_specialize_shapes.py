"""specialize-shapes: with --input-shape, every shape becomes static and the shape arithmetic
folds; outputs for the given shapes stay bit-identical (only integer shape arithmetic is folded).
Data-dependent shapes stay dynamic."""
from __future__ import annotations

import numpy as np
import pytest

from tflc.io import read_model, serialize
from tflc.ir.core import Model
from tflc.ir.verify import verify
from tflc.optimize import optimize_file
from tflc.passes_api import get_pass, parse_pipeline
from tflc.passmanager import PassContext, run_pipeline
from tflc.runtime import RunOptions, compare_models
from tflc.schema import TYPE_CODES, fb
from tflc.testing.graphs import add_op as _op

F32, I32, I64, BOOL = (TYPE_CODES[n] for n in ("FLOAT32", "INT32", "INT64", "BOOL"))
TOKENS = "serving_default_token_ids:0"
SHAPE_OPS = {"SHAPE", "GATHER", "REDUCE_PROD", "CONCATENATION", "PACK"}


def _specialize(m: Model, shapes: dict | None):
    ctx = PassContext(shapes=dict(shapes or {}))
    changed = get_pass("specialize-shapes")().run(m, ctx)
    verify(m, after="specialize-shapes")
    return changed, ctx


def _dynamic_tensors(m: Model) -> list[str]:
    return [t.name for t in m.main.tensors
            if not t.is_constant and t.shape_signature is not None and any(d < 0 for d in t.shape_signature)]


def _where_model() -> Model:
    """y1 = relu(reshape(x, [prod(shape(x))])); y2 = shape(where(x > 0)) + 1 (data-dependent)."""
    m = Model(description="specialize-shapes test")
    sg = m.add_subgraph("main")
    x = sg.new_tensor("x", F32, (1, 4), shape_signature=(-1, 4))
    sx = sg.new_tensor("sx", I32, (2,))
    o = fb.ShapeOptionsT()
    o.outType = I32
    _op(sg, "SHAPE", [x], [sx], o, fb.BuiltinOptions.ShapeOptions)
    n = sg.new_tensor("n", I32, ())
    ro = fb.ReducerOptionsT()
    ro.keepDims = False
    _op(sg, "REDUCE_PROD", [sx, sg.new_constant("axis", np.asarray([0], np.int32))], [n], ro,
        fb.BuiltinOptions.ReducerOptions)
    ns = sg.new_tensor("ns", I32, (1,))
    _op(sg, "RESHAPE", [n, sg.new_constant("one_d", np.asarray([1], np.int32))], [ns])
    flat = sg.new_tensor("flat", F32, (4,), shape_signature=(-1,))
    _op(sg, "RESHAPE", [x, ns], [flat])
    y1 = sg.new_tensor("y1", F32, (4,), shape_signature=(-1,))
    _op(sg, "RELU", [flat], [y1])
    g = sg.new_tensor("positive", BOOL, (1, 4), shape_signature=(-1, 4))
    _op(sg, "GREATER", [x, sg.new_constant("zero", np.zeros((), np.float32))], [g])
    w = sg.new_tensor("where", I64, (1, 2), shape_signature=(-1, 2))
    _op(sg, "WHERE", [g], [w])
    sw = sg.new_tensor("sw", I32, (2,))
    _op(sg, "SHAPE", [w], [sw], o, fb.BuiltinOptions.ShapeOptions)
    y2 = sg.new_tensor("y2", I32, (2,))
    _op(sg, "ADD", [sw, sg.new_constant("ones", np.ones(2, np.int32))], [y2], fb.AddOptionsT(),
        fb.BuiltinOptions.AddOptions)
    sg.set_graph_inputs([x]), sg.set_graph_outputs([y1, y2])
    return m


def test_shapes_fold_but_data_dependent_shapes_stay_dynamic():
    m = _where_model()
    before = serialize(m)
    changed, ctx = _specialize(m, {"x": (3, 4)})
    sg = m.main
    assert changed
    assert [op.type for op in sg.operators] == ["RESHAPE", "RELU", "GREATER", "WHERE", "SHAPE", "ADD"]
    assert sg.inputs[0].shape == (3, 4) and sg.inputs[0].shape_signature == (3, 4)
    assert sg.tensor("flat").shape == (12,) and sg.tensor("flat").shape_signature == (12,)
    assert sg.tensor("ns").is_constant and sg.tensor("ns").data.tolist() == [12]
    assert sg.tensor("where").shape_signature == (-1, 2)          # depends on the values of x
    assert _dynamic_tensors(m) == ["where"]
    assert any("keep a dynamic shape" in n for n in ctx.messages)
    for xnn in (True, False):
        cmp, _ = compare_models(before, serialize(m), options=RunOptions(xnnpack=xnn), steps=3,
                                shapes={"x": (3, 4)})
        assert cmp.identical, cmp.to_json()


def test_without_input_shapes_a_dynamic_model_is_left_alone():
    m = _where_model()
    before = serialize(m)
    changed, ctx = _specialize(m, None)
    assert not changed and serialize(m) == before
    assert any("--input-shape x:" in n for n in ctx.messages)


@pytest.mark.parametrize("shape,why", [((3, 5), "does not fit"), ((12,), "does not fit")])
def test_input_shape_that_does_not_fit_changes_nothing(shape, why):
    m = _where_model()
    before = serialize(m)
    changed, ctx = _specialize(m, {"x": shape})
    assert not changed and serialize(m) == before
    assert any(why in n for n in ctx.messages)


def test_unknown_input_name_is_reported():
    m = _where_model()
    changed, ctx = _specialize(m, {"x": (2, 4), "nope": (1,)})
    assert changed
    assert any("no input named 'nope'" in n for n in ctx.messages)


@pytest.mark.parametrize("variant", ["transformer_encoder", "transformer_encoder_fp16"])
def test_transformer_encoder_becomes_static(zoo, variant):
    path = zoo(variant)
    m = read_model(path)
    n = len(m.main.operators)
    shapes = {TOKENS: (1, 32)}
    changed, _ = _specialize(m, shapes)
    assert changed
    types = [op.type for op in m.main.operators]
    assert not SHAPE_OPS & set(types) - {"GATHER"} and types.count("GATHER") == 1   # the embedding lookup
    assert len(types) == n - 28                   # 4 x (SHAPE, 2 GATHER, 2 REDUCE_PROD, CONCATENATION, PACK)
    assert _dynamic_tensors(m) == []
    assert m.main.inputs[0].shape == (1, 32)
    cmp, _ = compare_models(str(path), serialize(m), steps=2, shapes=shapes)
    assert cmp.identical, cmp.to_json()
    # then the reshapes that became identities (or layout-only around FULLY_CONNECTED) go too
    run_pipeline(m, parse_pipeline("remove-identity,remove-dead-code"), PassContext())
    verify(m)
    # 4 RESHAPEs to the same shape, 4 x 2 RESHAPEs around FULLY_CONNECTED (now keep_num_dims)
    assert len(m.main.operators) == n - 28 - 12
    assert len(m.main.ops_of_type("RESHAPE")) == 8
    cmp, _ = compare_models(str(path), serialize(m), steps=2, shapes=shapes)
    assert cmp.identical, cmp.to_json()


def test_transformer_with_batch_4(zoo):
    path = zoo("transformer_encoder")
    m = read_model(path)
    shapes = {TOKENS: (4, 32)}
    _specialize(m, shapes)
    assert m.main.outputs[0].shape == (4, 64)
    cmp, _ = compare_models(str(path), serialize(m), steps=1, shapes=shapes)
    assert cmp.identical, cmp.to_json()


def test_through_optimize(zoo, tmp_path):
    out = tmp_path / "static.tflite"
    res = optimize_file(zoo("transformer_encoder"), out, passes="specialize-shapes,remove-identity,remove-dead-code",
                        shapes={TOKENS: (1, 32)})
    assert res.check["identical"] and res.after["ops"] <= 0.7 * res.before["ops"]
    m = read_model(out)
    assert m.main.inputs[0].shape_signature in (None, (1, 32)) and _dynamic_tensors(m) == []


def test_static_real_models_are_unchanged(shared_model):
    m = read_model(shared_model)
    before = serialize(m)
    changed, _ = _specialize(m, None)
    assert not changed and serialize(m) == before
