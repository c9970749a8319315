"""fold-constants: results computed by LiteRT replace constant sub-graphs. Default folds are
exact (bit-identical outputs with the builtin kernels and with XNNPACK); fold-inexact=true is
checked against a 1e-5 relative tolerance (and bit-identical with the builtin kernels, which
computed the folded values)."""
from __future__ import annotations

import numpy as np
import pytest

from tflc.io import read_model, read_model_bytes, serialize
from tflc.ir.core import Model
from tflc.ir.verify import verify
from tflc.optimize import optimize_file
from tflc.passes_api import get_pass, parse_pipeline
from tflc.passmanager import PassContext, run_pipeline
from tflc.runtime import RunOptions, compare_models
from tflc.schema import TYPE_CODES, fb
from tflc.testing.graphs import new_model as _model, add_op as _op

F32, F16, I32, I8 = (TYPE_CODES[n] for n in ("FLOAT32", "FLOAT16", "INT32", "INT8"))


def _add(sg, a, b, name, shape=None):
    y = sg.new_tensor(name, a.dtype, shape or a.shape)
    _op(sg, "ADD", [a, b], [y], fb.AddOptionsT(), fb.BuiltinOptions.AddOptions)
    return y


def _fold(m: Model, **options):
    """Fold a copy (read back from bytes); return (original bytes, folded model, ctx, pass)."""
    verify(m)
    data = serialize(m)
    after = read_model_bytes(data)
    ctx = PassContext()
    p = get_pass("fold-constants")(**options)
    p.run(after, ctx)
    verify(after, after="fold-constants")
    return data, after, ctx, p


def _compare(before: bytes, after: Model, xnnpack: bool = True, steps: int = 2):
    cmp, _ = compare_models(before, serialize(after), options=RunOptions(xnnpack=xnnpack), steps=steps)
    return cmp


def _types(m: Model) -> list[str]:
    return [op.type for op in m.main.operators]


def _shape_chain_model():
    """out = x + reshape(gather(concat(c1, c2), idx), [2, 3]) + cast(transpose(...)): all constant."""
    m, sg = _model()
    x = sg.new_tensor("x", F32, (2, 3))
    c1 = sg.new_constant("c1", np.arange(6, dtype=np.float32).reshape(2, 3) * 0.5)
    c2 = sg.new_constant("c2", np.arange(6, dtype=np.float32).reshape(2, 3) - 2.0)
    cat = sg.new_tensor("cat", F32, (4, 3))
    o = fb.ConcatenationOptionsT()
    o.axis = 0
    _op(sg, "CONCATENATION", [c1, c2], [cat], o, fb.BuiltinOptions.ConcatenationOptions)
    idx = sg.new_constant("idx", np.asarray([3, 0], np.int32))
    g = sg.new_tensor("picked", F32, (2, 3))
    go = fb.GatherOptionsT()
    go.axis = 0
    _op(sg, "GATHER", [cat, idx], [g], go, fb.BuiltinOptions.GatherOptions)
    s = sg.new_constant("s", np.asarray([3, 2], np.int32))
    r = sg.new_tensor("r", F32, (3, 2))
    _op(sg, "RESHAPE", [g, s], [r])
    perm = sg.new_constant("perm", np.asarray([1, 0], np.int32))
    t = sg.new_tensor("t", F32, (2, 3))
    _op(sg, "TRANSPOSE", [r, perm], [t])
    y = _add(sg, x, t, "y")
    sg.set_graph_inputs([x]), sg.set_graph_outputs([y])
    return m


def test_chain_of_constant_ops_folds_in_one_run():
    m = _shape_chain_model()
    before, after, ctx, _ = _fold(m)
    assert _types(after) == ["ADD"]
    t = after.main.operators[0].inputs[1]
    assert t.name == "t" and t.is_constant and t.dtype == F32 and t.shape == (2, 3)
    expected = np.concatenate([np.arange(6.0).reshape(2, 3) * 0.5, np.arange(6.0).reshape(2, 3) - 2])[[3, 0]]
    np.testing.assert_array_equal(t.data, expected.reshape(3, 2).T.astype(np.float32))
    for xnn in (True, False):
        assert _compare(before, after, xnn).identical


def test_float_arithmetic_with_normal_values_folds_exactly():
    m, sg = _model()
    x = sg.new_tensor("x", F32, (1, 256))
    rng = np.random.default_rng(0)
    a = sg.new_constant("a", rng.uniform(-3, 3, (1, 256)).astype(np.float32))
    b = sg.new_constant("b", rng.uniform(0.5, 3, (1, 256)).astype(np.float32))
    q = sg.new_tensor("q", F32, (1, 256))
    _op(sg, "DIV", [a, b], [q], fb.DivOptionsT(), fb.BuiltinOptions.DivOptions)
    p = sg.new_tensor("p", F32, (1, 256))
    _op(sg, "MUL", [q, a], [p], fb.MulOptionsT(), fb.BuiltinOptions.MulOptions)
    y = _add(sg, x, p, "y")
    sg.set_graph_inputs([x]), sg.set_graph_outputs([y])
    before, after, _, _ = _fold(m)
    assert _types(after) == ["ADD"]
    for xnn in (True, False):
        assert _compare(before, after, xnn).identical


