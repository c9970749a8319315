"""fold-affine: per-channel MUL/ADD/SUB folded into conv / depthwise / FC weights and bias."""
from __future__ import annotations


import numpy as np
import pytest

from tflc.io import read_model, serialize
from tflc.ir.core import Model, Operator
from tflc.ir.verify import verify
from tflc.passes_api import get_pass, parse_pipeline
from tflc.passmanager import PassContext, run_pipeline
from tflc.rewrite import builtin_opcode
from tflc.runtime import RunOptions, compare_models
from tflc.schema import OPTIONS_TYPES, TYPE_CODES, fb
from tflc.testing.graphs import assert_identical, run_passes

F32 = TYPE_CODES["FLOAT32"]
SAME, VALID = fb.Padding.SAME, fb.Padding.VALID
RELU, RELU6 = fb.ActivationFunctionType.RELU, fb.ActivationFunctionType.RELU6
TOKENS = "serving_default_token_ids:0"
TOL = get_pass("fold-affine").tolerance


def run(model: Model, spec: str = "fold-affine") -> PassContext:
    return run_passes(model, spec)


def assert_close(ref, model: Model) -> float:
    cmp, _ = compare_models(ref, serialize(model), steps=2)
    assert cmp.worst_rel() <= TOL, cmp.to_json()
    return cmp.worst_rel()


def types(model: Model) -> list[str]:
    return [op.type for op in model.main.operators]


