"""use-kernels: ops the delegate leaves on LiteRT's builtin kernels run as tflc kernels, where that
makes the whole model faster, measured in LiteRT.

XNNPACK in LiteRT 2.3.0 leaves many int8 ops to the builtin kernels (SQUARED_DIFFERENCE, RSQRT,
GELU, SOFTMAX, BATCH_MATMUL with a non-zero right zero point, ...). tflc's kernel library
(``tflc.kernels.library``) has kernels that compute exactly what those builtin kernels compute:
table kernels (``TFLC_LUT8``/``TFLC_LUT8X8``), whose tables LiteRT itself makes by running the op
on every input value, and exact integer kernels. This pass, for the ops the target refuses:

1. **matches** each op against every kernel's ``REPLACES`` predicate (``(ok, reason)``; a refusal
   is noted with its reason), and fuses a chain of table ops (one consumer, not a graph output)
   into one table: one pass over memory instead of one per op;
2. **checks** each replacement in LiteRT before it counts: a one-input table op by the exhaustive
   proof (every value at every position of the op's own shape, ``passes/_exhaustive``), others on
   random and extreme inputs at the op's own shape; a difference refuses it, with the values;
3. **measures** per op type: the op alone (builtin vs kernel, one-op models at the model's shapes),
   then the whole model with the kernels against without, and against the float islands that
   ``float-islands`` would make instead (the competitor: inside the delegate, but not exact);
   paired, interleaved, with 95% intervals. A kernel is kept only where the whole model gets faster
   beyond the noise band, and where no island is faster (islands are left to ``float-islands``
   when the pipeline holds it).

Every decision is a note and a fact (``ctx.facts["use-kernels"]``) for the report. The output
needs ``tflc.runtime`` (or a runtime with tflc's kernels registered) to run: ``tflc optimize``
adds this pass only with ``--kernels``. Lossless: every kernel it writes is bit-identical to the op
it replaces.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from tflc.ir.build import custom_opcode
from tflc.ir.core import Model, Operator, Subgraph, Tensor
from tflc.passes_api import Pass, register

FACTS_KEY = "use-kernels"


@dataclass
class UseKernelsOptions:
    kernels: list[str] = field(default_factory=list, metadata={
        "help": "kernel codes to consider (':'-separated, e.g. TFLC_LUT8X8; default: every kernel of the library)"})
    measure: bool = field(default=True, metadata={
        "help": "decide by measuring in LiteRT (false: replace every match that checks exact)"})
    fuse: bool = field(default=True, metadata={"help": "fuse chains of table ops into one table"})
    islands: bool = field(default=True, metadata={
        "help": "measure float islands as the alternative, and leave an op to float-islands where they are faster"})
    max_seconds: float = field(default=4.0, metadata={"help": "time limit of each whole-model comparison (s)"})


@dataclass
class Candidate:
    """One replacement: the ops it replaces (a chain, first to last), the kernel, its options."""
    ops: list[Operator]
    code: str
    payload: bytes = b""                  # its custom options
    table: np.ndarray | None = None        # table kernels: the composed table
    live: list[Tensor] = field(default_factory=list)   # the kernel's inputs
    steps: list[np.ndarray] = field(default_factory=list)   # table kernels: each op's own table
    refused: str = ""                      # why it cannot be made (set while building it)

    @property
    def last(self) -> Operator:
        return self.ops[-1]

    @property
    def pattern(self) -> str:
        return " -> ".join(op.type for op in self.ops) + f" => {self.code}"

    @property
    def group(self) -> str:
        return " -> ".join(op.type for op in self.ops)

    @property
    def is_table(self) -> bool:
        return is_table(self.code)


def is_table(code: str) -> bool:
    """Table kernels get their parameters from LiteRT (the pass runs the op), others from the op."""
    return code.startswith("TFLC_LUT")


def kernel_inputs(op: Operator, code: str) -> list[Tensor]:
    """What the kernel reads: a table the run-time inputs (its constants are in the table), other
    kernels every input."""
    return _live(op) if is_table(code) else [t for t in op.inputs if t is not None]


# --------------------------------------------------------------------------- matching

def _library() -> Any:
    import importlib
    return importlib.import_module("tflc.kernels.library")


def match(op: Operator, codes: set[str] | None = None) -> tuple[str | None, str]:
    """The first kernel whose ``REPLACES`` accepts ``op`` and the reasons of the others."""
    why = []
    for code, pred in _library().REPLACES.items():
        if codes and code not in codes:
            continue
        ok, reason = pred(op)
        if ok:
            return code, ""
        why.append(f"{code}: {reason}")
    return None, "; ".join(why) or "no kernel considered"


def _live(op: Operator) -> list[Tensor]:
    return [t for t in op.inputs if t is not None and not t.is_constant]


def find_candidates(model: Model, target: Any, codes: set[str] | None, ctx: Any) -> list[Candidate]:
    out = []
    for sg in model.subgraphs:
        for op in sg.operators:
            ok, _ = target.check(op)
            if ok or op.opcode.is_custom:
                continue
            code, why = match(op, codes)
            if code is None:
                ctx.note(f"use-kernels: no kernel for {op.type} '{op.output_name}' ({why})")
                continue
            out.append(Candidate([op], code, live=kernel_inputs(op, code)))
    return out


# --------------------------------------------------------------------------- tables, made by LiteRT

def _table_inputs(c: Candidate) -> list[np.ndarray]:
    # entry k of a table is the result for the input whose bit pattern is k (as uint8)
    dts = [np.int8 if t.type_name == "INT8" else np.uint8 for t in c.live]
    if c.code == _lut().LUT8C:           # row r holds bit pattern r in every channel
        channels = int(c.live[0].shape[-1])
        return [np.repeat(np.arange(256).astype(np.uint8), channels).reshape(256, channels).view(dts[0])]
    if len(c.live) == 1:
        return [np.arange(256).astype(np.uint8).view(dts[0])]
    i = np.arange(65536)
    # index = a_bits * 256 + b_bits; a value's bit pattern is its uint8 view
    return [(i >> 8).astype(np.uint8).view(dts[0]) if dts[0] == np.int8 else (i >> 8).astype(np.uint8),
            (i & 255).astype(np.uint8).view(dts[1]) if dts[1] == np.int8 else (i & 255).astype(np.uint8)]


def _lut() -> Any:
    import importlib
    return importlib.import_module("tflc.kernels.lut")


def _table_model(op: Operator, inner: tuple[int, ...]) -> tuple[bytes, list[int]]:
    """A one-op model of ``op`` whose run-time inputs have the shape ``[1, .., *inner]`` (constants as
    stored, so they broadcast as in the model)."""
    from tflc.io import serialize
    from ._exhaustive import one_op_model
    m, copy = one_op_model(op)
    sg = m.subgraphs[0]
    rank = max([len(t.shape or ()) for t in copy.inputs if t is not None] + [len(inner)])
    shape = [1] * (rank - len(inner)) + list(inner)
    for t in sg.inputs:
        sg.set_shape(t, shape)
    out_shape = np.broadcast_shapes(*[tuple(t.shape or ()) for t in copy.inputs if t is not None])
    for t in sg.outputs:
        sg.set_shape(t, list(out_shape))
    return serialize(m), shape


def _run_tables(jobs: list[tuple[bytes, list[np.ndarray]]]) -> list[np.ndarray | str]:
    """Each job's table, or why LiteRT could not make it (its kernel fails on some input values,
    e.g. int8 RSQRT on negative ones: a table would define what LiteRT leaves an error)."""
    from tflc.errors import TflcError
    from tflc.runtime.interpreter import RunOptions, Session
    out: list[np.ndarray | str] = []
    for data, inputs in jobs:
        try:
            s = Session(data, RunOptions(threads=1, xnnpack=True), name="the op")
            out.append(np.asarray(s.run(inputs)[0]).reshape(-1).view(np.uint8).copy())
        except TflcError as e:
            out.append(f"LiteRT's kernel fails on some of the input values a table needs ({str(e).splitlines()[0]})")
    return out


def make_tables(cands: list[Candidate]) -> None:
    """Fill each table candidate's table: LiteRT runs the op on every input value (or pair)."""
    from tflc.runtime.isolate import run_isolated
    jobs = []
    for c in cands:
        ins = _table_inputs(c)
        data, shape = _table_model(c.ops[0], ins[0].shape)
        jobs.append((data, [a.reshape(shape) for a in ins]))
    if not jobs:
        return
    tables = run_isolated(_run_tables, jobs, what="LiteRT making kernel tables")
    for c, t in zip(cands, tables):
        if isinstance(t, str):
            c.refused = t
            continue
        if c.code == _lut().LUT8C:       # [256 values, C channels] -> channel-major tables
            t = np.ascontiguousarray(t.reshape(256, -1).T).reshape(-1)
        c.table, c.steps = t, [t]


