"""The gpu target: LiteRT's GPU delegate rules, checked on hand-built models for every rule family
(rank limit, tensor types, op versions, option values, constant inputs, broadcasting, shapes,
comparisons feeding a CAST/SELECT, custom ops, float16 weights, the one-partition limit), with the
reasons asserted, and on the zoo's models. No GPU is needed: the delegate's decision is read from
its source; where LiteRT's own unit tests (gpu_compatibility_test.cc, model_builder_test.cc at
the recorded commit) pin a case, the same case is here, named after it."""
from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Callable

import numpy as np
import pytest

from _partition_graphs import Graph
from tflc.io import read_model
from tflc.ir.core import Model
from tflc.schema import fb
from tflc.targets import get_target
from tflc.targets.plan import make_plan

T = get_target("gpu")
F = "FLOAT32"


def split(model: Model) -> list[str]:
    return ["GPU" if d.delegated else "CPU" for d in make_plan(model, T).ops]


def reasons(model: Model) -> list[str]:
    return [d.reason for d in make_plan(model, T).ops if not d.delegated]


def one(kind, shapes=((1, 8, 8, 4),), out=None, dtype=F, odtype=None, consts=(), opts=None, version=1, **kw):
    """One op: run-time inputs of ``shapes`` (``dtype``), then constant inputs ``consts``."""
    g = Graph()
    ins = [g.input(f"x{i}", s, dtype) for i, s in enumerate(shapes)]
    ins += [g.const(f"c{i}", c) if not isinstance(c, tuple) else g.weights(f"c{i}", c, F) for i, c in enumerate(consts)]
    return g.done([g.op(kind, ins, shapes[0] if out is None else out, opts, version=version, dtype=odtype or dtype,
                        **kw)])


def add(a, b, **kw):
    return one("ADD", (a, b), out=a if len(a) >= len(b) else b, opts="Add", **kw)


def conv(version=1, filter_runtime=False, **kw):
    g = Graph()
    x = g.input("x", (1, 8, 8, 4), F)
    w = g.input("w", (8, 3, 3, 4), F) if filter_runtime else g.weights("w", (8, 3, 3, 4), F)
    b = g.const("b", np.zeros(8, np.float32))
    fields = dict(padding="SAME", strideW=1, strideH=1)
    fields.update(kw)
    return g.done([g.op("CONV_2D", [x, w, b], (1, 8, 8, 8), "Conv2D", version=version, dtype=F, **fields)])


def depthwise(out_channels=4, mult=1):
    g = Graph()
    x = g.input("x", (1, 8, 8, 4), F)
    w, b = g.weights("w", (1, 3, 3, out_channels), F), g.const("b", np.zeros(out_channels, np.float32))
    return g.done([g.op("DEPTHWISE_CONV_2D", [x, w, b], (1, 8, 8, out_channels), "DepthwiseConv2D", dtype=F,
                        padding="SAME", strideW=1, strideH=1, depthMultiplier=mult)])


def fc(const_input=False, **kw):
    g = Graph()
    x = g.const("x", np.ones((1, 16), np.float32)) if const_input else g.input("x", (1, 16), F)
    w = g.weights("w", (4, 16), F)
    return g.done([g.op("FULLY_CONNECTED", [x, w, None], kw.pop("out", (1, 4)), "FullyConnected", dtype=F, **kw)])


def reduce(kind="MEAN", axes_runtime=False, axes_dtype="INT32"):
    g = Graph()
    x = g.input("x", (1, 8, 8, 4), F)
    ax = g.input("ax", (2,), "INT32") if axes_runtime else g.ints("ax", [1, 2], axes_dtype)
    return g.done([g.op(kind, [x, ax], (1, 1, 1, 4), "Reducer", dtype=F, keepDims=True)])


