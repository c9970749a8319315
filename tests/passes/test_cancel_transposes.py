"""cancel-transposes: TRANSPOSE/RESHAPE pairs cancelled, also through elementwise ops; bit-identical."""
from __future__ import annotations

import numpy as np
import pytest

from tflc.io import read_model, read_model_bytes, serialize
from tflc.ir.core import Model, Operator
from tflc.ir.graph import topological_sort
from tflc.ir.verify import verify
from tflc.passes_api import parse_pipeline
from tflc.passmanager import PassContext, run_pipeline
from tflc.rewrite import builtin_opcode
from tflc.runtime import RunOptions, compare_models
from tflc.schema import OPTIONS_TYPES, TYPE_CODES, fb
from tflc.testing.graphs import run_passes, assert_identical

F32 = TYPE_CODES["FLOAT32"]
NCHW, NHWC = (0, 3, 1, 2), (0, 2, 3, 1)


def run(model: Model, spec: str = "cancel-transposes") -> PassContext:
    return run_passes(model, spec)


def types(model: Model) -> list[str]:
    return [op.type for op in model.main.operators]


def count(model: Model, typ: str) -> int:
    return sum(1 for op in model.operators() if op.type == typ)


class G:
    def __init__(self, *shapes):
        self.m = Model()
        self.sg = self.m.add_subgraph("main")
        self.rng = np.random.default_rng(5)
        self.ins = [self.sg.new_tensor(f"x{i}", F32, s) for i, s in enumerate(shapes)]
        self.sg.set_graph_inputs(self.ins)

    def op(self, typ, inputs, shape, options=None, name=None):
        out = self.sg.new_tensor(name or f"{typ.lower()}_{len(self.sg.operators)}", F32, shape)
        otype = OPTIONS_TYPES[type(options).__name__[:-1]] if options is not None else 0
        self.sg.add_op(Operator(builtin_opcode(typ), inputs, [out], options=options, options_type=otype))
        return out

    def transpose(self, x, perm, name=None):
        p = self.sg.new_constant(f"perm_{len(self.sg.operators)}", np.asarray(perm, np.int32))
        return self.op("TRANSPOSE", [x, p], tuple(x.shape[i] for i in perm), fb.TransposeOptionsT(), name=name)

    def reshape(self, x, shape, name=None):
        s = self.sg.new_constant(f"shape_{len(self.sg.operators)}", np.asarray(shape, np.int32))
        return self.op("RESHAPE", [x, s], tuple(shape), name=name)

    def unary(self, typ, x, name=None):
        return self.op(typ, [x], x.shape, name=name)

    def binary(self, typ, x, c, name=None, const_first=False):
        if isinstance(c, np.ndarray):
            c = self.sg.new_constant(f"c_{len(self.sg.operators)}", c.astype(np.float32))
        o = getattr(fb, typ.capitalize() + "OptionsT", lambda: None)()
        return self.op(typ, [c, x] if const_first else [x, c], x.shape, o, name=name)

    def done(self, *outs):
        self.sg.set_graph_outputs(list(outs))
        verify(self.m)
        return self.m


def test_inverse_pair_cancels():
    g = G((1, 4, 6, 8))
    y = g.transpose(g.transpose(g.ins[0], NCHW), NHWC)
    model = g.done(g.unary("RELU", y, name="out"))
    ref = serialize(model)
    run(model)
    assert types(model) == ["RELU"]
    assert model.main.operators[0].inputs[0] is model.main.inputs[0]
    assert_identical(ref, model)


def test_non_inverse_pair_merges_into_one():
    g = G((1, 4, 6, 8))
    y = g.transpose(g.transpose(g.ins[0], NCHW), (0, 1, 3, 2), name="out")
    model = g.done(y)
    ref = serialize(model)
    run(model)
    assert types(model) == ["TRANSPOSE"]
    assert model.main.operators[0].inputs[1].data.tolist() == [0, 3, 2, 1]
    assert_identical(ref, model)