# --------------------------------------------------------------------------- fusing chains of tables

def fuse_chains(cands: list[Candidate], model: Model) -> list[Candidate]:
    """Merge a table candidate into the one before it where the first's output feeds only the second
    (and is no graph output): the second's table applied to the first's."""
    from tflc.kernels.lut import LUT8
    by_op = {id(c.ops[0]): c for c in cands}
    merged: set[int] = set()
    for c in cands:
        if id(c) in merged or c.table is None or c.refused:
            continue
        while True:
            out = c.last.outputs[0]
            sg = _subgraph_of(model, c.last)
            users = out.consumers
            if len(users) != 1 or sg.is_graph_output(out):
                break
            nxt = by_op.get(id(users[0]))
            if nxt is None or nxt is c or id(nxt) in merged or nxt.code != LUT8 or nxt.table is None:
                break
            c.table = nxt.table[c.table]            # y = t2[t1[x]] (or t2[t12[a, b]])
            c.ops = c.ops + nxt.ops
            c.steps = c.steps + nxt.steps
            merged.add(id(nxt))
    return [c for c in cands if id(c) not in merged]


def _subgraph_of(model: Model, op: Operator) -> Subgraph:
    for sg in model.subgraphs:
        if any(o is op for o in sg.operators):
            return sg
    raise ValueError(f"{op} is in no subgraph")