def compare_then(next_op: str, next_dtype=F, readers=1, tail=True):
    """GREATER -> next_op (CAST or SELECT_V2) writing ``next_dtype`` (-> NEG when ``tail``); ``readers``
    ops read the BOOL."""
    g = Graph()
    a, b = g.input("a", (1, 8, 8, 4), F), g.input("b", (1, 8, 8, 4), F)
    m = g.op("GREATER", [a, b], (1, 8, 8, 4), dtype="BOOL")
    outs = []
    for _ in range(readers):
        if next_op == "CAST":
            outs.append(g.op("CAST", [m], (1, 8, 8, 4), dtype=next_dtype))
        else:
            outs.append(g.op("SELECT_V2", [m, a, b], (1, 8, 8, 4), dtype=next_dtype))
    if tail:
        outs = [g.op("NEG", [o], (1, 8, 8, 4), dtype=next_dtype) for o in outs]
    return g.done(outs)


def custom(code, shapes, out, options: bytes | None = None, outputs=1):
    g = Graph()
    ins = [g.input(f"x{i}", s, F) for i, s in enumerate(shapes)]
    from tflc.ir.core import OpCode, Operator
    from tflc.schema import OP_CODES
    outs = [g.tensor(f"y{i}", out, F) for i in range(outputs)]
    g.sg.add_op(Operator(OpCode(OP_CODES["CUSTOM"], code, 1), ins, outs, custom_options=options))
    return g.done(outs)


def basic_lstm(depth):
    g = Graph()
    x, prev_a, prev_s = g.input("x", (2, 4), F), g.input("pa", (2, depth), F), g.input("ps", (2, depth), F)
    w, b = g.weights("w", (4 * depth, 4 + depth), F), g.const("b", np.zeros(4 * depth, np.float32))
    outs = [g.tensor("a", (2, depth), F), g.tensor("s", (2, depth), F), g.tensor("c", (2, 4 * depth), F),
            g.tensor("act", (2, depth), F)]
    g.op("LSTM", [x, w, b, prev_a, prev_s], outs, "LSTM", dtype=F,
         kernelType=fb.LSTMKernelType.BASIC, fusedActivationFunction="TANH")
    return g.done(outs)


def pad(kind="PAD", paddings=((0, 0), (1, 1), (1, 1), (0, 0)), shape=(1, 8, 8, 4), **kw):
    g = Graph()
    x = g.input("x", shape, F)
    out = tuple(d + a + b for d, (a, b) in zip(shape, paddings))
    return g.done([g.op(kind, [x, g.ints("p", list(paddings))], out, "MirrorPad" if kind == "MIRROR_PAD" else None,
                        dtype=F, **kw)])


@dataclass
class Case:
    name: str
    build: Callable[[], Model]
    expect: str                  # "GPU", "CPU" or one word per op
    reason: str = ""             # the first CPU op's reason (whole, or the part after "OP: ")