def test_pair_whose_first_has_another_reader():
    g = G((1, 4, 6, 8))
    t = g.transpose(g.ins[0], NCHW, name="nchw")
    y = g.transpose(t, NHWC)
    model = g.done(g.unary("RELU", y, name="out"), t)
    ref = serialize(model)
    run(model)
    assert count(model, "TRANSPOSE") == 1          # the second goes, the first stays for its graph output
    assert_identical(ref, model)


def test_sinks_through_elementwise_chain_with_constants():
    g = G((1, 4, 6, 8))
    t = g.transpose(g.ins[0], NCHW)                                   # [1, 8, 4, 6]
    y = g.unary("RELU", t)
    y = g.binary("ADD", y, g.rng.normal(size=(8, 1, 1)))               # per-channel in NCHW
    y = g.binary("MUL", y, g.rng.normal(size=(1, 1, 1, 6)), const_first=True)
    y = g.binary("SUB", y, np.array(0.5))                # a scalar
    y = g.binary("PRELU", y, g.rng.normal(size=(8, 4, 6)))
    y = g.unary("TANH", y)
    out = g.transpose(y, NHWC, name="out")
    model = g.done(out)
    ref = serialize(model)
    run(model)
    assert count(model, "TRANSPOSE") == 0
    assert types(model) == ["RELU", "ADD", "MUL", "SUB", "PRELU", "TANH"]
    assert model.main.operators[-1].outputs[0].name == "out"
    assert model.main.operators[-1].outputs[0].shape == (1, 4, 6, 8)
    assert_identical(ref, model)


def test_sinks_and_merges_when_not_inverse():
    g = G((1, 4, 6, 8))
    y = g.unary("ABS", g.transpose(g.ins[0], NCHW))
    out = g.transpose(y, (0, 1, 3, 2), name="out")
    model = g.done(out)
    ref = serialize(model)
    run(model)
    assert types(model) == ["ABS", "TRANSPOSE"]
    assert_identical(ref, model)


def test_fan_in_two_transposes_become_one():
    g = G((1, 4, 6, 8), (1, 4, 6, 8))
    a, b = (g.transpose(x, NCHW) for x in g.ins)
    model = g.done(g.binary("ADD", a, b, name="out"))
    ref = serialize(model)
    run(model)
    assert types(model) == ["ADD", "TRANSPOSE"]
    assert model.main.outputs[0].name == "out" and model.main.outputs[0].shape == (1, 8, 4, 6)
    assert_identical(ref, model)


def test_fan_in_then_cancel():
    g = G((1, 4, 6, 8), (1, 4, 6, 8))
    a, b = (g.transpose(x, NCHW) for x in g.ins)
    y = g.unary("RELU", g.binary("MUL", a, b))
    model = g.done(g.transpose(y, NHWC, name="out"))
    ref = serialize(model)
    run(model)
    assert types(model) == ["MUL", "RELU"]
    assert_identical(ref, model)


def test_reshape_pair_through_elementwise():
    g = G((1, 4, 6, 8))
    r = g.reshape(g.ins[0], (1, 24, 8))
    y = g.binary("ADD", g.unary("LOGISTIC", r), g.rng.normal(size=(1, 24, 8)))
    y = g.binary("MUL", y, np.array([3.0]))
    y = g.binary("MAXIMUM", y, g.rng.normal(size=(1, 1, 8)))          # per last axis, kept by the reshapes
    model = g.done(g.reshape(y, (1, 4, 6, 8), name="out"))
    ref = serialize(model)
    run(model)
    assert types(model) == ["LOGISTIC", "ADD", "MUL", "MAXIMUM"]
    assert_identical(ref, model)


def test_reshape_of_reshape():
    g = G((1, 4, 6, 8))
    model = g.done(g.reshape(g.reshape(g.ins[0], (24, 8)), (1, 192), name="out"))
    ref = serialize(model)
    run(model)
    assert types(model) == ["RESHAPE"]
    assert_identical(ref, model)


def test_transpose_of_unit_dimensions_becomes_reshape():
    g = G((1, 1, 6, 8))
    model = g.done(g.unary("RELU", g.transpose(g.ins[0], (0, 2, 1, 3)), name="out"))
    ref = serialize(model)
    run(model)
    assert types(model) == ["RESHAPE", "RELU"]
    assert_identical(ref, model)