class G:
    def __init__(self, shape=(1, 8, 8, 4)):
        self.m = Model()
        self.sg = self.m.add_subgraph("main")
        self.rng = np.random.default_rng(7)
        self.x = self.sg.new_tensor("x", F32, shape)
        self.sg.set_graph_inputs([self.x])

    def const(self, name, arr):
        return self.sg.new_constant(name, np.asarray(arr, dtype=np.float32))

    def op(self, typ, inputs, shape, options=None, name=None):
        out = self.sg.new_tensor(name or f"{typ.lower()}_{len(self.sg.operators)}", F32, shape)
        otype = OPTIONS_TYPES[type(options).__name__[:-1]] if options is not None else 0
        self.sg.add_op(Operator(builtin_opcode(typ), inputs, [out], options=options, options_type=otype))
        return out

    def linear(self, kind, x, cout=6, padding=SAME, k=3, act=0, bias=True, mult=1, stride=1):
        cin = x.shape[-1]
        r = self.rng
        if kind == "CONV_2D":
            w, o = r.normal(size=(cout, k, k, cin)), fb.Conv2DOptionsT()
        elif kind == "DEPTHWISE_CONV_2D":
            cout = cin * mult
            w, o = r.normal(size=(1, k, k, cout)), fb.DepthwiseConv2DOptionsT()
            o.depthMultiplier = mult
        else:
            w, o = r.normal(size=(cout, cin)), fb.FullyConnectedOptionsT()
            o.keepNumDims = True
        if kind != "FULLY_CONNECTED":
            o.padding, o.strideH, o.strideW, o.dilationHFactor, o.dilationWFactor = padding, stride, stride, 1, 1
        o.fusedActivationFunction = act
        ins = [x, self.const("w", w)] + ([self.const("b", r.normal(size=(cout,)))] if bias else [])
        if kind == "FULLY_CONNECTED":
            shape = x.shape[:-1] + (cout,)
        elif padding == SAME:
            shape = (1, -(-x.shape[1] // stride), -(-x.shape[2] // stride), cout)
        else:
            shape = (1, (x.shape[1] - k) // stride + 1, (x.shape[2] - k) // stride + 1, cout)
        return self.op(kind, ins, shape, o)

    def affine(self, kind, x, c, const_first=False, act=0, name=None):
        o = getattr(fb, kind.capitalize() + "OptionsT")()
        o.fusedActivationFunction = act
        c = self.const(f"{kind.lower()}_c", c)
        return self.op(kind, [c, x] if const_first else [x, c], x.shape, o, name=name)

    def reshape(self, x, shape):
        return self.op("RESHAPE", [x, self.sg.new_constant("shape", np.asarray(shape, np.int32))], tuple(shape))

    def transpose(self, x, perm):
        p = self.sg.new_constant("perm", np.asarray(perm, np.int32))
        return self.op("TRANSPOSE", [x, p], tuple(x.shape[i] for i in perm), fb.TransposeOptionsT())

    def done(self, *outs):
        self.sg.set_graph_outputs(list(outs))
        verify(self.m)
        return self.m


LINEAR = ["CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"]


# ----------------------------------------------------------------------------- after the op

@pytest.mark.parametrize("kind", LINEAR)
@pytest.mark.parametrize("affine, const_first, per_channel", [
    ("MUL", False, True), ("MUL", True, False), ("ADD", False, True), ("SUB", False, True), ("SUB", True, True),
])
def test_after(kind, affine, const_first, per_channel):
    g = G()
    y = g.linear(kind, g.x)
    n = y.shape[-1]
    c = g.rng.uniform(0.5, 2.0, (1, 1, 1, n) if per_channel else ()) * (1 if affine == "MUL" else 3)
    z = g.affine(affine, y, c, const_first=const_first, name="out")
    model = g.done(z)
    ref = serialize(model)
    run(model)
    assert types(model) == [kind]
    assert model.main.operators[0].outputs[0].name == "out"
    assert_close(ref, model)


@pytest.mark.parametrize("kind", LINEAR)
def test_batchnorm_chain_keeps_the_activation(kind):
    g = G()
    y = g.linear(kind, g.x, bias=kind != "FULLY_CONNECTED")    # LiteRT's convs need a bias; FC may lack one
    n = y.shape[-1]
    y = g.affine("MUL", y, g.rng.uniform(0.2, 3.0, (n,)))
    y = g.affine("ADD", y, g.rng.normal(size=(n,)), act=RELU6, name="bn")
    model = g.done(y)
    ref = serialize(model)
    run(model)
    assert types(model) == [kind]
    op = model.main.operators[0]
    assert len(op.inputs) == 3 and op.inputs[2].is_constant               # FC: a bias was created
    assert op.options.fusedActivationFunction == RELU6
    assert_close(ref, model)


# ----------------------------------------------------------------------------- before the op

@pytest.mark.parametrize("kind, padding, k", [
    ("CONV_2D", SAME, 3), ("CONV_2D", VALID, 3), ("DEPTHWISE_CONV_2D", SAME, 3), ("FULLY_CONNECTED", None, None)])
def test_scale_before_is_exact_for_any_padding(kind, padding, k):
    g = G()
    x = g.affine("MUL", g.x, g.rng.uniform(-2, 2, (4,)))
    y = g.linear(kind, x, padding=padding, k=k)
    model = g.done(y)
    ref = serialize(model)
    run(model)
    assert types(model) == [kind]
    assert model.main.operators[0].inputs[0] is model.main.inputs[0]
    assert_close(ref, model)


@pytest.mark.parametrize("kind, padding, k, mult", [
    ("CONV_2D", VALID, 3, 1), ("CONV_2D", SAME, 1, 1), ("DEPTHWISE_CONV_2D", VALID, 3, 2),
    ("FULLY_CONNECTED", None, None, 1)])
def test_shift_before_where_no_padding_is_read(kind, padding, k, mult):
    g = G()
    x = g.affine("MUL", g.x, g.rng.uniform(0.5, 2, (1, 1, 4)))
    x = g.affine("SUB", x, g.rng.normal(size=(4,)))
    y = g.linear(kind, x, padding=padding, k=k, mult=mult)
    model = g.done(y)
    ref = serialize(model)
    run(model)
    assert types(model) == [kind]
    assert_close(ref, model)


def test_shift_before_same_padding_is_refused():
    g = G()
    x = g.affine("ADD", g.x, g.rng.normal(size=(4,)))
    y = g.linear("CONV_2D", x, padding=SAME, k=3)
    model = g.done(y)
    ctx = run(model)
    assert types(model) == ["ADD", "CONV_2D"]
    assert any("SAME-padded" in n for n in ctx.messages), ctx.messages


# ----------------------------------------------------------------------------- refusals

def test_refused_after_a_fused_activation():
    g = G()
    y = g.linear("CONV_2D", g.x, act=RELU6)
    model = g.done(g.affine("MUL", y, np.full((6,), 2.0)))
    ctx = run(model)
    assert types(model) == ["CONV_2D", "MUL"]
    assert any("fused activation" in n for n in ctx.messages)


def test_refused_when_the_result_has_another_reader():
    g = G()
    y = g.linear("CONV_2D", g.x)
    model = g.done(g.affine("MUL", y, np.full((6,), 2.0)), y)
    ctx = run(model)
    assert types(model) == ["CONV_2D", "MUL"]
    assert any("also read by other ops" in n for n in ctx.messages)


def test_refused_when_not_per_channel():
    g = G()
    y = g.linear("CONV_2D", g.x)
    model = g.done(g.affine("MUL", y, g.rng.uniform(size=(1, 8, 8, 1))))
    ctx = run(model)
    assert types(model) == ["CONV_2D", "MUL"]
    assert any("not per output channel" in n for n in ctx.messages)


def test_refused_for_float16_weights_behind_dequantize():
    g = G()
    w16 = g.sg.new_constant("w16", g.rng.normal(size=(6, 1, 1, 4)).astype(np.float16))
    w = g.op("DEQUANTIZE", [w16], (6, 1, 1, 4))
    o = fb.Conv2DOptionsT()
    o.padding, o.strideH, o.strideW, o.dilationHFactor, o.dilationWFactor = SAME, 1, 1, 1, 1
    y = g.op("CONV_2D", [g.x, w, g.const("b", np.zeros(6))], (1, 8, 8, 6), o)
    model = g.done(g.affine("MUL", y, np.full((6,), 2.0)))
    ctx = run(model)
    assert types(model) == ["DEQUANTIZE", "CONV_2D", "MUL"]
    assert any("fold-float16-weights first" in n for n in ctx.messages)
    ref = serialize(model)
    run(model, "fold-float16-weights,fold-affine")           # the intended order
    assert types(model) == ["CONV_2D"]
    assert_close(ref, model)


def test_declares_its_tolerance():
    assert get_pass("fold-affine").tolerance == 1e-5


# ----------------------------------------------------------------------------- attention-score scale (exact)

def attention(g: G, q_act=0, bias=True, q_weights=None):
    """Keras 3 MultiHeadAttention's scores: BATCH_MATMUL(T(R(FC_q(x))), T(R(FC_k(x)))), [1, 4, 32, 32]."""
    q = g.linear("FULLY_CONNECTED", g.x, cout=64, act=q_act, bias=bias)
    if q_weights is not None:                    # let FC_q read a given weight tensor (shared, or special values)
        g.sg.set_input(q.producer, 1, q_weights)
    k = g.linear("FULLY_CONNECTED", g.x, cout=64, bias=bias)
    a = g.transpose(g.reshape(q, (1, 32, 4, 16)), (0, 2, 1, 3))
    b = g.transpose(g.reshape(k, (1, 32, 4, 16)), (0, 2, 3, 1))
    return g.op("BATCH_MATMUL", [a, b], (1, 4, 32, 32), fb.BatchMatMulOptionsT())


ATTENTION = ["FULLY_CONNECTED", "FULLY_CONNECTED", "RESHAPE", "TRANSPOSE", "RESHAPE", "TRANSPOSE", "BATCH_MATMUL"]


def fcs(model: Model):
    return model.main.ops_of_type("FULLY_CONNECTED")


def assert_bit_identical(ref, model: Model) -> None:
    for xnnpack in (True, False):
        assert_identical(ref, model, xnnpack=xnnpack, steps=2)


@pytest.mark.parametrize("scale, c_shape, const_first, bias", [
    (0.25, (), False, True), (0.25, (1, 1, 1, 1), True, False), (2.0, (1,), False, True), (-0.125, (), False, True)])
def test_attention_scale_folds_into_the_query_weights(scale, c_shape, const_first, bias):
    g = G((1, 32, 64))
    s = attention(g, bias=bias)
    old = [[t.data.copy() if t is not None and t.is_constant else None for t in fc.inputs] for fc in fcs(g.m)]
    model = g.done(g.affine("MUL", s, np.full(c_shape, scale), const_first=const_first, name="scores"))
    ref = serialize(model)
    run(model)
    assert types(model) == ATTENTION
    bmm = model.main.ops_of_type("BATCH_MATMUL")[0]
    assert bmm.outputs[0].name == "scores" and model.main.outputs[0] is bmm.outputs[0]
    new_q, new_k = (fc.inputs for fc in fcs(model))
    assert np.array_equal(new_q[1].data, old[0][1] * np.float32(scale))
    if bias:
        assert np.array_equal(new_q[2].data, old[0][2] * np.float32(scale))
    else:
        assert len(new_q) == 2 or new_q[2] is None                          # no bias is created
    assert all(np.array_equal(t.data, a) for t, a in zip(new_k, old[1]) if a is not None)  # key untouched
    assert_bit_identical(ref, model)


def test_attention_scale_before_softmax_after_relu():
    g = G((1, 32, 64))
    s = attention(g, q_act=RELU)                  # RELU commutes with a positive scale
    s = g.affine("MUL", s, np.float32(0.25))
    model = g.done(g.op("SOFTMAX", [s], s.shape, fb.SoftmaxOptionsT(), name="probs"))
    ref = serialize(model)
    run(model)
    assert types(model) == ATTENTION + ["SOFTMAX"]
    assert fcs(model)[0].options.fusedActivationFunction == RELU
    assert_bit_identical(ref, model)


def test_negative_scale_skips_a_relu_query_and_scales_the_key():
    g = G((1, 32, 64))
    s = attention(g, q_act=RELU)
    w_q, w_k = (fc.inputs[1].data.copy() for fc in fcs(g.m))
    model = g.done(g.affine("MUL", s, np.float32(-0.5), name="scores"))
    ref = serialize(model)
    run(model)
    assert types(model) == ATTENTION
    q, k = fcs(model)
    assert np.array_equal(q.inputs[1].data, w_q) and np.array_equal(k.inputs[1].data, w_k * np.float32(-0.5))
    assert_bit_identical(ref, model)


def test_scale_that_is_not_a_power_of_two_is_refused():
    g = G((1, 32, 64))
    s = attention(g)
    weights = [fc.inputs[1] for fc in fcs(g.m)]
    model = g.done(g.affine("MUL", s, np.float32(0.3)))
    ctx = run(model)
    assert types(model) == ATTENTION + ["MUL"]
    assert [fc.inputs[1] for fc in fcs(model)] == weights
    assert any("0.30000001 is not a power of two" in n for n in ctx.messages), ctx.messages


def test_scores_with_a_second_reader_are_left_alone():
    g = G((1, 32, 64))
    s = attention(g)
    weights = [fc.inputs[1] for fc in fcs(g.m)]
    model = g.done(g.affine("MUL", s, np.float32(0.25)), g.op("RELU", [s], s.shape, name="other"))
    ctx = run(model)
    assert types(model) == ATTENTION + ["MUL", "RELU"]
    assert [fc.inputs[1] for fc in fcs(model)] == weights
    assert any("also read by other ops" in n for n in ctx.messages), ctx.messages


def test_weights_shared_with_another_fc_are_not_mutated():
    g = G((1, 32, 64))
    shared = g.const("w_shared", g.rng.normal(size=(64, 64)))
    original = shared.data.copy()
    s = attention(g, q_weights=shared)
    o = fb.FullyConnectedOptionsT()
    o.keepNumDims = True
    other = g.op("FULLY_CONNECTED", [g.x, shared], (1, 32, 64), o, name="other")   # reads the same weights
    model = g.done(g.affine("MUL", s, np.float32(0.25), name="scores"), other)
    ref = serialize(model)
    run(model)
    assert types(model) == ATTENTION + ["FULLY_CONNECTED"]
    q, _, third = fcs(model)
    assert third.inputs[1] is shared and np.array_equal(shared.data, original)
    assert q.inputs[1] is not shared and np.array_equal(q.inputs[1].data, original * np.float32(0.25))
    assert_bit_identical(ref, model)


def test_scale_that_would_make_weights_subnormal_is_refused():
    g = G((1, 32, 64))
    s = attention(g, bias=False)
    for fc in fcs(g.m):                           # both operands: neither FC can take the scale
        w = fc.inputs[1].data.copy()
        w[0, 0] = 2e-38                           # normal; a quarter of it is not
        g.sg.set_input(fc, 1, g.const("w_tiny", w))
    model = g.done(g.affine("MUL", s, np.float32(0.25)))
    ctx = run(model)
    assert types(model) == ATTENTION + ["MUL"]
    assert any("by 0.25 would make some subnormal" in n for n in ctx.messages), ctx.messages


def test_a_chain_tensor_read_elsewhere_falls_back_to_the_other_operand():
    g = G((1, 32, 64))
    s = attention(g)
    q_reshaped = g.m.main.ops_of_type("RESHAPE")[0].outputs[0]
    w_q, w_k = (fc.inputs[1].data.copy() for fc in fcs(g.m))
    model = g.done(g.affine("MUL", s, np.float32(0.25), name="scores"), q_reshaped)
    ref = serialize(model)
    run(model)
    assert types(model) == ATTENTION
    q, k = fcs(model)
    assert np.array_equal(q.inputs[1].data, w_q) and np.array_equal(k.inputs[1].data, w_k * np.float32(0.25))
    assert_bit_identical(ref, model)


# ----------------------------------------------------------------------------- converter and real models

def _unfold_batchnorm(model: Model, rng) -> int:
    """Split a per-channel scale and shift out of every conv without activation (the inverse)."""
    sg, n = model.main, 0
    for op in sg.ops_of_type("CONV_2D", "DEPTHWISE_CONV_2D"):
        if op.options.fusedActivationFunction != 0:
            continue
        w, b, y = op.inputs[1], op.inputs[2], op.outputs[0]
        cout = w.shape[3] if op.type == "DEPTHWISE_CONV_2D" else w.shape[0]
        s = rng.uniform(0.5, 2.0, cout).astype(np.float32)
        t = rng.normal(0, 0.1, cout).astype(np.float32)
        axis = (None, None, None, slice(None)) if op.type == "DEPTHWISE_CONV_2D" else (slice(None), None, None, None)
        new_w = sg.new_constant(w.name + "/unfolded", (w.data / s[axis]).astype(np.float32))
        new_b = sg.new_constant(b.name + "/unfolded", ((b.data - t) / s).astype(np.float32))
        sg.set_inputs(op, [op.inputs[0], new_w, new_b])
        raw = sg.new_tensor(y.name + "/raw", F32, y.shape)
        scaled = sg.new_tensor(y.name + "/scaled", F32, y.shape)
        sg.set_output(op, 0, raw)
        mul_o, add_o = fb.MulOptionsT(), fb.AddOptionsT()
        mul = Operator(builtin_opcode("MUL"), [raw, sg.new_constant(y.name + "/scale", s)], [scaled], options=mul_o,
                       options_type=OPTIONS_TYPES["MulOptions"])
        add = Operator(builtin_opcode("ADD"), [scaled, sg.new_constant(y.name + "/shift", t)], [y], options=add_o,
                       options_type=OPTIONS_TYPES["AddOptions"])
        sg.add_op(mul, after=op)
        sg.add_op(add, after=mul)
        n += 1
    return n


def test_zoo_mobilenet_batchnorm_refolded(zoo):
    path = zoo("mobilenet_tiny")
    model = read_model(path)
    n = _unfold_batchnorm(model, np.random.default_rng(3))
    assert n >= 7
    ref = serialize(model)
    run(model)
    assert types(model) == types(read_model(path))
    assert_close(ref, model)
    assert_close(str(path), model)


def test_real_models(shared_model):
    model = read_model(shared_model)
    n_ops = len(list(model.operators()))
    run(model, "fold-float16-weights")
    ref = serialize(model)
    n_mid = len(list(model.operators()))
    run(model)
    assert len(list(model.operators())) <= n_mid <= n_ops
    assert_close(ref, model)


def _scale_muls(model: Model) -> list[Operator]:
    return [op for op in model.main.ops_of_type("MUL")
            if op.inputs[0].producer is not None and op.inputs[0].producer.type == "BATCH_MATMUL"]


def test_zoo_transformer_attention_scales_fold_bit_identically(zoo):
    path = zoo("transformer_encoder")
    model = read_model(path)
    ctx = PassContext(shapes={TOKENS: (1, 32)})
    run_pipeline(model, parse_pipeline("specialize-shapes"), ctx)
    assert len(_scale_muls(model)) == 2            # 1/sqrt(16) = 0.25 per attention layer
    n = len(model.main.operators)
    ref = serialize(model)
    run_pipeline(model, parse_pipeline("fold-affine"), ctx)
    verify(model)
    assert _scale_muls(model) == [] and len(model.main.operators) == n - 2
    for source in (ref, str(path)):
        for xnnpack in (True, False):
            cmp, _ = compare_models(source, serialize(model), steps=2, shapes={TOKENS: (1, 32)},
                                    options=RunOptions(xnnpack=xnnpack))
            assert cmp.identical, (xnnpack, cmp.to_json())


@pytest.mark.parametrize("tiny, folds", [(False, True), (True, False)])
def test_float16_weights_fold_only_where_they_stay_float16(tiny, folds):
    """Weights stored as float16: the scale folds where restore-float16-weights can store the
    scaled weights as float16 again (same file size); where 0.25 * w would fall into float16's
    subnormal range (loses bits), the MUL is kept with a reason instead of growing the file."""
    g = G((1, 32, 64))
    w = np.random.default_rng(3).uniform(-1, 1, (64, 64)).astype(np.float16).astype(np.float32)
    if tiny:
        w[0, :8] = np.float32(2.0 ** -14 * (1 + 2.0 ** -10))  # normal in float16; x 0.25 is a subnormal with a bit too many
    s = attention(g, bias=False, q_weights=g.sg.new_constant("wq", w))
    g.sg.set_input(fcs(g.m)[1], 1, g.sg.new_constant("wk", w[::-1].copy()))   # the key too: no way out
    model = g.done(g.affine("MUL", s, np.float32(0.25), name="scores"))
    run(model, "store-float16-weights")
    ref = serialize(model)
    ctx = run(model, "fold-float16-weights,fold-affine,restore-float16-weights")
    assert types(model).count("MUL") == (0 if folds else 1)
    assert all(fc.inputs[1].producer.type == "DEQUANTIZE" for fc in fcs(model))  # float16 again
    assert len(serialize(model)) <= len(ref) + 64
    assert folds or any("would not be float16 any more" in n for n in ctx.messages), ctx.messages
    assert_bit_identical(ref, model)