CASES = [
    # rank limit (IsAllAllowedTensors: dims->size >= 5 refuses the op)
    Case("transpose_rank5", lambda: one("TRANSPOSE", ((1, 2, 3, 4, 5),), out=(1, 2, 3, 5, 4),
                                        consts=(np.array([0, 1, 2, 4, 3], np.int32),)), "CPU",
         "TRANSPOSE: input 0 has rank 5, the GPU delegate takes rank <= 4"),
    Case("transpose_rank4", lambda: one("TRANSPOSE", ((1, 2, 3, 4),), out=(1, 3, 2, 4),
                                        consts=(np.array([0, 2, 1, 3], np.int32),)), "GPU"),
    Case("add_rank5_constant", lambda: one("ADD", ((1, 1, 2, 3, 4),), consts=(np.ones((1, 1, 2, 3, 4), np.float32),),
                                           opts="Add"), "CPU",
         "ADD: input 0 has rank 5, the GPU delegate takes rank <= 4"),
    # tensor types: run-time tensors FLOAT32/FLOAT16/INT8/UINT8 (quantized models allowed), constants unchecked
    Case("add_int32", lambda: add((1, 8), (1, 8), dtype="INT32"), "CPU",
         "ADD: input 0 is INT32, the GPU delegate takes FLOAT32, FLOAT16, INT8 or UINT8"),
    Case("add_int8", lambda: add((1, 8), (1, 8), dtype="INT8"), "GPU"),
    Case("add_int16", lambda: add((1, 8), (1, 8), dtype="INT16"), "CPU", "input 0 is INT16"),
    Case("reshape_constant_int32_shape", lambda: one("RESHAPE", consts=(np.array([1, 64, 4], np.int32),),
                                                     out=(1, 64, 4), opts="Reshape"), "GPU"),
    Case("reshape_runtime_shape", lambda: Graph_reshape_runtime(), "CPU",
         "RESHAPE: 2 input(s) computed at run time, the GPU delegate takes 1"),
    Case("cast_int32_to_float", lambda: one("CAST", ((1, 8),), dtype="INT32", odtype=F), "GPU"),
    # CastOperationParserTest: INT8 -> FLOAT32 is not a supported CAST
    Case("cast_int8_to_float", lambda: one("CAST", ((1, 8),), dtype="INT8", odtype=F), "CPU",
         "CAST: a CAST from INT8 to FLOAT32"),
    Case("gather_int32_indices", lambda: Graph_gather(), "GPU"),
    Case("gather_2d_indices", lambda: Graph_gather(indices=(2, 1)), "CPU",
         "GATHER: input 1 (indices) has rank 2, the GPU delegate takes 1-D indices"),
    Case("logical_and_bool", lambda: one("LOGICAL_AND", ((1, 8), (1, 8)), dtype="BOOL"), "GPU"),
    # op versions (each parser's CheckMaxSupportedOpVersion)
    Case("conv_v6", lambda: conv(version=6), "GPU"),
    Case("conv_v7", lambda: conv(version=7), "CPU", "CONV_2D: version 7, the GPU delegate takes version <= 6"),
    Case("add_v3 (AddOperationParserTest)", lambda: add((1, 8), (1, 8), version=3), "CPU",
         "ADD: version 3, the GPU delegate takes version <= 2"),
    Case("mul_v3", lambda: one("MUL", ((1, 8), (1, 8)), opts="Mul", version=3), "GPU"),
    Case("concatenation_v3 (ConcatenationOperationParserTest)",
         lambda: one("CONCATENATION", ((1, 8), (1, 8)), out=(1, 16), opts="Concatenation", version=3, axis=1),
         "CPU", "version 3, the GPU delegate takes version <= 2"),
    Case("relu_v3", lambda: one("RELU", version=3), "CPU", "RELU: version 3, the GPU delegate takes version <= 2"),
    Case("dequantize_v4 (DequantizeOperationParserTest)", lambda: one("DEQUANTIZE", dtype="INT8", odtype=F, version=4),
         "CPU", "version 4, the GPU delegate takes version <= 3"),
    # option values
    Case("conv_sign_bit (Conv2DOperationParserTest)", lambda: conv(fusedActivationFunction="SIGN_BIT"), "CPU",
         "CONV_2D: fused activation SIGN_BIT, the GPU delegate takes NONE, RELU, RELU_N1_TO_1, RELU6 or TANH"),
    Case("conv_stride0 (Conv2DOperationParserTest)", lambda: conv(strideW=0, strideH=0), "CPU",
         "strides 0x0, the GPU delegate takes strides > 0"),
    Case("conv_dilation0 (Conv2DOperationParserTest)", lambda: conv(dilationWFactor=0, dilationHFactor=0), "CPU",
         "dilation 0x0, the GPU delegate takes dilation > 0"),
    Case("conv_tanh", lambda: conv(fusedActivationFunction="TANH"), "GPU"),
    Case("add_sign_bit_is_not_checked", lambda: add((1, 8), (1, 8), fusedActivationFunction="SIGN_BIT"), "GPU"),
    Case("mul_sign_bit", lambda: one("MUL", ((1, 8), (1, 8)), opts="Mul", fusedActivationFunction="SIGN_BIT"), "CPU",
         "MUL: fused activation SIGN_BIT"),
    Case("softmax_beta2", lambda: one("SOFTMAX", opts="Softmax", beta=2.0), "CPU",
         "SOFTMAX: beta 2, the GPU delegate takes beta 1"),
    Case("softmax_beta1", lambda: one("SOFTMAX", opts="Softmax", beta=1.0), "GPU"),
    Case("mirror_pad_symmetric (MirrorPadOperationParserTest)",
         lambda: pad("MIRROR_PAD", mode=fb.MirrorPadMode.SYMMETRIC), "CPU",
         "MIRROR_PAD: SYMMETRIC mirror padding, the GPU delegate takes REFLECT"),
    Case("mirror_pad_reflect", lambda: pad("MIRROR_PAD", mode=fb.MirrorPadMode.REFLECT), "GPU"),
    Case("strided_slice_shrink", lambda: Graph_strided(shrinkAxisMask=1), "CPU",
         "STRIDED_SLICE: shrink_axis_mask is set, the GPU delegate takes no shrink_axis_mask"),
    Case("strided_slice", lambda: Graph_strided(), "GPU"),
    Case("resize_align_and_half_pixel", lambda: Graph_resize(alignCorners=True, halfPixelCenters=True), "CPU",
         "align_corners and half_pixel_centers are both set"),
    Case("fully_connected_shuffled_weights", lambda: fc(weightsFormat=1), "CPU",
         "FULLY_CONNECTED: shuffled weights"),
    Case("fully_connected_keep_num_dims", lambda: fc(keepNumDims=True), "GPU"),
    Case("depth_to_space_block1 (DepthToSpaceOperationParserTest)",
         lambda: one("DEPTH_TO_SPACE", opts="DepthToSpace", blockSize=1), "CPU",
         "DEPTH_TO_SPACE: block size 1, the GPU delegate takes block size > 1"),
    Case("max_pool_kernel0", lambda: one("MAX_POOL_2D", opts="Pool2D", filterWidth=0, filterHeight=0, strideW=1,
                                         strideH=1), "CPU", "kernel 0x0, the GPU delegate takes a kernel > 0"),
    # constant / run-time inputs
    Case("fully_connected_constant_input (FCConstInput)", lambda: fc(const_input=True), "CPU",
         "FULLY_CONNECTED: input 0 is constant, the GPU delegate takes an input computed at run time"),
    Case("conv_runtime_filter", lambda: conv(filter_runtime=True), "GPU"),
    Case("mean_runtime_axes", lambda: reduce(axes_runtime=True), "CPU",
         "MEAN: 0 constant input(s), the GPU delegate takes 1"),
    Case("sum_int64_axes", lambda: reduce("SUM", axes_dtype="INT64"), "CPU",
         "SUM: input 1 (axes) is INT64, the GPU delegate takes INT32 axes"),
    Case("sub_two_constants", lambda: Graph_sub_consts(), "CPU GPU", "SUB: 0 input(s) computed at run time"),
    # broadcasting (gpu_compatibility_test.cc, standard flags as the delegate calls it)
    Case("Add1Dto3DBroadcastSuccess", lambda: add((4, 1, 2), (2,)), "GPU"),
    Case("Add2Dto3DBroadcastFail", lambda: add((1, 100, 256), (100, 256)), "CPU",
         "ADD: inputs of shapes [1, 100, 256] and [100, 256] broadcast, the GPU delegate takes a 3-D input "
         "broadcast to 4-D with batch 1, or a 2-D [1, 1] or [batch, channels] one"),
    Case("Add3Dto4DBroadcastFail", lambda: add((4, 1, 1, 2), (1, 1, 2)), "CPU", "inputs of shapes [4, 1, 1, 2]"),
    Case("Add3Dto4DBroadcastSuccess", lambda: add((1, 128, 513, 3), (128, 513, 3)), "GPU"),
    Case("Add2Dto4DBroadcastSuccess", lambda: add((1, 512, 512, 1), (1, 1)), "GPU"),
    Case("Add2Dto4DBroadcastSuccess3", lambda: add((1, 4, 4, 10), (1, 10)), "GPU"),
    # shapes
    Case("depthwise", depthwise, "GPU"),
    Case("depthwise_multiplier0 (DepthwiseConvolutionOperationParserTest)", lambda: depthwise(mult=0), "CPU",
         "output channels 4 != input channels 4 x depth multiplier 0"),
    Case("slice_rank2", lambda: one("SLICE", ((8, 4),), out=(4, 4), consts=(np.array([0, 0], np.int32),
                                                                           np.array([4, 4], np.int32))), "CPU",
         "SLICE: input 0 has rank 2, the GPU delegate takes rank 3 or 4"),
    Case("pad_2d", lambda: pad(paddings=((1, 1), (1, 1)), shape=(8, 4)), "CPU",
         "PAD: paddings of shape [2, 2], the GPU delegate takes 4x2 or 3x2"),
    Case("pad", pad, "GPU"),
    Case("BasicLstmUnalignedActivationDepth", lambda: basic_lstm(5), "CPU",
         "LSTM: output 3 depth 5, the GPU delegate takes a multiple of 4 (BasicLSTM)"),
    Case("BasicLstmAlignedActivationDepth", lambda: basic_lstm(8), "GPU"),
    # comparisons run on the GPU only before a CAST / SELECT to floats (ElementwiseOperationParser)
    Case("greater_then_cast_to_float", lambda: compare_then("CAST"), "GPU GPU GPU"),
    Case("greater_then_cast_to_int32", lambda: compare_then("CAST", "INT32", tail=False), "CPU CPU",
         "GREATER: its BOOL output feeds CAST writing INT32, the GPU delegate takes a CAST, SELECT or SELECT_V2 to "
         "FLOAT16/FLOAT32"),
    # CastOperationParser: "If the cast is an output, do the cast to float on CPU"
    Case("greater_then_cast_as_graph_output", lambda: compare_then("CAST", tail=False), "GPU CPU",
         "CAST: a CAST from BOOL that is a graph output (or has several readers)"),
    Case("greater_read_twice", lambda: compare_then("CAST", readers=2), "CPU GPU GPU GPU GPU",
         "its BOOL output has 2 consumers"),
    Case("greater_then_select", lambda: compare_then("SELECT_V2"), "GPU GPU GPU"),
    # custom ops with a GPU parser
    Case("ResamplerMismatchedBatch", lambda: custom("Resampler", ((2, 4, 4, 3), (1, 4, 4, 2)), (2, 4, 4, 3)), "CPU",
         "Resampler: src and warp batches differ"),
    Case("ResamplerInvalidChannels", lambda: custom("Resampler", ((1, 4, 4, 3), (1, 4, 4, 1)), (1, 4, 4, 3)), "CPU",
         "warp depth 1, the GPU delegate takes at least 2"),
    Case("Resampler", lambda: custom("Resampler", ((1, 4, 4, 3), (1, 4, 4, 2)), (1, 4, 4, 3)), "GPU"),
    Case("MaxPoolingWithArgmax2D", lambda: custom("MaxPoolingWithArgmax2D", ((1, 8, 8, 4),), (1, 4, 4, 4),
                                                  struct.pack("<6i", 1, 2, 2, 2, 2, 0), outputs=2), "GPU"),
    Case("FlexAddV2 (FlexModel)", lambda: custom("FlexAddV2", ((1, 8), (1, 8)), (1, 8)), "CPU",
         "FlexAddV2 is not supported by the GPU delegate"),
    # no parser at all (in gpu_compatibility.cc or not)
    Case("embedding_lookup_has_no_parser", lambda: Graph_embedding(), "CPU",
         "EMBEDDING_LOOKUP is not supported by the GPU delegate (model_builder.cc has no parser for it)"),
    Case("ceil_has_no_parser", lambda: one("CEIL"), "CPU", "CEIL is not supported by the GPU delegate"),
    Case("dequantize_int16", lambda: one("DEQUANTIZE", dtype="INT16", odtype=F), "CPU",
         "DEQUANTIZE: input 0 is INT16, the GPU delegate takes INT8 or UINT8"),
]