# ----------------------------------------------------------------------------- left alone

def test_no_change_without_a_partner():
    g = G((1, 4, 6, 8))
    y = g.unary("RELU", g.transpose(g.ins[0], NCHW))
    model = g.done(g.binary("ADD", y, y, name="out"))
    run(model)
    assert count(model, "TRANSPOSE") == 1


def test_intermediate_with_two_readers_is_not_moved():
    g = G((1, 4, 6, 8))
    r = g.unary("RELU", g.transpose(g.ins[0], NCHW), name="relu")
    model = g.done(g.transpose(g.unary("NEG", r), NHWC, name="out"), r)
    ref = serialize(model)
    run(model)
    assert count(model, "TRANSPOSE") == 2
    assert_identical(ref, model)


def test_cancelling_pair_into_a_graph_output_is_kept_and_noted():
    g = G((1, 4, 6, 8))
    model = g.done(g.transpose(g.transpose(g.ins[0], NCHW), NHWC, name="out"))
    ctx = run(model)
    assert count(model, "TRANSPOSE") == 2
    assert any("graph output" in n for n in ctx.messages)


def test_cancelling_pair_into_a_graph_output_keeps_the_output_tensor():
    g = G((1, 4, 6, 8))
    r = g.unary("RELU", g.ins[0], name="relu")
    neg = g.unary("NEG", r, name="neg")
    model = g.done(g.transpose(g.transpose(r, NCHW), NHWC, name="out"), neg)
    ref = serialize(model)
    run(model)
    assert types(model) == ["RELU", "NEG"]
    relu, neg_op = model.main.operators
    assert relu.outputs[0].name == "out" and model.main.outputs[0] is relu.outputs[0]
    assert neg_op.inputs[0] is relu.outputs[0]
    assert_identical(ref, model)


# ----------------------------------------------------------------------------- converter and real models

@pytest.mark.parametrize("name", ["transformer_encoder_static", "mobilenet_tiny"])
def test_zoo_models(zoo, name):
    path = zoo(name)
    model = read_model(path)
    before = count(model, "TRANSPOSE"), count(model, "RESHAPE"), len(model.main.operators)
    run(model)
    after = count(model, "TRANSPOSE"), count(model, "RESHAPE"), len(model.main.operators)
    assert after[0] <= before[0] and after[2] <= before[2]
    assert_identical(str(path), model)


def _insert_layout_round_trips(model: Model) -> int:
    """After every RELU6-fused conv, add TRANSPOSE(NCHW) -> NEG -> NEG -> TRANSPOSE(NHWC)."""
    sg, n = model.main, 0
    for op in sg.ops_of_type("DEPTHWISE_CONV_2D"):
        y = op.outputs[0]
        readers = y.uses
        shape = tuple(y.shape)
        cur = y
        for typ, perm in (("TRANSPOSE", NCHW), ("NEG", None), ("NEG", None), ("TRANSPOSE", NHWC)):
            shape = tuple(shape[i] for i in perm) if perm else shape
            nxt = sg.new_tensor(f"{y.name}/{typ}{n}", F32, shape)
            ins = [cur] + ([sg.new_constant(f"{y.name}/perm{n}", np.asarray(perm, np.int32))] if perm else [])
            sg.add_op(Operator(builtin_opcode(typ), ins, [nxt]), index=len(sg.operators))
            cur, n = nxt, n + 1
        for reader, i in readers:
            sg.set_input(reader, i, cur)
    topological_sort(sg)
    return n // 4


def test_zoo_mobilenet_layout_round_trips_vanish(zoo):
    path = zoo("mobilenet_tiny")
    model = read_model(path)
    n = _insert_layout_round_trips(model)
    assert n >= 5 and count(model, "TRANSPOSE") == 2 * n
    ref = serialize(model)
    run(model)
    assert count(model, "TRANSPOSE") == 0 and count(model, "NEG") == 2 * n
    assert_identical(ref, model)
    assert_identical(str(path), model)


def test_real_models(shared_model):
    model = read_model(shared_model)
    before = count(model, "TRANSPOSE"), len(list(model.operators()))
    run(model)
    assert count(model, "TRANSPOSE") <= before[0] and len(list(model.operators())) <= before[1]
    assert_identical(str(shared_model), model)


