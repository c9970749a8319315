"""cancel-transposes: layout clean-up, removing TRANSPOSE (and RESHAPE) ops that undo each other.

Rewrites, each only when it lowers the number of TRANSPOSE (or RESHAPE) ops:

* ``TRANSPOSE(TRANSPOSE(x, p1), p2)``: with ``p1[p2]`` the identity, readers of the result read
  ``x``; otherwise the two become one ``TRANSPOSE(x, p1[p2])`` (when the first has no other
  reader).
* sinking through elementwise ops: ``T2(E_k(...E_1(T1(x))))`` where every ``E_i`` is elementwise
  (unary such as RELU/TANH/LOGISTIC/ABS/NEG/..., or binary ADD/SUB/MUL/DIV/MAXIMUM/MINIMUM/PRELU/...
  with a constant operand) and each result has a single reader: the ``E_i`` run on ``x`` directly
  (constants are transposed, or reshaped, to the new layout) and T1 disappears; T2 disappears too
  when T1 and T2 cancel, else it becomes the combined permutation. ``T`` is a TRANSPOSE pair, or a
  RESHAPE pair whose second reshape restores the first one's input shape.
* fan-in: ``E(TRANSPOSE(a, p), TRANSPOSE(b, p))`` -> ``TRANSPOSE(E(a, b), p)`` (two -> one).
* ``RESHAPE(RESHAPE(x))`` -> ``RESHAPE(x)``, or ``x`` itself when the shapes match.
* a TRANSPOSE that only moves size-1 dimensions is a RESHAPE (no data moves), and becomes one.

Safe (bit-identical): elementwise ops compute each element independently of the layout, and a
transposed/reshaped constant pairs every element with the same value as before. Needs constant
permutations, static shapes for the reshape rewrites, per-tensor quantization only, and the
intermediate results must not be graph outputs.
"""
from __future__ import annotations

import copy

import numpy as np

from tflc.ir.core import Model, Operator, Subgraph, Tensor
from tflc.passes_api import Pass, register
from tflc.rewrite import Match, Rule, apply_rules, builtin_opcode
from tflc.schema import TYPE_CODES

I32 = TYPE_CODES["INT32"]

UNARY = frozenset({
    "RELU", "RELU6", "RELU_N1_TO_1", "RELU_0_TO_1", "TANH", "LOGISTIC", "ABS", "NEG", "EXP", "LOG", "SQRT",
    "RSQRT", "SQUARE", "SIN", "COS", "CEIL", "FLOOR", "ROUND", "SIGN", "HARD_SWISH", "ELU", "GELU",
    "LEAKY_RELU", "LOGICAL_NOT", "CAST", "QUANTIZE", "DEQUANTIZE",
})
BINARY = frozenset({
    "ADD", "SUB", "MUL", "DIV", "MAXIMUM", "MINIMUM", "SQUARED_DIFFERENCE", "POW", "FLOOR_DIV", "FLOOR_MOD",
    "PRELU",
})


def _pinned(sg: Subgraph, t: Tensor) -> bool:
    if sg.is_graph_output(t):
        return True
    model = sg.model
    return model is not None and any(
        sd.subgraph is sg and any(x is t for _, x in (*sd.inputs, *sd.outputs)) for sd in model.signature_defs)


def _per_tensor(t: Tensor) -> bool:
    q = t.quantization
    return q is None or q.scale is None or len(q.scale) <= 1


def _qparams(t: Tensor):
    q = t.quantization
    if q is None or not q.scale:
        return None
    return tuple(q.scale), tuple(q.zeroPoint if q.zeroPoint is not None else ())


def _perm(op: Operator) -> tuple[int, ...] | None:
    """The constant permutation of a TRANSPOSE, or None."""
    if op.type != "TRANSPOSE" or len(op.inputs) != 2 or op.inputs[0] is None or op.inputs[1] is None:
        return None
    p = op.inputs[1]
    if not p.is_constant:
        return None
    perm = tuple(int(v) for v in np.asarray(p.data).reshape(-1))
    rank = len(perm)
    if sorted(perm) != list(range(rank)):
        return None
    return perm


def _static(t: Tensor) -> bool:
    return t.shape is not None and (t.shape_signature is None or all(d >= 0 for d in t.shape_signature))


def _reshape_ok(op: Operator) -> bool:
    return (op.type == "RESHAPE" and op.inputs and op.inputs[0] is not None and len(op.outputs) == 1
            and op.outputs[0] is not None and _static(op.inputs[0]) and _static(op.outputs[0]))


def _permute_shape(shape, inv: tuple[int, ...]):
    return None if shape is None else tuple(shape[i] for i in inv)


