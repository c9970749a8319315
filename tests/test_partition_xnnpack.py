"""The XNNPACK target predicts LiteRT 2.3.0's own partitioning exactly: the same nodes delegated and
the same partitions, on every zoo model, every real model, and hand-built edge cases (each also
asserting the reason it gives for an op left on the CPU).

LiteRT's decision is read back per node (tflc.runtime.delegation: node fusion off) and per
partition (fusion on)."""
from __future__ import annotations

import numpy as np
import pytest

from tflc.errors import TflcError
from tflc.io import read_model, read_model_bytes, serialize
from tflc.ir.build import add_op, new_model
from tflc.runtime.delegation import xnnpack_delegation
from tflc.schema import TYPE_CODES, fb
from tflc.targets import get_target
from tflc.targets.plan import make_plan
from tflc.testing.zoo import BUILDERS

XNNPACK = get_target("xnnpack")
F32, F16, I8, I16, I32 = (TYPE_CODES[n] for n in ("FLOAT32", "FLOAT16", "INT8", "INT16", "INT32"))
OPT = fb.BuiltinOptions


def _parts(plan) -> list[list[int]]:
    return sorted(sorted(s.ops) for si, s in plan.partitions if si == 0)


def _agree(model, source) -> tuple:
    """Assert the plan of ``model`` matches LiteRT's partitioning of ``source`` (path or bytes)."""
    plan = make_plan(model, XNNPACK)
    real = xnnpack_delegation(source)
    predicted = plan.delegated_indices(0)
    if predicted != real.taken:
        only_predicted = sorted(set(predicted) - set(real.taken))
        why = {i: plan.ops[i].reason for i in sorted(set(real.taken) - set(predicted))}
        raise AssertionError(f"predicted {len(predicted)} delegated nodes, LiteRT took {len(real.taken)}; "
                             f"predicted only: {only_predicted}; LiteRT only (with tflc's reason): {why}")
    assert _parts(plan) == sorted(sorted(p) for p in real.partitions)
    return plan, real


# --------------------------------------------------------------------------- zoo and real models

@pytest.mark.parametrize("name", list(BUILDERS))
def test_zoo_model_partitioning_matches_litert(zoo, name):
    path = zoo(name)
    _agree(read_model(path), path)


def test_real_model_partitioning_matches_litert(shared_model):
    _agree(read_model(shared_model), shared_model)


def test_int8_gaps_are_named(zoo):
    """The converter's full-int8 models: every op left on the CPU says plainly why."""
    plan = make_plan(read_model(zoo("transformer_encoder_3x192_int8")), XNNPACK)
    reasons = {d.reason for d in plan.ops if not d.delegated}
    assert "int8 SOFTMAX is not taken by XNNPACK in LiteRT 2.3.0 (float only)" in reasons
    assert "int8 GELU is not taken by XNNPACK in LiteRT 2.3.0 (float only)" in reasons
    assert any(r.startswith("int8 BATCH_MATMUL: the right operand has zero point ") and
               r.endswith(", XNNPACK needs 0 and per-tensor quantization") for r in reasons)
    assert any(r.startswith("ADD: input 1's scale / the output's scale = ") and
               r.endswith("XNNPACK needs it in [1/1024, 256)") for r in reasons)      # LayerNorm's + epsilon
    plan = make_plan(read_model(zoo("mobilenet_v3_small_int8")), XNNPACK)
    assert {d.reason for d in plan.ops if not d.delegated} == {
        "int8 HARD_SWISH is not taken by XNNPACK in LiteRT 2.3.0 (float only)",
        "int8 SOFTMAX is not taken by XNNPACK in LiteRT 2.3.0 (float only)"}
    plan = make_plan(read_model(zoo("mobilenet_v3_small_dynamic_int8")), XNNPACK)
    assert {d.reason for d in plan.ops if not d.delegated} == {
        "DEPTHWISE_CONV_2D with int8 weights and float input (dynamic range) is not taken by XNNPACK in LiteRT "
        "2.3.0 (it has no dynamic-range depthwise kernel; CONV_2D and FULLY_CONNECTED have one)"}


