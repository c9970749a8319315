"""fuse-activations: separate RELU-family ops fused into their producer, bit-identically."""
from __future__ import annotations

import copy

import numpy as np
import pytest

from tflc.io import read_model, serialize
from tflc.ir.core import Model, Operator
from tflc.ir.verify import verify
from tflc.passmanager import PassContext
from tflc.rewrite import builtin_opcode
from tflc.runtime import compare_models
from tflc.schema import OPTIONS_TYPES, TYPE_CODES, fb
from tflc.testing.graphs import run_passes, assert_identical

F32, I8, I32 = TYPE_CODES["FLOAT32"], TYPE_CODES["INT8"], TYPE_CODES["INT32"]
ACT = {"NONE": 0, "RELU": 1, "RELU_N1_TO_1": 2, "RELU6": 3, "TANH": 4}


# ----------------------------------------------------------------------------- tiny graphs

class G:
    """A one-subgraph model built op by op."""

    def __init__(self):
        self.m = Model()
        self.sg = self.m.add_subgraph("main")

    def input(self, name, shape, dtype=F32, **kw):
        t = self.sg.new_tensor(name, dtype, shape, **kw)
        self.sg.set_graph_inputs([*self.sg.inputs, t])
        return t

    def const(self, name, arr, **kw):
        return self.sg.new_constant(name, np.asarray(arr), **kw)

    def op(self, typ, inputs, shape, options=None, dtype=F32, version=1, name=None, **kw):
        out = self.sg.new_tensor(name or f"{typ.lower()}_out", dtype, shape, **kw)
        otype = OPTIONS_TYPES[type(options).__name__[:-1]] if options is not None else 0
        self.sg.add_op(Operator(builtin_opcode(typ, version), inputs, [out], options=options, options_type=otype))
        return out

    def done(self, *outputs) -> Model:
        self.sg.set_graph_outputs(list(outputs))
        verify(self.m)
        return self.m


def opts(cls, **kw):
    o = getattr(fb, cls + "T")()
    for k, v in kw.items():
        setattr(o, k, v)
    return o


def qp(scale, zp):
    q = fb.QuantizationParametersT()
    q.scale, q.zeroPoint, q.quantizedDimension = list(np.atleast_1d(scale).astype(float)), list(np.atleast_1d(zp)), 0
    return q


def run(model: Model, spec: str = "fuse-activations") -> PassContext:
    return run_passes(model, spec)


def types(model: Model) -> list[str]:
    return [op.type for op in model.main.operators]


RNG = np.random.default_rng(0)
W_CONV = RNG.normal(size=(6, 3, 3, 4)).astype(np.float32)
W_DW = RNG.normal(size=(1, 3, 3, 4)).astype(np.float32)
W_FC = RNG.normal(size=(6, 4)).astype(np.float32)
B6 = RNG.normal(size=(6,)).astype(np.float32)
B4 = RNG.normal(size=(4,)).astype(np.float32)
C4 = (RNG.normal(size=(1, 1, 1, 4)) * 2).astype(np.float32)


