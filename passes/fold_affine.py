"""fold-affine: fold per-channel (or scalar) constant MUL / ADD / SUB into the weights and bias
of a neighbouring CONV_2D, DEPTHWISE_CONV_2D or FULLY_CONNECTED (batch-norm folding).

After the op, ``y = OP(x) * s + t`` (also ``+ t``, ``- t``, ``t - OP(x)``) with ``s``, ``t``
constant per output channel (or scalar) becomes ``OP'(x)`` with ``W' = W * s`` (along the output
channel) and ``b' = b * s + t`` (a bias is created when the op has none); the MUL/ADD/SUB's fused
activation moves onto the op and its output tensor becomes the op's output. Needs: the op has no
fused activation of its own and its result is read by the MUL/ADD/SUB alone (and is not a graph
output).

Before the op, ``OP(x * s)`` with ``s`` constant per *input* channel becomes ``OP'(x)`` with
``W' = W * s`` along the input channel: exact for any padding, since a zero border stays zero
when scaled. ``OP(x + t)`` becomes ``b' = b + sum(W * t)``, which is only right where the op reads
no padding: FULLY_CONNECTED, or a conv whose padding is VALID or whose SAME padding adds
nothing (e.g. 1x1 kernels); otherwise it is refused (a SAME border would read 0, not t).

Only float32 activations, float32 constant weights and biases: weights that are float16 behind a
DEQUANTIZE are refused (run fold-float16-weights first); quantized ops are left alone.
Products and sums are computed in float64 and rounded once, so the result differs from the
original only by float32 rounding in a different order: ``tolerance = 1e-5`` (relative).

Attention-score scale (exact): ``MUL(BATCH_MATMUL(a, b), c)`` with ``c`` a float32 constant of one
element that is a power of two (e.g. Keras 3 MultiHeadAttention's ``0.25 = 1/sqrt(16)``), where
``a`` (else ``b``) comes from a FULLY_CONNECTED through RESHAPE / TRANSPOSE ops only, becomes
``BATCH_MATMUL(a', b)`` with that FC's weights and bias multiplied by ``c`` and the MUL gone (the
BATCH_MATMUL writes the MUL's output tensor). Scaling by a power of two changes only the exponent,
so every product and partial sum is scaled exactly and the outputs stay bit-identical, provided
nothing leaves the normal float32 range: the scaled weights and bias must stay finite and normal
(checked; refused otherwise), and the activations' own products and partial sums must not be
within a factor ``c`` of underflow or overflow (true of any real model's attention scores).
Needs: the FC's fused activation is NONE (or RELU when ``c > 0``: it commutes with the scale), the
MUL has none, and every tensor from the FC to the MUL is read once and is not a graph output.
Weights that are float16 in the file are scaled only where they stay float16 values (a scaled
value can fall into float16's subnormal range and lose bits): otherwise restore-float16-weights
could not store them as float16 again and the file would grow for the sake of one MUL.
"""
from __future__ import annotations

import numpy as np

from tflc.ir.core import Model, Operator, Subgraph, Tensor
from tflc.ir.opinfo import LAYOUT_OPS, LINEAR_OPS
from tflc.ir.quant import is_quantized
from tflc.passes_api import Pass, register
from tflc.rewrite import Match, Rule, apply_rules, fused_activation, plain_float32
from tflc.schema import TYPE_CODES, fb

from .fold_float16_weights import FACT as FLOAT16_FACT

F32 = TYPE_CODES["FLOAT32"]
NONE = fb.ActivationFunctionType.NONE
AFFINE_OPS = ("MUL", "ADD", "SUB")


def _split_affine(op: Operator) -> tuple[int, Tensor, Tensor] | None:
    """(index of the variable input, variable input, constant) of a binary op with one constant."""
    if op.type not in AFFINE_OPS or len(op.inputs) != 2 or len(op.outputs) != 1:
        return None
    a, b = op.inputs
    if a is None or b is None or op.outputs[0] is None:
        return None
    if b.is_constant and not a.is_constant:
        return 0, a, b
    if a.is_constant and not b.is_constant:
        return 1, b, a
    return None


def _channel_vector(c: Tensor, n: int, rank: int) -> np.ndarray | None:
    """``c`` as a length-``n`` float64 vector if it broadcasts along the last axis only."""
    if c.shape is None or len(c.shape) > rank:
        return None
    shape = tuple(c.shape)
    if any(d != 1 for d in shape[:-1]) or (shape and shape[-1] not in (1, n)):
        return None
    data = np.asarray(c.data, dtype=np.float64).reshape(-1)
    return np.broadcast_to(data, (n,)).copy() if data.size in (1, n) else None