def Graph_reshape_runtime():
    g = Graph()
    x, s = g.input("x", (1, 8, 8, 4), F), g.input("s", (3,), "INT32")
    return g.done([g.op("RESHAPE", [x, s], (1, 64, 4), "Reshape", dtype=F)])


def Graph_gather(indices=(2,)):
    g = Graph()
    t, i = g.input("t", (10, 4), F), g.input("i", indices, "INT32")
    return g.done([g.op("GATHER", [t, i], indices + (4,), "Gather", dtype=F, axis=0)])


def Graph_strided(**masks):
    g = Graph()
    x = g.input("x", (1, 8, 8, 4), F)
    ins = [x, g.ints("b", [0, 0, 0, 0]), g.ints("e", [1, 4, 8, 4]), g.ints("s", [1, 1, 1, 1])]
    out = (4, 8, 4) if masks.get("shrinkAxisMask") else (1, 4, 8, 4)
    return g.done([g.op("STRIDED_SLICE", ins, out, "StridedSlice", dtype=F, **masks)])


def Graph_resize(**opts):
    g = Graph()
    x = g.input("x", (1, 8, 8, 4), F)
    return g.done([g.op("RESIZE_BILINEAR", [x, g.ints("size", [16, 16])], (1, 16, 16, 4), "ResizeBilinear", dtype=F,
                        **opts)])