# ----------------------------------------------------------------------------- through reductions

TOKENS = "serving_default_token_ids:0"


def assert_identical_both(ref, model: Model) -> None:
    """Bit-identical with XNNPACK (LiteRT's default) and with the builtin kernels alone."""
    for xnnpack in (True, False):
        cmp, _ = compare_models(ref, serialize(model), steps=2, options=RunOptions(xnnpack=xnnpack))
        assert cmp.identical, (xnnpack, cmp.to_json())


def reduce(g: G, typ, x, axes, keep, shape, name=None):
    o = fb.ReducerOptionsT()
    o.keepDims = keep
    axes_t = g.sg.new_constant(f"axes_{len(g.sg.operators)}", np.asarray(axes, np.int32))
    return g.op(typ, [x, axes_t], shape, o, name=name)


def keras2_layernorm(g: G, x, keep=False, typ="MEAN"):
    """Keras 2's LayerNormalization as the converter lowers it (through a fused batch norm):
    RESHAPE [1,T,C,1], TRANSPOSE to [1,C,1,T], statistics over C, TRANSPOSE back. Returns the
    result in the [1,T,C,1] layout (the caller adds the RESHAPE back)."""
    _, T, C = x.shape
    t = g.transpose(g.reshape(x, (1, T, C, 1)), (0, 2, 3, 1))                       # [1, C, 1, T]
    stat = (1, 1, 1, T) if keep else (T,)
    m = reduce(g, typ, t, [0, 1, 2], keep, stat)
    v = reduce(g, typ, g.op("SQUARED_DIFFERENCE", [t, m], t.shape), [0, 1, 2], keep, stat)
    r = g.unary("RSQRT", g.binary("ADD", v, np.array(1e-3)))
    s = g.binary("MUL", r, g.rng.uniform(0.5, 2.0, stat), const_first=True)
    xs = g.op("MUL", [t, s], t.shape)
    off = g.binary("SUB", g.op("MUL", [m, s], stat), g.rng.normal(size=stat), const_first=True)
    y = g.op("ADD", [xs, off], t.shape)
    return g.transpose(y, (0, 3, 1, 2))                                               # [1, T, C, 1]


LN_TYPES = ["TRANSPOSE", "MEAN", "SQUARED_DIFFERENCE", "MEAN", "ADD", "RSQRT", "MUL", "MUL", "MUL", "SUB", "ADD"]


@pytest.mark.parametrize("T,C,keep", [(32, 64, False), (7, 200, False), (5, 3, True)])
def test_keras2_layernorm_runs_on_its_input(T, C, keep):
    g = G((1, T, C))
    z = keras2_layernorm(g, g.ins[0], keep=keep)
    model = g.done(g.reshape(z, (1, T, C), name="out"))
    ref = serialize(model)
    assert count(model, "TRANSPOSE") == 2 and count(model, "RESHAPE") == 2
    run(model)
    assert types(model) == LN_TYPES
    sg = model.main
    tr = sg.operators[0]
    assert tr.inputs[0] is sg.inputs[0] and tr.outputs[0].shape == (C, T, 1)   # reduced axis outermost, as before
    for mean in sg.ops_of_type("MEAN"):
        assert mean.inputs[0].shape == (C, T, 1) and mean.inputs[1].data.tolist() == [0]
        assert mean.options.keepDims and mean.outputs[0].shape == (1, T, 1)
    scale = sg.operators[6]                                       # MUL(constant, rsqrt): re-laid constant
    assert scale.inputs[0].shape == (1, T, 1)
    last = sg.operators[-1]
    assert last.outputs[0].name == "out" and last.outputs[0].shape == (1, T, C)
    assert last.inputs[0].producer.inputs[0] is sg.inputs[0]     # the normalizing MUL reads x itself
    assert_identical_both(ref, model)