def producer_graph(producer: str, activation: str | None, fused: str = "NONE", extra_reader=False, act_out_name="act"):
    """x[1,8,8,4] -> PRODUCER -> ACTIVATION -> graph output (named ``act``)."""
    g = G()
    x = g.input("x", (1, 8, 8, 4))
    f = ACT[fused]
    conv = dict(padding=fb.Padding.SAME, strideH=1, strideW=1, dilationHFactor=1, dilationWFactor=1,
                fusedActivationFunction=f)
    if producer == "CONV_2D":
        y = g.op(producer, [x, g.const("w", W_CONV), g.const("b", B6)], (1, 8, 8, 6), opts("Conv2DOptions", **conv))
    elif producer == "DEPTHWISE_CONV_2D":
        y = g.op(producer, [x, g.const("w", W_DW), g.const("b", B4)], (1, 8, 8, 4),
                 opts("DepthwiseConv2DOptions", depthMultiplier=1, **conv))
    elif producer == "FULLY_CONNECTED":
        y = g.op(producer, [x, g.const("w", W_FC), g.const("b", B6)], (1, 8, 8, 6),
                 opts("FullyConnectedOptions", fusedActivationFunction=f, keepNumDims=True))
    elif producer == "TRANSPOSE_CONV":
        y = g.op(producer, [g.const("shape", np.array([1, 16, 16, 6], np.int32)), g.const("w", W_CONV), x,
                            g.const("b", B6)], (1, 16, 16, 6),
                 opts("TransposeConvOptions", padding=fb.Padding.SAME, strideH=2, strideW=2, fusedActivationFunction=f))
    elif producer in ("ADD", "SUB", "MUL", "DIV"):
        cls = producer.capitalize() + "Options"
        y = g.op(producer, [x, g.const("c", C4)], (1, 8, 8, 4), opts(cls, fusedActivationFunction=f))
    elif producer in ("AVERAGE_POOL_2D", "MAX_POOL_2D"):
        y = g.op(producer, [x], (1, 4, 4, 4), opts("Pool2DOptions", padding=fb.Padding.VALID, strideH=2, strideW=2,
                                                  filterHeight=2, filterWidth=2, fusedActivationFunction=f))
    elif producer == "CONCATENATION":
        y = g.op(producer, [x, x], (1, 8, 8, 8), opts("ConcatenationOptions", axis=3, fusedActivationFunction=f))
    else:
        raise ValueError(producer)
    outs = []
    if activation is not None:
        a = g.op(activation, [y], y.shape, name=act_out_name)
        outs.append(a)
    if extra_reader:
        outs.append(g.op("NEG", [y], y.shape, name="other"))
    return g.done(*(outs or [y]))


PRODUCERS = ["CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "TRANSPOSE_CONV", "ADD", "SUB", "MUL", "DIV",
             "AVERAGE_POOL_2D", "MAX_POOL_2D"]


# ----------------------------------------------------------------------------- fusion

@pytest.mark.parametrize("producer", PRODUCERS)
@pytest.mark.parametrize("activation", ["RELU", "RELU6", "RELU_N1_TO_1"])
def test_fuses_into_producer_bit_identically(producer, activation):
    model = producer_graph(producer, activation)
    ref = serialize(model)
    run(model)
    assert types(model) == [producer]
    op = model.main.operators[0]
    assert op.options.fusedActivationFunction == ACT[activation]
    assert op.outputs[0].name == "act" and model.main.outputs[0] is op.outputs[0]
    assert_identical(ref, model)


def test_builtin_kernels_agree_too():
    model = producer_graph("CONV_2D", "RELU6")
    ref = serialize(model)
    run(model)
    assert types(model) == ["CONV_2D"]
    assert_identical(ref, model, xnnpack=False)


def test_transpose_conv_gets_version_4():
    model = producer_graph("TRANSPOSE_CONV", "RELU")
    run(model)
    assert model.main.operators[0].opcode.version == 4


def test_chain_of_activations_fuses_once():
    g = G()
    x = g.input("x", (1, 8, 8, 4))
    y = g.op("ADD", [x, g.const("c", C4)], (1, 8, 8, 4), opts("AddOptions"))
    y = g.op("RELU", [y], y.shape, name="r1")
    y = g.op("RELU6", [y], y.shape, name="r2")
    model = g.done(y)
    ref = serialize(model)
    ctx = run(model)
    assert types(model) == ["ADD", "RELU6"]
    assert any("already has a fused activation" in n for n in ctx.messages)
    assert_identical(ref, model)


# ----------------------------------------------------------------------------- refusals

@pytest.mark.parametrize("case, producer, activation, why", [
    ("tanh", "CONV_2D", "TANH", "TANH"),
    ("concat", "CONCATENATION", "RELU", "CONCATENATION"),
    ("fused", "CONV_2D", "RELU", "already has a fused activation"),
    ("two readers", "CONV_2D", "RELU", "also read by"),
])
def test_refusals_are_noted(case, producer, activation, why):
    model = producer_graph(producer, activation, fused="RELU6" if case == "fused" else "NONE",
                           extra_reader=case == "two readers")
    before = types(model)
    ctx = run(model)
    assert types(model) == before
    assert any(why in n and n.startswith("fuse-activations") for n in ctx.messages), ctx.messages