def Graph_sub_consts():
    g = Graph()
    x = g.input("x", (1, 8), F)
    c1, c2 = g.const("c1", np.ones((1, 8), np.float32)), g.const("c2", np.ones((1, 8), np.float32))
    s = g.op("SUB", [c1, c2], (1, 8), "Sub", dtype=F)
    return g.done([g.op("ADD", [x, s], (1, 8), "Add", dtype=F)])


def Graph_embedding():
    g = Graph()
    ids, table = g.input("ids", (3,), "INT32"), g.const("table", np.ones((10, 4), np.float32))
    return g.done([g.op("EMBEDDING_LOOKUP", [ids, table], (3, 4), dtype=F)])


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name.split()[0])
def test_rule(case: Case):
    model = case.build()
    assert split(model) == case.expect.split()
    why = reasons(model)
    if case.reason:
        assert why and case.reason in why[0], why
        op = next(d for d in make_plan(model, T).ops if not d.delegated)
        assert why[0].startswith((op.type + ": ", op.type + " is not supported"))
    else:
        assert not why


# --------------------------------------------------------------------------- partitions and float16 weights

def test_only_the_largest_partition_is_kept():
    """max_delegated_partitions = 1: of [2 ops] CEIL [3 ops], the 3-op partition runs on the GPU."""
    g = Graph()
    t = g.input("x", (1, 8), F)
    for kind in ("RELU", "TANH", "CEIL", "RELU", "TANH", "LOGISTIC"):
        t = g.op(kind, [t], (1, 8), dtype=F)
    plan = make_plan(g.done([t]), T)
    assert [d.delegated for d in plan.ops] == [False, False, False, True, True, True]
    assert len(plan.partitions) == 1
    assert plan.ops[0].reason == plan.ops[1].reason == (
        "its partition of 2 op(s) is beyond the 1 largest that LiteRT's GPU delegate keeps (max_delegated_partitions)")
    assert plan.ops[2].reason.startswith("CEIL is not supported")