@pytest.mark.parametrize("typ", ["SUM", "REDUCE_MAX", "REDUCE_MIN"])
def test_other_reductions(typ):
    g = G((1, 6, 10))
    z = keras2_layernorm(g, g.ins[0], keep=True, typ=typ)
    model = g.done(g.reshape(z, (1, 6, 10), name="out"))
    ref = serialize(model)
    run(model)
    assert count(model, "TRANSPOSE") == 1 and count(model, "RESHAPE") == 0 and count(model, typ) == 2
    assert_identical_both(ref, model)


def test_layernorm_into_fully_connected():
    """RESHAPE -> FULLY_CONNECTED -> RESHAPE after the layer norm becomes one FULLY_CONNECTED."""
    T, C, U = 8, 12, 5
    g = G((1, T, C))
    z = keras2_layernorm(g, g.ins[0])
    res = g.reshape(z, (1, T, C), name="residual")
    w = g.sg.new_constant("w", g.rng.normal(size=(U, C)).astype(np.float32))
    b = g.sg.new_constant("b", g.rng.normal(size=(U,)).astype(np.float32))
    fc = g.op("FULLY_CONNECTED", [g.reshape(z, (T, C)), w, b], (T, U), fb.FullyConnectedOptionsT())
    model = g.done(res, g.reshape(fc, (1, T, U), name="dense"))
    ref = serialize(model)
    run(model)
    assert count(model, "RESHAPE") == 0 and count(model, "TRANSPOSE") == 1
    fc_op = model.main.ops_of_type("FULLY_CONNECTED")[0]
    assert fc_op.options.keepNumDims and fc_op.outputs[0].name == "dense" and fc_op.outputs[0].shape == (1, T, U)
    assert fc_op.inputs[0].name == "residual"
    assert_identical_both(ref, model)


def test_elementwise_dag_with_fan_out():
    g = G((1, 4, 6, 8))
    t = g.transpose(g.ins[0], NCHW)                                   # read by RELU and MUL
    y = g.op("ADD", [g.unary("RELU", t), g.binary("MUL", t, g.rng.normal(size=(8, 1, 1)))], t.shape)
    model = g.done(g.transpose(y, NHWC, name="out"))
    ref = serialize(model)
    run(model)
    assert types(model) == ["RELU", "MUL", "ADD"]
    assert model.main.ops_of_type("MUL")[0].inputs[1].shape == (1, 1, 1, 8)
    assert_identical_both(ref, model)


def test_region_with_another_reader_is_left_alone():
    g = G((1, 6, 10))
    x = g.ins[0]
    t = g.transpose(g.reshape(x, (1, 6, 10, 1)), (0, 2, 3, 1))
    m = reduce(g, "MEAN", t, [0, 1, 2], False, (6,))
    y = g.op("SUB", [t, m], t.shape)
    model = g.done(g.reshape(g.transpose(y, (0, 3, 1, 2)), (1, 6, 10), name="out"), g.op("SOFTMAX", [t], t.shape,
                                                                                     fb.SoftmaxOptionsT()))
    before = types(model)
    run(model)
    assert types(model) == before


def test_result_needed_in_both_layouts_is_left_alone():
    g = G((1, 6, 10))
    t = g.transpose(g.reshape(g.ins[0], (1, 6, 10, 1)), (0, 2, 3, 1))
    a = g.unary("ABS", t)                                         # read by the MEAN and by the exit's SUB
    y = g.op("SUB", [a, reduce(g, "MEAN", a, [0, 1, 2], False, (6,))], t.shape)
    model = g.done(g.reshape(g.transpose(y, (0, 3, 1, 2)), (1, 6, 10), name="out"))
    before = types(model)
    ctx = run(model)
    assert types(model) == before
    assert any("needed both" in n for n in ctx.messages)


def test_reduction_whose_kernel_path_would_change_is_left_alone():
    """SUM over [1,16,5] (contiguous, XNNPACK's row-sum kernel) must not become a sum over
    [16,5,1] (a strided sum with one channel): XNNPACK adds the elements in another order."""
    g = G((16, 5, 1))
    t = g.transpose(g.ins[0], (2, 0, 1))                                # [1, 16, 5]: only a size-1 dim moves
    s = reduce(g, "SUM", t, [2, 0], True, (1, 16, 1))
    y = g.op("SUB", [t, s], t.shape)
    model = g.done(g.unary("RELU", g.transpose(y, (1, 2, 0)), name="out"))
    ref = serialize(model)
    ctx = run(model)
    sums = model.main.ops_of_type("SUM")
    assert sums[0].inputs[0].shape == (1, 16, 5) and sums[0].inputs[1].data.tolist() == [2, 0]
    assert any("kernel path" in n for n in ctx.messages)
    assert_identical_both(ref, model)