# --------------------------------------------------------------------------- hand-built models

def _q(scale, zero_point=0, dim=0):
    q = fb.QuantizationParametersT()
    q.scale = np.atleast_1d(np.asarray(scale, np.float32))
    q.zeroPoint = np.atleast_1d(np.asarray(zero_point, np.int64))
    q.quantizedDimension = dim
    return q


class G:
    """A small graph: tensors, ops, then ``check()`` against LiteRT."""

    def __init__(self):
        self.m, self.sg = new_model("xnnpack edge case")
        self.ins: list = []

    def input(self, shape, dtype=F32, q=None):
        t = self.sg.new_tensor("x", dtype, shape, quantization=q)
        self.ins.append(t)
        return t

    def tensor(self, shape, dtype=F32, q=None):
        return self.sg.new_tensor("t", dtype, shape, quantization=q)

    def const(self, array, dtype=None, q=None):
        return self.sg.new_constant("c", np.asarray(array), dtype, quantization=q)

    def op(self, name, ins, outs, options=None, kind=0):
        add_op(self.sg, name, ins, outs, options, kind)
        return outs[0] if outs else None

    def check(self, out) -> list:
        """The decisions for subgraph 0, after asserting they match LiteRT's."""
        self.sg.set_graph_inputs(self.ins)
        self.sg.set_graph_outputs(out if isinstance(out, list) else [out])
        data = serialize(self.m)
        plan, _ = _agree(read_model_bytes(data), data)
        return [d for d in plan.ops if d.subgraph == 0]


def _add(g, a, b, out):
    return g.op("ADD", [a, b], [out], fb.AddOptionsT(), OPT.AddOptions)


def test_int8_add_scale_ratio():
    g = G()
    x = g.input((1, 8), I8, _q(0.05))
    tiny = g.const(np.ones((1, 8), np.int8), I8, _q(1e-5))                  # an epsilon constant
    fine = g.const(np.ones((1, 8), np.int8), I8, _q(0.01))
    y = _add(g, x, tiny, g.tensor((1, 8), I8, _q(0.05)))
    z = _add(g, x, fine, g.tensor((1, 8), I8, _q(0.05)))
    refused, taken = g.check([y, z])
    assert not refused.delegated and taken.delegated
    assert refused.reason == "ADD: input 1's scale / the output's scale = 0.0002, XNNPACK needs it in [1/1024, 256)"


@pytest.mark.parametrize("zero_point", [-3, 0])
def test_int8_batch_matmul_needs_a_symmetric_right_operand(zero_point):
    g = G()
    a = g.input((1, 4, 8), I8, _q(0.1))
    b = g.input((1, 8, 4), I8, _q(0.1, zero_point))
    y = g.op("BATCH_MATMUL", [a, b], [g.tensor((1, 4, 4), I8, _q(0.5))], fb.BatchMatMulOptionsT(),
             OPT.BatchMatMulOptions)
    d, = g.check(y)
    if zero_point:
        assert not d.delegated
        assert d.reason == ("int8 BATCH_MATMUL: the right operand has zero point -3, XNNPACK needs 0 and "
                            "per-tensor quantization")
    else:
        assert d.delegated


@pytest.mark.parametrize("stride", [1, 2])
def test_strided_slice_stride(stride):
    g = G()
    x = g.input((1, 8, 8, 4))
    opts = fb.StridedSliceOptionsT()
    n = 8 // stride if stride > 1 else 4
    y = g.op("STRIDED_SLICE", [x, g.const(np.array([0, 0, 0, 0], np.int32)),
                               g.const(np.array([1, 8, 8 if stride > 1 else 4, 4], np.int32)),
                               g.const(np.array([1, stride, stride, 1], np.int32))],
             [g.tensor((1, n, n if stride > 1 else 4, 4))], opts, OPT.StridedSliceOptions)
    d, = g.check(y)
    assert d.delegated == (stride == 1)
    if stride > 1:
        assert d.reason == "STRIDED_SLICE: has strides [1, 2, 2, 1], XNNPACK needs every stride to be 1"