def test_subnormal_values_are_not_folded():
    """XNNPACK flushes subnormals to zero, the builtin kernels do not: the value depends on the
    kernels, so the MUL stays."""
    m, sg = _model()
    x = sg.new_tensor("x", F32, (1, 4))
    a = sg.new_constant("a", np.asarray([[1e-39, 2e-39, 1.0, 2.0]], np.float32))
    b = sg.new_constant("b", np.asarray([[1.0, 1.0, 1.0, 1.0]], np.float32))
    p = sg.new_tensor("p", F32, (1, 4))
    _op(sg, "MUL", [a, b], [p], fb.MulOptionsT(), fb.BuiltinOptions.MulOptions)
    y = _add(sg, x, p, "y")
    sg.set_graph_inputs([x]), sg.set_graph_outputs([y])
    _, after, ctx, _ = _fold(m)
    assert _types(after) == ["MUL", "ADD"]
    assert any("subnormal" in n for n in ctx.messages)


def _tanh_model():
    m, sg = _model()
    x = sg.new_tensor("x", F32, (1, 512))
    c = sg.new_constant("c", np.random.default_rng(0).uniform(-3, 3, (1, 512)).astype(np.float32))
    t = sg.new_tensor("tanh_c", F32, (1, 512))
    _op(sg, "TANH", [c], [t])
    y = _add(sg, x, t, "y")
    sg.set_graph_inputs([x]), sg.set_graph_outputs([y])
    return m


def test_kernel_dependent_ops_are_kept_by_default():
    before, after, ctx, p = _fold(_tanh_model())
    assert _types(after) == ["TANH", "ADD"] and p.tolerance == 0.0
    assert any("TANH" in n and "fold-inexact" in n for n in ctx.messages)
    assert _compare(before, after).identical


def test_fold_inexact_uses_the_builtin_kernels_and_declares_a_tolerance():
    before, after, _, p = _fold(_tanh_model(), fold_inexact=True)
    assert _types(after) == ["ADD"] and p.tolerance == pytest.approx(1e-5)
    assert _compare(before, after, xnnpack=False).identical          # the values came from these kernels
    assert _compare(before, after, xnnpack=True).worst_rel() <= 1e-5


def _tile_model(reps: int):
    m, sg = _model()
    x = sg.new_tensor("x", F32, (reps, 64))
    c = sg.new_constant("row", np.arange(64, dtype=np.float32).reshape(1, 64))
    mult = sg.new_constant("mult", np.asarray([reps, 1], np.int32))
    t = sg.new_tensor("tiled", F32, (reps, 64))
    _op(sg, "TILE", [c, mult], [t])
    y = _add(sg, x, t, "y")
    sg.set_graph_inputs([x]), sg.set_graph_outputs([y])
    return m


@pytest.mark.parametrize("max_bytes,folded", [(1024, False), (64 * 256 * 4, True), (0, True)])
def test_max_bytes(max_bytes, folded):
    before, after, ctx, _ = _fold(_tile_model(256), max_bytes=max_bytes)   # result: 64 KiB from 264 B
    assert _types(after) == (["ADD"] if folded else ["TILE", "ADD"])
    if not folded:
        assert any("max-bytes" in n for n in ctx.messages)
    assert _compare(before, after).identical


def test_large_intermediate_is_skipped_but_its_small_consumer_folds():
    m, sg = _model()
    x = sg.new_tensor("x", F32, (1,))
    c = sg.new_constant("row", np.arange(64, dtype=np.float32).reshape(1, 64))
    mult = sg.new_constant("mult", np.asarray([512, 1], np.int32))
    t = sg.new_tensor("tiled", F32, (512, 64))
    _op(sg, "TILE", [c, mult], [t])
    z = sg.new_tensor("z", F32, (1,))
    s = sg.new_constant("s", np.asarray([1], np.int32))
    sl = sg.new_tensor("first", F32, (1, 1))
    _op(sg, "SLICE", [t, sg.new_constant("begin", np.asarray([511, 63], np.int32)),
                      sg.new_constant("size", np.asarray([1, 1], np.int32))], [sl])
    _op(sg, "RESHAPE", [sl, s], [z])
    y = _add(sg, x, z, "y")
    sg.set_graph_inputs([x]), sg.set_graph_outputs([y])
    before, after, _, _ = _fold(m, max_bytes=4096)
    get_pass("remove-dead-code")().run(after, PassContext())
    assert _types(after) == ["ADD"]
    assert after.main.operators[0].inputs[1].data.tolist() == [63.0]
    assert _compare(before, after).identical