# --------------------------------------------------------------------------- rewriting

def _encode_table(c: Candidate) -> bytes:
    lut = _lut()
    dt = np.int8 if c.last.outputs[0].type_name == "INT8" else np.uint8
    if c.code == lut.LUT8C:
        return lut.encode_options(c.table.view(dt), channels=c.table.size // 256)
    return lut.encode_options(c.table.view(dt))


def _replace(sg: Subgraph, c: Candidate) -> Operator:
    """Replace ``c``'s ops (in ``sg``) by one custom op."""
    if c.table is not None:
        c.payload = _encode_table(c)
    new = Operator(custom_opcode(c.code), list(c.live), [c.last.outputs[0]], custom_options=c.payload)
    for op in reversed(c.ops[1:]):
        sg.remove_op(op, detach=True)
    return sg.replace_op(c.ops[0], new)


def apply(model: Model, c: Candidate) -> Operator:
    """Replace ``c``'s ops by one custom op (the caller checked it), dropping what they left unused."""
    sg = _subgraph_of(model, c.ops[0])
    new = _replace(sg, c)
    sg.remove_unused_tensors()
    return new


def on_clone(clone: Model, c: Candidate) -> Candidate:
    """``c`` for the same ops of ``clone`` (clones keep uids)."""
    ops = {op.uid: op for sg in clone.subgraphs for op in sg.operators}
    tensors = {t.uid: t for sg in clone.subgraphs for t in sg.tensors}
    return Candidate([ops[o.uid] for o in c.ops], c.code, c.payload, c.table, [tensors[t.uid] for t in c.live],
                     list(c.steps))


# --------------------------------------------------------------------------- checking in LiteRT

def check_exact(c: Candidate) -> tuple[bool, str]:
    """Is the kernel bit-identical to the ops it replaces, at their shapes? (see the module docstring)
    A chain of tables is exact where each op's own table is: a one-input table is proved on every
    value at every position, a two-input one checked on random and extreme inputs."""
    from tflc.kernels.lut import LUT8, LUT8X8
    from ._exhaustive import prove
    if not c.is_table:
        return _sampled(c)
    for op, table in zip(c.ops, c.steps):
        live = _live(op)
        if len(live) == 2:
            ok, why = _sampled(Candidate([op], LUT8X8, table=table, live=live))
            if not ok:
                return False, f"{op.type} '{op.output_name}': {why}"
            continue

        code = LUT8 if table.size == 256 else _lut().LUT8C

        def rewrite(sg: Subgraph, copy: Operator, table: np.ndarray = table, code: str = code) -> None:
            _replace(sg, Candidate([copy], code, table=table, live=_live(copy)))
        proof = prove(op, rewrite, f"use-kernels:{code}:{hash(table.tobytes())}")
        if not proof.decided or not proof.ok:
            return False, f"{op.type} '{op.output_name}': {proof.reason}"
    return True, ""


def _sampled(c: Candidate) -> tuple[bool, str]:
    """The kernel against the ops, each in a one-op (or chain) model of the model's shapes, on
    random and extreme inputs."""
    from tflc.io import serialize
    from tflc.runtime.isolate import run_isolated
    from ._exhaustive import one_op_model
    if len(c.ops) != 1:
        return False, "a chain of several ops is checked only for one-input tables"
    m, copy = one_op_model(c.ops[0])
    original = serialize(m)
    sg = m.subgraphs[0]
    _replace(sg, Candidate([copy], c.code, c.payload, c.table, kernel_inputs(copy, c.code)))
    rewritten = serialize(m)
    rng = np.random.default_rng(0)
    run_time = _live(c.ops[0])
    shapes = [tuple(t.shape) for t in run_time]
    dts = [np.int8 if t.type_name == "INT8" else np.uint8 for t in run_time]
    cases = []
    for k in range(6):
        arrays = []
        for s, dt in zip(shapes, dts):
            info = np.iinfo(dt)
            if k == 0:
                arrays.append(np.full(s, info.min, dt))
            elif k == 1:
                arrays.append(np.full(s, info.max, dt))
            else:
                arrays.append(rng.integers(info.min, info.max + 1, size=s).astype(dt))
        cases.append(arrays)
    return run_isolated(_compare_runs, original, rewritten, cases, what="LiteRT checking a tflc kernel")


def _compare_runs(a: bytes, b: bytes, cases: list[list[np.ndarray]]) -> tuple[bool, str]:
    from tflc.runtime.interpreter import RunOptions, Session
    sa = Session(a, RunOptions(), name="the original op")
    sb = Session(b, RunOptions(), name="its tflc kernel")
    for k, arrays in enumerate(cases):
        ya, yb = sa.run(arrays), sb.run(arrays)
        for u, v in zip(ya, yb):
            if u.tobytes() != v.tobytes():
                bad = np.flatnonzero(u.reshape(-1) != v.reshape(-1))
                p = int(bad[0]) if bad.size else 0
                return False, (f"differs from LiteRT's kernel on {bad.size} of {u.size} values of input case {k} "
                               f"(e.g. position {p}: {v.reshape(-1)[p]} instead of {u.reshape(-1)[p]})")
    return True, ""


# --------------------------------------------------------------------------- measuring

def _alone_us(c: Candidate, ctx: Any) -> tuple[float, float] | None:
    """(builtin µs, kernel µs) of the ops alone, one-op models at the model's shapes (a chain: its
    ops summed on the builtin side)."""
    from tflc.io import serialize
    from tflc.profiler import compare_latency, measure_latency
    from ._exhaustive import one_op_model
    try:
        threads = ctx.run_options.threads
        first, _ = one_op_model(c.ops[0])
        km, kcopy = one_op_model(c.ops[0])
        ksg = km.subgraphs[0]
        if len(c.ops) > 1:           # the kernel writes the chain's last output: its dtype/quant
            ksg.set_quantization(kcopy.outputs[0], c.last.outputs[0].quantization)
            ksg.set_dtype(kcopy.outputs[0], c.last.outputs[0].dtype)
        _replace(ksg, Candidate([kcopy], c.code, c.payload, c.table, kernel_inputs(kcopy, c.code)))
        cmp = compare_latency(serialize(first), serialize(km), threads=threads, rounds=10, per_round=20,
                              max_seconds=2.0)
        builtin = cmp.a.p50_us + sum(measure_latency(serialize(one_op_model(op)[0]), threads, runs=80,
                                                     max_seconds=1.0).p50_us for op in c.ops[1:])
        return builtin, cmp.b.p50_us
    except Exception:  # noqa: BLE001 - a micro-benchmark that fails only leaves the column empty
        return None


def _whole(a: Model, b: Model, ctx: Any, max_seconds: float) -> Any:
    from tflc.io import serialize
    from tflc.profiler import compare_latency
    return compare_latency(serialize(a), serialize(b), threads=ctx.run_options.threads,
                           xnnpack=ctx.run_options.xnnpack, input_source=ctx.input_source,
                           shapes=ctx.shapes or None, seed=ctx.seed, max_seconds=max_seconds)


def _with_islands(model: Model, group: list[Candidate], target: Any) -> Model | None:
    from ._islands import make_island
    from .float_islands import plan_island
    clone = model.clone()
    ops = {op.uid: op for sg in clone.subgraphs for op in sg.operators}
    made = False
    for c in group:
        for op in c.ops:
            o = ops[op.uid]
            plan, _ = plan_island(o, target)
            if plan is None:
                continue
            make_island(_subgraph_of(clone, o), o, plan.inputs, plan.outputs)
            made = True
    return clone if made else None


def _ratio(c: Any) -> dict:
    return {"ratio": round(c.ratio, 4), "ci": [round(c.ci_low, 4), round(c.ci_high, 4)], "verdict": c.verdict}


@register
class UseKernels(Pass):
    name = "use-kernels"
    description = ("run ops the delegate leaves on LiteRT's builtin kernels as exact tflc kernels where the whole "
                   "model gets faster (measured); the output then needs tflc.runtime")
    Options = UseKernelsOptions

    def run(self, model: Model, ctx) -> bool:
        from tflc.targets import get_target
        target = get_target(getattr(ctx, "target", None) or "xnnpack")
        codes = set(self.options.kernels) or None
        cands = find_candidates(model, target, codes, ctx)
        if not cands:
            return False
        tables = [c for c in cands if c.is_table]
        make_tables(tables)
        for c in cands:                      # parameter kernels: their options from the op itself
            if not c.is_table:
                try:
                    c.payload = _library().OPTIONS[c.code](c.ops[0])
                except ValueError as e:
                    c.refused = str(e)
        if self.options.fuse:
            cands = fuse_chains(cands, model)
        ok_cands = []
        for c in cands:
            ok, why = (False, c.refused) if c.refused else check_exact(c)
            if ok:
                ok_cands.append(c)
            else:
                ctx.note(f"{self.name}: refused {c.pattern} for '{c.last.output_name}': {why}")
        groups: dict[str, list[Candidate]] = {}
        for c in ok_cands:
            groups.setdefault(c.group, []).append(c)
        decisions = ctx.facts.setdefault(FACTS_KEY, [])
        changed = False
        for group, members in groups.items():
            d: dict[str, Any] = {"pattern": members[0].pattern, "ops": [c.last.output_name for c in members],
                                 "shapes": [list(c.live[0].shape or ()) for c in members][:3]}
            if not self.options.measure:
                for c in members:
                    apply(model, c)
                d["chosen"] = "kernel"
                decisions.append(d)
                changed = True
                continue
            alone = _alone_us(members[0], ctx)
            if alone:
                d["builtin_us"], d["kernel_us"] = round(alone[0], 2), round(alone[1], 2)
            with_k = model.clone()
            for c in members:
                apply(with_k, on_clone(with_k, c))
            k_cmp = _whole(model, with_k, ctx, self.options.max_seconds)
            d["kernel"] = _ratio(k_cmp)
            island = _with_islands(model, members, target) if self.options.islands else None
            i_cmp = _whole(model, island, ctx, self.options.max_seconds) if island is not None else None
            if i_cmp is not None:
                d["island"] = _ratio(i_cmp)
            kernel_wins = k_cmp.faster(0.02) and (i_cmp is None or not (i_cmp.ratio < k_cmp.ratio and i_cmp.faster(0.02)))
            if kernel_wins:
                for c in members:
                    apply(model, c)
                d["chosen"] = "kernel"
                changed = True
            elif i_cmp is not None and i_cmp.faster(0.02):
                d["chosen"] = "float island (left to float-islands)"
            else:
                d["chosen"] = "builtin"
            decisions.append(d)
            ctx.note(f"{self.name}: {d['pattern']} on {len(members)} op(s): kernel {_txt(k_cmp)}"
                     + (f", float island {_txt(i_cmp)}" if i_cmp is not None else "")
                     + (f"; alone {d['builtin_us']:.1f} -> {d['kernel_us']:.1f} us" if alone else "")
                     + f"; chose {d['chosen']}")
        if changed:
            mark_needs_tflc(model)
        return changed

    @classmethod
    def covers(cls, op: Operator, target) -> bool:
        """Would a tflc kernel run ``op``? (``tflc partition`` lists it as a rewrite.)"""
        return not target.check(op)[0] and not op.opcode.is_custom and match(op)[0] is not None


#: the metadata entry that tells a reader of the file what runs it (tools like Netron show it)
METADATA_NAME = "tflc_kernels"


def mark_needs_tflc(model: Model) -> None:
    """Say in the file that it holds tflc kernels: stock LiteRT only says "unresolved custom op"."""
    codes = sorted({op.type for op in model.operators() if op.opcode.is_custom and op.type.startswith("TFLC_")})
    text = (f"this model needs tflc.runtime: it holds tflc kernels ({', '.join(codes)}), custom ops that stock "
            "LiteRT cannot run; run it with tflc.runtime's Interpreter, a drop-in for ai_edge_litert's "
            "(pip install tflc)") if codes else None
    model.set_metadata(METADATA_NAME, text.encode() if text else None)


def _txt(c: Any) -> str:
    return f"{c.ratio:.3f}x [{c.ci_low:.3f}-{c.ci_high:.3f}] of the model's latency"
