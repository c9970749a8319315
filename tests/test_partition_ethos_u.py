"""The ethos-u target: its prediction of Vela 5.2's NPU/CPU split, on hand-built int8 models (one or
two per generic and per-op constraint, with the reason asserted) and on the zoo's int8 models; and,
when Vela is installed (the dev extra has ethos-u-vela), the same models compiled by Vela itself,
which must split them the same way."""
from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable

import numpy as np
import pytest

from _partition_graphs import Graph, side_by_side
from tflc.io import read_model
from tflc.ir.core import Model
from tflc.targets import get_target
from tflc.targets.plan import make_plan
from tflc.targets.vela_check import DEFAULT_ACCELERATOR, VelaError, find_vela, run_vela

VELA = find_vela()
needs_vela = pytest.mark.skipif(VELA is None, reason="vela is not installed (pip install ethos-u-vela: the dev extra)")
T = get_target("ethos-u")


def split(model: Model) -> list[str]:
    return ["NPU" if d.delegated else "CPU" for d in make_plan(model, T).ops]


def vela_split(model: Model, accelerator: str = DEFAULT_ACCELERATOR) -> list[str]:
    r = run_vela(model, accelerator)
    return ["NPU" if r.on_npu(si, i) else "CPU"
            for si, sg in enumerate(model.subgraphs) for i in range(len(sg.operators))]


# --------------------------------------------------------------------------- hand-built int8 models

Q = {"INT8", "UINT8", "INT16"}


def _sc(dtype):
    return 0.05 if dtype in Q else None


def binop(kind, dtype="INT8", shape=(1, 8, 8, 4), shape2=None, scale2=0.05, quant=True, sig=None, opts=None, **kw):
    g = Graph()
    a = g.input("a", shape, dtype, scale=0.05 if quant else None, signature=sig)
    b = g.input("b", shape2 or shape, dtype, scale=scale2 if quant else None)
    g.op(kind, [a, b], shape, opts, dtype=dtype, scale=0.05 if quant else None, **kw)
    return g.done([g.ops[-1].outputs[0]])


def unop(kind, dtype="INT8", shape=(1, 8, 8, 4), odtype=None, opts=None, **kw):
    g = Graph()
    a = g.input("a", shape, dtype, scale=_sc(dtype))
    od = odtype or dtype
    return g.done([g.op(kind, [a], shape, opts, dtype=od, scale=_sc(od), **kw)])


def conv(stride=1, pad="SAME", dil=1, wdtype="INT8", bdtype="INT32", idtype="INT8", shape=(1, 16, 16, 4), oc=8, k=3,
         wval=1, wconst=True, depthwise=False, bias=None):
    g = Graph()
    x = g.input("x", shape, idtype)
    ic = shape[-1]
    wshape, oc = ((1, k, k, ic), ic) if depthwise else ((oc, k, k, ic), oc)
    w = g.weights("w", wshape, wdtype, per_channel_axis=3 if depthwise else 0, value=wval) if wconst else \
        g.input("w", wshape, wdtype)
    b = bias(g, oc) if bias else g.bias("b", oc, bdtype)
    h = shape[1]
    oh = math.ceil(h / stride) if pad == "SAME" else (h - ((k - 1) * dil + 1)) // stride + 1
    od = "INT16" if idtype == "INT16" else "INT8"
    kind, opts = ("DEPTHWISE_CONV_2D", "DepthwiseConv2D") if depthwise else ("CONV_2D", "Conv2D")
    extra = {"depthMultiplier": 1} if depthwise else {}
    return g.done([g.op(kind, [x, w, b], (shape[0], oh, oh, oc), opts, dtype=od, padding=pad, strideW=stride,
                        strideH=stride, dilationWFactor=dil, dilationHFactor=dil, **extra)])


