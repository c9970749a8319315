"""simplify-layer-norm: rewrite a layer normalization that a converter spelled out op by op
into its shortest float form -- centre once, then scale.

Converters emit ``LayerNormalization`` as ``y = x * S + T``, the algebra of
``tf.nn.batch_normalization``:

    m = MEAN(x', axes)                       x' is x, or a TRANSPOSE of x that keeps the order of
    v = MEAN(SQUARED_DIFFERENCE(x', m))      the statistics (tf_keras runs LayerNormalization as
    r = RSQRT(ADD(v, eps))                   FusedBatchNormV3 over a [features, rows] layout)
    S = r  or  MUL(r, gamma)
    T = MUL(NEG(m), S) | NEG(MUL(m, S)) | SUB(c, MUL(m, S)) | ADD(MUL(NEG(m), S), beta)
    y = ADD(MUL(x, S), T)  or  SUB(MUL(x, S), MUL(m, S))

This pass writes it as

    m = MEAN(x, axes); d = SUB(x, m); v = MEAN(MUL(d, d), axes); r = RSQRT(ADD(v, eps))
    y = MUL(d, r) [MUL gamma, unless all ones] [ADD beta (or c), unless all zeros]

Seven ops instead of ten, five passes over the activation instead of six or seven, and no
layout TRANSPOSE. Keras 3 and tf_keras encoders both carry one per LayerNormalization.

Not bit-identical: ``x*S - m*S`` and ``(x - m)*S`` round differently, and a MEAN over the last
axis instead of over a transposed layout sums in another order. Outputs differ from the
original's by float32 rounding: ``tolerance = 1e-5`` (relative to the output's largest
magnitude), checked in LiteRT like every lossy pass. The new form is the better-conditioned one:
where a row's mean is large against its spread, the original cancels two large products and
is itself off by more than 1e-5 -- the rewrite moves such outputs *towards* the exact value
(measured: 30-40% less error on average over such rows, tests/passes/test_simplify_layer_norm.py),
and the verification on the user's inputs then reports the difference.

Only when: float32 throughout, no quantization, no fused activations, both MEANs keep their
dimensions and reduce the same axes of the same tensor, ``eps`` is a scalar constant, gamma and
beta are constants that broadcast to x's shape, and every intermediate tensor is read only inside
the pattern (not a graph output). A TRANSPOSE in front of the statistics must keep the order of
the non-reduced dimensions, so that the statistics have the same layout either way.
"""
from __future__ import annotations

import numpy as np

from tflc.ir.constants import const_ints, permutation
from tflc.ir.core import Model, Operator, Subgraph, Tensor
from tflc.passes_api import Pass, register
from tflc.rewrite import Match, Rule, apply_rules, builtin_opcode, fused_activation, plain_float32
from tflc.schema import TYPE_CODES, fb

F32 = TYPE_CODES["FLOAT32"]
NONE = fb.ActivationFunctionType.NONE


def _prod(t: Tensor | None, *types: str) -> Operator | None:
    op = t.producer if t is not None else None
    return op if op is not None and op.type in types else None


def _const(t: Tensor | None) -> np.ndarray | None:
    return t.data if t is not None and t.is_constant else None


def _other(op: Operator, t: Tensor) -> Tensor | None:
    """The other input of a binary op that reads ``t`` (None if it reads it twice or not at all)."""
    a, b = op.inputs[:2]
    if a is t and b is not t:
        return b
    if b is t and a is not t:
        return a
    return None


def _only_reader(t: Tensor) -> Operator | None:
    """The op that reads ``t``, if exactly one does (graph outputs are judged in ``check``)."""
    return t.uses[0][0] if len(t.uses) == 1 else None


def _axes(op: Operator, rank: int) -> tuple[int, ...] | None:
    a = const_ints(op.inputs[1]) if len(op.inputs) > 1 else None
    return None if a is None else tuple(sorted({v % rank for v in a}))


def _keeps_dims(op: Operator) -> bool:
    return op.options is not None and bool(getattr(op.options, "keepDims", False))


def _broadcast(*shapes) -> tuple[int, ...] | None:
    try:
        return tuple(int(d) for d in np.broadcast_shapes(*(tuple(s) for s in shapes)))
    except ValueError:
        return None


#: the statistics of a layer norm were found, but not a form of ``y = x*S + T`` this pass knows
UNKNOWN_FORM = ("its statistics are a layer norm's, but not applied in a form this pass knows (x*S + T on the "
                "statistics' own input); in -O1/-O2 it runs after cancel-transposes, and dynamic shapes may "
                "need --input-shape at -O2")


