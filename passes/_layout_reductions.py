"""cancel-transposes' layout regions through reductions: the ``ThroughReductions`` rule and its machinery.

The rule moves a layout change (TRANSPOSEs and size-1 RESHAPEs) past a DAG of elementwise ops and
reductions that ends in the inverse layout change, keeping every reduction's memory order and kernel
path (see the "layout regions through reductions" item of ``cancel_transposes``' docstring). It is the
largest rule of the pass, so it lives here, apart from the pass and its simpler rules; the pass
(``cancel_transposes.py``) imports ``ThroughReductions`` from this module. A private module (the leading
``_`` keeps the pass loader from importing it as a pass); shared helpers come from ``_layout.py``.
"""
from __future__ import annotations

import copy
import itertools

import numpy as np

from tflc.ir.constants import const_ints
from tflc.ir.core import Operator, Subgraph, Tensor
from tflc.ir.opinfo import ARITHMETIC_REDUCTIONS as REDUCTIONS
from tflc.ir.opinfo import ELEMENTWISE_BINARY, ELEMENTWISE_UNARY
from tflc.ir.quant import is_per_channel, is_quantized, same_quantization
from tflc.rewrite import Match, Rule, builtin_opcode
from tflc.schema import TYPE_CODES

from ._layout import I32, _perm, _reshape_ok, _sole_use, _static

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
        if not _static(r.x) or r.x.is_constant or is_per_channel(r.x) or sg.is_pinned(r.t):
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
                if c.type not in ELEMENTWISE_UNARY and c.type not in ELEMENTWISE_BINARY and c.type not in REDUCTIONS:
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
            if not _static(out) or is_per_channel(out) or sg.is_pinned(out):
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
            if _order(_through_layout(e, lab)) != sorted(full) or z.dtype != u.dtype or not same_quantization(z, u):
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
                    if is_per_channel(t):
                        return False, "per-channel quantized constant"
        # cost: the entry chain goes, exits back to x's shape go (or fold into the RESHAPEs after
        # them), one TRANSPOSE (or RESHAPE) of x feeds the reductions
        removed = len(r.chain)
        transposes = sum(o.type == "TRANSPOSE" for o in r.chain)
        bypassed: set[int] = set()
        for e in r.exits:
            z, u = e.outputs[0], e.inputs[0]
            transposes += e.type == "TRANSPOSE"
            if not sg.is_pinned(z):
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
        if inp.dtype not in _REDUCE_TYPES or is_quantized(inp):
            return None
        raw = const_ints(op.inputs[1])
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
        if op.type in ELEMENTWISE_UNARY and len(op.inputs) != 1:
            return None
        if op.type in ELEMENTWISE_BINARY and len(op.inputs) != 2:
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
        old = [_reduce_class(op.type, op.inputs[0].shape, const_ints(op.inputs[1]), bool(op.options.keepDims))
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
        if len(c.uses) == 1 and not sg.is_pinned(c):
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
                sg.update_options(op, keepDims=True)
                shape = self._shape(r, r.labels[id(out)], "A")
            else:
                shape = self._shape(r, r.labels[id(out)], "A" if lay == "S" else lay)
            sg.set_shape(out, shape, shape if out.shape_signature is not None else None)
        for e in r.exits:
            u = e.inputs[0]                      # (a graph output already, if an earlier exit took u)
            src = x if u is t else u
            z = e.outputs[0]
            same = tuple(z.shape) == tuple(x.shape)
            if same and not sg.is_pinned(z):
                sg.replace_all_uses(z, src)
                sg.remove_op(e)
            elif same and src is u and not sg.is_pinned(u):
                producer = u.producer            # keep the graph output's tensor: it is written directly
                sg.remove_op(e, detach=True)
                sg.replace_all_uses(u, z)
                sg.set_output(producer, producer.outputs.index(u), z)
            else:
                shp = sg.new_constant(f"{z.name}/shape", np.asarray(z.shape, np.int32), I32)
                sg.replace_op(e, Operator(builtin_opcode("RESHAPE"), [src, shp], [z]))
        for op in reversed(r.chain):
            sg.remove_op(op)
        if t_v is not x:
            sg.add_op(new_op, index=index)