# ----------------------------------------------------------------------------- attention scores

def attention_scores(T, S, H, D):
    """Keras 2 MultiHeadAttention's scores as the converter lowers einsum: BATCH_MATMUL(k, q^T)^T."""
    g = G((1, T, H, D), (1, S, H, D))
    q, k = g.ins
    a = g.transpose(k, (0, 2, 1, 3))                                   # [1, H, S, D]
    b = g.transpose(q, (0, 2, 3, 1))                                   # [1, H, D, T]
    s = g.op("BATCH_MATMUL", [a, b], (1, H, S, T), fb.BatchMatMulOptionsT())
    return g, g.transpose(s, (0, 1, 3, 2))                             # [1, H, T, S]


@pytest.mark.parametrize("T,D", [(32, 16), (7, 200)])
def test_transposed_batch_matmul_swaps_its_operands(T, D):
    g, scores = attention_scores(T, T, 3, D)
    model = g.done(g.op("SOFTMAX", [scores], scores.shape, fb.SoftmaxOptionsT(), name="out"))
    ref = serialize(model)
    run(model)
    assert types(model) == ["TRANSPOSE", "TRANSPOSE", "BATCH_MATMUL", "SOFTMAX"]
    bmm = model.main.ops_of_type("BATCH_MATMUL")[0]
    a, b = (t.producer for t in bmm.inputs)
    assert a.inputs[0] is model.main.inputs[0] and a.inputs[1].data.tolist() == [0, 2, 1, 3]   # q first
    assert b.inputs[0] is model.main.inputs[1] and b.inputs[1].data.tolist() == [0, 2, 3, 1]
    assert bmm.outputs[0].shape == (1, 3, T, T)
    assert_identical_both(ref, model)


def test_non_square_batch_matmul_is_left_alone():
    g, scores = attention_scores(6, 9, 2, 4)
    model = g.done(g.unary("RELU", scores, name="out"))
    run(model)
    assert count(model, "TRANSPOSE") == 3


def test_zoo_keras2_transformer(zoo):
    """The Keras 2 transformer (dynamic batch) with its input shape fixed: every layer norm keeps
    one TRANSPOSE (of 4 layout ops), each attention block loses one, the dense layers' RESHAPEs go."""
    path = zoo("transformer_encoder_tfkeras")
    model = read_model(path)
    n0 = len(model.main.operators)
    ctx = PassContext(shapes={TOKENS: (1, 32)})
    run_pipeline(model, parse_pipeline("specialize-shapes,fold-constants,remove-identity"), ctx)
    before = {t: count(model, t) for t in ("TRANSPOSE", "RESHAPE", "FULLY_CONNECTED")}
    assert before == {"TRANSPOSE": 18, "RESHAPE": 20, "FULLY_CONNECTED": 12}
    run_pipeline(model, parse_pipeline("cancel-transposes,remove-dead-code"), ctx)
    verify(read_model_bytes(serialize(model)))
    after = {t: count(model, t) for t in ("TRANSPOSE", "RESHAPE", "FULLY_CONNECTED")}
    assert after == {"TRANSPOSE": 4 + 8, "RESHAPE": 8, "FULLY_CONNECTED": 12}
    # 87 after cancel-transposes; remove-identity then drops the 4 LayerNorm MUL-by-ones (arith-identity)
    assert len(model.main.operators) == 83 and len(model.main.operators) <= 0.6 * n0
    for xnnpack in (True, False):
        cmp, _ = compare_models(str(path), serialize(model), steps=2, shapes={TOKENS: (1, 32)},
                                options=RunOptions(xnnpack=xnnpack))
        assert cmp.identical, (xnnpack, cmp.to_json())