def test_quantized_data_movement_keeps_quantization():
    m, sg = _model()
    q = fb.QuantizationParametersT()
    q.scale, q.zeroPoint = [0.25], [-1]
    x = sg.new_tensor("x", I8, (2, 4), quantization=q)
    c = sg.new_constant("c", np.arange(8, dtype=np.int8).reshape(4, 2), quantization=q)
    perm = sg.new_constant("perm", np.asarray([1, 0], np.int32))
    t = sg.new_tensor("ct", I8, (2, 4), quantization=q)
    _op(sg, "TRANSPOSE", [c, perm], [t])
    y = sg.new_tensor("y", I8, (2, 4), quantization=q)
    _op(sg, "MAXIMUM", [x, t], [y])
    sg.set_graph_inputs([x]), sg.set_graph_outputs([y])
    before, after, _, _ = _fold(m)
    assert _types(after) == ["MAXIMUM"]
    ct = after.main.operators[0].inputs[1]
    assert ct.name == "ct" and list(ct.quantization.scale) == [0.25] and list(ct.quantization.zeroPoint) == [-1]
    assert _compare(before, after).identical


def _fp16_weight_model():
    m, sg = _model()
    x = sg.new_tensor("x", F32, (1, 8))
    w16 = sg.new_constant("w16", np.random.default_rng(0).normal(size=(1, 8)).astype(np.float16))
    w = sg.new_tensor("w", F32, (1, 8))
    _op(sg, "DEQUANTIZE", [w16], [w])
    y = _add(sg, x, w, "y")
    sg.set_graph_inputs([x]), sg.set_graph_outputs([y])
    return m


def test_float16_dequantize_is_left_alone_by_default():
    _, after, _, _ = _fold(_fp16_weight_model())
    assert _types(after) == ["DEQUANTIZE", "ADD"]


def test_float16_dequantize_folds_when_asked():
    before, after, _, _ = _fold(_fp16_weight_model(), fold_dequantize=True)
    assert _types(after) == ["ADD"]
    w = after.main.operators[0].inputs[1]
    assert w.name == "w" and w.dtype == F32
    for xnn in (True, False):
        assert _compare(before, after, xnn).identical


def test_op_producing_a_graph_output_is_not_folded():
    m, sg = _model()
    x = sg.new_tensor("x", F32, (1, 2))
    c = sg.new_constant("c", np.ones((1, 2), np.float32))
    n = sg.new_tensor("neg", F32, (1, 2))
    _op(sg, "NEG", [c], [n])
    y = _add(sg, x, c, "y")
    sg.set_graph_inputs([x]), sg.set_graph_outputs([y, n])
    before, after, _, _ = _fold(m)
    assert _types(after) == ["NEG", "ADD"]
    assert _compare(before, after).identical


def test_stateful_model_keeps_its_variables(zoo):
    path = zoo("stateful_counter")
    m = read_model(path)
    ops = [op.type for sg in m.subgraphs for op in sg.operators]
    get_pass("fold-constants")().run(m, PassContext())
    verify(m)
    for t in ("VAR_HANDLE", "READ_VARIABLE", "ASSIGN_VARIABLE", "CALL_ONCE"):
        assert [op.type for sg in m.subgraphs for op in sg.operators].count(t) == ops.count(t)
    cmp, _ = compare_models(str(path), serialize(m), steps=3)
    assert cmp.identical


def test_through_optimize_and_the_option_syntax(tmp_path):
    src = tmp_path / "chain.tflite"
    src.write_bytes(serialize(_shape_chain_model()))
    out = tmp_path / "out.tflite"
    res = optimize_file(src, out, passes="fold-constants{max-bytes=4096},remove-dead-code")
    assert res.before["ops"] == 5 and res.after["ops"] == 1 and res.check["identical"]
    p, = parse_pipeline("fold-constants{fold-inexact=true}")
    assert p.options.fold_inexact and p.tolerance > 0


def test_transformer_fp16_weights_fold_when_asked(zoo):
    path = zoo("transformer_encoder_fp16")
    m = read_model(path)
    n_deq = len(m.main.ops_of_type("DEQUANTIZE"))
    records = run_pipeline(m, parse_pipeline("fold-constants{fold-dequantize=true},remove-dead-code"), PassContext())
    assert n_deq > 0 and not m.main.ops_of_type("DEQUANTIZE")
    assert records[0].after["ops"] == records[0].before["ops"] - n_deq
    cmp, _ = compare_models(str(path), serialize(m), steps=1)
    assert cmp.identical


def test_real_models(shared_model):
    m = read_model(shared_model)
    n = sum(len(sg.operators) for sg in m.subgraphs)
    get_pass("fold-constants")().run(m, PassContext())
    verify(m)
    assert sum(len(sg.operators) for sg in m.subgraphs) <= n
    cmp, _ = compare_models(str(shared_model), serialize(m), steps=2)
    assert cmp.identical, cmp.to_json()