@pytest.mark.parametrize("rank", [6, 7])
def test_add_rank(rank):
    shape = (1, 2, 1, 2, 1, 2, 3)[-rank:]
    g = G()
    y = _add(g, g.input(shape), g.input(shape), g.tensor(shape))
    d, = g.check(y)
    assert d.delegated == (rank <= 6)
    if rank > 6:
        assert d.reason == "ADD: input 0 has rank 7 (shape [1, 2, 1, 2, 1, 2, 3]), XNNPACK needs rank <= 6"


@pytest.mark.parametrize("constant_slope", [True, False])
def test_prelu_slope_must_be_constant(constant_slope):
    g = G()
    x = g.input((1, 4, 4, 8))
    alpha = g.const(np.full((8,), 0.25, np.float32)) if constant_slope else g.input((8,))
    y = g.op("PRELU", [x, alpha], [g.tensor((1, 4, 4, 8))])
    d, = g.check(y)
    assert d.delegated == constant_slope
    if not constant_slope:
        assert d.reason == ("PRELU: input 1 (alpha) is computed at run time, XNNPACK needs a constant or a DEQUANTIZE "
                            "or DENSIFY of a constant (expanded once by XNNPACK)")


def test_int8_prelu_and_softmax_are_float_only():
    g = G()
    x = g.input((1, 8), I8, _q(0.1))
    p = g.op("PRELU", [x, g.const(np.full((8,), 10, np.int8), I8, _q(0.025))], [g.tensor((1, 8), I8, _q(0.1))])
    s = g.op("SOFTMAX", [p], [g.tensor((1, 8), I8, _q(1 / 256, -128))], fb.SoftmaxOptionsT(beta=1.0),
             OPT.SoftmaxOptions)
    prelu, softmax = g.check(s)
    assert prelu.reason == "int8 PRELU is not taken by XNNPACK in LiteRT 2.3.0 (float only)"
    assert softmax.reason == "int8 SOFTMAX is not taken by XNNPACK in LiteRT 2.3.0 (float only)"


@pytest.mark.parametrize("beta", [1.0, 2.0])
def test_softmax_beta(beta):
    g = G()
    y = g.op("SOFTMAX", [g.input((1, 10))], [g.tensor((1, 10))], fb.SoftmaxOptionsT(beta=beta), OPT.SoftmaxOptions)
    d, = g.check(y)
    assert d.delegated == (beta == 1.0)
    if beta != 1.0:
        assert d.reason == "SOFTMAX: has beta 2, XNNPACK needs beta == 1"


def test_transpose_rank_5_is_taken():
    g = G()
    y = g.op("TRANSPOSE", [g.input((1, 2, 3, 4, 5)), g.const(np.array([0, 4, 3, 2, 1], np.int32))],
             [g.tensor((1, 5, 4, 3, 2))], fb.TransposeOptionsT(), OPT.TransposeOptions)
    d, = g.check(y)
    assert d.delegated


def test_dynamic_range_depthwise_is_not_taken():
    g = G()
    x = g.input((1, 8, 8, 4))
    w = g.const(np.ones((1, 3, 3, 4), np.int8), I8, _q([0.1, 0.2, 0.3, 0.4], [0, 0, 0, 0], dim=3))
    opts = fb.DepthwiseConv2DOptionsT(padding=fb.Padding.SAME, strideW=1, strideH=1, depthMultiplier=1)
    y = g.op("DEPTHWISE_CONV_2D", [x, w, g.const(np.zeros(4, np.float32))], [g.tensor((1, 8, 8, 4))], opts,
             OPT.DepthwiseConv2DOptions)
    d, = g.check(y)
    assert not d.delegated
    assert d.reason.startswith("DEPTHWISE_CONV_2D with int8 weights and float input (dynamic range) is not taken")