class LayerNorm(Rule):
    """Anchored on the RSQRT: one per normalization."""
    name = "simplify-layer-norm"
    roots = ("RSQRT",)

    def match(self, op: Operator, sg: Subgraph) -> Match | None:
        add_eps = _prod(op.inputs[0], "ADD")
        if add_eps is None:
            return None
        v = next((t for t in add_eps.inputs if t is not None and not t.is_constant), None)
        eps = next((t for t in add_eps.inputs if t is not None and t.is_constant), None)
        mean_v = _prod(v, "MEAN")
        sqd = _prod(mean_v.inputs[0], "SQUARED_DIFFERENCE") if mean_v is not None else None
        if sqd is None or eps is None:
            return None
        # SQUARED_DIFFERENCE(x', m), either order, with m = MEAN(x')
        for xs, m in (sqd.inputs[:2], sqd.inputs[1::-1]):
            mean_m = _prod(m, "MEAN")
            if mean_m is not None and mean_m.inputs[0] is xs:
                break
        else:
            return None
        tr = _prod(xs, "TRANSPOSE")
        x = tr.inputs[0] if tr is not None else xs
        ops = {"rsqrt": op, "add_eps": add_eps, "mean_v": mean_v, "sqd": sqd, "mean_m": mean_m}
        if tr is not None:
            ops["transpose"] = tr
        found = self._affine(op.outputs[0], m, x)
        if found is None:                         # a layer norm's statistics, but another spelling
            return Match(op, sg, data={"why": UNKNOWN_FORM})
        more, consts = found
        ops.update(more)
        return Match(op, sg, ops=ops, tensors={"x": x, "xs": xs, "m": m, "eps": eps, **consts})

    @staticmethod
    def _affine(r: Tensor, m: Tensor, x: Tensor) -> tuple[dict, dict] | None:
        """Find ``y = x*S + T`` downstream of ``r``: (ops, constants) or None."""
        ops: dict[str, Operator] = {}
        consts: dict[str, Tensor] = {}
        s = r
        readers = [o for o, _ in r.uses]
        if len(readers) == 1 and readers[0].type == "MUL":
            g = _other(readers[0], r)
            if g is not None and g.is_constant:
                ops["mul_gamma"], consts["gamma"], s = readers[0], g, readers[0].outputs[0]
        muls = [o for o, _ in s.uses]
        if len(muls) != 2 or any(o.type != "MUL" for o in muls):
            return None
        mul_x = next((o for o in muls if _other(o, s) is x), None)
        mul_m = next((o for o in muls if o is not mul_x), None)
        if mul_x is None or mul_m is None:
            return None
        mm = _other(mul_m, s)
        neg = _prod(mm, "NEG")
        if neg is not None and neg.inputs[0] is m:
            ops["neg"] = neg
        elif mm is not m:
            return None
        ops.update(mul_x=mul_x, mul_m=mul_m)
        negated = "neg" in ops                      # mul_m computes -m*S (else m*S)
        t = mul_m.outputs[0]
        if (nxt := _only_reader(t)) is None:
            return None
        if not negated and nxt.type == "NEG":       # NEG(MUL(m, S))
            ops["neg_t"], negated = nxt, True
            t = nxt.outputs[0]
            if (nxt := _only_reader(t)) is None:
                return None
        if not negated and nxt.type == "SUB" and nxt.inputs[1] is t and nxt.inputs[0] is not None:
            if nxt.inputs[0] is mul_x.outputs[0]:   # y = x*S - m*S
                ops["out"] = nxt
                return ops, consts
            if not nxt.inputs[0].is_constant:       # c - m*S, c constant
                return None
            ops["sub_c"], consts["beta"], negated = nxt, nxt.inputs[0], True
            t = nxt.outputs[0]
            if (nxt := _only_reader(t)) is None:
                return None
        if not negated:
            return None
        if nxt.type == "ADD" and "beta" not in consts:
            b = _other(nxt, t)
            if b is not None and b.is_constant:      # -m*S + beta
                ops["add_beta"], consts["beta"] = nxt, b
                t = nxt.outputs[0]
                if (nxt := _only_reader(t)) is None:
                    return None
        if nxt.type != "ADD" or _other(nxt, t) is not mul_x.outputs[0]:
            return None
        ops["out"] = nxt
        return ops, consts

    def check(self, m: Match) -> tuple[bool, str]:
        if "why" in m.data:
            return False, m.data["why"]
        sg, ops, x, xs = m.sg, m.ops, m.tensors["x"], m.tensors["xs"]
        tensors = [o.outputs[0] for o in ops.values()] + [x]
        if any(len(o.outputs) != 1 for o in ops.values()) or not all(plain_float32(t) for t in tensors):
            return False, ""
        if x.shape is None or any(t.shape is None for t in tensors):
            return False, ""
        if any(fused_activation(o) != NONE for o in ops.values()):
            return False, "an op of the layer normalization has a fused activation"
        mean_m, mean_v = ops["mean_m"], ops["mean_v"]
        rank = len(xs.shape)
        axes = _axes(mean_m, rank)
        if axes is None or axes != _axes(mean_v, rank) or not (_keeps_dims(mean_m) and _keeps_dims(mean_v)):
            return False, "the two MEANs do not both keep dimensions over the same constant axes"
        stats = tuple(1 if i in axes else d for i, d in enumerate(xs.shape))
        if "transpose" in ops:
            perm = permutation(ops["transpose"].inputs[1])
            if perm is None or len(perm) != rank:
                return False, ""
            # the dimensions that stay (not reduced, not 1) must keep their order through the perm
            kept = [perm[i] for i in range(rank) if i not in axes and xs.shape[i] != 1]
            if kept != sorted(kept):
                return False, "the TRANSPOSE in front of the statistics reorders the rows"
            axes = tuple(sorted(perm[a] for a in axes))
        x_stats = tuple(1 if i in axes else d for i, d in enumerate(x.shape))
        if stats != x_stats:
            return False, "the statistics' layout differs from the input's"
        eps = _const(m.tensors["eps"])
        if eps is None or eps.size != 1 or not np.isfinite(eps).all():
            return False, "epsilon is not a scalar constant"
        for key in ("gamma", "beta"):
            c = m.tensors.get(key)
            if c is not None and (not plain_float32(c) or _broadcast(c.shape, x.shape) != tuple(x.shape)):
                return False, f"{key} does not broadcast to the input's shape"
        if tuple(ops["out"].outputs[0].shape) != tuple(x.shape):
            return False, "the normalization changes the tensor's shape"
        inside = {id(o) for o in ops.values()}
        for o in ops.values():
            if o is ops["out"] or (o is ops.get("transpose")):
                continue
            t = o.outputs[0]
            if sg.is_pinned(t) or any(id(u) not in inside for u, _ in t.uses):
                return False, f"an intermediate of the layer normalization ('{t.name}') is also read elsewhere"
        m.data["axes"] = axes
        return True, ""

    def apply(self, m: Match) -> None:
        sg, ops, x = m.sg, m.ops, m.tensors["x"]
        axes = m.data["axes"]
        y = ops["out"].outputs[0]
        first = min(ops.values(), key=lambda o: o.index)
        stats_shape = [1 if i in axes else d for i, d in enumerate(x.shape)]
        opcode = {o.type: o.opcode for o in ops.values()}
        base = y.name

        # dynamic dimensions stay dynamic: the new tensors carry x's shape signature
        sig = x.shape_signature
        stats_sig = [1 if i in axes else d for i, d in enumerate(sig)] if sig is not None else None

        def emit(typ: str, ins: list, shape, options=None, options_type=0) -> Tensor:
            signature = None if sig is None else (stats_sig if list(shape) == stats_shape else sig)
            t = sg.new_tensor(f"{base}/{typ.lower()}", F32, shape, shape_signature=signature)
            code = opcode.get(typ) or builtin_opcode(typ)
            sg.add_op(Operator(code, ins, [t], options=options, options_type=options_type), before=first)
            return t

        def binary(typ: str, a: Tensor, b: Tensor, shape) -> Tensor:
            cls = {"ADD": fb.AddOptionsT, "SUB": fb.SubOptionsT, "MUL": fb.MulOptionsT}[typ]
            kind = {"ADD": fb.BuiltinOptions.AddOptions, "SUB": fb.BuiltinOptions.SubOptions,
                    "MUL": fb.BuiltinOptions.MulOptions}[typ]
            return emit(typ, [a, b], shape, cls(), kind)

        def mean(t: Tensor) -> Tensor:
            o = fb.ReducerOptionsT()
            o.keepDims = True
            ax = sg.new_constant(f"{base}/axes", np.asarray(axes, np.int32))
            return emit("MEAN", [t, ax], stats_shape, o, fb.BuiltinOptions.ReducerOptions)

        gamma, beta = m.tensors.get("gamma"), m.tensors.get("beta")
        old = sorted(ops.values(), key=lambda o: o.index, reverse=True)
        shared_transpose = "transpose" in ops and any(u not in ops.values() for u, _ in
                                                      ops["transpose"].outputs[0].uses)
        mu = mean(x)
        d = binary("SUB", x, mu, x.shape)
        var = mean(binary("MUL", d, d, x.shape))
        r = emit("RSQRT", [binary("ADD", var, m.tensors["eps"], stats_shape)], stats_shape)
        tail = binary("MUL", d, r, x.shape)
        if gamma is not None and not np.all(gamma.data == 1):      # a gamma of ones is dropped
            tail = binary("MUL", tail, gamma, x.shape)
        if beta is not None and not np.all(beta.data == 0):       # a beta (or offset) of zeros too
            tail = binary("ADD", tail, beta, x.shape)
        for o in old:
            if o is ops.get("transpose") and shared_transpose:
                continue
            sg.remove_op(o, detach=o is ops["out"])   # y stays: the new tail writes it
        sg.set_output(tail.producer, 0, y)     # the normalization's result keeps its tensor (and name)


@register
class SimplifyLayerNorm(Pass):
    __doc__ = __doc__
    name = "simplify-layer-norm"
    description = "Rewrite op-by-op layer normalizations as mean, centre, variance, scale (7 ops, no TRANSPOSE)"
    tolerance = 1e-5

    def run(self, model: Model, ctx) -> bool:
        return apply_rules(model, [LayerNorm()], ctx)
