"""fold-pad: zero PAD + VALID conv -> SAME conv, bit-identically; other pads refused with a reason."""
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
SAME, VALID = fb.Padding.SAME, fb.Padding.VALID


def run(model: Model, spec: str = "fold-pad") -> PassContext:
    return run_passes(model, spec)


def types(model: Model) -> list[str]:
    return [op.type for op in model.main.operators]


def same_pad(n, k, s, d):
    eff = (k - 1) * d + 1
    out = -(-n // s)
    total = max((out - 1) * s + eff - n, 0)
    return total // 2, total - total // 2


def qp(scale, zp):
    q = fb.QuantizationParametersT()
    q.scale, q.zeroPoint, q.quantizedDimension = list(np.atleast_1d(scale).astype(float)), list(np.atleast_1d(zp)), 0
    return q


def pad_conv(h=16, w=16, k=3, s=1, d=1, depthwise=False, pads=None, padding=VALID, pad_op="PAD", value=None,
             quantized=False, extra_reader=False, channel_pad=0) -> Model:
    """x -> PAD -> (DEPTHWISE_)CONV_2D; pads default to what SAME adds."""
    rng = np.random.default_rng(1)
    m = Model()
    sg = m.add_subgraph("main")
    c = 8
    dt = I8 if quantized else F32
    xq = qp(0.02, -3) if quantized else None
    x = sg.new_tensor("x", dt, (1, h, w, c), quantization=xq)
    sg.set_graph_inputs([x])
    ph, pw = pads if pads is not None else (same_pad(h, k, s, d), same_pad(w, k, s, d))
    amounts = np.array([[0, 0], list(ph), list(pw), [0, channel_pad]], np.int32)
    padded = sg.new_tensor("padded", dt, (1, h + sum(ph), w + sum(pw), c + channel_pad),
                           quantization=copy.deepcopy(xq))
    ins = [x, sg.new_constant("paddings", amounts)]
    if pad_op == "PADV2":
        ins.append(sg.new_constant("value", np.array([value], dtype=np.int8 if quantized else np.float32)))
    sg.add_op(Operator(builtin_opcode(pad_op), ins, [padded]))
    cin = c + channel_pad
    cout = cin if depthwise else 16
    if quantized:
        ws = rng.uniform(0.005, 0.02, cout)
        wshape = (1, k, k, cout) if depthwise else (cout, k, k, cin)
        wt = sg.new_constant("w", rng.integers(-127, 128, wshape).astype(np.int8),
                             quantization=qp(ws, np.zeros(cout, int)))
        wt.quantization.quantizedDimension = 3 if depthwise else 0
        bt = sg.new_constant("b", rng.integers(-2000, 2000, (cout,)).astype(np.int32),
                             quantization=qp(ws * 0.02, np.zeros(cout, int)))
    else:
        wshape = (1, k, k, cout) if depthwise else (cout, k, k, cin)
        wt = sg.new_constant("w", rng.normal(size=wshape).astype(np.float32))
        bt = sg.new_constant("b", rng.normal(size=(cout,)).astype(np.float32))
    eff = (k - 1) * d + 1
    oh, ow = (h + sum(ph) - eff) // s + 1, (w + sum(pw) - eff) // s + 1
    if padding == SAME:
        oh, ow = -(-(h + sum(ph)) // s), -(-(w + sum(pw)) // s)
    y = sg.new_tensor("y", dt, (1, oh, ow, cout), quantization=qp(0.05, 10) if quantized else None)
    common = dict(padding=padding, strideH=s, strideW=s, dilationHFactor=d, dilationWFactor=d)
    if depthwise:
        o = fb.DepthwiseConv2DOptionsT()
        for key, v in dict(common, depthMultiplier=1).items():
            setattr(o, key, v)
        sg.add_op(Operator(builtin_opcode("DEPTHWISE_CONV_2D", 3 if quantized else 1), [padded, wt, bt], [y],
                           options=o, options_type=OPTIONS_TYPES["DepthwiseConv2DOptions"]))
    else:
        o = fb.Conv2DOptionsT()
        for key, v in common.items():
            setattr(o, key, v)
        sg.add_op(Operator(builtin_opcode("CONV_2D", 3 if quantized else 1), [padded, wt, bt], [y],
                           options=o, options_type=OPTIONS_TYPES["Conv2DOptions"]))
    outs = [y]
    if extra_reader:
        z = sg.new_tensor("z", dt, padded.shape, quantization=copy.deepcopy(xq))
        sg.add_op(Operator(builtin_opcode("RELU"), [padded], [z]))
        outs.append(z)
    sg.set_graph_outputs(outs)
    verify(m)
    return m


GEOMETRIES = [(16, 16, 3, 1, 1), (16, 16, 3, 2, 1), (15, 17, 5, 2, 1), (16, 16, 3, 1, 2), (9, 9, 3, 2, 2),
              (16, 16, 4, 2, 1), (7, 7, 2, 3, 1)]


@pytest.mark.parametrize("depthwise", [False, True], ids=["conv", "depthwise"])
@pytest.mark.parametrize("geom", GEOMETRIES, ids=lambda g: "h{}w{}k{}s{}d{}".format(*g))
def test_folds_to_same_bit_identically(geom, depthwise):
    h, w, k, s, d = geom
    model = pad_conv(h, w, k, s, d, depthwise=depthwise)
    ref = serialize(model)
    run(model)
    assert types(model) == ["DEPTHWISE_CONV_2D" if depthwise else "CONV_2D"]
    conv = model.main.operators[0]
    assert conv.options.padding == SAME and conv.inputs[0].name == "x"
    assert_identical(ref, model)


def test_builtin_kernels_agree_too():
    model = pad_conv(15, 17, 5, 2, 1)
    ref = serialize(model)
    run(model)
    assert types(model) == ["CONV_2D"]
    assert_identical(ref, model, xnnpack=False)


def test_quantized_pad_with_zero_point_folds():
    model = pad_conv(16, 16, 3, 2, 1, quantized=True)
    ref = serialize(model)
    run(model)
    assert types(model) == ["CONV_2D"]
    assert_identical(ref, model)


def test_padv2_with_zero_folds_and_nonzero_is_refused():
    model = pad_conv(pad_op="PADV2", value=0.0)
    ref = serialize(model)
    run(model)
    assert types(model) == ["CONV_2D"]
    assert_identical(ref, model)
    for value in (-0.0, 1.0):
        model = pad_conv(pad_op="PADV2", value=value)
        ctx = run(model)
        assert types(model) == ["PADV2", "CONV_2D"]
        assert any("PADV2 value" in n for n in ctx.messages)


@pytest.mark.parametrize("kwargs, why", [
    (dict(pads=((1, 1), (1, 1)), s=2), "SAME adds (0, 1)x(0, 1)"),     # TF pads (0,1) for even sizes at stride 2
    (dict(pads=((2, 2), (2, 2))), "but SAME adds"),
    (dict(channel_pad=2), "batch or channel"),
    (dict(padding=SAME), "already uses SAME"),
])
def test_refusals_are_noted(kwargs, why):
    model = pad_conv(**kwargs)
    ref = serialize(model)
    ctx = run(model)
    assert types(model) == ["PAD", "CONV_2D"]
    assert any(n.startswith("fold-pad") and why in n for n in ctx.messages), ctx.messages
    assert_identical(ref, model)


def test_pad_with_another_reader_stays_for_it():
    model = pad_conv(extra_reader=True)
    ref = serialize(model)
    run(model)
    assert types(model) == ["PAD", "CONV_2D", "RELU"]
    assert model.main.operators[1].inputs[0].name == "x"
    assert_identical(ref, model)


def _explicit_padding(model: Model) -> int:
    """Rewrite every SAME conv that pads into PAD + VALID conv (what fold-pad must undo)."""
    sg, n = model.main, 0
    for conv in sg.ops_of_type("CONV_2D", "DEPTHWISE_CONV_2D"):
        o, x, w = conv.options, conv.inputs[0], conv.inputs[1]
        ph = same_pad(x.shape[1], w.shape[1], o.strideH, o.dilationHFactor)
        pw = same_pad(x.shape[2], w.shape[2], o.strideW, o.dilationWFactor)
        if o.padding != SAME or not any(ph + pw):
            continue
        padded = sg.new_tensor(x.name + "/padded", x.dtype, (1, x.shape[1] + sum(ph), x.shape[2] + sum(pw), x.shape[3]))
        amounts = sg.new_constant(x.name + "/paddings", np.array([[0, 0], ph, pw, [0, 0]], np.int32))
        sg.add_op(Operator(builtin_opcode("PAD"), [x, amounts], [padded]), before=conv)
        sg.set_input(conv, 0, padded)
        conv.options = copy.copy(o)
        conv.options.padding = VALID
        n += 1
    return n


def test_zoo_mobilenet_explicit_padding_is_folded_back(zoo):
    path = zoo("mobilenet_tiny")
    model = read_model(path)
    n = _explicit_padding(model)
    assert n >= 8
    ref = serialize(model)
    run(model)
    original = read_model(path)
    assert types(model) == types(original)
    assert [op.options.padding for op in model.main.ops_of_type("CONV_2D", "DEPTHWISE_CONV_2D")] == \
           [op.options.padding for op in original.main.ops_of_type("CONV_2D", "DEPTHWISE_CONV_2D")]
    assert_identical(ref, model)
    assert_identical(str(path), model)


def test_real_models(shared_model):
    model = read_model(shared_model)
    foldable = sum(1 for op in model.operators() if op.type in ("CONV_2D", "DEPTHWISE_CONV_2D")
                   and op.inputs[0].producer is not None and op.inputs[0].producer.type in ("PAD", "PADV2"))
    pads = sum(1 for op in model.operators() if op.type in ("PAD", "PADV2"))
    ctx = run(model)
    left = sum(1 for op in model.operators() if op.type in ("PAD", "PADV2"))
    # every conv-feeding PAD is either folded or refused with a reason
    assert pads - left + len([m for m in ctx.messages if m.startswith("fold-pad")]) >= foldable
    cmp, _ = compare_models(str(shared_model), serialize(model), steps=1)
    assert cmp.identical