def _inverse(perm: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(int(i) for i in np.argsort(perm))


def _sole_use(sg: Subgraph, t: Tensor) -> tuple[Operator, int] | None:
    uses = t.uses
    if len(uses) != 1 or _pinned(sg, t):
        return None
    return uses[0]


def _elementwise_step(op: Operator, idx: int, cur: Tensor) -> int | None:
    """If ``op`` is elementwise in its input ``idx`` (= ``cur``) with any other input constant and
    not enlarging ``cur``, the index of that constant (-1 when none); else None."""
    if len(op.outputs) != 1 or op.outputs[0] is None or op.outputs[0].shape != cur.shape:
        return None
    if not _per_tensor(op.outputs[0]):
        return None
    if op.type in UNARY:
        return -1 if len(op.inputs) == 1 and _per_tensor(cur) else None
    if op.type in BINARY and len(op.inputs) == 2:
        j = 1 - idx
        c = op.inputs[j]
        if op.type == "PRELU" and idx != 0:
            return None
        if c is None or not c.is_constant or c.shape is None or len(c.shape) > len(cur.shape) or not _per_tensor(c):
            return None
        return j
    return None


class _Layout:
    """A layout change (TRANSPOSE with constant perm, or static RESHAPE) and how to undo it."""

    def __init__(self, op: Operator):
        self.op = op
        self.kind = op.type
        self.perm = _perm(op) if op.type == "TRANSPOSE" else None

    @property
    def valid(self) -> bool:
        return self.perm is not None if self.kind == "TRANSPOSE" else _reshape_ok(self.op)

    def to_input_layout(self, arr: np.ndarray, out_shape: tuple[int, ...],
                        in_shape: tuple[int, ...]) -> np.ndarray | None:
        """A constant that broadcast against the op's *output* layout, re-laid for its input."""
        if arr.size == 1:
            return arr                           # a scalar-like constant fits any layout
        if self.kind == "TRANSPOSE":
            full = arr.reshape((1,) * (len(out_shape) - arr.ndim) + arr.shape)
            return np.transpose(full, _inverse(self.perm))
        if tuple(arr.shape) == tuple(out_shape):
            return arr.reshape(in_shape)         # a full-size constant: same elements, input shape
        lead = arr.shape[:-1]
        if arr.ndim and all(d == 1 for d in lead) and out_shape and in_shape and out_shape[-1] == in_shape[-1]:
            return arr.reshape(arr.shape[-1:])   # per last axis, which the reshape keeps
        return None


class CancelPair(Rule):
    """TRANSPOSE(TRANSPOSE(x)) -> x or one TRANSPOSE; RESHAPE(RESHAPE(x)) -> x or one RESHAPE."""

    name = "cancel-transposes"
    roots = ("TRANSPOSE", "RESHAPE")

    def match(self, op: Operator, sg: Subgraph) -> Match | None:
        if not op.inputs or op.inputs[0] is None or len(op.outputs) != 1:
            return None
        first = op.inputs[0].producer
        if first is None or first.type != op.type or first.subgraph is not sg:
            return None
        if op.type == "TRANSPOSE":
            p1, p2 = _perm(first), _perm(op)
            if p1 is None or p2 is None or len(p1) != len(p2):
                return None
            q = tuple(p1[i] for i in p2)
            return Match(op, sg, ops={"first": first, "second": op},
                         data={"q": q, "identity": q == tuple(range(len(q)))})
        if not (_reshape_ok(op) and _reshape_ok(first)):
            return None
        x, y = first.inputs[0], op.outputs[0]
        return Match(op, sg, ops={"first": first, "second": op}, data={"identity": tuple(x.shape) == tuple(y.shape)})

    def check(self, m: Match) -> tuple[bool, str]:
        first, second = m.ops["first"], m.ops["second"]
        y = second.outputs[0]
        if m.data["identity"]:
            x = first.inputs[0]
            if _pinned(m.sg, y) and (x.producer is None or _pinned(m.sg, x)):
                return False, (f"the {second.type} pair cancels but its result is a graph output and its input "
                               "is a graph input or output: both names must stay")
            if x.dtype != y.dtype:
                return False, "types differ"
            return True, ""
        if len(first.outputs[0].uses) != 1 or _pinned(m.sg, first.outputs[0]):
            return False, f"merging the two {second.type} ops would not remove one: the first has other readers"
        return True, ""

    def apply(self, m: Match) -> None:
        sg, first, second = m.sg, m.ops["first"], m.ops["second"]
        x, mid, y = first.inputs[0], first.outputs[0], second.outputs[0]
        if m.data["identity"] and _pinned(sg, y):
            # keep the graph output tensor: x's producer now writes it, x's readers read it
            sg.remove_op(second)
            producer = x.producer
            sg.replace_all_uses(x, y)
            sg.set_output(producer, producer.outputs.index(x), y)
        elif m.data["identity"]:
            sg.remove_op(second)
            sg.replace_all_uses(y, x)
        elif second.type == "TRANSPOSE":
            q = sg.new_constant(f"{y.name}/perm", np.asarray(m.data["q"], dtype=np.int32), I32)
            sg.set_inputs(second, [x, q])
        else:
            sg.set_input(second, 0, x)
        if not mid.uses and not _pinned(sg, mid):
            sg.remove_op(first)


class SinkThroughElementwise(Rule):
    """L2(E_k(...E_1(L1(x)))) with elementwise E_i: run the E_i on x, drop L1 (and L2 if they cancel)."""

    name = "cancel-transposes"
    roots = ("TRANSPOSE", "RESHAPE")

    def match(self, op: Operator, sg: Subgraph) -> Match | None:
        first = _Layout(op)
        if not first.valid or op.outputs[0] is None:
            return None
        cur, chain = op.outputs[0], []
        while True:
            use = _sole_use(sg, cur)
            if use is None:
                return None
            nxt, idx = use
            if nxt.type == op.type and idx == 0:
                break
            j = _elementwise_step(nxt, idx, cur)
            if j is None:
                return None
            chain.append((nxt, idx, j))
            cur = nxt.outputs[0]
        if not chain:
            return None                          # a direct pair: CancelPair's job
        second = _Layout(nxt)
        if not second.valid:
            return None
        return Match(op, sg, ops={"first": op, "second": nxt}, data={"chain": chain, "L1": first, "L2": second})

    def check(self, m: Match) -> tuple[bool, str]:
        first, second, L1 = m.ops["first"], m.ops["second"], m.data["L1"]
        x = first.inputs[0]
        if x.shape is None or first.outputs[0].shape is None:
            return False, "unknown shapes"
        if first.type == "TRANSPOSE":
            if len(L1.perm) != len(m.data["L2"].perm):
                return False, "ranks differ"
            q = tuple(L1.perm[i] for i in m.data["L2"].perm)
            m.data["identity"] = q == tuple(range(len(q)))
            m.data["q"] = q
        else:
            m.data["identity"] = tuple(second.outputs[0].shape) == tuple(x.shape)
            if not m.data["identity"]:
                return False, "the second RESHAPE does not restore the first one's input shape"
        consts = {}
        for e, _, j in m.data["chain"]:
            if j < 0:
                continue
            c = e.inputs[j]
            arr = np.asarray(c.data)
            new = L1.to_input_layout(arr, tuple(first.outputs[0].shape), tuple(x.shape))
            if new is None:
                return False, f"the constant of {e.type} cannot be re-laid out through the RESHAPE"
            if new is not arr:
                consts[(id(e), j)] = new
        m.data["consts"] = consts
        return True, ""

    def apply(self, m: Match) -> None:
        sg, first, second, L1 = m.sg, m.ops["first"], m.ops["second"], m.data["L1"]
        x, chain = first.inputs[0], m.data["chain"]
        in_shape, in_sig = tuple(x.shape), x.shape_signature
        inv = _inverse(L1.perm) if L1.perm is not None else None
        e0, idx0, _ = chain[0]
        sg.set_input(e0, idx0, x)
        for e, _, j in chain:
            if (id(e), j) in m.data["consts"]:
                c = e.inputs[j]
                arr = np.ascontiguousarray(m.data["consts"][(id(e), j)])
                sg.set_input(e, j, sg.new_constant(c.name, arr, c.dtype, quantization=copy.deepcopy(c.quantization)))
            out = e.outputs[0]
            if inv is not None:
                out.shape = _permute_shape(out.shape, inv)
                out.shape_signature = _permute_shape(out.shape_signature, inv)
            else:
                out.shape, out.shape_signature = in_shape, in_sig
        last = chain[-1][0]
        if m.data["identity"]:
            y = second.outputs[0]
            sg.remove_op(second)
            sg.set_output(last, 0, y)
        elif first.type == "TRANSPOSE":
            q = sg.new_constant(f"{second.outputs[0].name}/perm", np.asarray(m.data["q"], dtype=np.int32), I32)
            sg.set_input(second, 1, q)
        sg.remove_op(first)


class MergeFanIn(Rule):
    """E(TRANSPOSE(a, p), TRANSPOSE(b, p)) -> TRANSPOSE(E(a, b), p)."""

    name = "cancel-transposes"
    roots = tuple(BINARY - {"PRELU"})

    def match(self, op: Operator, sg: Subgraph) -> Match | None:
        if len(op.inputs) != 2 or len(op.outputs) != 1 or op.outputs[0] is None:
            return None
        ts = [t.producer if t is not None else None for t in op.inputs]
        if any(p is None or p.type != "TRANSPOSE" or p.subgraph is not sg for p in ts):
            return None
        perms = [_perm(p) for p in ts]
        if perms[0] is None or perms[0] != perms[1]:
            return None
        return Match(op, sg, ops={"e": op, "ta": ts[0], "tb": ts[1]}, data={"perm": perms[0]})

    def check(self, m: Match) -> tuple[bool, str]:
        e, ta, tb = m.ops["e"], m.ops["ta"], m.ops["tb"]
        for t in {id(ta): ta, id(tb): tb}.values():
            out = t.outputs[0]
            if _pinned(m.sg, out) or any(o is not e for o, _ in out.uses):
                return False, "a TRANSPOSE input has other readers"
        a, b, y = ta.inputs[0], tb.inputs[0], e.outputs[0]
        if a.shape is None or b.shape is None or tuple(a.shape) != tuple(b.shape) or y.shape is None:
            return False, "the transposed inputs differ in shape (broadcasting)"
        if tuple(ta.outputs[0].shape or ()) != tuple(y.shape):
            return False, "the op changes the shape"
        if not (_per_tensor(a) and _per_tensor(b) and _per_tensor(y)):
            return False, "per-channel quantization"
        return True, ""

    def apply(self, m: Match) -> None:
        sg, e, ta, tb = m.sg, m.ops["e"], m.ops["ta"], m.ops["tb"]
        a, b, y = ta.inputs[0], tb.inputs[0], e.outputs[0]
        inv = _inverse(m.data["perm"])
        pre = sg.new_tensor(f"{y.name}/untransposed", y.dtype, _permute_shape(y.shape, inv),
                            shape_signature=_permute_shape(y.shape_signature, inv), quantization=y.quantization)
        sg.set_inputs(e, [a, b])
        sg.set_output(e, 0, pre)
        perm = ta.inputs[1]
        sg.add_op(Operator(ta.opcode, [pre, perm], [y], options=ta.options, options_type=ta.options_type), after=e)
        for t in {id(ta): ta, id(tb): tb}.values():
            sg.remove_op(t)


class TransposeAsReshape(Rule):
    """A TRANSPOSE that keeps the order of the non-1 dimensions moves no data: a RESHAPE."""

    name = "cancel-transposes"
    roots = ("TRANSPOSE",)

    def match(self, op: Operator, sg: Subgraph) -> Match | None:
        perm = _perm(op)
        if perm is None or op.outputs[0] is None:
            return None
        x, y = op.inputs[0], op.outputs[0]
        if not (_static(x) and _static(y)) or len(x.shape) != len(perm):
            return None
        kept = [i for i in perm if x.shape[i] != 1]
        if kept != sorted(kept):
            return None
        return Match(op, sg, data={"identity": perm == tuple(range(len(perm)))})

    def check(self, m: Match) -> tuple[bool, str]:
        op = m.root
        x, y = op.inputs[0], op.outputs[0]
        if x.dtype != y.dtype or not _per_tensor(x) or _qparams(x) != _qparams(y):
            return False, "types or quantization differ"
        return True, ""

    def apply(self, m: Match) -> None:
        sg, op = m.sg, m.root
        x, y = op.inputs[0], op.outputs[0]
        index = op.index
        if m.data["identity"] and not _pinned(sg, y):
            sg.remove_op(op)
            sg.replace_all_uses(y, x)
            return
        shape = sg.new_constant(f"{y.name}/shape", np.asarray(y.shape, dtype=np.int32), I32)
        sg.remove_op(op)
        sg.add_op(Operator(builtin_opcode("RESHAPE"), [x, shape], [y]), index=index)


@register
class CancelTransposes(Pass):
    __doc__ = __doc__
    name = "cancel-transposes"
    description = "Cancel TRANSPOSE/RESHAPE pairs, pushing them through elementwise ops to meet"

    def run(self, model: Model, ctx) -> bool:
        changed = apply_rules(model, [CancelPair(), SinkThroughElementwise(), MergeFanIn()], ctx)
        # only once nothing cancels any more: a size-1 TRANSPOSE becomes a (cheaper) RESHAPE
        changed |= apply_rules(model, [TransposeAsReshape(), CancelPair()], ctx)
        return changed
