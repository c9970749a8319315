"""remove-identity: delete operators that do not change their input.

What it rewrites (each is a Rule; a refusal is reported as a note):

- ``reshape-same-shape``: RESHAPE whose (static) output shape equals its input's, or whose
  constant new shape spells out its input's shape signature with at most one -1.
- ``reshape-chain``: RESHAPE of a RESHAPE -> one RESHAPE of the original tensor, when the inner
  result has no other reader (a reshape only relabels the element order, which it keeps).
- ``transpose-identity``: TRANSPOSE with the identity permutation.
- ``transpose-pair``: TRANSPOSE(TRANSPOSE(x, p1), p2) with p1[p2[i]] == i for every i -> x (the
  inner one is deleted too when nothing else reads it).
- ``quantize-dequantize``: QUANTIZE(DEQUANTIZE(q)) -> q, and QUANTIZE(q) (requantize) -> q, when the
  result has q's type and exactly q's quantization (scale, zero point, axis): dequantizing gives
  scale*(q-zp) and quantizing divides by the same scale and rounds, which returns q exactly for
  every 8/16-bit value (the float error is far below half a step).
- ``cast-same-type``: CAST to the type its input already has.
- ``arith-identity``: float ``x*1``, ``x/1``, ``x-0`` and ``x+(-0.0)`` by a constant that does
  not broadcast x (not ``x+0``: it turns -0 into +0), without fused activation.
- ``reshape-into-fully-connected``: a RESHAPE that only merges leading dimensions into a
  FULLY_CONNECTED input (keep_num_dims=false, same last dimension): FULLY_CONNECTED flattens its
  input to [elements / depth, depth] itself.
- ``fully-connected-keep-dims``: FULLY_CONNECTED (keep_num_dims=false) followed by a RESHAPE that
  restores the input's leading dimensions -> one FULLY_CONNECTED with keep_num_dims=true.

Safety: every rewrite keeps the values bit-identical (these ops only move or relabel bytes), and
needs static shapes where shapes matter, equal quantization on both sides, and tensors that
nothing else reads. When the removed op's output is a graph output, that tensor keeps its name:
its producer is made to write it directly, which needs the input to be an intermediate tensor;
if the input is itself a graph input or output (or constant), the op is kept (a note says why).
"""
from __future__ import annotations

import numpy as np

from tflc.ir.constants import const_ints
from tflc.ir.core import Operator, Subgraph, Tensor
from tflc.ir.quant import is_quantized, same_quantization
from tflc.rewrite import Match, Rule, RulePass, fused_activation, sole_consumer
from tflc.passes_api import register


# --------------------------------------------------------------------------- helpers

def _static(t: Tensor | None) -> bool:
    return (t is not None and t.shape is not None
            and (t.shape_signature is None or all(d >= 0 for d in t.shape_signature))
            and all(d >= 0 for d in t.shape))


def bypass_check(sg: Subgraph, src: Tensor, dst: Tensor) -> tuple[bool, str]:
    """Can ``dst`` (an op's output equal to ``src``) be replaced by ``src``?"""
    if src.dtype != dst.dtype:
        return False, "input and output types differ"
    if not same_quantization(src, dst):
        return False, "input and output quantization differ"
    if not sg.is_boundary(dst):
        return True, ""
    if sg.is_boundary(src) or src.producer is None or src.is_constant:
        return False, ("its output is a graph output and its input is a graph input/output or constant "
                       "(both names must stay)")
    if src.shape != dst.shape or src.shape_signature != dst.shape_signature:
        return False, "its output is a graph output whose shape record differs from its input's"
    return True, ""


def bypass(sg: Subgraph, op: Operator, src: Tensor, dst: Tensor) -> None:
    """Delete ``op`` whose output ``dst`` equals ``src`` (checked by ``bypass_check``)."""
    if not sg.is_boundary(dst):
        sg.replace_all_uses(dst, src)
        sg.remove_op(op)
        return
    # dst must keep its name: src's producer writes dst instead, and src's readers read dst
    producer = src.producer
    k = next(i for i, t in enumerate(producer.outputs) if t is src)
    sg.remove_op(op, detach=True)
    sg.replace_all_uses(src, dst)
    sg.set_output(producer, k, dst)


# --------------------------------------------------------------------------- rules

class _Bypass(Rule):
    """A rule whose match finds an op with output ``y`` equal to its input ``x``: the op goes."""

    def check(self, m):
        return bypass_check(m.sg, m.tensors["x"], m.tensors["y"])

    def apply(self, m):
        bypass(m.sg, m.root, m.tensors["x"], m.tensors["y"])


class ReshapeSameShape(_Bypass):
    name = "reshape-same-shape"
    roots = ("RESHAPE",)

    def match(self, op, sg):
        x, y = op.inputs[0], op.outputs[0]
        if x is None or y is None or x.shape is None:
            return None
        if _static(x) and _static(y) and x.shape == y.shape:
            return Match(op, sg, tensors={"x": x, "y": y})
        # dynamic dimensions: the constant new shape spells out x's signature, with at most one
        # -1 (inferred from the element count, so it is x's own dimension)
        new_shape = const_ints(op.inputs[1] if len(op.inputs) > 1 else None)
        sig = x.shape_signature
        if (new_shape is not None and sig is not None and tuple(sig) == new_shape and new_shape.count(-1) <= 1
                and all(d == -1 or d >= 0 for d in new_shape)
                and (y.shape_signature is None or tuple(y.shape_signature) == new_shape)):
            return Match(op, sg, tensors={"x": x, "y": y})
        return None