def _fp16_conv(then: str | None = None) -> Model:
    g = Graph()
    x = g.input("x", (1, 8, 8, 4), F)
    w16 = g.sg.new_constant("w16", np.ones((8, 3, 3, 4), np.float16))
    b16 = g.sg.new_constant("b16", np.zeros((8,), np.float16))
    w = g.op("DEQUANTIZE", [w16], (8, 3, 3, 4), dtype=F)
    b = g.op("DEQUANTIZE", [b16], (8,), dtype=F)
    y = g.op("CONV_2D", [x, w, b], (1, 8, 8, 8), "Conv2D", dtype=F, padding="SAME", strideW=1, strideH=1)
    if then:
        y = g.op(then, [y], (1, 8, 8, 8), dtype=F)
    return g.done([y])


def test_float16_weights_are_delegated_with_the_whole_graph():
    """GetOpsToReplaceAcceptsFp16DequantizeNodes: every op supported -> all delegated, DEQUANTIZEs too."""
    plan = make_plan(_fp16_conv(), T)
    assert [d.delegated for d in plan.ops] == [True, True, True] and len(plan.partitions) == 1


def test_float16_weights_stay_on_the_cpu_under_partial_delegation():
    """GetOpsToReplaceRejectsFp16DequantizeNodes: one op refused -> the DEQUANTIZEs stay on the CPU, the
    consumer still sees its float16 constants (a constant filter) and is delegated."""
    plan = make_plan(_fp16_conv(then="CEIL"), T)
    assert [d.delegated for d in plan.ops] == [False, False, True, False]
    assert plan.ops[0].reason == ("DEQUANTIZE: a DEQUANTIZE of float16 weights, taken only when the delegate takes "
                                  "the whole graph (FP16GraphPartitionHelper keeps it on the CPU under partial "
                                  "delegation)")