def test_producer_result_that_is_a_graph_output_is_kept():
    g = G()
    x = g.input("x", (1, 8, 8, 4))
    y = g.op("ADD", [x, g.const("c", C4)], (1, 8, 8, 4), opts("AddOptions"), name="sum")
    r = g.op("RELU", [y], y.shape, name="act")
    model = g.done(r, y)
    ctx = run(model)
    assert types(model) == ["ADD", "RELU"]
    assert any("graph output" in n for n in ctx.messages)


def _quantized_conv(act_q, fused="NONE"):
    rng = np.random.default_rng(1)
    g = G()
    x = g.input("x", (1, 8, 8, 4), I8, quantization=qp(0.02, -3))
    ws = rng.uniform(0.005, 0.02, 6)
    w = g.const("w", rng.integers(-127, 128, (6, 3, 3, 4)).astype(np.int8), quantization=qp(ws, np.zeros(6, int)))
    b = g.const("b", rng.integers(-2000, 2000, (6,)).astype(np.int32), quantization=qp(ws * 0.02, np.zeros(6, int)))
    y = g.op("CONV_2D", [x, w, b], (1, 8, 8, 6), opts("Conv2DOptions", padding=fb.Padding.SAME, strideH=1, strideW=1,
                                                       dilationHFactor=1, dilationWFactor=1), dtype=I8,
             quantization=qp(0.05, 10), version=3)
    r = g.op("RELU6", [y], y.shape, dtype=I8, quantization=qp(*act_q), version=2, name="act")
    return g.done(r)


def test_quantized_with_equal_parameters_fuses_bit_identically():
    model = _quantized_conv((0.05, 10))
    ref = serialize(model)
    run(model)
    assert types(model) == ["CONV_2D"]
    assert_identical(ref, model)


def test_quantized_with_other_parameters_is_refused():
    model = _quantized_conv((0.03, -128))
    ctx = run(model)
    assert types(model) == ["CONV_2D", "RELU6"]
    assert any("quantization" in n for n in ctx.messages)


# ----------------------------------------------------------------------------- converter and real models

def _unfuse(model: Model) -> int:
    """Split every fused RELU/RELU6 into a separate op (what fuse-activations must undo)."""
    names = {1: "RELU", 3: "RELU6", 2: "RELU_N1_TO_1"}
    sg, n = model.main, 0
    for op in sg.operators:
        f = getattr(op.options, "fusedActivationFunction", 0) if op.options is not None else 0
        if f not in names:
            continue
        y = op.outputs[0]
        mid = sg.new_tensor(y.name + "/pre_activation", y.dtype, y.shape, shape_signature=y.shape_signature,
                            quantization=copy.deepcopy(y.quantization))
        op.options = copy.copy(op.options)
        op.options.fusedActivationFunction = 0
        sg.set_output(op, 0, mid)
        sg.add_op(Operator(builtin_opcode(names[f]), [mid], [y]), after=op)
        n += 1
    return n


def test_zoo_mobilenet_unfused_is_restored(zoo):
    path = zoo("mobilenet_tiny")
    original = read_model(path)
    model = read_model(path)
    n = _unfuse(model)
    assert n >= 10
    ref = serialize(model)
    run(model)
    assert types(model) == types(original)
    assert [getattr(op.options, "fusedActivationFunction", None) for op in model.main.operators] == \
           [getattr(op.options, "fusedActivationFunction", None) for op in original.main.operators]
    assert_identical(ref, model)
    assert_identical(path.read_bytes(), model)


def test_real_models(shared_model):
    model = read_model(shared_model)
    acts = sum(1 for op in model.operators() if op.type in ("RELU", "RELU6", "RELU_N1_TO_1"))
    n_ops = sum(1 for _ in model.operators())
    ctx = run(model)
    left = sum(1 for op in model.operators() if op.type in ("RELU", "RELU6", "RELU_N1_TO_1"))
    # every activation left over was refused with a reason
    assert left <= acts and len([m for m in ctx.messages if m.startswith("fuse-activations")]) >= left
    if shared_model.stem in ("face_detection_short_range", "selfie_segmentation"):
        assert acts > 0 and left == 0          # all their RELUs follow a conv or an ADD
    assert sum(1 for _ in model.operators()) <= n_ops
    cmp, _ = compare_models(str(shared_model), serialize(model), steps=1)
    assert cmp.identical