class ReshapeChain(Rule):
    name = "reshape-chain"
    roots = ("RESHAPE",)

    def match(self, op, sg):
        mid = op.inputs[0]
        inner = mid.producer if mid is not None else None
        if inner is None or inner.type != "RESHAPE" or inner.inputs[0] is None:
            return None
        return Match(op, sg, ops={"inner": inner}, tensors={"x": inner.inputs[0], "mid": mid})

    def check(self, m):
        x, mid, y = m.tensors["x"], m.tensors["mid"], m.root.outputs[0]
        if sole_consumer(mid, m.sg) is not m.root or m.sg.is_pinned(mid):
            return False, "the inner RESHAPE's result has other readers"
        if not (same_quantization(x, mid) and same_quantization(mid, y)):
            return False, "quantization changes along the chain"
        return True, ""

    def apply(self, m):
        m.sg.set_input(m.root, 0, m.tensors["x"])
        m.sg.remove_op(m.ops["inner"])


class TransposeIdentity(_Bypass):
    name = "transpose-identity"
    roots = ("TRANSPOSE",)

    def match(self, op, sg):
        perm = const_ints(op.inputs[1] if len(op.inputs) > 1 else None)
        x, y = op.inputs[0], op.outputs[0]
        if perm is None or x is None or y is None or perm != tuple(range(len(perm))):
            return None
        return Match(op, sg, tensors={"x": x, "y": y})


class TransposePair(Rule):
    name = "transpose-pair"
    roots = ("TRANSPOSE",)

    def match(self, op, sg):
        mid = op.inputs[0]
        inner = mid.producer if mid is not None else None
        if inner is None or inner.type != "TRANSPOSE" or inner.inputs[0] is None:
            return None
        p1 = const_ints(inner.inputs[1] if len(inner.inputs) > 1 else None)
        p2 = const_ints(op.inputs[1] if len(op.inputs) > 1 else None)
        if p1 is None or p2 is None or len(p1) != len(p2) or sorted(p2) != list(range(len(p2))):
            return None
        if [p1[i] for i in p2] != list(range(len(p1))):
            return None
        return Match(op, sg, ops={"inner": inner}, tensors={"x": inner.inputs[0], "mid": mid, "y": op.outputs[0]})

    def check(self, m):
        x, mid, y = m.tensors["x"], m.tensors["mid"], m.tensors["y"]
        if not (same_quantization(x, mid) and same_quantization(mid, y)):
            return False, "quantization changes along the pair"
        return bypass_check(m.sg, x, y)

    def apply(self, m):
        sg, inner, mid = m.sg, m.ops["inner"], m.tensors["mid"]
        bypass(sg, m.root, m.tensors["x"], m.tensors["y"])
        if not mid.uses and not sg.is_boundary(mid):
            sg.remove_op(inner)


class QuantizeDequantize(Rule):
    name = "quantize-dequantize"
    roots = ("QUANTIZE",)

    def match(self, op, sg):
        f, y = op.inputs[0], op.outputs[0]
        if f is None or y is None:
            return None
        if f.producer is not None and f.producer.type == "DEQUANTIZE" and f.producer.inputs[0] is not None:
            return Match(op, sg, ops={"dequantize": f.producer}, tensors={"q": f.producer.inputs[0], "f": f, "y": y})
        if f.dtype == y.dtype and is_quantized(f):   # requantize to the same parameters
            return Match(op, sg, tensors={"q": f, "y": y})
        return None

    def check(self, m):
        q, y = m.tensors["q"], m.tensors["y"]
        if q.type_name not in ("INT8", "UINT8", "INT16") or q.dtype != y.dtype:
            return False, f"{q.type_name} -> {y.type_name} is not an exact round trip"
        if not is_quantized(q) or not same_quantization(q, y):
            return False, "the quantization parameters differ, so the round trip rescales"
        return bypass_check(m.sg, q, y)

    def apply(self, m):
        bypass(m.sg, m.root, m.tensors["q"], m.tensors["y"])
        f = m.tensors.get("f")
        if f is not None and not f.uses and not m.sg.is_boundary(f):
            m.sg.remove_op(m.ops["dequantize"])         # now dead


class CastSameType(_Bypass):
    name = "cast-same-type"
    roots = ("CAST",)

    def match(self, op, sg):
        x, y = op.inputs[0], op.outputs[0]
        if x is None or y is None or x.dtype != y.dtype:
            return None
        return Match(op, sg, tensors={"x": x, "y": y})


#: x OP c == x bit for bit, for every float x (NaN payloads aside): x*1, x/1, x-(+0), x+(-0).
#: (x+(+0) is not: -0 + +0 = +0.)
_NEUTRAL = {"MUL": (1.0, False), "DIV": (1.0, True), "SUB": (0.0, True), "ADD": (-0.0, False)}