def test_a_float16_constant_behind_a_dequantize_counts_as_constant():
    """FullyConnected doesn't support constant input -- also when the constant is float16 behind a
    DEQUANTIZE, as the delegate is shown it."""
    g = Graph()
    x16 = g.sg.new_constant("x16", np.ones((1, 16), np.float16))
    x = g.op("DEQUANTIZE", [x16], (1, 16), dtype=F)
    w = g.weights("w", (4, 16), F)
    y = g.op("FULLY_CONNECTED", [x, w, None], (1, 4), "FullyConnected", dtype=F)
    plan = make_plan(g.done([y]), T)
    assert not plan.ops[1].delegated and "input 0 is constant" in plan.ops[1].reason


# --------------------------------------------------------------------------- zoo models

ZOO = {   # name: (ops, delegated, partitions, a reason that must appear)
    "mobilenet_tiny": (29, 29, 1, None),
    "mobilenet_tiny_int8": (29, 29, 1, None),
    "mobilenet_tiny_int16x8": (29, 0, 0, "CONV_2D: input 0 is INT16, the GPU delegate takes FLOAT32, FLOAT16, INT8 "
                                         "or UINT8"),
    "mobilenet_tiny_fp16": (74, 74, 1, None),
    "mobilenet_tiny_dynamic_int8": (29, 27, 1, "FULLY_CONNECTED: version 12, the GPU delegate takes version <= 9"),
    "mobilenet_v3_small": (109, 109, 1, None),
    "transformer_encoder_3x192": (123, 123, 1, None),
    "transformer_encoder_3x192_int8": (135, 135, 1, None),
    "stateful_counter": (15, 2, 1, "VAR_HANDLE is not supported by the GPU delegate"),
}


@pytest.mark.parametrize("name", sorted(ZOO))
def test_zoo(zoo, name):
    ops, delegated, partitions, reason = ZOO[name]
    plan = make_plan(read_model(zoo(name)), T)
    assert (len(plan.ops), sum(d.delegated for d in plan.ops), len(plan.partitions)) == (ops, delegated, partitions)
    if reason:
        assert any(reason in d.reason for d in plan.ops)


def test_shared_models(shared_model):
    plan = make_plan(read_model(shared_model), T)
    assert len(plan.partitions) <= 1
    assert all(d.delegated or d.reason for d in plan.ops)


def test_target_records_its_source_and_limit():
    assert T.name == "gpu" and T.max_partitions == 1 and T.finalize is not None
    assert "f67457790c" in T.source and "gpu_compatibility.cc" in T.source and "model_builder.cc" in T.source
    assert "GPU delegate" in T.runtime
    rules = T.describe()
    assert "version <= 6" in rules["CONV_2D"] and "rank <= 4" in rules["TRANSPOSE"]
    from tflc.targets import gpu
    assert gpu.LITERT_COMMIT.startswith("f67457790c") and gpu.MAX_VERSION["FULLY_CONNECTED"] == 9
