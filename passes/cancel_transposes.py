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

import numpy as np

from tflc.ir.core import Model, Operator, Subgraph, Tensor
from tflc.ir.opinfo import ELEMENTWISE_BINARY, ELEMENTWISE_UNARY
from tflc.ir.quant import is_per_channel, is_quantized, same_quantization
from tflc.passes_api import Pass, PassManager, register
from tflc.rewrite import Match, Rule, apply_rules, builtin_opcode
from tflc.schema import TYPE_CODES

from ._layout import I32, _inverse, _perm, _permute_shape, _reshape_ok, _sole_use, _static
from ._layout_reductions import ThroughReductions


def _elementwise_step(op: Operator, idx: int, cur: Tensor) -> int | None:
    """If ``op`` is elementwise in its input ``idx`` (= ``cur``) with any other input constant and
    not enlarging ``cur``, the index of that constant (-1 when none); else None."""
    if len(op.outputs) != 1 or op.outputs[0] is None or op.outputs[0].shape != cur.shape:
        return None
    if is_per_channel(op.outputs[0]):
        return None
    if op.type in ELEMENTWISE_UNARY:
        return -1 if len(op.inputs) == 1 and not is_per_channel(cur) else None
    if op.type in ELEMENTWISE_BINARY and len(op.inputs) == 2:
        j = 1 - idx
        c = op.inputs[j]
        if op.type == "PRELU" and idx != 0:
            return None
        if c is None or not c.is_constant or c.shape is None or len(c.shape) > len(cur.shape) or is_per_channel(c):
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
            if m.sg.is_pinned(y) and (x.producer is None or m.sg.is_pinned(x)):
                return False, (f"the {second.type} pair cancels but its result is a graph output and its input "
                               "is a graph input or output: both names must stay")
            if x.dtype != y.dtype:
                return False, "types differ"
            return True, ""
        if len(first.outputs[0].uses) != 1 or m.sg.is_pinned(first.outputs[0]):
            return False, f"merging the two {second.type} ops would not remove one: the first has other readers"
        return True, ""

    def apply(self, m: Match) -> None:
        sg, first, second = m.sg, m.ops["first"], m.ops["second"]
        x, mid, y = first.inputs[0], first.outputs[0], second.outputs[0]
        if m.data["identity"] and sg.is_pinned(y):
            # keep the graph output tensor: x's producer now writes it, x's readers read it
            sg.remove_op(second, detach=True)
            producer = x.producer
            sg.replace_all_uses(x, y)
            sg.set_output(producer, producer.outputs.index(x), y)
        elif m.data["identity"]:
            sg.replace_all_uses(y, x)
            sg.remove_op(second)
        elif second.type == "TRANSPOSE":
            q = sg.new_constant(f"{y.name}/perm", np.asarray(m.data["q"], dtype=np.int32), I32)
            sg.set_inputs(second, [x, q])
        else:
            sg.set_input(second, 0, x)
        if not mid.uses and not sg.is_pinned(mid):
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
                sg.set_shape(out, _permute_shape(out.shape, inv), _permute_shape(out.shape_signature, inv))
            else:
                sg.set_shape(out, in_shape, in_sig)
        last = chain[-1][0]
        if m.data["identity"]:
            y = second.outputs[0]
            sg.remove_op(second, detach=True)          # y keeps its name: the last E_i writes it
            sg.set_output(last, 0, y)
        elif first.type == "TRANSPOSE":
            q = sg.new_constant(f"{second.outputs[0].name}/perm", np.asarray(m.data["q"], dtype=np.int32), I32)
            sg.set_input(second, 1, q)
        sg.remove_op(first)


class MergeFanIn(Rule):
    """E(TRANSPOSE(a, p), TRANSPOSE(b, p)) -> TRANSPOSE(E(a, b), p)."""

    name = "cancel-transposes"
    roots = tuple(ELEMENTWISE_BINARY - {"PRELU"})

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
            if m.sg.is_pinned(out) or any(o is not e for o, _ in out.uses):
                return False, "a TRANSPOSE input has other readers"
        a, b, y = ta.inputs[0], tb.inputs[0], e.outputs[0]
        if a.shape is None or b.shape is None or tuple(a.shape) != tuple(b.shape) or y.shape is None:
            return False, "the transposed inputs differ in shape (broadcasting)"
        if tuple(ta.outputs[0].shape or ()) != tuple(y.shape):
            return False, "the op changes the shape"
        if is_per_channel(a) or is_per_channel(b) or is_per_channel(y):
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
        if x.dtype != y.dtype or is_per_channel(x) or not same_quantization(x, y):
            return False, "types or quantization differ"
        return True, ""

    def apply(self, m: Match) -> None:
        sg, op = m.sg, m.root
        x, y = op.inputs[0], op.outputs[0]
        if m.data["identity"] and not sg.is_pinned(y):
            sg.replace_all_uses(y, x)
            sg.remove_op(op)
            return
        shape = sg.new_constant(f"{y.name}/shape", np.asarray(y.shape, dtype=np.int32), I32)
        sg.replace_op(op, Operator(builtin_opcode("RESHAPE"), [x, shape], [y]))


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
        if any(t.dtype != TYPE_CODES["FLOAT32"] or is_quantized(t) for t in (a, b, s, z)):
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
        sg.remove_op(op, detach=True)                  # z keeps its name: the BATCH_MATMUL writes it
        sg.set_inputs(bmm, [b, a])
        sg.set_output(bmm, 0, z)


def _fc_rules() -> list[Rule]:
    from .remove_identity import FullyConnectedKeepDims, ReshapeIntoFullyConnected
    return [ReshapeIntoFullyConnected(), FullyConnectedKeepDims()]


class _Propagate(Pass):
    """Phase 1: move layout ops through elementwise ops and reductions until pairs meet and cancel."""
    name = "propagate"
    description = "cancel TRANSPOSE pairs, sinking them through elementwise ops, fan-ins and reductions"

    def run(self, model: Model, ctx) -> bool:
        return apply_rules(model, [CancelPair(), SinkThroughElementwise(), MergeFanIn(), ThroughReductions(),
                                   SwapBatchMatmul()], ctx)


class _Finish(Pass):
    """Phase 2, only once nothing cancels any more: a size-1 TRANSPOSE becomes a (cheaper) RESHAPE,
    and a RESHAPE -> FULLY_CONNECTED -> RESHAPE left over becomes one FULLY_CONNECTED."""
    name = "finish"
    description = "size-1 TRANSPOSEs as RESHAPEs, RESHAPE-FULLY_CONNECTED-RESHAPE as one FULLY_CONNECTED"

    def run(self, model: Model, ctx) -> bool:
        return apply_rules(model, [TransposeAsReshape(), CancelPair(), *_fc_rules()], ctx)


@register
class CancelTransposes(PassManager):
    __doc__ = __doc__
    name = "cancel-transposes"
    description = "Cancel TRANSPOSE/RESHAPE pairs, pushing them through elementwise ops and reductions to meet"
    phases = (_Propagate, _Finish)
    max_iterations = 20     # the two phases, repeated until neither changes anything