class ArithIdentity(_Bypass):
    """``x * 1``, ``x / 1``, ``x - 0``, ``x + (-0.0)`` with a constant that does not broadcast x."""

    name = "arith-identity"
    roots = tuple(_NEUTRAL)

    def match(self, op, sg):
        if len(op.inputs) != 2 or op.outputs[0] is None:
            return None
        value, right_only = _NEUTRAL[op.type]
        for xi, ci in ((0, 1),) if right_only else ((0, 1), (1, 0)):
            x, c = op.inputs[xi], op.inputs[ci]
            if x is None or c is None or not c.is_constant or c.np_dtype is None or c.np_dtype.kind != "f":
                continue
            data = np.asarray(c.data)
            if data.size and np.all(data == value) and np.all(np.signbit(data) == np.signbit(value)):
                return Match(op, sg, tensors={"x": x, "c": c, "y": op.outputs[0]})
        return None

    def check(self, m):
        x, y = m.tensors["x"], m.tensors["y"]
        if fused_activation(m.root):
            return False, "it has a fused activation"
        if is_quantized(x) or is_quantized(y):
            return False, "quantized arithmetic is not an identity (requantization)"
        if not (_static(x) and _static(y)) or x.shape != y.shape:
            return False, "the constant broadcasts the input to another shape"
        return bypass_check(m.sg, x, y)


def _fc_flattening(op: Operator) -> bool:
    """FULLY_CONNECTED that flattens its input to 2-D (keep_num_dims false, default weights)."""
    o = op.options
    return (op.type == "FULLY_CONNECTED" and o is not None and not getattr(o, "keepNumDims", False)
            and getattr(o, "weightsFormat", 0) == 0 and len(op.inputs) > 1 and _static(op.inputs[1])
            and len(op.inputs[1].shape) == 2)


class ReshapeIntoFullyConnected(Rule):
    name = "reshape-into-fully-connected"
    roots = ("RESHAPE",)

    def match(self, op, sg):
        x, y = op.inputs[0], op.outputs[0]
        if x is None or y is None or not y.uses or sg.is_graph_output(y):
            return None
        if not all(o.type == "FULLY_CONNECTED" and i == 0 and _fc_flattening(o) for o, i in y.uses):
            return None
        if not (_static(x) and _static(y)) or not x.shape or not y.shape:
            return None
        depth = {int(o.inputs[1].shape[1]) for o, _ in y.uses}
        if len(depth) != 1 or x.shape[-1] != y.shape[-1] or x.shape[-1] not in depth:
            return None                 # the reshape changes the depth dimension: not this pattern
        return Match(op, sg, tensors={"x": x, "y": y})

    def check(self, m):
        x, y = m.tensors["x"], m.tensors["y"]
        if m.sg.is_boundary(y):
            return False, "its output is a graph output"
        if not same_quantization(x, y):
            return False, "input and output quantization differ"
        return True, ""

    def apply(self, m):
        sg = m.sg
        for o, i in m.tensors["y"].uses:
            sg.set_input(o, i, m.tensors["x"])
        sg.remove_op(m.root)


class FullyConnectedKeepDims(Rule):
    name = "fully-connected-keep-dims"
    roots = ("FULLY_CONNECTED",)

    def match(self, op, sg):
        if not _fc_flattening(op):
            return None
        x, z = op.inputs[0], op.outputs[0]
        r = sole_consumer(z, sg) if z is not None else None
        if x is None or r is None or r.type != "RESHAPE" or r.inputs[0] is not z:
            return None
        w = r.outputs[0]
        if w is None or not (_static(x) and _static(w)) or len(x.shape) < 3:
            return None
        units = int(op.inputs[1].shape[0])
        if tuple(w.shape) != tuple(x.shape[:-1]) + (units,) or x.shape[-1] != op.inputs[1].shape[1]:
            return None
        return Match(op, sg, ops={"reshape": r}, tensors={"z": z, "w": w})

    def check(self, m):
        z, w = m.tensors["z"], m.tensors["w"]
        if m.sg.is_pinned(z):
            return False, "the FULLY_CONNECTED result is a signature tensor"
        if not same_quantization(z, w):
            return False, "the RESHAPE changes the quantization"
        return True, ""

    def apply(self, m):
        sg, fc, r = m.sg, m.root, m.ops["reshape"]
        sg.remove_op(r, detach=True)   # w keeps its name: the FULLY_CONNECTED writes it
        sg.update_options(fc, keepNumDims=True)
        sg.require_version(fc, 5)      # keep_num_dims arrived with FULLY_CONNECTED version 5
        sg.set_output(fc, 0, m.tensors["w"])


@register
class RemoveIdentity(RulePass):
    name = "remove-identity"
    description = "Remove ops that do not change their input (same-shape reshapes, identity transposes, ...)"
    rules = [ReshapeSameShape(), ReshapeChain(), TransposeIdentity(), TransposePair(), QuantizeDequantize(),
             CastSameType(), ArithIdentity(), ReshapeIntoFullyConnected(), FullyConnectedKeepDims()]
