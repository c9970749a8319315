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
* layout regions through reductions: ``L(x)`` (TRANSPOSEs and RESHAPEs that only add/remove
  size-1 dimensions) read by a DAG of elementwise ops and reductions (MEAN, SUM, REDUCE_MAX/MIN/
  PROD, float) whose full-size results all leave through the inverse layout change (this is how
  the converter lowers a Keras 2 LayerNormalization: RESHAPE, TRANSPOSE, mean/variance/scale,
  TRANSPOSE back, RESHAPE back). The elementwise ops then run on ``x`` itself, the reduced
  statistics get ``x``'s rank (``[32]`` becomes ``[1, 32, 1]``, constants are re-laid the same
  way, keep_dims is set), and the exits disappear. A reduction keeps reading its data in the
  *same memory order* as before (LiteRT's and XNNPACK's kernels sum a strided and a contiguous
  axis in different orders, so moving a reduction onto ``x`` would change its rounding): the
  ops that feed a reduction read one TRANSPOSE of ``x`` whose dimensions are laid out so that the
  kept axes sit where ``x`` has them (``[1, 32, 64]`` -> ``[64, 32, 1]`` for a reduction over the
  64-axis); the reduction's problem as the kernels see it (adjacent reduced/kept dims merged:
  with size-1 dims dropped for LiteRT's kernels, kept for XNNPACK's) and the kernel path it
  selects (MEAN's last-axis and 4-D H/W special cases, reduce-all) must be unchanged, else the
  region is left alone with a note. Done only when it lowers the op count (or keeps it and
  lowers the number of TRANSPOSEs). Not handled: a layout change that reorders the kept axes,
  reduced axes adjacent in memory, and inputs whose rank has no free slot for the reduced axis
  (a rank-2 ``[B, C]`` with B > 1).
* ``TRANSPOSE(BATCH_MATMUL(TRANSPOSE(a), TRANSPOSE(b)))`` swapping the last two axes ->
  ``BATCH_MATMUL(TRANSPOSE'(b), TRANSPOSE'(a))`` (``(AB)^T = B^T A^T``; the operand transposes
  absorb the ^T): one op fewer per Keras 2 MultiHeadAttention (its attention scores). Every
  output element is the same dot product (products commute exactly; the sum runs over the same
  depth in the same order); only done for square outputs (M == N >= 2), where the swapped
  product has exactly the original problem shape, so both runtimes pick the same kernels.
* once nothing else applies, remove-identity's ``reshape-into-fully-connected`` and
  ``fully-connected-keep-dims`` rules, so that a RESHAPE -> FULLY_CONNECTED -> RESHAPE left over
  by the rewrites above becomes one FULLY_CONNECTED (keep_num_dims).

All rules run to a fixed point (the pass repeats its rule groups until nothing changes).

Safe (bit-identical): elementwise ops compute each element independently of the layout, and a
transposed/reshaped constant pairs every element with the same value as before; reductions keep
their memory order (above). Needs constant permutations, static shapes for the reshape and
region rewrites, per-tensor quantization only, and the intermediate results must not be graph
outputs.
"""
from __future__ import annotations

import copy
import itertools

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


# ----------------------------------------------------------------------------- layout regions

REDUCTIONS = frozenset({"MEAN", "SUM", "REDUCE_MAX", "REDUCE_MIN", "REDUCE_PROD"})
_REDUCE_TYPES = frozenset({TYPE_CODES["FLOAT32"], TYPE_CODES["FLOAT16"]})
_MAX_REGION = 256

Labels = tuple  # per axis of a tensor: the label (an axis of x) it holds, or None for a size-1 axis


def _unit_reshape(op: Operator) -> bool:
    """A static RESHAPE that only adds or removes size-1 dimensions (no element moves)."""
    if not _reshape_ok(op):
        return False
    a, b = op.inputs[0].shape, op.outputs[0].shape
    return [d for d in a if d != 1] == [d for d in b if d != 1]


def _layout_op(op: Operator) -> bool:
    if op.type == "TRANSPOSE":
        return (_perm(op) is not None and op.outputs[0] is not None and _static(op.inputs[0])
                and _static(op.outputs[0]) and len(op.inputs[0].shape) == len(_perm(op)))
    return op.type == "RESHAPE" and _unit_reshape(op)


def _through_layout(op: Operator, labels: Labels) -> Labels:
    """The labels of a layout op's output, given its input's."""
    if op.type == "TRANSPOSE":
        return tuple(labels[i] for i in _perm(op))
    seq = iter([lab for lab, d in zip(labels, op.inputs[0].shape) if d != 1])
    return tuple(next(seq) if d != 1 else None for d in op.outputs[0].shape)


def _order(labels: Labels) -> list:
    return [lab for lab in labels if lab is not None]


def _const_ints(t: Tensor | None) -> list[int] | None:
    if t is None or not t.is_constant or t.np_dtype is None or t.np_dtype.kind not in "iu":
        return None
    return [int(v) for v in np.asarray(t.data).reshape(-1)]


def _merged(shape, axes: set[int], drop_units: bool) -> tuple:
    """A reduction as kernels see it: adjacent reduced (or kept) dims merged into one; LiteRT's
    builtin kernels also drop size-1 dims first, XNNPACK keeps them (with their kind)."""
    out: list[list] = []
    for i, d in enumerate(shape):
        if drop_units and d == 1:
            continue
        red = i in axes
        if out and out[-1][1] == red:
            out[-1][0] *= d
        else:
            out.append([d, red])
    return tuple((d, r) for d, r in out)


def _reduce_class(typ: str, shape, raw_axes: list[int], keep: bool) -> tuple:
    """What decides a reduction's arithmetic in LiteRT's builtin kernels and in XNNPACK: equal
    classes mean the same elements are combined in the same order."""
    rank = len(shape)
    axes = {a % rank for a in raw_axes} if rank else set()
    last = typ == "MEAN" and len(raw_axes) == 1 and raw_axes[0] == rank - 1          # Eigen row sums
    hw4d = typ == "MEAN" and keep and rank == 4 and sorted(raw_axes) == [1, 2]       # 4-D H/W mean
    every = axes == set(range(rank))                                                  # reduce-all path
    return last, hw4d, every, _merged(shape, axes, True), _merged(shape, axes, False)


class _Region:
    """What ThroughReductions found: the entry chain, the ops, their labels and layouts."""

    def __init__(self):
        self.chain: list[Operator] = []
        self.x: Tensor | None = None
        self.t: Tensor | None = None
        self.ops: list[Operator] = []
        self.exits: list[Operator] = []
        self.labels: dict[int, Labels] = {}
        self.size: dict = {}
        self.pos_a: dict = {}
        self.pos_v: dict = {}
        self.reduced: frozenset = frozenset()
        self.layout: dict[int, str] = {}        # op id -> "A" | "V" | "S"
        self.need_root: set[str] = set()
        self.v_shape: tuple[int, ...] | None = None
        self.v_perm: tuple[int, ...] | None = None
        self.v_axes: list[int] = []


class ThroughReductions(Rule):
    """x -> L -> {elementwise ops, reductions} -> L^-1: run the region on x (reductions keep their order)."""

    name = "cancel-transposes"
    roots = ("TRANSPOSE", "RESHAPE")

    def match(self, op: Operator, sg: Subgraph) -> Match | None:
        if not _layout_op(op) or op.outputs[0] is None:
            return None
        # the entry chain: layout ops up to x, each intermediate read only by the next
        chain = [op]
        while True:
            src = chain[0].inputs[0]
            p = src.producer
            if p is None or p.subgraph is not sg or not _layout_op(p) or _sole_use(sg, src) is None:
                break
            chain.insert(0, p)
        r = _Region()
        r.chain, r.x, r.t = chain, chain[0].inputs[0], op.outputs[0]
        if not _static(r.x) or r.x.is_constant or not _per_tensor(r.x) or _pinned(sg, r.t):
            return None                          # (a constant x: fold-constants' job)
        # the region: every reader of a region tensor is an elementwise op, a reduction or an exit
        ops: dict[int, Operator] = {}
        exits: dict[int, Operator] = {}
        stack = [r.t]
        while stack:
            u = stack.pop()
            for c, idx in u.uses:
                if id(c) in ops or id(c) in exits:
                    continue
                if c.type in ("TRANSPOSE", "RESHAPE") and idx == 0:
                    exits[id(c)] = c
                    continue
                if c.type not in UNARY and c.type not in BINARY and c.type not in REDUCTIONS:
                    return None
                if len(c.outputs) != 1 or c.outputs[0] is None or len(ops) >= _MAX_REGION:
                    return None
                ops[id(c)] = c
                stack.append(c.outputs[0])
        if not ops:
            return None                          # a direct pair: CancelPair's job
        r.ops = sorted(ops.values(), key=lambda o: o.index)
        r.exits = sorted(exits.values(), key=lambda o: o.index)
        return Match(op, sg, data={"region": r})

    # --- check: labels, layouts, cost ---
    def check(self, m: Match) -> tuple[bool, str]:
        r: _Region = m.data["region"]
        sg = m.sg
        x = r.x
        labels = tuple(i if d != 1 else None for i, d in enumerate(x.shape))
        full = frozenset(i for i, d in enumerate(x.shape) if d != 1)
        r.size = {i: x.shape[i] for i in full}
        r.pos_a = {i: i for i in full}
        for op in r.chain:
            labels = _through_layout(op, labels)
        r.labels = {id(r.t): labels}
        t_order = _order(labels)
        reduced: set | None = None
        reductions = []
        for op in r.ops:
            out = op.outputs[0]
            if not _static(out) or not _per_tensor(out) or _pinned(sg, out):
                return False, ""
            if op.type in REDUCTIONS:
                lab = self._reduction_labels(op, r.labels, full)
                if lab is None:
                    return False, ""
                red, out_labels = lab
                if reduced is not None and red != reduced:
                    return False, "the reductions of the region reduce different axes"
                reduced = red
                reductions.append(op)
            else:
                out_labels = self._broadcast_labels(op, r.labels)
                if out_labels is None:
                    return False, ""
            r.labels[id(out)] = out_labels
        for e in r.exits:
            u = e.inputs[0]
            lab = r.labels.get(id(u))
            z = e.outputs[0]
            if lab is None or z is None or not _layout_op(e) or frozenset(_order(lab)) != full:
                return False, ""
            if _order(_through_layout(e, lab)) != sorted(full) or z.dtype != u.dtype or _qparams(z) != _qparams(u):
                return False, ""                 # not back to x's memory order: not an exit
        r.reduced = frozenset(reduced or ())
        # layouts: a full-size tensor is computed in x's layout (A) when it leaves through an exit,
        # in the reductions' layout (V) when it feeds a reduction; statistics (S) fit both
        is_s = lambda t: not (frozenset(_order(r.labels[id(t)])) & r.reduced)   # noqa: E731
        need: dict[int, set] = {}
        for e in r.exits:
            need.setdefault(id(e.inputs[0]), set()).add("A")
        for op in reductions:
            need.setdefault(id(op.inputs[0]), set()).add("V")
        for op in reversed(r.ops):
            out = op.outputs[0]
            if op.type in REDUCTIONS:
                r.layout[id(op)] = "V"
                continue
            if is_s(out):
                r.layout[id(op)] = "S"
                continue
            ns = need.get(id(out), set())
            if len(ns) != 1:
                return False, ("a result is needed both in the original and in the reductions' layout"
                               if ns else "")
            lay = next(iter(ns))
            r.layout[id(op)] = lay
            for t in op.inputs:
                if t is not None and id(t) in r.labels and not is_s(t):
                    need.setdefault(id(t), set()).add(lay)
        r.need_root = need.get(id(r.t), set()) if not is_s(r.t) else {"A"}
        if reductions:
            ok, why = self._place_v(r, t_order, reductions)
            if not ok:
                return False, why
        for op in r.ops:
            for t in op.inputs:
                if t is not None and id(t) not in r.labels and not (op.type in REDUCTIONS and t is op.inputs[1]):
                    if not _per_tensor(t):
                        return False, "per-channel quantized constant"
        # cost: the entry chain goes, exits back to x's shape go (or fold into the RESHAPEs after
        # them), one TRANSPOSE (or RESHAPE) of x feeds the reductions
        removed = len(r.chain)
        transposes = sum(o.type == "TRANSPOSE" for o in r.chain)
        bypassed: set[int] = set()
        for e in r.exits:
            z, u = e.outputs[0], e.inputs[0]
            transposes += e.type == "TRANSPOSE"
            if not _pinned(sg, z):
                removed += tuple(z.shape) == tuple(x.shape) or bool(z.uses) and all(
                    c.type == "RESHAPE" and i == 0 for c, i in z.uses)
            elif tuple(z.shape) == tuple(x.shape) and u is not r.t and id(u) not in bypassed:
                bypassed.add(id(u))              # u's producer will write the graph output z
                removed += 1
        added = 0
        if "V" in r.need_root and self._v_op(r) is not None:
            added = 1
            transposes -= self._v_op(r) == "TRANSPOSE"
        if removed - added < 0 or (removed == added and transposes <= 0):
            return False, ""
        return True, ""

    @staticmethod
    def _reduction_labels(op: Operator, labels: dict, full: frozenset):
        inp = op.inputs[0]
        if len(op.inputs) != 2 or id(inp) not in labels or op.inputs[1] is None or id(op.inputs[1]) in labels:
            return None
        if inp.dtype not in _REDUCE_TYPES or inp.quantization is not None and _qparams(inp) is not None:
            return None
        raw = _const_ints(op.inputs[1])
        rank = len(inp.shape)
        if raw is None or not raw or any(not -rank <= a < rank for a in raw) or op.options is None:
            return None
        lab = labels[id(inp)]
        if frozenset(_order(lab)) != full:
            return None
        axes = {a % rank for a in raw}
        red = frozenset(lab[a] for a in axes if lab[a] is not None)
        if not red:
            return None
        keep = bool(op.options.keepDims)
        out_labels = tuple(None if i in axes else lab[i] for i in range(rank)) if keep else \
            tuple(lab[i] for i in range(rank) if i not in axes)
        expect = tuple(1 if i in axes else inp.shape[i] for i in range(rank)) if keep else \
            tuple(inp.shape[i] for i in range(rank) if i not in axes)
        if tuple(op.outputs[0].shape) != expect:
            return None
        return red, out_labels

    @staticmethod
    def _broadcast_labels(op: Operator, labels: dict) -> Labels | None:
        """Labels of an elementwise op's output (numpy broadcasting); None if not expressible."""
        out = op.outputs[0]
        if op.type in UNARY and len(op.inputs) != 1:
            return None
        if op.type in BINARY and len(op.inputs) != 2:
            return None
        if op.type == "PRELU" and (id(op.inputs[0]) not in labels or id(op.inputs[1]) in labels):
            return None
        rank = len(out.shape)
        res: list = [None] * rank
        consts = []
        for t in op.inputs:
            if t is None or t.shape is None or len(t.shape) > rank:
                return None
            off = rank - len(t.shape)
            if id(t) in labels:
                for j, (d, lab) in enumerate(zip(t.shape, labels[id(t)])):
                    if d == 1:
                        continue
                    if out.shape[off + j] != d or (res[off + j] is not None and res[off + j] != lab):
                        return None
                    res[off + j] = lab
            elif t.is_constant:
                consts.append(t)
            else:
                return None                      # another non-constant operand: not this pattern
        for c in consts:
            off = rank - len(c.shape)
            if any(d != 1 and (res[off + j] is None or out.shape[off + j] != d) for j, d in enumerate(c.shape)):
                return None
        if any(d != 1 and res[j] is None for j, d in enumerate(out.shape)):
            return None
        return tuple(res)

    @staticmethod
    def _place_v(r: _Region, t_order: list, reductions: list[Operator]) -> tuple[bool, str]:
        """Positions (in x's rank) for the reductions' layout: kept axes where x has them,
        reduced axes in free positions, in the memory order the region's input had; the first
        placement under which every reduction keeps its kernel class (see ``_reduce_class``)."""
        rank = len(r.x.shape)
        kept = [lab for lab in t_order if lab not in r.reduced]
        if [r.pos_a[k] for k in kept] != sorted(r.pos_a[k] for k in kept):
            return False, "the layout change reorders the axes the reductions keep"
        taken = {r.pos_a[k] for k in kept}
        for i, lab in enumerate(t_order):
            if lab in r.reduced and i > 0 and t_order[i - 1] in r.reduced:
                return False, "two reduced axes are adjacent in memory (would need a merged dimension)"
        old = [_reduce_class(op.type, op.inputs[0].shape, _const_ints(op.inputs[1]), bool(op.options.keepDims))
               for op in reductions]

        def placements(i: int, prev: int, acc: dict):
            if i == len(t_order):
                yield dict(acc)
                return
            lab = t_order[i]
            if lab not in r.reduced:
                yield from placements(i + 1, r.pos_a[lab], acc)
                return
            bound = next((r.pos_a[k] for k in t_order[i + 1:] if k not in r.reduced), rank)
            free = [p for p in range(prev + 1, bound) if p not in taken]
            for p in sorted(free, key=lambda q: (q != r.pos_a[lab], q)):
                acc[lab] = p
                yield from placements(i + 1, p, acc)
                del acc[lab]

        found = tried = None
        for cand in placements(0, -1, {}):
            pos_v = {**{k: r.pos_a[k] for k in kept}, **cand}
            shape = [1] * rank
            for lab, p in pos_v.items():
                shape[p] = r.size[lab]
            tried = tuple(shape)
            # size-1 dims may be listed as reduced too (it changes no value, only how kernels
            # merge dimensions): try the subsets, fewest first
            units = [p for p in range(rank) if p not in pos_v.values()]
            for extra in sorted(itertools.chain.from_iterable(
                    itertools.combinations(units, k) for k in range(len(units) + 1)), key=len):
                axes = sorted([pos_v[lab] for lab in r.reduced] + list(extra))
                if all(_reduce_class(op.type, shape, axes, True) == c for op, c in zip(reductions, old)):
                    found = pos_v, tuple(shape), axes
                    break
            if found:
                break
        if found is None:
            if tried is None:
                return False, "no free dimension for a reduced axis in the input's rank"
            op = reductions[0]
            return False, (f"{op.type} would run a different kernel path on a re-laid input "
                           f"({'x'.join(map(str, op.inputs[0].shape))} -> {'x'.join(map(str, tried))})")
        r.pos_v, r.v_shape, r.v_axes = found
        by_pos = {p: lab for lab, p in r.pos_v.items()}
        units = iter(i for i, d in enumerate(r.x.shape) if d == 1)
        r.v_perm = tuple(r.pos_a[by_pos[j]] if j in by_pos else next(units) for j in range(rank))
        return True, ""

    @staticmethod
    def _v_op(r: _Region) -> str | None:
        """The op that makes the reductions' input from x: TRANSPOSE, RESHAPE or none."""
        if sorted(r.pos_v, key=r.pos_v.get) != sorted(r.pos_v, key=r.pos_a.get):
            return "TRANSPOSE"                   # another memory order
        return None if tuple(r.v_shape) == tuple(r.x.shape) else "RESHAPE"

    # --- apply ---
    def _shape(self, r: _Region, labels: Labels, lay: str) -> tuple[int, ...]:
        pos = r.pos_v if lay == "V" else r.pos_a
        shape = [1] * len(r.x.shape)
        for lab in _order(labels):
            shape[pos[lab]] = r.size[lab]
        return tuple(shape)

    def _relay_const(self, r: _Region, sg: Subgraph, op: Operator, j: int, lay: str) -> None:
        c = op.inputs[j]
        out = op.outputs[0]
        arr = np.asarray(c.data)
        rank_x = len(r.x.shape)
        if arr.size == 1:
            if arr.ndim > rank_x:
                new = arr.reshape((1,) * rank_x)
            else:
                return
        else:
            out_labels = r.labels[id(out)]
            off = len(out.shape) - arr.ndim
            labs = [out_labels[off + k] for k, d in enumerate(arr.shape) if d != 1]
            pos = r.pos_v if lay == "V" else r.pos_a
            squeezed = arr.reshape([d for d in arr.shape if d != 1])
            order = sorted(range(len(labs)), key=lambda k: pos[labs[k]])
            new = np.transpose(squeezed, order).reshape(self._shape(r, tuple(labs), lay))
            if order == sorted(order) and tuple(new.shape) == tuple(arr.shape):
                return                           # already laid out like that
        new = np.ascontiguousarray(new)
        if len(c.uses) == 1 and not _pinned(sg, c):
            sg.set_constant(c, new, c.dtype)     # same tensor: float16 restoration still sees it
        else:
            sg.set_input(op, j, sg.new_constant(c.name, new, c.dtype, quantization=copy.deepcopy(c.quantization)))

    def apply(self, m: Match) -> None:
        r: _Region = m.data["region"]
        sg, x, t = m.sg, r.x, r.t
        index = r.chain[0].index
        t_v = x
        if "V" in r.need_root:
            kind = self._v_op(r)
            if kind is not None:
                t_v = sg.new_tensor(f"{t.name}/reduction_layout", t.dtype, r.v_shape,
                                    quantization=copy.deepcopy(t.quantization))
                if kind == "TRANSPOSE":
                    perm = sg.new_constant(f"{t.name}/reduction_perm", np.asarray(r.v_perm, np.int32), I32)
                    new_op = Operator(builtin_opcode("TRANSPOSE"), [x, perm], [t_v])
                else:
                    shp = sg.new_constant(f"{t.name}/reduction_shape", np.asarray(r.v_shape, np.int32), I32)
                    new_op = Operator(builtin_opcode("RESHAPE"), [x, shp], [t_v])
        for op in r.ops:
            lay = r.layout[id(op)]
            in_lay = "V" if op.type in REDUCTIONS else lay
            for j, u in enumerate(op.inputs):
                if u is t:
                    sg.set_input(op, j, t_v if in_lay == "V" else x)
                elif u is not None and id(u) not in r.labels and not (op.type in REDUCTIONS and j == 1):
                    self._relay_const(r, sg, op, j, "A" if in_lay == "S" else in_lay)
            out = op.outputs[0]
            if op.type in REDUCTIONS:
                axes = r.v_axes
                sg.set_input(op, 1, sg.new_constant(f"{out.name}/axes", np.asarray(axes, np.int32), I32))
                opts = copy.copy(op.options)
                opts.keepDims = True
                op.options = opts
                shape = self._shape(r, r.labels[id(out)], "A")
            else:
                shape = self._shape(r, r.labels[id(out)], "A" if lay == "S" else lay)
            sg.set_shape(out, shape, shape if out.shape_signature is not None else None)
        for e in r.exits:
            u = e.inputs[0]                      # (a graph output already, if an earlier exit took u)
            src = x if u is t else u
            z = e.outputs[0]
            pos = e.index
            sg.remove_op(e)
            same = tuple(z.shape) == tuple(x.shape)
            if same and not _pinned(sg, z):
                sg.replace_all_uses(z, src)
            elif same and src is u and not _pinned(sg, u):
                producer = u.producer            # keep the graph output's tensor: it is written directly
                sg.replace_all_uses(u, z)
                sg.set_output(producer, producer.outputs.index(u), z)
            else:
                shp = sg.new_constant(f"{z.name}/shape", np.asarray(z.shape, np.int32), I32)
                sg.add_op(Operator(builtin_opcode("RESHAPE"), [src, shp], [z]), index=pos)
        for op in reversed(r.chain):
            sg.remove_op(op)
        if t_v is not x:
            sg.add_op(new_op, index=index)


class SwapBatchMatmul(Rule):
    """TRANSPOSE(BATCH_MATMUL(TRANSPOSE(a), TRANSPOSE(b)), swapping the last two axes)
    -> BATCH_MATMUL(TRANSPOSE'(b), TRANSPOSE'(a)): (AB)^T = B^T A^T."""

    name = "cancel-transposes"
    roots = ("TRANSPOSE",)

    def match(self, op: Operator, sg: Subgraph) -> Match | None:
        perm = _perm(op)
        bmm = op.inputs[0].producer if op.inputs and op.inputs[0] is not None else None
        if perm is None or bmm is None or bmm.type != "BATCH_MATMUL" or bmm.subgraph is not sg:
            return None
        rank = len(perm)
        if rank < 3 or perm != tuple(range(rank - 2)) + (rank - 1, rank - 2):
            return None
        if len(bmm.inputs) != 2 or len(bmm.outputs) != 1:
            return None
        ta, tb = (t.producer if t is not None else None for t in bmm.inputs)
        if ta is None or tb is None or ta.type != "TRANSPOSE" or tb.type != "TRANSPOSE" or ta is tb:
            return None
        return Match(op, sg, ops={"t": op, "bmm": bmm, "ta": ta, "tb": tb})

    def check(self, m: Match) -> tuple[bool, str]:
        sg, op, bmm, ta, tb = m.sg, m.ops["t"], m.ops["bmm"], m.ops["ta"], m.ops["tb"]
        o = bmm.options
        if o is None or o.adjX or o.adjY:
            return False, ""
        s, z = bmm.outputs[0], op.outputs[0]
        a, b = bmm.inputs
        pa, pb = _perm(ta), _perm(tb)
        if pa is None or pb is None or not all(_static(t) for t in (a, b, s, z)):
            return False, ""
        if not (len(a.shape) == len(b.shape) == len(s.shape) == len(pa) == len(pb)):
            return False, ""
        if any(t.dtype != TYPE_CODES["FLOAT32"] or t.quantization is not None and _qparams(t) is not None
               for t in (a, b, s, z)):
            return False, ""
        if _sole_use(sg, s) is None or _sole_use(sg, a) is None or _sole_use(sg, b) is None:
            return False, ""
        if a.shape[:-2] != b.shape[:-2] or s.shape[-1] != s.shape[-2] or s.shape[-1] < 2:
            return False, ""                     # square, same batch: the swapped product is the same problem
        return True, ""

    def apply(self, m: Match) -> None:
        sg, op, bmm, ta, tb = m.sg, m.ops["t"], m.ops["bmm"], m.ops["ta"], m.ops["tb"]
        rank = len(_perm(ta))
        swap = tuple(range(rank - 2)) + (rank - 1, rank - 2)
        z = op.outputs[0]
        for tr in (ta, tb):
            p = _perm(tr)
            q = tuple(p[i] for i in swap)
            y = tr.outputs[0]
            sg.set_input(tr, 1, sg.new_constant(f"{y.name}/perm", np.asarray(q, np.int32), I32))
            sg.set_shape(y, _permute_shape(y.shape, swap),
                         _permute_shape(y.shape_signature, swap) if y.shape_signature is not None else None)
        a, b = bmm.inputs
        sg.remove_op(op)
        sg.set_inputs(bmm, [b, a])
        sg.set_output(bmm, 0, z)


def _fc_rules() -> list[Rule]:
    from .remove_identity import FullyConnectedKeepDims, ReshapeIntoFullyConnected
    return [ReshapeIntoFullyConnected(), FullyConnectedKeepDims()]


@register
class CancelTransposes(Pass):
    __doc__ = __doc__
    name = "cancel-transposes"
    description = "Cancel TRANSPOSE/RESHAPE pairs, pushing them through elementwise ops and reductions to meet"

    max_iterations = 20

    def run(self, model: Model, ctx) -> bool:
        changed = False
        for _ in range(self.max_iterations):
            step = apply_rules(model, [CancelPair(), SinkThroughElementwise(), MergeFanIn(), ThroughReductions(),
                                       SwapBatchMatmul()], ctx)
            # only once nothing cancels any more: a size-1 TRANSPOSE becomes a (cheaper) RESHAPE, and
            # a RESHAPE -> FULLY_CONNECTED -> RESHAPE left over becomes one FULLY_CONNECTED
            step |= apply_rules(model, [TransposeAsReshape(), CancelPair(), *_fc_rules()], ctx)
            if not step:
                break
            changed = True
        return changed