def _affine(op_type: str, var_index: int, c: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(scale, shift) such that the op computes ``v * scale + shift`` of its variable input v."""
    one, zero = np.ones_like(c), np.zeros_like(c)
    if op_type == "MUL":
        return c, zero
    if op_type == "ADD":
        return one, c
    return (one, -c) if var_index == 0 else (-one, c)   # SUB: v - c, or c - v


def _check_weights(op: Operator) -> tuple[bool, str]:
    w = op.inputs[1] if len(op.inputs) > 1 else None
    if w is None:
        return False, f"{op.type} has no weights"
    if not w.is_constant:
        if w.producer is not None and w.producer.type == "DEQUANTIZE":
            return False, f"{op.type} weights are float16/quantized behind DEQUANTIZE (run fold-float16-weights first)"
        return False, f"{op.type} weights are not constant"
    if not plain_float32(w):
        return False, f"{op.type} weights are {w.type_name}{' (quantized)' if is_quantized(w) else ''}, not float32"
    b = op.inputs[2] if len(op.inputs) > 2 else None
    if b is not None and not (b.is_constant and plain_float32(b)):
        return False, f"{op.type} bias is not a float32 constant"
    if w.shape is None or len(w.shape) != (2 if op.type == "FULLY_CONNECTED" else 4):
        return False, f"{op.type} weights have an unexpected shape"
    if op.type == "FULLY_CONNECTED" and op.options is not None and getattr(op.options, "weightsFormat", 0) != 0:
        return False, "FULLY_CONNECTED uses shuffled weights"
    return True, ""


def _out_channels(op: Operator) -> int:
    w = op.inputs[1].shape
    return int(w[3] if op.type == "DEPTHWISE_CONV_2D" else w[0])


def _in_channels(op: Operator) -> int:
    w = op.inputs[1].shape
    if op.type == "FULLY_CONNECTED":
        return int(w[1])
    if op.type == "CONV_2D":
        return int(w[3])
    return int(op.inputs[0].shape[-1])          # depthwise: the input's channels


def _bias(op: Operator) -> np.ndarray:
    b = op.inputs[2] if len(op.inputs) > 2 else None
    if b is None:
        return np.zeros(_out_channels(op), dtype=np.float64)
    return np.asarray(b.data, dtype=np.float64).reshape(-1)


def _reads_padding(op: Operator, x: Tensor) -> bool | None:
    """Whether a conv reads outside its input (SAME with a nonzero border). None: unknown."""
    if op.type == "FULLY_CONNECTED" or op.options.padding == fb.Padding.VALID:
        return False
    if x.shape is None or len(x.shape) != 4 or (
            x.shape_signature is not None and any(d < 0 for d in x.shape_signature[1:3])):
        return None
    w, o = op.inputs[1].shape, op.options
    for n, k, s, d in ((x.shape[1], w[1], o.strideH, o.dilationHFactor),
                       (x.shape[2], w[2], o.strideW, o.dilationWFactor)):
        eff = (k - 1) * max(d, 1) + 1
        out = -(-n // s)
        if (out - 1) * s + eff - n > 0:
            return True
    return False


def _set_weights(sg: Subgraph, op: Operator, w: np.ndarray, b: np.ndarray, x: Tensor | None = None) -> None:
    old_w = op.inputs[1]
    old_b = op.inputs[2] if len(op.inputs) > 2 else None
    new_w = sg.new_constant(old_w.name, w.astype(np.float32), F32)
    new_b = sg.new_constant(old_b.name if old_b is not None else f"{old_w.name}/bias", b.astype(np.float32), F32)
    inputs = list(op.inputs) + [None] * (3 - len(op.inputs))
    inputs[1], inputs[2] = new_w, new_b
    if x is not None:
        inputs[0] = x
    sg.set_inputs(op, inputs)


class FoldAffineAfter(Rule):
    """``OP(x) * s + t`` -> ``OP'(x)``; anchored on the MUL/ADD/SUB."""

    name = "fold-affine"
    roots = AFFINE_OPS

    def match(self, op: Operator, sg: Subgraph) -> Match | None:
        split = _split_affine(op)
        if split is None:
            return None
        vi, v, c = split
        lin = v.producer
        if lin is None or lin.type not in LINEAR_OPS or lin.subgraph is not sg:
            return None
        return Match(op, sg, ops={"affine": op, "linear": lin}, tensors={"v": v, "c": c, "out": op.outputs[0]},
                     data={"vi": vi})

    def check(self, m: Match) -> tuple[bool, str]:
        aff, lin, v, c, out = m.ops["affine"], m.ops["linear"], m.tensors["v"], m.tensors["c"], m.tensors["out"]
        if fused_activation(lin) != NONE:
            return False, f"{lin.type} has a fused activation, so {aff.type} cannot move into it"
        if len(v.uses) != 1 or m.sg.is_pinned(v):
            return False, f"its result '{v.name}' is also read by other ops, so the {aff.type} cannot be folded into it"
        if not (plain_float32(v) and plain_float32(c) and plain_float32(out)):
            return False, "not float32"
        ok, why = _check_weights(lin)
        if not ok:
            return False, why
        if v.shape is None or out.shape != v.shape:
            return False, f"the constant broadcasts the {lin.type} result to another shape"
        n = _out_channels(lin)
        if not v.shape or v.shape[-1] != n:
            return False, f"the {lin.type} output's last dimension is not its {n} channels"
        vec = _channel_vector(c, n, len(v.shape))
        if vec is None:
            return False, f"constant of shape {list(c.shape or [])} is not per output channel"
        scale, shift = _affine(aff.type, m.data["vi"], vec)
        w, b = self._folded(lin, scale, shift)
        if not (np.isfinite(w).all() and np.isfinite(b).all()):
            return False, "folded weights would not be finite"
        m.data["wb"] = (w, b)
        return True, ""

    @staticmethod
    def _folded(lin: Operator, scale: np.ndarray, shift: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        w = np.asarray(lin.inputs[1].data, dtype=np.float64)
        if lin.type == "DEPTHWISE_CONV_2D":
            w = w * scale[None, None, None, :]
        else:
            w = w * scale.reshape((-1,) + (1,) * (w.ndim - 1))
        with np.errstate(all="ignore"):
            return w, _bias(lin) * scale + shift

    def apply(self, m: Match) -> None:
        sg, aff, lin, out = m.sg, m.ops["affine"], m.ops["linear"], m.tensors["out"]
        w, b = m.data["wb"]
        _set_weights(sg, lin, w, b)
        sg.update_options(lin, fusedActivationFunction=fused_activation(aff))
        sg.remove_op(aff, detach=True)                 # out keeps its name: the linear op writes it
        sg.set_output(lin, 0, out)


class FoldAffineBefore(Rule):
    """``OP(x * s + t)`` -> ``OP'(x)``; anchored on the CONV_2D/DEPTHWISE_CONV_2D/FULLY_CONNECTED."""

    name = "fold-affine"
    roots = LINEAR_OPS

    def match(self, op: Operator, sg: Subgraph) -> Match | None:
        if not op.inputs or op.inputs[0] is None or op.options is None:
            return None
        aff = op.inputs[0].producer
        if aff is None or aff.subgraph is not sg:
            return None
        split = _split_affine(aff)
        if split is None:
            return None
        vi, v, c = split
        return Match(op, sg, ops={"affine": aff, "linear": op}, tensors={"v": v, "c": c, "mid": op.inputs[0]},
                     data={"vi": vi})

    def check(self, m: Match) -> tuple[bool, str]:
        aff, lin, v, c, mid = m.ops["affine"], m.ops["linear"], m.tensors["v"], m.tensors["c"], m.tensors["mid"]
        if fused_activation(aff) != NONE:
            return False, f"the {aff.type} before it has a fused activation"
        if len(mid.uses) != 1 or m.sg.is_pinned(mid):
            return False, (f"the {aff.type} before it ('{mid.name}') is also read by other ops, so it cannot be "
                           "folded into the weights")
        if not (plain_float32(v) and plain_float32(c) and plain_float32(mid)):
            return False, "not float32"
        ok, why = _check_weights(lin)
        if not ok:
            return False, why
        if v.shape is None or mid.shape != v.shape or not v.shape:
            return False, f"the {aff.type} constant broadcasts its input to another shape"
        n = _in_channels(lin)
        if v.shape[-1] != n:
            return False, f"the input's last dimension is not the {n} input channels"
        if lin.type == "DEPTHWISE_CONV_2D" and _out_channels(lin) % n:
            return False, "depthwise channel multiplier does not divide the weights"
        vec = _channel_vector(c, n, len(v.shape))
        if vec is None:
            return False, f"constant of shape {list(c.shape or [])} is not per input channel"
        scale, shift = _affine(aff.type, m.data["vi"], vec)
        if shift.any():
            reads = _reads_padding(lin, v)
            if reads is None:
                return False, (f"{aff.type} before {lin.type}: the spatial size is unknown, "
                               "so SAME padding may read zeros")
            if reads:
                return False, (f"{aff.type} before a SAME-padded {lin.type} is not exact: the border reads 0, "
                               "not the shifted value")
        w, b = self._folded(lin, scale, shift, n)
        if not (np.isfinite(w).all() and np.isfinite(b).all()):
            return False, "folded weights would not be finite"
        m.data["wb"] = (w, b)
        return True, ""

    @staticmethod
    def _folded(lin: Operator, scale: np.ndarray, shift: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
        w = np.asarray(lin.inputs[1].data, dtype=np.float64)
        b = _bias(lin)
        with np.errstate(all="ignore"):
            if lin.type == "FULLY_CONNECTED":
                return w * scale[None, :], b + w @ shift
            if lin.type == "CONV_2D":
                return w * scale[None, None, None, :], b + np.einsum("ohwi,i->o", w, shift)
            mult = w.shape[3] // n                   # depthwise: output channel o reads input o // mult
            s_e, t_e = np.repeat(scale, mult), np.repeat(shift, mult)
            return w * s_e[None, None, None, :], b + t_e * w.sum(axis=(0, 1, 2))

    def apply(self, m: Match) -> None:
        sg, aff, lin, v = m.sg, m.ops["affine"], m.ops["linear"], m.tensors["v"]
        w, b = m.data["wb"]
        _set_weights(sg, lin, w, b, x=v)
        sg.remove_op(aff)


RELU = fb.ActivationFunctionType.RELU
TINY = float(np.finfo(np.float32).tiny)


def _power_of_two(c: Tensor) -> tuple[float | None, str]:
    """The value of a one-element float32 constant if it is a finite power of two (else a reason)."""
    if not plain_float32(c) or c.data is None or c.data.size != 1:
        return None, ""
    v = float(c.data.reshape(-1)[0])
    if not np.isfinite(v) or v == 0:
        return None, f"the scale {v:g} is not a finite nonzero number"
    if np.frexp(v)[0] not in (0.5, -0.5):
        return None, f"the scale {v:.8g} is not a power of two, so folding it into the weights would not be exact"
    return v, ""


def _chain_to_fc(t: Tensor, sg: Subgraph) -> tuple[Operator, list[Tensor]] | None:
    """The FULLY_CONNECTED that ``t`` comes from through RESHAPE/TRANSPOSE ops only, and the
    tensors from the FC's output to ``t``; None if ``t`` has another origin."""
    path = [t]
    while (p := t.producer) is not None and p.subgraph is sg and p.inputs and p.inputs[0] is not None:
        if p.type == "FULLY_CONNECTED":
            return p, path[::-1]
        if p.type not in LAYOUT_OPS:                # (they only move values: the scale passes through)
            return None
        t = p.inputs[0]
        path.append(t)
    return None


def _scaled_exactly(a: np.ndarray, c: float) -> bool:
    """Whether ``a * c`` is exact elementwise: every nonzero value, before and after, finite and
    normal (a subnormal would lose bits, and LiteRT/XNNPACK may flush it to zero)."""
    a = np.asarray(a, dtype=np.float64)
    nz = a[a != 0]
    return bool(np.isfinite(nz).all() and (np.abs(nz) >= TINY).all()
                and (np.abs(nz * c) >= TINY).all() and (np.abs(nz * c) <= np.finfo(np.float32).max).all())


def _check_scaled_fc(fc: Operator, path: list[Tensor], sg: Subgraph, c: float) -> tuple[bool, str]:
    """Whether ``fc``'s weights (and bias) can carry the scale ``c`` exactly for this path."""
    act = fused_activation(fc)
    if act != NONE and not (act == RELU and c > 0):
        return False, f"the FULLY_CONNECTED '{path[0].name}' has a fused activation that does not commute with {c:g}"
    for t in path:
        if len(t.uses) != 1 or sg.is_pinned(t):
            return False, f"'{t.name}' (between the FULLY_CONNECTED and the BATCH_MATMUL) is also read elsewhere"
        if not plain_float32(t):
            return False, f"'{t.name}' is not float32"
    ok, why = _check_weights(fc)
    if not ok:
        return False, why
    b = fc.inputs[2] if len(fc.inputs) > 2 else None
    if not all(_scaled_exactly(x.data, c) for x in (fc.inputs[1], b) if x is not None):
        return False, f"scaling the FULLY_CONNECTED weights by {c:g} would make some subnormal or infinite (not exact)"
    return True, ""


class FoldScaleIntoMatmul(Rule):
    """``BATCH_MATMUL(a, b) * 2**k`` -> ``BATCH_MATMUL(a', b)`` with ``a``'s FC weights scaled; anchored on the MUL."""

    name = "fold-affine"
    roots = ("MUL",)

    def __init__(self, float16_weights: frozenset[int] = frozenset()):
        #: uids of the weights that are float16 in the file (unpacked by fold-float16-weights)
        self.float16_weights = float16_weights

    def match(self, op: Operator, sg: Subgraph) -> Match | None:
        split = _split_affine(op)
        if split is None:
            return None
        _, s, c = split
        bmm = s.producer
        if bmm is None or bmm.type != "BATCH_MATMUL" or bmm.subgraph is not sg or len(bmm.inputs) != 2:
            return None
        chains = [(i, *found) for i, t in enumerate(bmm.inputs)
                  if t is not None and (found := _chain_to_fc(t, sg)) is not None]
        if not chains:
            return None
        return Match(op, sg, ops={"mul": op, "bmm": bmm}, tensors={"s": s, "c": c, "out": op.outputs[0]},
                     data={"chains": chains})

    def check(self, m: Match) -> tuple[bool, str]:
        mul, bmm, s, c, out = m.ops["mul"], m.ops["bmm"], m.tensors["s"], m.tensors["c"], m.tensors["out"]
        scale, why = _power_of_two(c)
        if scale is None:
            return False, why
        if fused_activation(mul) != NONE:
            return False, "the MUL has a fused activation"
        if not all(plain_float32(t) for t in (*bmm.inputs, s, out)):
            return False, "the BATCH_MATMUL is not float32"
        if s.shape is None or out.shape != s.shape or len(c.shape or ()) > len(s.shape):
            return False, "the scale broadcasts the BATCH_MATMUL result to another shape"
        if len(s.uses) != 1 or m.sg.is_pinned(s):
            return False, f"the BATCH_MATMUL result '{s.name}' is also read by other ops"
        reasons = []
        for _, fc, path in m.data["chains"]:          # operand 0 first, then operand 1
            ok, why = _check_scaled_fc(fc, path, m.sg, scale)
            if ok and not self._stays_float16(fc, scale):
                ok, why = False, (f"the FULLY_CONNECTED's weights are float16 in the file and some would not be "
                                  f"float16 any more once scaled by {scale:g} (the file would grow)")
            if ok:
                m.data.update(fc=fc, scale=scale)
                return True, ""
            reasons.append(why)
        return False, reasons[0]

    def _stays_float16(self, fc: Operator, c: float) -> bool:
        """restore-float16-weights can store the scaled weights as float16 again (exactly)."""
        for t in fc.inputs[1:3]:
            if t is not None and t.uid in self.float16_weights:
                scaled = (np.asarray(t.data, np.float64) * c).astype(np.float32)
                if not np.array_equal(scaled.astype(np.float16).astype(np.float32), scaled):
                    return False
        return True

    def apply(self, m: Match) -> None:
        sg, fc, c = m.sg, m.data["fc"], m.data["scale"]
        for i in (1, 2):
            t = fc.inputs[i] if len(fc.inputs) > i else None
            if t is None:
                continue
            scaled = (np.asarray(t.data, dtype=np.float64) * c).astype(np.float32)
            if len(t.uses) == 1:                # ours alone: keep the tensor (restore-float16-weights
                sg.set_constant(t, scaled, F32)  # knows it by uid), give it new data
            else:                               # read by other ops too: a new constant for this one
                sg.set_input(fc, i, sg.new_constant(t.name, scaled, F32))
        sg.remove_op(m.ops["mul"], detach=True)        # out keeps its name: the BATCH_MATMUL writes it
        sg.set_output(m.ops["bmm"], 0, m.tensors["out"])


@register
class FoldAffine(Pass):
    __doc__ = __doc__
    name = "fold-affine"
    description = ("Fold constant per-channel MUL/ADD/SUB into conv/FC weights and bias (batch-norm folding), "
                   "and power-of-two attention scales into the query weights")
    tolerance = 1e-5

    def run(self, model: Model, ctx) -> bool:
        float16 = frozenset((ctx.facts.get(FLOAT16_FACT) or {}) if ctx is not None else ())
        return apply_rules(model, [FoldAffineAfter(), FoldAffineBefore(), FoldScaleIntoMatmul(float16)], ctx)