def pool(kind, k=2, stride=2, pad="VALID", dtype="INT8", shape=(1, 16, 16, 4), kh=None):
    g = Graph()
    x = g.input("x", shape, dtype, scale=_sc(dtype))
    kh = kh or k
    h, w = shape[1], shape[2]
    oh, ow = (math.ceil(h / stride), math.ceil(w / stride)) if pad == "SAME" else \
        ((h - kh) // stride + 1, (w - k) // stride + 1)
    return g.done([g.op(kind, [x], (shape[0], oh, ow, shape[3]), "Pool2D", dtype=dtype, scale=_sc(dtype),
                        padding=pad, strideW=stride, strideH=stride, filterWidth=k, filterHeight=kh)])


def fc(ishape=(1, 64), oc=16, wdtype="INT8", idtype="INT8", wconst=True, wshape=None):
    g = Graph()
    x = g.input("x", ishape, idtype)
    wshape = wshape or (oc, ishape[-1])
    w = g.weights("w", wshape, wdtype) if wconst else g.input("w", wshape, idtype)
    b = g.bias("b", oc, "INT64" if idtype == "INT16" else "INT32")
    return g.done([g.op("FULLY_CONNECTED", [x, w, b], (ishape[0], oc), "FullyConnected", dtype=idtype)])


def mean(shape=(1, 8, 8, 16), axes=(1, 2), dtype="INT8", const_axes=True):
    g = Graph()
    x = g.input("x", shape, dtype)
    ax = g.ints("axes", list(axes)) if const_axes else g.input("axes", (len(axes),), "INT32", scale=None)
    osh = tuple(1 if i in axes else d for i, d in enumerate(shape))
    return g.done([g.op("MEAN", [x, ax], osh, "Reducer", dtype=dtype, keepDims=True)])


def softmax(shape):
    g = Graph()
    x = g.input("x", shape)
    return g.done([g.op("SOFTMAX", [x], shape, "Softmax", scale=1 / 256, zero_point=-128, beta=1.0)])


def transpose(shape=(1, 4, 6, 8), perm=(0, 2, 1, 3), dtype="INT8", const=True):
    g = Graph()
    x = g.input("x", shape, dtype, scale=_sc(dtype))
    p = g.ints("perm", list(perm)) if const else g.input("perm", (len(perm),), "INT32", scale=None)
    return g.done([g.op("TRANSPOSE", [x, p], tuple(shape[i] for i in perm), dtype=dtype, scale=_sc(dtype))])


def strided(shape=(1, 8, 8, 4), strides=(1, 1, 1, 1), begin=None, end=None, oshape=None):
    g = Graph()
    x = g.input("x", shape)
    begin = begin or (0,) * len(shape)
    end = end or shape
    oshape = oshape or tuple(len(range(b, e, s)) for b, e, s in zip(begin, end, strides))
    ins = [x, g.ints("b", begin), g.ints("e", end), g.ints("s", strides)]
    return g.done([g.op("STRIDED_SLICE", ins, oshape, "StridedSlice")])


def resize(kind="RESIZE_BILINEAR", ish=(1, 8, 8, 4), osh=(1, 16, 16, 4), align=False, half=False):
    g = Graph()
    x = g.input("x", ish)
    opts = "ResizeBilinear" if kind == "RESIZE_BILINEAR" else "ResizeNearestNeighbor"
    return g.done([g.op(kind, [x, g.ints("size", list(osh[1:3]))], osh, opts, alignCorners=align,
                        halfPixelCenters=half)])


def tconv(stride=2, pad="SAME", k=3, osh=None):
    g = Graph()
    x = g.input("x", (1, 8, 8, 4))
    w, b = g.weights("w", (8, k, k, 4)), g.bias("b", 8)
    osh = osh or ((1, 8 * stride, 8 * stride, 8) if pad == "SAME" else (1, 7 * stride + k, 7 * stride + k, 8))
    return g.done([g.op("TRANSPOSE_CONV", [g.ints("os", list(osh)), w, x, b], osh, "TransposeConv", padding=pad,
                        strideW=stride, strideH=stride, version=3)])


def argmax(c=16, axis=3, odtype="INT32"):
    g = Graph()
    x = g.input("x", (1, 4, 4, c))
    osh = tuple(d for i, d in enumerate((1, 4, 4, c)) if i != axis)
    return g.done([g.op("ARG_MAX", [x, g.ints("a", [axis])], osh, "ArgMax", dtype=odtype, scale=None,
                        outputType=2 if odtype == "INT32" else 4)])


def simple(kind, shape=(1, 8, 8, 4), dtype="INT8", params=(), out=None, opts=None, **kw):
    """One op reading input x and constant parameters ``params`` (arrays)."""
    g = Graph()
    x = g.input("x", shape, dtype, scale=_sc(dtype))
    ins = [x] + [g.ints(f"p{i}", p) if not isinstance(p, str) else g.input(p, (4, 2), "INT32", scale=None)
                 for i, p in enumerate(params)]
    return g.done([g.op(kind, ins, out or shape, opts, dtype=dtype, scale=_sc(dtype), **kw)])


def around_cpu(middle: Callable[[Graph, object], object]):
    """DIV (CPU) -> middle -> LOG_SOFTMAX (CPU): how a supported op between CPU ops is placed."""
    g = Graph()
    x, y = g.input("x", (1, 8, 8, 4)), g.input("y", (1, 8, 8, 4))
    d = g.op("DIV", [x, y], (1, 8, 8, 4), "Div")
    m = middle(g, d)
    return g.done([g.op("LOG_SOFTMAX", [m], m.shape)])


def reshape(dtype="INT8", out_scale=0.05, out_shape=(1, 64, 4)):
    g = Graph()
    x = g.input("x", (1, 8, 8, 4), dtype, scale=_sc(dtype))
    return g.done([g.op("RESHAPE", [x, g.ints("s", list(out_shape))], out_shape, "Reshape", dtype=dtype,
                        scale=out_scale if dtype in Q else None, newShape=list(out_shape))])


def add_scalar_input():
    g = Graph()
    a, b = g.input("a", (1, 8, 8, 4)), g.input("b", ())
    return g.done([g.op("ADD", [a, b], (1, 8, 8, 4), "Add")])


def add_per_axis_const():
    g = Graph()
    a = g.input("a", (1, 8, 8, 4))
    b = g.const("b", np.ones((1, 1, 1, 4)), "INT8", scale=[0.1, 0.2, 0.3, 0.4], axis=3)
    return g.done([g.op("ADD", [a, b], (1, 8, 8, 4), "Add")])


def add_uint8(zp=-3, out="UINT8"):
    g = Graph()
    a, b = g.input("a", (1, 8, 8, 4), "UINT8", zero_point=zp), g.input("b", (1, 8, 8, 4), "UINT8", zero_point=128)
    return g.done([g.op("ADD", [a, b], (1, 8, 8, 4), "Add", dtype=out, zero_point=128 if out == "UINT8" else 0)])


def add_mixed_types():
    g = Graph()
    a, b = g.input("a", (1, 8, 8, 4), "INT8"), g.input("b", (1, 8, 8, 4), "UINT8", zero_point=128)
    return g.done([g.op("ADD", [a, b], (1, 8, 8, 4), "Add")])


def conv_bias_i64_big(g, n):
    return g.const("b", np.full((n,), 2 ** 41), "INT64", scale=[0.0005] * n)


def conv_bias_runtime(g, n):
    return g.input("b", (n,), "INT32", scale=0.0005)


def reverse(axes):
    g = Graph()
    x = g.input("x", (1, 8, 8, 4))
    a = g.sg.new_constant("a", np.asarray(axes, dtype=np.int32).reshape(-1))
    return g.done([g.op("REVERSE_V2", [x, a], (1, 8, 8, 4))])


def split2():
    g = Graph()
    x = g.input("x", (1, 8, 8, 4))
    return g.done(g.op("SPLIT", [g.ints("ax", [3]), x], [(1, 8, 8, 2)] * 2, "Split", numSplits=2))


def maximum(scale2):
    return binop("MAXIMUM", scale2=scale2)


@dataclass
class Case:
    name: str
    build: Callable[[], Model]
    expect: str                    # "NPU", "CPU", several ("CPU NPU CPU"), or "REJECT" (Vela stops)
    reason: str = ""               # a piece of the (first) CPU op's reason, or of the model's


CASES = [
    # generic constraints
    Case("add_int8", lambda: binop("ADD", opts="Add"), "NPU"),
    Case("add_float32", lambda: binop("ADD", "FLOAT32", quant=False, opts="Add"), "CPU",
         "ADD: input 0 is FLOAT32, Vela takes INT8, UINT8, INT16, INT32 or INT64 feature maps"),
    Case("add_int16", lambda: binop("ADD", "INT16", opts="Add"), "NPU"),
    Case("add_int32_unquantized", lambda: binop("ADD", "INT32", quant=False, opts="Add"), "NPU"),
    Case("add_int64", lambda: binop("ADD", "INT64", opts="Add"), "CPU", "input 0 is INT64, Vela takes no 64-bit"),
    Case("add_rank6", lambda: binop("ADD", shape=(1, 1, 2, 4, 4, 4), opts="Add"), "NPU"),
    Case("add_dynamic_batch", lambda: binop("ADD", sig=(-1, 8, 8, 4), opts="Add"), "NPU"),
    Case("add_dynamic_height", lambda: binop("ADD", sig=(1, -1, 8, 4), opts="Add"), "CPU",
         "dynamic shape [1, -1, 8, 4], Vela takes only the first dimension dynamic"),
    Case("add_unquantized_int8", lambda: binop("ADD", quant=False, opts="Add"), "CPU",
         "input 0 has no quantization parameters"),
    Case("add_per_axis", add_per_axis_const, "CPU", "input 1 is quantized per axis (4 scales)"),
    Case("add_uint8_negative_zero_point", add_uint8, "CPU", "UINT8 with zero point -3"),
    Case("add_uint8_to_int32", lambda: add_uint8(128, "INT32"), "NPU"),
    Case("add_scalar_input", add_scalar_input, "CPU", "input 1 has no shape"),
    Case("relu_int32", lambda: unop("RELU", "INT32"), "CPU", "RELU: input 0 is INT32, Vela takes no 32-bit"),
    Case("neg_int32", lambda: unop("NEG", "INT32"), "NPU"),
    Case("sum_int32", lambda: simple("SUM", dtype="INT32", params=([1, 2],), out=(1, 1, 1, 4), opts="Reducer",
                                     keepDims=True), "NPU"),
    Case("reshape_int32", lambda: reshape("INT32"), "NPU"),
    Case("div", lambda: binop("DIV", opts="Div"), "CPU", "DIV is not supported on the Ethos-U55/U65 NPU"),
    Case("dequantize", lambda: unop("DEQUANTIZE", odtype="FLOAT32"), "CPU", "Unsupported opType"),
    Case("quantize_float_input", lambda: unop("QUANTIZE", "FLOAT32", odtype="INT8"), "CPU", "input 0 is FLOAT32"),
    Case("quantize_int8_to_int16", lambda: unop("QUANTIZE", odtype="INT16"), "NPU"),
    # convolutions
    Case("conv", conv, "NPU"),
    Case("conv_stride4_valid", lambda: conv(stride=4, pad="VALID"), "NPU"),
    Case("conv_stride4_same_unpadded", lambda: conv(stride=4), "NPU"),
    Case("conv_stride4_same_padded", lambda: conv(stride=4, k=5), "CPU",
         "stride 4x4 with padding, Vela takes stride <= 3 unless dilation is 1 and padding VALID"),
    Case("conv_stride4_dilated", lambda: conv(stride=4, pad="VALID", dil=2, shape=(1, 32, 32, 4)), "CPU",
         "stride 4x4 with dilation 2"),
    Case("conv_int16_weights", lambda: conv(wdtype="INT16"), "CPU",
         "input 1 (filter) is INT16, Vela takes 8-bit weights"),
    Case("conv_int8_bias", lambda: conv(bdtype="INT8"), "CPU",
         "input 2 (bias) is INT8, Vela takes an INT32 or INT64 bias"),
    Case("conv_runtime_bias", lambda: conv(bias=conv_bias_runtime), "CPU", "bias) is computed at run time"),
    Case("conv_int64_bias_over_40_bits", lambda: conv(idtype="INT16", bias=conv_bias_i64_big), "CPU",
         "holds 2199023255552, Vela takes INT64 bias values <= 1099511627775"),
    Case("conv_weight_sum_over", lambda: conv(wval=127, k=9, shape=(1, 9, 9, 1024), oc=2, pad="VALID"), "CPU",
         "absolute weight sum 10533888, Vela takes at most 8323072"),
    Case("conv_weight_sum_under", lambda: conv(wval=127, k=9, shape=(1, 9, 9, 800), oc=2, pad="VALID"), "NPU"),
    Case("conv_int16", lambda: conv(idtype="INT16", bdtype="INT64"), "NPU"),
    Case("depthwise_stride4", lambda: conv(depthwise=True, stride=4, pad="VALID"), "CPU",
         "stride 4x4, Vela takes a stride in 1..3"),
    Case("transpose_conv", tconv, "NPU"),
    Case("transpose_conv_stride3", lambda: tconv(stride=3), "CPU", "stride 3x3, Vela takes 1x1, 2x2"),
    Case("transpose_conv_valid_wrong_shape", lambda: tconv(pad="VALID", osh=(1, 16, 16, 8)), "CPU",
         "Vela takes OFM = IFM x stride + (kernel - stride)"),
    Case("fully_connected", fc, "NPU"),
    Case("fully_connected_runtime_weights", lambda: fc(wconst=False), "NPU"),
    Case("fully_connected_runtime_int16", lambda: fc(wconst=False, idtype="INT16", wdtype="INT16"), "CPU",
         "8-bit weights"),
    Case("fully_connected_4d_weights", lambda: fc(wshape=(4, 4, 1, 64)), "CPU", "weights shaped O,1,..,1,I"),
    # pooling
    Case("avg_pool_same_9x9", lambda: pool("AVERAGE_POOL_2D", k=9, stride=1, pad="SAME"), "CPU",
         "a 9x9 kernel with padding, Vela takes kernel width and height <= 8"),
    Case("avg_pool_valid_9x9", lambda: pool("AVERAGE_POOL_2D", k=9, stride=1), "NPU"),
    Case("avg_pool_same_9x9_unpadded", lambda: pool("AVERAGE_POOL_2D", k=9, stride=9, pad="SAME", shape=(1, 9, 9, 4)),
         "NPU"),
    Case("avg_pool_height_257", lambda: pool("AVERAGE_POOL_2D", k=1, kh=257, stride=1, shape=(1, 260, 4, 4)), "CPU",
         "kernel height 257"),
    Case("avg_pool_int32", lambda: pool("AVERAGE_POOL_2D", dtype="INT32"), "CPU", "INT32"),
    Case("max_pool_height_257", lambda: pool("MAX_POOL_2D", k=1, kh=257, stride=1, shape=(1, 260, 4, 4)), "CPU",
         "kernel height 257"),
    Case("max_pool_same_9x9", lambda: pool("MAX_POOL_2D", k=9, stride=1, pad="SAME"), "NPU"),
    Case("max_pool_stride4_padded", lambda: pool("MAX_POOL_2D", k=5, stride=4, pad="SAME"), "CPU", "stride 4x4"),
    # elementwise and activations
    Case("maximum_same_quantization", lambda: maximum(0.05), "NPU"),
    Case("maximum_other_quantization", lambda: maximum(0.1), "CPU", "input 1 and output 0 are quantized differently"),
    Case("elu_uint8", lambda: unop("ELU", "UINT8"), "CPU", "Vela takes IFM and OFM types equal and INT8"),
    Case("gelu_int16", lambda: unop("GELU", "INT16"), "CPU", "INT8 or UINT8"),
    Case("log_uint8", lambda: unop("LOG", "UINT8"), "CPU", "INT8 or INT16"),
    Case("rsqrt_uint8", lambda: unop("RSQRT", "UINT8"), "CPU", "Vela takes an INT8 or INT16 IFM"),
    Case("exp_uint8", lambda: unop("EXP", "UINT8"), "NPU"),
    Case("leaky_relu_int16", lambda: unop("LEAKY_RELU", "INT16", opts="LeakyRelu", alpha=0.1), "NPU"),
    # reductions, softmax, argmax
    Case("mean_hw", mean, "NPU"),
    Case("mean_depth", lambda: mean(axes=(3,)), "CPU", "reduction over depth of shape [1, 8, 8, 16]"),
    Case("mean_depth_h1", lambda: mean(shape=(1, 1, 8, 16), axes=(3,)), "NPU"),
    Case("mean_batch2", lambda: mean(shape=(2, 8, 8, 16)), "CPU", "(batch 2), Vela takes batch 1"),
    Case("mean_rank5_folds_into_batch", lambda: mean(shape=(1, 2, 4, 4, 8), axes=(2, 3)), "CPU", "batch 2"),
    Case("mean_axis_5000", lambda: mean(shape=(1, 1, 5000, 4), axes=(2,)), "CPU", "a reduced axis of 5000"),
    Case("mean_axis_4096", lambda: mean(shape=(1, 1, 4096, 4), axes=(2,)), "NPU"),
    Case("mean_int16_elements", lambda: mean(shape=(1, 300, 300, 2), dtype="INT16"), "CPU",
         "90000 reduced elements, Vela takes at most 65536 for INT16"),
    Case("mean_int32", lambda: mean(dtype="INT32"), "CPU", "INT32"),
    Case("softmax", lambda: softmax((1, 1, 1, 100)), "NPU"),
    Case("softmax_65536", lambda: softmax((1, 256, 256, 2)), "NPU"),
    Case("softmax_2d_70000", lambda: softmax((70000, 2)), "CPU", "IFM width x height 70000"),
    Case("argmax", argmax, "NPU"),
    Case("argmax_depth_128", lambda: argmax(c=128), "CPU", "IFM depth 128, Vela takes depth <= 127"),
    Case("argmax_axis_1", lambda: argmax(axis=1), "CPU", "the depth (last) axis"),
    Case("argmax_int64_output", lambda: argmax(odtype="INT64"), "NPU"),
    # memory ops
    Case("transpose_rank8", lambda: transpose((1, 2, 1, 2, 1, 2, 1, 2), (0, 1, 2, 3, 4, 5, 7, 6)), "NPU"),
    Case("transpose_rank9", lambda: transpose((1, 2, 1, 2, 1, 2, 1, 2, 1), (0, 1, 2, 3, 4, 5, 7, 6, 8)), "CPU",
         "TRANSPOSE: input 0 has rank 9, Vela takes rank <= 8"),
    Case("transpose_int32_nwhc", lambda: transpose(dtype="INT32"), "NPU"),
    Case("transpose_int32_nchw", lambda: transpose(perm=(0, 3, 1, 2), dtype="INT32"), "CPU",
         "an INT32 transpose with permutation [0, 3, 1, 2], Vela takes NHWC, NWHC or NHCW"),
    Case("transpose_swap_n_h_large", lambda: transpose((300, 300, 2, 1), (1, 0, 2, 3)), "CPU",
         "multiplying past 65536"),
    Case("transpose_nchw_batch2_large", lambda: transpose((2, 300, 300, 1), (0, 3, 1, 2)), "CPU",
         "multiplying past 65536"),
    Case("transpose_2d_large", lambda: transpose((70000, 2), (1, 0)), "CPU", "a NHCW transpose of shape [70000, 2]"),
    Case("transpose_runtime_perm", lambda: transpose(const=False), "CPU",
         "input 1 is computed at run time, Vela takes constant parameter tensors"),
    Case("strided_slice_hw", lambda: strided(strides=(1, 2, 2, 1)), "NPU"),
    Case("strided_slice_c", lambda: strided(strides=(1, 1, 1, 2)), "CPU", "stride 2 on axis 3"),
    Case("strided_slice_negative", lambda: strided(begin=(0, 7, 0, 0), end=(1, -9, 8, 4), strides=(1, -1, 1, 1),
                                                   oshape=(1, 8, 8, 4)), "CPU", "stride -1 on axis 1"),
    Case("strided_slice_rank5_axis1", lambda: strided((1, 2, 8, 8, 4), (1, 2, 1, 1, 1)), "CPU", "stride 2 on axis 1"),
    Case("concatenation_int32", lambda: simple("CONCATENATION", dtype="INT32", opts="Concatenation", axis=3), "CPU",
         "INT32"),
    Case("pad_int32_feature_map", lambda: simple("PAD", dtype="INT32", params=([[0, 0], [1, 1], [1, 1], [0, 0]],),
                                                 out=(1, 10, 10, 4)), "CPU", "INT32"),
    Case("mirror_pad_int32", lambda: simple("MIRROR_PAD", dtype="INT32", params=([[0, 0], [1, 1], [1, 1], [0, 0]],),
                                            out=(1, 10, 10, 4), opts="MirrorPad"), "NPU"),
    Case("split", split2, "NPU"),
    Case("tile_int32", lambda: simple("TILE", dtype="INT32", params=([1, 1, 1, 1],)), "CPU", "INT32"),
    Case("reverse_h", lambda: reverse([1]), "CPU", "an axis to reverse"),
    Case("resize_bilinear_2x", resize, "NPU"),
    Case("resize_bilinear_3x", lambda: resize(osh=(1, 24, 24, 4)), "CPU", "scale factor 3, Vela takes 2x or 4x or 8x"),
    Case("resize_bilinear_4x_half_pixel", lambda: resize(osh=(1, 32, 32, 4), half=True), "CPU",
         "scale factor 4 with half_pixel_centers, Vela takes 2x"),
    Case("resize_bilinear_align_corners_2x", lambda: resize(osh=(1, 15, 15, 4), align=True), "NPU"),
    Case("resize_bilinear_h_only", lambda: resize(osh=(1, 16, 8, 4)), "CPU", "scale factors 2 (H) and 1 (W)"),
    Case("resize_bilinear_width_1", lambda: resize(ish=(1, 8, 1, 4), osh=(1, 16, 1, 4)), "NPU"),
    Case("resize_bilinear_from_1x1", lambda: resize(ish=(1, 1, 1, 4), osh=(1, 7, 5, 4)), "NPU"),
    Case("resize_nearest_3x", lambda: resize("RESIZE_NEAREST_NEIGHBOR", osh=(1, 24, 24, 4)), "CPU", "scale factor 3"),
    Case("reshape_between_cpu_ops",
         lambda: around_cpu(lambda g, t: g.op("RESHAPE", [t, g.ints("s", [1, 64, 4])], (1, 64, 4), "Reshape",
                                              newShape=[1, 64, 4])), "CPU NPU CPU", "DIV"),
    Case("batch_matmul", lambda: binop("BATCH_MATMUL", shape=(1, 4, 8, 8), opts="BatchMatMul"), "NPU"),
    Case("batch_matmul_int16", lambda: binop("BATCH_MATMUL", "INT16", shape=(1, 4, 8, 8), opts="BatchMatMul"), "CPU",
         "a matmul with input 0 INT16, Vela takes an INT8 IFM"),
    # inputs Vela 5.2 does not compile at all
    Case("hard_swish_int16", lambda: unop("HARD_SWISH", "INT16"), "REJECT", "HARD_SWISH needs an 8-bit IFM"),
    Case("reshape_requantizing", lambda: reshape(out_scale=0.1), "REJECT", "input and output quantization differ"),
    Case("reshape_element_count", lambda: reshape(out_shape=(1, 32, 4)), "REJECT",
         "numbers of elements differ (256 vs 128"),
    Case("add_int8_uint8", add_mixed_types, "REJECT", "inputs of types INT8 and UINT8"),
    Case("conv_runtime_weights", lambda: conv(wconst=False), "REJECT", "weights computed at run time"),
    Case("conv_runtime_weights_on_cpu_anyway", lambda: conv(wconst=False, stride=4, k=5), "CPU", "stride 4x4"),
    Case("pad_runtime_paddings", lambda: simple("PAD", params=("p",), out=(1, 10, 10, 4)), "REJECT",
         "PAD (op 0): input 1 computed at run time"),
    Case("mean_runtime_axes", lambda: mean(const_axes=False), "REJECT", "MEAN (op 0): input 1 computed at run time"),
    Case("add_sign_bit", lambda: binop("ADD", opts="Add", fusedActivationFunction="SIGN_BIT"), "REJECT",
         "fused activation SIGN_BIT"),
    Case("reverse_empty_axes", lambda: reverse([]), "REJECT", "an empty axis tensor"),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_prediction(case: Case):
    model = case.build()
    plan = make_plan(model, T)
    if case.expect == "REJECT":
        assert plan.model_reason.startswith("Vela 5.2.0 rejects the model: ") and case.reason in plan.model_reason
        assert all(not d.delegated and d.reason == plan.model_reason for d in plan.ops)
        return
    assert not plan.model_reason
    assert split(model) == case.expect.split()
    cpu = [d for d in plan.ops if not d.delegated]
    if case.reason:
        assert case.reason in cpu[0].reason, cpu[0].reason
        assert cpu[0].reason.startswith((cpu[0].type + ": ", cpu[0].type + " is not supported"))
    else:
        assert not cpu


@needs_vela
def test_vela_agrees_on_every_case():
    """Vela 5.2 places every op of the hand-built models as predicted (compiled side by side, a few
    dozen cases per compile), and fails on each model the target says it rejects."""
    placed = [c for c in CASES if c.expect != "REJECT"]
    rejected = [c for c in CASES if c.expect == "REJECT"]
    groups = [placed[i:i + 40] for i in range(0, len(placed), 40)]

    def compile_group(group: list[Case]) -> list[str]:
        models = [c.build() for c in group]
        merged, starts = side_by_side(models)
        got = vela_split(merged)
        problems = []
        for case, m, start in zip(group, models, starts):
            mine = got[start:start + len(m.main.operators)]
            if mine != case.expect.split():
                problems.append(f"{case.name}: Vela placed {' '.join(mine)}, predicted {case.expect}")
        return problems

    def compile_rejected(case: Case) -> list[str]:
        try:
            got = vela_split(case.build())
        except VelaError:
            return []
        return [f"{case.name}: predicted a rejection, Vela compiled it ({' '.join(got)})"]

    with ThreadPoolExecutor(max_workers=4) as pool_:
        problems = [p for ps in pool_.map(compile_group, groups) for p in ps]
        problems += [p for ps in pool_.map(compile_rejected, rejected) for p in ps]
    assert not problems, "\n".join(problems)


# --------------------------------------------------------------------------- the zoo's int8 models

ZOO_SPLITS = {   # name: (ops, on the NPU, the ops left on the CPU by type)
    "mobilenet_tiny_int8": (29, 29, {}),
    "mobilenet_tiny_int16x8": (29, 29, {}),
    "mobilenet_v3_small_int8": (109, 109, {}),
    "transformer_encoder_3x192_int8": (135, 117, {"DEQUANTIZE": 6, "NEG": 6, "QUANTIZE": 6}),
}


@pytest.mark.parametrize("name", sorted(ZOO_SPLITS))
def test_zoo_int8_prediction(zoo, name):
    ops, npu, cpu = ZOO_SPLITS[name]
    plan = make_plan(read_model(zoo(name)), T)
    left: dict[str, int] = {}
    for d in plan.ops:
        if not d.delegated:
            left[d.type] = left.get(d.type, 0) + 1
    assert (len(plan.ops), sum(d.delegated for d in plan.ops), left) == (ops, npu, cpu)
    if name.startswith("transformer"):
        # the layer norms' NEG runs in float between a DEQUANTIZE and a QUANTIZE
        reasons = {d.type: d.reason for d in plan.ops if not d.delegated}
        assert reasons["NEG"] == "NEG: input 0 is FLOAT32, Vela takes INT8, UINT8, INT16, INT32 or INT64 feature maps"
        assert reasons["DEQUANTIZE"].endswith("(Unsupported opType)")
        assert reasons["QUANTIZE"].startswith("QUANTIZE: input 0 is FLOAT32")


@needs_vela
@pytest.mark.parametrize("name", sorted(ZOO_SPLITS))
def test_zoo_int8_models_match_vela(zoo, name):
    path = zoo(name)
    model = read_model(path)
    plan = make_plan(model, T)
    result = run_vela(path)
    assert result.version == "5.2.0" and result.accelerator == DEFAULT_ACCELERATOR
    predicted = {(d.subgraph, d.index) for d in plan.ops if d.delegated}
    assert predicted == {(si, i) for si, idx in result.npu.items() for i in idx}
    # Vela cuts the NPU ops into as many ethos-u ops as the plan has partitions
    assert len(plan.partitions) == sum(result.npu_ops_in_output.values())
    # and says why for the CPU ops (its words differ; both name the float tensor or the op type)
    for d in plan.ops:
        if not d.delegated and d.type == "NEG":
            assert "Float32" in result.reasons[(d.subgraph, d.index)] and "FLOAT32" in d.reason


@needs_vela
@pytest.mark.parametrize("name", ["mobilenet_tiny", "mobilenet_v3_small", "transformer_encoder",
                                  "transformer_encoder_static", "mobilenet_tiny_fp16"])
def test_float_zoo_models_match_vela(zoo, name):
    """Float models: nothing on the NPU, or (HARD_SWISH on floats, a RESHAPE whose stored shapes disagree)
    a model Vela refuses to compile, which the target predicts as a rejection."""
    model = read_model(zoo(name))
    plan = make_plan(model, T)
    try:
        got = vela_split(model)
    except VelaError:
        assert plan.model_reason.startswith("Vela 5.2.0 rejects the model: ")
        return
    assert not plan.model_reason and got == split(model)


@needs_vela
@pytest.mark.parametrize("accelerator", ["ethos-u55-128", "ethos-u65-256"])
def test_other_u55_u65_configurations_split_the_same(zoo, accelerator):
    model = read_model(zoo("transformer_encoder_3x192_int8"))
    assert vela_split(model, accelerator) == split(model)


def _opzoo_int8() -> bytes:
    """A converter-built int8 model with many op types: convolutions (one at stride 4), depthwise,
    pools, nearest and bilinear resizes (2x and 1.5x), transposed conv, concat, LEAKY_RELU,
    sigmoid/tanh/softmax/log_softmax/hard-swish/exp, strided slice, transpose, reductions."""
    from tflc.testing import zoo as z
    tf = z._import_tf()
    z._seed_everything(tf)
    L = tf.keras.layers
    inp = tf.keras.Input((32, 32, 3), batch_size=1)
    x = L.Conv2D(8, 3, padding="same", activation="relu")(inp)
    a = L.DepthwiseConv2D(3, strides=2, padding="same")(x)
    b = L.UpSampling2D(2, interpolation="nearest")(L.Conv2D(8, 1, strides=4)(x))
    c = L.MaxPooling2D(2)(x)
    d = L.AveragePooling2D(3, strides=1, padding="same")(c)
    y = L.Conv2DTranspose(8, 3, strides=2, padding="same")(L.Concatenate()([a, b, c, d]))
    y = L.Add()([L.LeakyReLU(0.1)(y), x])
    y = L.Multiply()([y, L.Activation("sigmoid")(y)])
    y = L.Lambda(lambda t: tf.image.resize(t, (64, 64), method="bilinear"))(y)
    y = L.Lambda(lambda t: tf.image.resize(t, (96, 96), method="bilinear"))(y)       # 1.5x: CPU
    y = L.MaxPooling2D(6)(y)
    s = L.Activation("tanh")(L.Lambda(lambda t: t[:, ::2, :, :4])(y))
    p = L.Reshape((4, 128))(L.Permute((3, 1, 2))(s))
    m = L.Lambda(lambda t: tf.reduce_max(t, axis=-1, keepdims=True))(p)
    g = L.Dense(10)(L.GlobalAveragePooling2D()(y))
    outs = [L.Softmax()(g), L.Lambda(lambda t: tf.nn.log_softmax(t))(g), L.Flatten()(m),
            L.Lambda(lambda t: t * tf.nn.relu6(t + 3.0) / 6.0)(g), L.Lambda(lambda t: tf.exp(t))(g)]
    model = tf.keras.Model(inp, outs, name="opzoo")
    spec = tf.TensorSpec((1, 32, 32, 3), tf.float32)
    return z._convert(z._keras_concrete_function(model, spec), "int8", z._representative_images((1, 32, 32, 3), 8))


@pytest.fixture(scope="module")
def opzoo(tmp_path_factory):
    pytest.importorskip("tensorflow")
    path = tmp_path_factory.mktemp("ethos_u") / "opzoo_int8.tflite"
    path.write_bytes(_opzoo_int8())
    return path


def test_converter_built_op_zoo_prediction(opzoo):
    plan = make_plan(read_model(opzoo), T)
    cpu = {d.type: d.reason for d in plan.ops if not d.delegated}
    assert cpu == {"RESIZE_BILINEAR": "RESIZE_BILINEAR: scale factor 1.5 with half_pixel_centers, Vela takes 2x",
                   "LOG_SOFTMAX": "LOG_SOFTMAX is not supported on the Ethos-U55/U65 NPU by Vela 5.2.0 "
                                  "(Unsupported opType)"}
    assert {"TRANSPOSE_CONV", "TILE", "RESIZE_BILINEAR", "HARD_SWISH", "STRIDED_SLICE", "TRANSPOSE", "REDUCE_MAX",
            "MEAN", "SOFTMAX"} <= {d.type for d in plan.ops if d.delegated}


@needs_vela
def test_converter_built_op_zoo_matches_vela(opzoo):
    model = read_model(opzoo)
    assert vela_split(model) == split(model)


def test_shared_model_predictions_are_complete(shared_model):
    """Every op of a real model gets a decision; a float model puts nothing on the NPU."""
    model = read_model(shared_model)
    plan = make_plan(model, T)
    assert len(plan.ops) == sum(len(sg.operators) for sg in model.subgraphs)
    assert all(d.delegated or d.reason for d in plan.ops)
    floats = any(t.type_name == "FLOAT32" for sg in model.subgraphs for t in sg.tensors if not t.is_constant)
    if floats:
        assert not any(d.delegated for d in plan.ops)


@needs_vela
def test_shared_models_match_vela(shared_model):
    model = read_model(shared_model)
    plan = make_plan(model, T)
    try:
        result = run_vela(shared_model)
    except VelaError:
        assert plan.model_reason, "Vela failed on a model the target does not reject"
        return
    assert {(d.subgraph, d.index) for d in plan.ops if d.delegated} == \
        {(si, i) for si, idx in result.npu.items() for i in idx}


# --------------------------------------------------------------------------- the target's record, the runner

def test_target_records_what_it_describes():
    assert T.name == "ethos-u" and T.max_partitions is None and T.model_check is not None
    assert "Vela 5.2.0" in T.runtime and "ethos-u55-256" in T.runtime
    assert "--supported-ops-report" in T.source and "tflite_supported_operators.py" in T.source
    assert T.check(unop("LOG_SOFTMAX").main.operators[0]) == \
        (False, "LOG_SOFTMAX is not supported on the Ethos-U55/U65 NPU by Vela 5.2.0 (Unsupported opType)")
    rules = T.describe()
    assert "stride > 3 only with dilation 1 and no padding" in rules["CONV_2D"]
    assert "no 32-bit feature maps" in rules["RELU"] and "no 32-bit feature maps" not in rules["ADD"]


def test_find_vela_honours_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("TFLC_VELA", str(tmp_path / "nowhere"))
    assert find_vela() is None
    with pytest.raises(VelaError, match="not installed"):
        run_vela(binop("ADD", opts="Add"))


@needs_vela
def test_vela_runner_reads_the_split_and_reasons(zoo):
    result = run_vela(read_model(zoo("transformer_encoder_3x192_int8")))
    assert sorted(len(v) for v in (result.npu[0], result.cpu[0])) == [18, 117]
    why = [result.reasons[(0, i)] for i in result.cpu[0]]
    assert any(w.startswith("Unsupported opType") for w in why)
    assert any("unsupported DataType Float32" in w for w in why)