def test_float16_constant_read_by_a_cpu_op_stays_on_the_cpu():
    """A DEQUANTIZE of a float16 constant is taken only when no op left on the CPU reads it."""
    g = G()
    x = g.input((4, 3))
    table = g.op("DEQUANTIZE", [g.const(np.arange(12, dtype=np.float16).reshape(4, 3))], [g.tensor((4, 3))])
    s = _add(g, x, table, g.tensor((4, 3)))
    e = g.op("GATHER", [table, g.const(np.array([1, 2], np.int32))], [g.tensor((2, 3))], fb.GatherOptionsT(),
             OPT.GatherOptions)
    dq, add, gather = g.check([s, e])
    assert add.delegated and not gather.delegated and not dq.delegated
    assert dq.reason == ("DEQUANTIZE: its output is read by GATHER (op 2), which XNNPACK does not take; XNNPACK "
                         "takes a constant DEQUANTIZE only when no reader stays on the CPU")
    assert gather.reason == "GATHER is not taken by XNNPACK in LiteRT 2.3.0 (the delegate has no GATHER kernel)"


def test_reshape_to_minus_one_and_int16():
    g = G()
    x = g.input((2, 3, 4))
    r = g.op("RESHAPE", [x, g.const(np.array([-1], np.int32))], [g.tensor((24,))], fb.ReshapeOptionsT(),
             OPT.ReshapeOptions)
    h = g.input((1, 8), I16, _q(0.01))
    s = _add(g, h, h, g.tensor((1, 8), I16, _q(0.02)))
    reshape, add = g.check([r, s])
    assert reshape.reason == ("RESHAPE: flattens to new shape [-1], which XNNPACK does not take (write the size "
                              "instead of -1)")
    assert add.reason == "int16 ADD is not taken by XNNPACK in LiteRT 2.3.0 (XNNPACK has no int16 kernels)"


def test_stored_shape_decides():
    """XNNPACK reads the shapes stored in the file: a CONV_2D input stored as [] is a scalar to it."""
    g = G()
    x = g.input((1, 8, 8, 3))
    stale = g.op("RESHAPE", [x, g.const(np.array([1, 8, 8, 3], np.int32))], [g.tensor(())], fb.ReshapeOptionsT(),
                 OPT.ReshapeOptions)
    opts = fb.Conv2DOptionsT(padding=fb.Padding.SAME, strideW=1, strideH=1)
    y = g.op("CONV_2D", [stale, g.const(np.ones((4, 3, 3, 3), np.float32)), g.const(np.zeros(4, np.float32))],
             [g.tensor((1, 8, 8, 4))], opts, OPT.Conv2DOptions)
    reshape, conv = g.check(y)
    assert reshape.delegated and not conv.delegated
    assert conv.reason == ("CONV_2D: input 0 has rank 0 (shape []), XNNPACK needs rank 4 (it reads the shape stored "
                           "in the file)")


def test_claimed_then_failing_is_a_warning():
    """An int8 TRANSPOSE that requantizes passes XNNPACK's checks, then fails when XNNPACK builds
    its graph: LiteRT cannot prepare the model. The plan takes it and says so."""
    g = G()
    x = g.input((1, 4, 8), I8, _q(0.1))
    y = g.op("TRANSPOSE", [x, g.const(np.array([0, 2, 1], np.int32))], [g.tensor((1, 8, 4), I8, _q(0.2))],
             fb.TransposeOptionsT(), OPT.TransposeOptions)
    g.sg.set_graph_inputs(g.ins)
    g.sg.set_graph_outputs([y])
    data = serialize(g.m)
    plan = make_plan(read_model_bytes(data), XNNPACK)
    d = plan.ops[0]
    assert d.delegated
    assert any("allocate_tensors() raises" in w for w in getattr(d, "warnings", []))
    with pytest.raises(TflcError, match="failed to delegate TRANSPOSE"):
        xnnpack_delegation(data)
