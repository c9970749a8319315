"""cancel-transposes: TRANSPOSE/RESHAPE pairs cancelled, also through elementwise ops; bit-identical."""
from __future__ import annotations

import numpy as np
import pytest

from tflc.io import read_model, read_model_bytes, serialize
from tflc.ir.core import Model, Operator
from tflc.ir.verify import verify
from tflc.passes_api import parse_pipeline
from tflc.passmanager import PassContext, run_pipeline
from tflc.rewrite import builtin_opcode
from tflc.runtime import compare_models
from tflc.schema import OPTIONS_TYPES, TYPE_CODES, fb

F32 = TYPE_CODES["FLOAT32"]
NCHW, NHWC = (0, 3, 1, 2), (0, 2, 3, 1)


def run(model: Model, spec: str = "cancel-transposes") -> PassContext:
    ctx = PassContext()
    run_pipeline(model, parse_pipeline(spec), ctx)
    verify(read_model_bytes(serialize(model)))
    return ctx


def assert_identical(ref, model: Model) -> None:
    cmp, _ = compare_models(ref, serialize(model), steps=1)
    assert cmp.identical, cmp.to_json()


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
    sg.topological_sort()
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
