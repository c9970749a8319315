"""The nnapi target: NNAPIDelegateKernel::Validate at Android API level 30 (with the delegate's
default options), checked on hand-built models for each rule family with its reason, the
three-partition limit, float16 weights, and the zoo's models."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import pytest

from _partition_graphs import Graph
from tflc.io import read_model
from tflc.ir.core import Model
from tflc.targets import get_target
from tflc.targets.plan import make_plan

T = get_target("nnapi")
F = "FLOAT32"
WHO = "NNAPI at API level 30"


def split(model: Model) -> list[str]:
    return ["NN" if d.delegated else "CPU" for d in make_plan(model, T).ops]


def one(kind, shapes=((1, 8, 8, 4),), out=None, dtype=F, odtype=None, consts=(), opts=None, version=1, **kw):
    g = Graph()
    ins = [g.input(f"x{i}", s, dtype) for i, s in enumerate(shapes)]
    ins += [g.const(f"c{i}", c) for i, c in enumerate(consts)]
    return g.done([g.op(kind, ins, shapes[0] if out is None else out, opts, version=version, dtype=odtype or dtype,
                        **kw)])


def conv(bias=True, bias_slot=True, dtype=F):
    g = Graph()
    x = g.input("x", (1, 8, 8, 4), dtype)
    w = g.weights("w", (8, 3, 3, 4), dtype)
    ins = [x, w] + ([g.bias("b", 8, "INT32" if dtype != F else F)] if bias else [None] if bias_slot else [])
    return g.done([g.op("CONV_2D", ins, (1, 8, 8, 8), "Conv2D", dtype=dtype, padding="SAME", strideW=1, strideH=1)])


def pool(k, dtype):
    g = Graph()
    x = g.input("x", (1, 32, 32, 4), dtype)
    return g.done([g.op("AVERAGE_POOL_2D", [x], (1, 32 - k + 1, 32 - k + 1, 4), "Pool2D", dtype=dtype,
                        padding="VALID", strideW=1, strideH=1, filterWidth=k, filterHeight=k)])


def reshape(dtype=F, out=(1, 64, 4), runtime_shape=False):
    g = Graph()
    x = g.input("x", (1, 8, 8, 4), dtype)
    s = g.input("s", (len(out),), "INT32") if runtime_shape else g.ints("s", list(out))
    return g.done([g.op("RESHAPE", [x, s], out, "Reshape", dtype=dtype, newShape=list(out))])


def split_v(sizes, runtime=False):
    g = Graph()
    x = g.input("x", (1, 8), F)
    s = g.input("s", (len(sizes),), "INT32") if runtime else g.ints("s", sizes)
    outs = [(1, max(v, 0)) for v in sizes]
    return g.done(g.op("SPLIT_V", [x, s, g.ints("ax", [1])], outs, "SplitV", dtype=F, numSplits=len(sizes)))


def select(cond_shape):
    g = Graph()
    c, a, b = g.input("c", cond_shape, "BOOL"), g.input("a", (1, 8), F), g.input("b", (1, 8), F)
    return g.done([g.op("SELECT", [c, a, b], (1, 8), dtype=F)])


@dataclass
class Case:
    name: str
    build: Callable[[], Model]
    expect: str
    reason: str = ""


CASES = [
    Case("add", lambda: one("ADD", ((1, 8), (1, 8)), opts="Add"), "NN"),
    Case("add_rank5", lambda: one("ADD", ((1, 1, 2, 4, 4), (1, 1, 2, 4, 4)), opts="Add"), "CPU",
         f"ADD: input 0 has rank 5, {WHO} takes rank <= 4"),
    Case("add_int16", lambda: one("ADD", ((1, 8), (1, 8)), dtype="INT16", opts="Add"), "CPU",
         f"ADD: input 0 is INT16, {WHO} takes FLOAT32, UINT8, INT8 or INT32"),
    Case("add_int32_relu", lambda: one("ADD", ((1, 8), (1, 8)), dtype="INT32", opts="Add",
                                       fusedActivationFunction="RELU"), "CPU",
         f"ADD: an INT32 op with fused RELU, {WHO} takes no fused activation"),
    Case("add_int32", lambda: one("ADD", ((1, 8), (1, 8)), dtype="INT32", opts="Add"), "NN"),
    Case("mul_v3_without_accelerator", lambda: one("MUL", ((1, 8), (1, 8)), opts="Mul", version=3), "CPU",
         f"MUL: version 3, {WHO} takes version <= 2"),
    Case("conv", conv, "NN"),
    Case("conv_bias_slot_empty", lambda: conv(bias=False), "NN"),
    Case("conv_two_inputs", lambda: conv(bias=False, bias_slot=False), "CPU",
         f"CONV_2D: 2 inputs (bias omitted), {WHO} takes 3"),
    Case("avg_pool_int8_17x17", lambda: pool(17, "INT8"), "CPU",
         f"AVERAGE_POOL_2D: a quantized window of more than 256 values, {WHO} takes <= 256"),
    Case("avg_pool_int8_16x16", lambda: pool(16, "INT8"), "NN"),
    Case("avg_pool_float_17x17", lambda: pool(17, F), "NN"),
    Case("fully_connected_int16_output", lambda: one("FULLY_CONNECTED", ((1, 16),), out=(1, 4), dtype="INT16",
                                                     consts=(np.ones((4, 16), np.int8),), opts="FullyConnected"),
         "CPU", "FULLY_CONNECTED: output 0 is INT16"),
    Case("softmax_rank5", lambda: one("SOFTMAX", ((1, 1, 2, 3, 4),), opts="Softmax", beta=1.0), "CPU",
         f"SOFTMAX: input 0 has rank 5, {WHO} takes rank <= 4"),
    Case("reshape_int32", lambda: reshape("INT32"), "CPU",
         f"RESHAPE: input 0 is INT32, {WHO} takes FLOAT32, UINT8 or INT8"),
    Case("reshape_rank5", lambda: reshape(out=(1, 2, 2, 8, 4)), "CPU", f"output 0 has rank 5, {WHO} takes rank <= 4"),
    Case("reshape_runtime_shape", lambda: reshape(runtime_shape=True), "CPU",
         f"RESHAPE: input 1 (shape) is computed at run time, {WHO} takes a constant shape"),
    Case("reshape", reshape, "NN"),
    Case("resize_runtime_size", lambda: one("RESIZE_BILINEAR", ((1, 8, 8, 4), (2,)), out=(1, 16, 16, 4),
                                            opts="ResizeBilinear"), "CPU", "input 1 (size) is computed at run time"),
    Case("div_int8", lambda: one("DIV", ((1, 8), (1, 8)), dtype="INT8", opts="Div"), "CPU",
         f"DIV: input 0 is INT8, {WHO} takes FLOAT32"),
    Case("transpose_runtime_perm", lambda: one("TRANSPOSE", ((1, 8, 8, 4), (4,)), out=(1, 8, 8, 4)), "CPU",
         f"TRANSPOSE: input 1 (permutation) is computed at run time, {WHO} takes a constant permutation"),
    Case("rsqrt_int8_needs_feature_level_7", lambda: one("RSQRT", dtype="INT8"), "CPU",
         f"RSQRT: input 0 is INT8, {WHO} takes FLOAT32"),
    Case("batch_matmul", lambda: one("BATCH_MATMUL", ((1, 4, 8), (1, 8, 4)), out=(1, 4, 4), opts="BatchMatMul"),
         "CPU", f"BATCH_MATMUL: needs NNAPI feature level 6 (Android sdk version >= 1000006), {WHO} has NNAPI 1.3"),
    Case("mirror_pad", lambda: one("MIRROR_PAD", consts=(np.array([[0, 0], [1, 1], [1, 1], [0, 0]], np.int32),),
                                   out=(1, 10, 10, 4), opts="MirrorPad"), "CPU", "needs NNAPI feature level 7"),
    Case("pad_empty_input", lambda: one("PAD", ((1, 0, 8, 4),), consts=(np.array([[0, 0], [1, 1], [1, 1], [0, 0]],
                                                                                 np.int32),), out=(1, 2, 10, 4)),
         "CPU", f"PAD: input 0 of shape [1, 0, 8, 4] has no elements, {WHO} takes a non-empty input"),
    Case("mean_rank5", lambda: one("MEAN", ((1, 1, 2, 4, 4),), consts=(np.array([2, 3], np.int32),),
                                   out=(1, 1, 2, 1, 1), opts="Reducer", keepDims=True), "CPU",
         f"MEAN: input 0 has rank 5, {WHO} takes rank <= 4"),
    Case("mean_scalar_output", lambda: one("MEAN", ((8,),), consts=(np.array([0], np.int32),), out=(),
                                           opts="Reducer"), "CPU", "output 0 has rank 0"),
    Case("split_v_zero_size", lambda: split_v([8, 0]), "CPU", f"SPLIT_V: a zero split size, {WHO} takes non-zero"),
    Case("split_v_inferred_zero", lambda: split_v([8, -1]), "CPU", "an inferred split size of 0"),
    Case("split_v_runtime_sizes", lambda: split_v([4, 4], runtime=True), "CPU",
         "size_splits, NNAPI at API level 30 takes a constant INT32 vector"),
    Case("split_v", lambda: split_v([4, 4]), "NN"),
    Case("pack_int8_new_last_axis", lambda: one("PACK", ((2, 4), (2, 4)), dtype="INT8", out=(2, 4, 2), opts="Pack",
                                                valuesCount=2, axis=2), "CPU",
         f"PACK: packing along a new last axis, {WHO} takes another axis"),
    Case("pack_uint8_needs_feature_level_6", lambda: one("PACK", ((2, 4), (2, 4)), dtype="UINT8", out=(2, 2, 4),
                                                        opts="Pack", valuesCount=2, axis=0), "CPU",
         f"PACK: input 0 is UINT8, {WHO} takes FLOAT32 or INT8"),
    Case("unpack_last_axis", lambda: Graph_unpack(axis=1), "CPU", "unpacking the last axis"),
    Case("topk_runtime_k", lambda: one("TOPK_V2", ((1, 8), ()), odtype=F, out=(1, 2)), "CPU",
         "TOPK_V2: k, NNAPI at API level 30 takes a constant INT32 k"),
    Case("cast_bool", lambda: one("CAST", ((1, 8),), dtype="BOOL", odtype=F), "CPU",
         f"CAST: input 0 is BOOL, {WHO} takes FLOAT32, INT32, UINT8 or INT8"),
    Case("gather_scalar_positions", lambda: Graph_gather(()), "CPU", "scalar positions"),
    Case("quantize_to_int16", lambda: one("QUANTIZE", dtype=F, odtype="INT16"), "CPU",
         f"QUANTIZE: output 0 is INT16, {WHO} takes UINT8 or INT8"),
    Case("quantize", lambda: one("QUANTIZE", dtype=F, odtype="INT8"), "NN"),
    Case("expand_dims_runtime_axis", lambda: one("EXPAND_DIMS", ((8, 4), (1,)), out=(1, 8, 4)), "CPU",
         "an axis, NNAPI at API level 30 takes a constant INT32 axis"),
    Case("select_condition_shape", lambda: select((1, 1)), "CPU",
         "condition of shape [1, 1] and inputs of shape [1, 8]"),
    Case("select", lambda: select((1, 8)), "NN"),
    Case("dequantize_int16", lambda: one("DEQUANTIZE", dtype="INT16", odtype=F), "CPU",
         f"DEQUANTIZE: input 0 is INT16, {WHO} takes UINT8 or INT8"),
    Case("dequantize_float16_at_run_time", lambda: one("DEQUANTIZE", dtype="FLOAT16", odtype=F, version=3), "NN"),
    Case("densify_runtime", lambda: one("DENSIFY"), "CPU", "DENSIFY: input 0 is computed at run time"),
    Case("gelu_is_not_mapped", lambda: one("GELU"), "CPU",
         "GELU is not supported by the NNAPI delegate (Validate: unsupported operation type)"),
    Case("hard_swish_int16", lambda: one("HARD_SWISH", dtype="INT16"), "CPU", "HARD_SWISH: input 0 is INT16"),
    Case("l2_normalization_relu", lambda: one("L2_NORMALIZATION", opts="L2Norm", fusedActivationFunction="RELU"),
         "CPU", f"L2_NORMALIZATION: fused activation RELU, {WHO} takes none"),
    Case("concatenation_relu", lambda: one("CONCATENATION", ((1, 8), (1, 8)), out=(1, 16), opts="Concatenation",
                                           axis=1, fusedActivationFunction="RELU"), "CPU", "fused activation RELU"),
    Case("log_int8", lambda: one("LOG", dtype="INT8"), "CPU", f"LOG: input 0 is INT8, {WHO} takes FLOAT32"),
    Case("arg_max_int64_output", lambda: one("ARG_MAX", consts=(np.array([3], np.int32),), out=(1, 8, 8),
                                             odtype="INT64", opts="ArgMax", outputType=4), "CPU",
         f"ARG_MAX: an INT64 output, {WHO} takes INT32"),
    Case("maximum_runtime_scalar", lambda: one("MAXIMUM", ((1, 8), ())), "CPU",
         "MAXIMUM: input 1 is a scalar computed at run time"),
    Case("strided_slice_v3", lambda: Graph_strided(version=3), "CPU", f"version 3, {WHO} takes version <= 2"),
]


def Graph_unpack(axis):
    g = Graph()
    x = g.input("x", (2, 4), F)
    shape = (4,) if axis == 0 else (2,)
    n = 2 if axis == 0 else 4
    return g.done(g.op("UNPACK", [x], [shape] * n, "Unpack", dtype=F, num=n, axis=axis))


def Graph_gather(positions_shape):
    g = Graph()
    t, i = g.input("t", (10, 4), F), g.input("i", positions_shape, "INT32")
    return g.done([g.op("GATHER", [t, i], positions_shape + (4,), "Gather", dtype=F, axis=0)])


def Graph_strided(version):
    g = Graph()
    x = g.input("x", (1, 8, 8, 4), F)
    ins = [x, g.ints("b", [0, 0, 0, 0]), g.ints("e", [1, 4, 8, 4]), g.ints("s", [1, 1, 1, 1])]
    return g.done([g.op("STRIDED_SLICE", ins, (1, 4, 8, 4), "StridedSlice", dtype=F, version=version)])


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_rule(case: Case):
    model = case.build()
    plan = make_plan(model, T)
    assert split(model) == case.expect.split()
    cpu = [d for d in plan.ops if not d.delegated]
    if case.reason:
        assert case.reason in cpu[0].reason, cpu[0].reason
        assert cpu[0].reason.startswith((cpu[0].type + ": ", cpu[0].type + " is not supported"))
    else:
        assert not cpu


def test_three_largest_partitions_are_kept():
    """max_number_delegated_partitions = 3: of partitions of 1, 2, 3 and 4 ops, the smallest stays on the CPU."""
    g = Graph()
    t = g.input("x", (1, 8), F)
    for run in (1, 2, 3, 4):
        for _ in range(run):
            t = g.op("RELU", [t], (1, 8), dtype=F)
        if run < 4:
            t = g.op("GELU", [t], (1, 8), dtype=F)
    plan = make_plan(g.done([t]), T)
    assert len(plan.partitions) == 3
    assert plan.ops[0].type == "RELU" and not plan.ops[0].delegated
    assert plan.ops[0].reason == ("its partition of 1 op(s) is beyond the 3 largest that LiteRT's NNAPI delegate "
                                  "keeps (max_delegated_partitions)")
    assert sum(d.delegated for d in plan.ops) == 2 + 3 + 4


def _fp16_conv(then: str | None = None) -> Model:
    g = Graph()
    x = g.input("x", (1, 8, 8, 4), F)
    w = g.op("DEQUANTIZE", [g.sg.new_constant("w16", np.ones((8, 3, 3, 4), np.float16))], (8, 3, 3, 4), dtype=F)
    b = g.op("DEQUANTIZE", [g.sg.new_constant("b16", np.zeros((8,), np.float16))], (8,), dtype=F)
    y = g.op("CONV_2D", [x, w, b], (1, 8, 8, 8), "Conv2D", dtype=F, padding="SAME", strideW=1, strideH=1)
    if then:
        y = g.op(then, [y], (1, 8, 8, 8), dtype=F)
    return g.done([y])


def test_float16_weights():
    assert split(_fp16_conv()) == ["NN", "NN", "NN"]
    plan = make_plan(_fp16_conv(then="GELU"), T)
    assert [d.delegated for d in plan.ops] == [False, False, True, False]
    assert plan.ops[0].reason.startswith("DEQUANTIZE: a DEQUANTIZE of float16 weights, taken only when")


ZOO = {   # name: (ops, delegated, partitions, a reason that must appear)
    "mobilenet_tiny": (29, 29, 1, None),
    "mobilenet_tiny_int8": (29, 29, 1, None),
    "mobilenet_tiny_fp16": (74, 74, 1, None),
    "mobilenet_v3_small_int8": (109, 109, 1, None),
    "mobilenet_tiny_dynamic_int8": (29, 10, 3, f"DEPTHWISE_CONV_2D: version 6, {WHO} takes version <= 3"),
    "transformer_encoder_3x192": (123, 57, 3, "BATCH_MATMUL: needs NNAPI feature level 6"),
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
    assert len(plan.partitions) <= 3 and all(d.delegated or d.reason for d in plan.ops)


def test_target_records_the_api_level():
    from tflc.targets import nnapi
    assert nnapi.API_LEVEL == 30 and T.max_partitions == 3
    assert "API level 30" in T.runtime and "NNAPIDelegateKernel::Validate" in T.source and "f67457790c" in T.source
    assert "version <= 5" in T.describe()["CONV_2D"]
