"""Kernel benchmarks: every tflc kernel against the builtin ops it replaces, over a sweep of shapes.

For each op of the sweep (:data:`OPS`, int8, realistic per-tensor quantization) and each kernel of
the library whose ``REPLACES`` predicate accepts it (``tflc.kernels.library.REPLACES``: a kernel
added there is benchmarked as soon as an op of :data:`OPS` is one it stands for), at each shape:

* **builtin**: the one-op int8 model on LiteRT's builtin kernels (``RunOptions(xnnpack=False)``:
  the kernel LiteRT runs where XNNPACK refuses the op, which is where the kernel pass acts);
* **kernel**: the same model with the op replaced by the tflc kernel, made as the kernel pass
  makes it (``use_kernels.make_tables`` fills a table kernel's table by running the op in LiteRT on
  every value, ``library.OPTIONS`` makes a parameter kernel's options from the op,
  ``use_kernels.apply`` rewrites the op), run through tflc's kernel delegate;
* **xnnpack_int8**: the int8 model with XNNPACK, only where XNNPACK really takes the int8 op
  (LiteRT's own partitioning read back: then that, not the builtin, is what a user runs);
* **xnnpack_f32**: the float32 op at the same shapes with XNNPACK, where XNNPACK takes it (the
  float alternative: exact for nothing, but what ``float-islands`` would give);
* **copy**: ``numpy.copyto`` of a buffer of half the int8 case's bytes into another, i.e. the
  same number of bytes read plus written as the op (inputs read, output written) and the same
  footprint, timed by the same loop (``perf_counter`` around each call) in the same rounds. Its
  GB/s is the machine's memory (or cache, at small sizes) bandwidth at that size, the ceiling of a
  memory-bound elementwise kernel. At small sizes every variant is dominated by its call overhead
  (a few µs for an interpreter invocation, under one for numpy): the fraction is then an upper
  bound of what the kernel could gain, not a bandwidth.

All variants of a case run in one forked child, interleaved in rounds (variant order rotated and
reversed from round to round), so a slow phase of the machine hits all alike; the ratios are
``tflc.profiler.latency.comparison_from_rounds`` over those rounds (the arithmetic of
``compare_latency``: the median of per-round ratios of medians with a 95% bootstrap interval,
read as faster/slower only beyond the ±2% noise band). ``compare_latency`` itself times two models
under one set of run options; a case needs four of them and a copy, in the same rounds.

Before timing, the kernel's outputs are compared byte for byte with LiteRT's (random inputs, ramps
of every value, the extremes): ``exact`` in each case. The kernel pass makes a table with XNNPACK
on, so where XNNPACK takes the int8 op (SUB, MUL) the table holds XNNPACK's results, which can
differ from the builtin kernel's: ``exact`` is against XNNPACK's int8 op there (``exact_vs`` has
both). The pass only replaces ops the target refuses, where the two are the same.

A user's own kernel: register it (``tflc.kernels.register("MY_OP", kernel)``, or the ``tflc.kernels``
entry point), then either sweep it like the library's (:func:`add_kernel` says which builtin ops it
stands for and its custom options; ``run(kernels=["MY_OP"])``), or write a model holding the custom
op and a reference model of the builtin ops it replaces and compare the two with
:func:`bench_models` (``tflc bench-kernels --custom MINE.tflite --against REF.tflite``, with the
kernel registered by a plug-in's entry point so that the command finds it).

Data only: nothing here prints (``tflc.report.kernelbench_text`` renders it).
"""
from __future__ import annotations

import dataclasses
import importlib
import re
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

from .errors import RuntimeFailure, UsageError
from .io import serialize
from .ir.build import add_op, new_model
from .ir.core import Model
from .profiler.collect import SWITCH_PAUSE_S
from .schema import TYPE_CODES, fb

#: default sweep (elements of the output)
DEFAULT_SIZES = (1 << 10, 1 << 14, 1 << 18, 1 << 20)
#: last dimension of the shape of a size given as a number of elements (where it divides it)
ROW = 256

VARIANTS = ("builtin", "kernel", "xnnpack_int8", "xnnpack_f32", "copy")


@dataclass(frozen=True)
class Settings:
    rounds: int = 20
    per_round: int = 10
    warmup: int = 5
    max_seconds: float = 3.0          # per case, all variants (at least 5 rounds unless rounds < 5)
    threads: int = 1
    seed: int = 0

    @classmethod
    def quick(cls, **kw: Any) -> "Settings":
        return cls(**{**dict(rounds=6, per_round=5, warmup=2, max_seconds=0.8), **kw})


# --------------------------------------------------------------------------- the ops of the sweep

def _q(scale: float, zp: int) -> Any:
    q = fb.QuantizationParametersT()
    q.scale, q.zeroPoint = [float(scale)], [int(zp)]
    return q


def _opts(cls: str, kind: str, **fields: Any) -> Callable[[], tuple[Any, int]]:
    def make() -> tuple[Any, int]:
        o = getattr(fb, cls)()
        for k, v in fields.items():
            setattr(o, k, v)
        return o, getattr(fb.BuiltinOptions, kind)
    return make


@dataclass(frozen=True)
class OpSpec:
    """One builtin op of the sweep: its run-time inputs' and its output's int8 quantization
    (scale, zero point), its options, and the layouts it is timed in."""
    type: str
    inputs: tuple[tuple[float, int], ...]
    output: tuple[float, int]
    options: Callable[[], tuple[Any, int]] | None = None
    version: int = 1                    # the int8 op's version (as the converter writes it)
    layouts: tuple[str, ...] = ("elementwise",)

    @property
    def arity(self) -> int:
        return len(self.inputs)


_BIN = ("elementwise", "row-broadcast")
#: every op the sweep knows, by type (int8; realistic quantization: activations of a transformer)
OPS: dict[str, OpSpec] = {s.type: s for s in [
    OpSpec("GELU", ((0.05, 0),), (0.025, -121), _opts("GeluOptionsT", "GeluOptions", approximate=False), 2),
    OpSpec("HARD_SWISH", ((0.05, 0),), (0.03, -110), _opts("HardSwishOptionsT", "HardSwishOptions"), 1),
    OpSpec("TANH", ((0.05, 0),), (1 / 128, 0), None, 2),
    OpSpec("LOGISTIC", ((0.05, 0),), (1 / 256, -128), None, 2),
    OpSpec("RSQRT", ((0.02, -128),), (0.05, -128), None, 2),
    OpSpec("SQUARED_DIFFERENCE", ((0.05, 0), (0.05, 3)), (0.1, -128),
           _opts("SquaredDifferenceOptionsT", "SquaredDifferenceOptions"), 2, _BIN),
    OpSpec("SUB", ((0.05, 0), (0.04, -5)), (0.08, 0), _opts("SubOptionsT", "SubOptions"), 2, _BIN),
    OpSpec("MUL", ((0.05, 0), (0.02, 10)), (0.06, -3), _opts("MulOptionsT", "MulOptions"), 2, _BIN),
    OpSpec("MINIMUM", ((0.05, 0), (0.04, -5)), (0.05, 0), None, 2, _BIN),
    OpSpec("SOFTMAX", ((0.05, 0),), (1 / 256, -128), _opts("SoftmaxOptionsT", "SoftmaxOptions", beta=1.0), 2,
           ("rows",)),
    OpSpec("BATCH_MATMUL", ((0.05, 0), (0.02, 7)), (0.2, -4),
           _opts("BatchMatMulOptionsT", "BatchMatMulOptions", adjX=False, adjY=False), 4, ("matmul",)),
]}


# --------------------------------------------------------------------------- sizes and shapes

_SIZE = re.compile(r"^(\d+)([kKmM]?)$")


def parse_size(text: str) -> tuple[int, ...]:
    """A size of the sweep: a number of elements (``16384``, ``16K``, ``1M``: K = 1024) or a shape
    (``1x64x192``). Returns the output's shape."""
    t = text.strip()
    m = _SIZE.match(t)
    if m:
        n = int(m.group(1)) * {"": 1, "k": 1 << 10, "m": 1 << 20}[m.group(2).lower()]
        if n < 1:
            raise ValueError(f"a size is at least 1 element, not {text!r}")
        return (1, n // ROW, ROW) if n % ROW == 0 and n >= ROW else (1, n)
    parts = t.lower().split("x")
    if len(parts) < 1 or not all(p.isdigit() and int(p) > 0 for p in parts) or len(parts) > 4:
        raise ValueError(f"a size is a number of elements (16K, 1M) or a shape of rank <= 4 (1x64x192), not {text!r}")
    return tuple(int(p) for p in parts)


def parse_sizes(text: str) -> list[tuple[int, ...]]:
    items = [s for s in text.split(",") if s.strip()]
    if not items:
        raise ValueError("no size given")
    return [parse_size(s) for s in items]


def input_shapes(spec: OpSpec, layout: str, shape: tuple[int, ...]) -> list[tuple[int, ...]]:
    """The run-time inputs' shapes of ``spec`` in ``layout`` for an output of ``shape`` (matmul: the
    left operand has ``shape``, the right one is ``[.., K, K]`` with K its last dimension)."""
    if layout == "matmul":
        k = shape[-1]
        return [tuple(shape), tuple(shape[:-2]) + (k, k) if len(shape) >= 2 else (k, k)]
    if spec.arity == 1:
        return [tuple(shape)]
    if layout == "row-broadcast":
        return [tuple(shape), tuple(shape[:-1]) + (1,)]
    return [tuple(shape), tuple(shape)]


def output_shape(layout: str, shapes: list[tuple[int, ...]]) -> tuple[int, ...]:
    if layout == "matmul":
        return tuple(shapes[0][:-1]) + (shapes[1][-1],)
    return tuple(np.broadcast_shapes(*shapes))


def op_model(spec: OpSpec, shapes: list[tuple[int, ...]], out_shape: tuple[int, ...], *, dtype: str = "INT8") -> Model:
    """The one-op model of ``spec``: its inputs the graph inputs, its output the graph output;
    ``dtype`` INT8 (quantized as ``spec`` says) or FLOAT32 (the float op, no quantization)."""
    m, sg = new_model(f"tflc bench-kernels: {spec.type}")
    code = TYPE_CODES[dtype]
    quant = dtype != "FLOAT32"
    ins = [sg.new_tensor(f"x{i}", code, s, quantization=_q(*spec.inputs[i]) if quant else None)
           for i, s in enumerate(shapes)]
    out = sg.new_tensor("y", code, out_shape, quantization=_q(*spec.output) if quant else None)
    opts, kind = spec.options() if spec.options else (None, 0)
    op = add_op(sg, spec.type, ins, [out], opts, kind)
    if quant:
        sg.require_version(op, spec.version)
    sg.set_graph_inputs(ins)
    sg.set_graph_outputs([out])
    return m


# --------------------------------------------------------------------------- kernels, as the pass makes them

def _use_kernels() -> Any:
    return importlib.import_module("tflc.passes.use_kernels")


def _library() -> Any:
    return importlib.import_module("tflc.kernels.library")


@dataclass(frozen=True)
class UserKernel:
    """A kernel of your own, swept like the library's: which builtin ops it stands for
    (``replaces(op) -> (ok, reason)``, as ``library.REPLACES``) and the custom options of the custom op
    that replaces one (``options(op) -> bytes``; default none). Its kernel is registered under the
    same code (``tflc.kernels.register``)."""
    replaces: Callable[[Any], tuple[bool, str]]
    options: Callable[[Any], bytes] | None = None


#: custom code -> a user's kernel to sweep (:func:`add_kernel`)
USER_KERNELS: dict[str, UserKernel] = {}


def add_kernel(code: str, replaces: Callable[[Any], tuple[bool, str]],
               options: Callable[[Any], bytes] | None = None) -> UserKernel:
    """Sweep the kernel registered under ``code`` (``tflc.kernels.register(code, kernel)``) against
    the builtin ops ``replaces`` accepts, as the library's kernels are::

        tflc.kernels.register("MY_GELU", my_kernel)
        tflc.kernelbench.add_kernel("MY_GELU", lambda op: (op.type == "GELU", "not a GELU"))
        result = tflc.kernelbench.run(kernels=["MY_GELU"])
    """
    k = UserKernel(replaces, options)
    USER_KERNELS[code] = k
    return k


def _predicates() -> dict[str, Callable[[Any], tuple[bool, str]]]:
    preds: dict[str, Callable[[Any], tuple[bool, str]]] = dict(_library().REPLACES)
    preds.update({code: k.replaces for code, k in USER_KERNELS.items()})
    return preds


def kernel_codes() -> list[str]:
    """Every kernel that stands for builtin ops: the library's (``library.REPLACES``), then the
    user's (:func:`add_kernel`)."""
    return list(_predicates())


def kernels_for(op: Any, codes: Sequence[str] | None = None) -> tuple[list[str], dict[str, str]]:
    """The kernels whose ``REPLACES`` predicate accepts ``op``, and why each other one refuses it."""
    ok, why = [], {}
    for code, pred in _predicates().items():
        if codes and code not in codes:
            continue
        yes, reason = pred(op)
        if yes:
            ok.append(code)
        else:
            why[code] = reason
    return ok, why


def _candidate(model: Model, code: str) -> Any:
    """The pass's candidate for the one op of ``model``: a table kernel reads the op's run-time
    inputs (its constants are in the table), any other kernel every input (as ``find_candidates``)."""
    uk = _use_kernels()
    op = model.main.operators[0]
    # a user's kernel named like a table takes every input (its options come from it, not from LiteRT)
    ins = uk.kernel_inputs(op, code) if code not in USER_KERNELS else [t for t in op.inputs if t is not None]
    return uk.Candidate([op], code, live=ins)


def prepare_kernels(cands: list[Any]) -> dict[int, str]:
    """What the kernel pass does before it rewrites: a table kernel's table made by LiteRT
    (``make_tables``, one isolated child for all); a parameter kernel's options from the op
    (``library.OPTIONS[code](op)``); a user's kernel's by its ``options``. Returns, by ``id`` of
    candidate, why one could not be made (the op's parameters refused: ValueError)."""
    uk = _use_kernels()
    tables = {c.code for c in cands if uk.is_table(c.code) and c.code not in USER_KERNELS}
    uk.make_tables([c for c in cands if c.code in tables])
    options = getattr(_library(), "OPTIONS", {})
    refused: dict[int, str] = {}
    for c in cands:
        user = USER_KERNELS.get(c.code)
        make = (user.options if user is not None else options.get(c.code)) if c.code not in tables else None
        if make is None:
            continue
        try:
            c.payload = bytes(make(c.ops[0]))
        except ValueError as e:
            refused[id(c)] = str(e)
    return refused


def kernel_model(int8: Model, code: str, made: Any) -> bytes:
    """``int8`` (a fresh one-op model) with its op replaced by the kernel ``code``, whose table or
    options ``made`` (a prepared candidate of the same op at any shape) holds."""
    uk = _use_kernels()
    c = _candidate(int8, code)
    c.table, c.payload, c.steps = made.table, made.payload, list(made.steps)
    uk.apply(int8, c)
    return serialize(int8)


# --------------------------------------------------------------------------- cases

@dataclass
class Case:
    kernel: str
    op: str
    layout: str
    shapes: list[tuple[int, ...]]
    out_shape: tuple[int, ...]
    builtin: bytes = b""
    kernel_model: bytes = b""
    float_model: bytes = b""
    inputs: list[np.ndarray] = field(default_factory=list)
    float_inputs: list[np.ndarray] = field(default_factory=list)
    error: str = ""

    @property
    def elements(self) -> int:
        return int(np.prod(self.out_shape))

    @property
    def bytes(self) -> int:
        """Bytes the int8 op moves: every input read once, the output written once."""
        return int(sum(np.prod(s) for s in self.shapes)) + self.elements

    @property
    def name(self) -> str:
        return f"{self.kernel}:{self.op}:{self.layout}:{'x'.join(map(str, self.out_shape))}"


def _inputs(spec: OpSpec, shapes: list[tuple[int, ...]], seed: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
    rng = np.random.default_rng(seed)
    q = [rng.integers(-128, 128, size=s, dtype=np.int64).astype(np.int8) for s in shapes]
    f = [((x.astype(np.float32) - zp) * np.float32(scale)).astype(np.float32)
         for x, (scale, zp) in zip(q, spec.inputs)]
    return q, f


def plan_cases(sizes: Sequence[tuple[int, ...]] = (), ops: Sequence[str] | None = None,
               kernels: Sequence[str] | None = None, seed: int = 0) -> tuple[list[Case], list[dict]]:
    """The cases of the sweep (models not built yet) and, for the ops no selected kernel
    replaces, why: ``[{"op", "layout", "reasons": {code: why}}]``."""
    sizes = list(sizes) or [parse_size(str(n)) for n in DEFAULT_SIZES]
    chosen = [OPS[o] for o in (ops or list(OPS))]
    cases, uncovered = [], []
    for spec in chosen:
        for layout in spec.layouts:
            for shape in sizes:
                shapes = input_shapes(spec, layout, shape)
                out = output_shape(layout, shapes)
                int8 = op_model(spec, shapes, out)
                codes, why = kernels_for(int8.main.operators[0], kernels)
                if not codes:
                    if not any(u["op"] == spec.type and u["layout"] == layout for u in uncovered):
                        uncovered.append({"op": spec.type, "layout": layout, "shape": list(out), "reasons": why})
                    continue
                for code in codes:
                    cases.append(Case(code, spec.type, layout, shapes, out))
    return cases, uncovered


def build_cases(cases: list[Case], seed: int = 0) -> None:
    """Make each case's three models and its inputs; a case that cannot be made gets ``error``."""
    # a fixed-size table (TFLC_LUT8, TFLC_LUT8X8) depends on the op's quantization, not on its shape:
    # one per (kernel, op), made by LiteRT in one child for all; any other kernel's parameters (a
    # per-channel table's too) are made for each case at its own shapes
    tables = set(importlib.import_module("tflc.kernels.lut").TABLE_SIZE) - set(USER_KERNELS)
    made: dict[Any, Any] = {}
    for c in cases:
        key: Any = (c.kernel, c.op) if c.kernel in tables else id(c)
        if key not in made:
            made[key] = _candidate(op_model(OPS[c.op], c.shapes, c.out_shape), c.kernel)
    try:
        refused = prepare_kernels(list(made.values()))
    except RuntimeFailure as e:
        for c in cases:
            c.error = f"the kernel pass could not make the kernels ({e})"
        return
    for c in cases:
        spec = OPS[c.op]
        key = (c.kernel, c.op) if c.kernel in tables else id(c)
        if id(made[key]) in refused:
            c.error = f"the kernel refuses the op's parameters: {refused[id(made[key])]}"
            continue
        try:
            c.builtin = serialize(op_model(spec, c.shapes, c.out_shape))
            c.kernel_model = kernel_model(op_model(spec, c.shapes, c.out_shape), c.kernel, made[key])
            c.float_model = serialize(op_model(spec, c.shapes, c.out_shape, dtype="FLOAT32"))
        except Exception as e:  # noqa: BLE001 - one case that cannot be made is a row with its reason
            c.error = f"cannot build it: {type(e).__name__}: {e}"
            continue
        c.inputs, c.float_inputs = _inputs(spec, c.shapes, seed)


# --------------------------------------------------------------------------- measuring (in a child)

@dataclass
class Variant:
    name: str
    model: bytes
    xnnpack: bool
    inputs: list[np.ndarray] | None        # None: generated from the model's inputs (seeded)
    only_if_delegated: bool = False        # time it only where XNNPACK takes the op


def _patterns(inputs: list[np.ndarray]) -> list[list[np.ndarray]]:
    """Inputs for the exactness check besides the random ones: ramps (every value at every
    position mod 256; a second input offset and strided, so that pairs differ), and the extremes."""
    out = []
    for k in (0, 1):
        arrays = []
        for j, x in enumerate(inputs):
            n = x.size
            v = (np.arange(n, dtype=np.int64) * (1 + 16 * j * k) + 37 * j) % 256 - 128
            arrays.append(v.astype(x.dtype).reshape(x.shape))
        out.append(arrays)
    for v in (np.iinfo(np.int8).min, np.iinfo(np.int8).max):
        out.append([np.full(x.shape, v, x.dtype) for x in inputs])
    return out


def _timed(fn: Callable[[], Any], n: int) -> list[float]:
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t0) * 1e6)
    return out


def _measure_child(variants: list[Variant], copy_bytes: int, exact_pairs: list[tuple[str, str]],
                   settings: Settings) -> dict:
    """In the forked child: open every variant, check exactness, then time them all (and the
    copy) in interleaved rounds. Returns rounds per variant and what was found."""
    from .runtime import RunOptions, Session
    from .runtime.delegation import delegate_partitions
    from .runtime.inputs import generate
    found: dict[str, Any] = {"skipped": {}, "exact": {}}
    sessions: dict[str, Any] = {}
    given: dict[str, list[np.ndarray]] = {}
    shared: list[np.ndarray] | None = None
    for v in variants:
        s = Session(v.model, RunOptions(threads=settings.threads, xnnpack=v.xnnpack), name=v.name)
        ins = v.inputs
        if ins is None:
            shared = shared if shared is not None else generate(s.input_details, steps=1, seed=settings.seed)[0]
            ins = shared
        s.run(ins)
        if v.only_if_delegated and not delegate_partitions(s.interp):
            found["skipped"][v.name] = "XNNPACK does not take the op"
            continue
        sessions[v.name], given[v.name] = s, ins
    for a, b in exact_pairs:
        if a not in sessions or b not in sessions:
            continue
        sa, sb = sessions[a], sessions[b]
        same = True
        for arrays in ([given[a]] + (_patterns(given[a]) if given[a] is not None else [])):
            ya, yb = sa.run(arrays), sb.run(arrays)
            if any(u.shape != w.shape or u.tobytes() != w.tobytes() for u, w in zip(ya, yb)):
                same = False
                break
        found["exact"][f"{b}/{a}"] = same
        sa.run(given[a])
        sb.run(given[b])
    found["out_bytes"] = {k: int(sum(np.asarray(o).nbytes for o in s.run(given[k]))) for k, s in sessions.items()}
    found["in_bytes"] = {k: int(sum(np.asarray(x).nbytes for x in given[k])) for k in sessions}
    calls: dict[str, Callable[[], Any]] = {k: s.interp.invoke for k, s in sessions.items()}
    if copy_bytes > 0:
        src = np.random.default_rng(1).integers(0, 256, size=max(1, copy_bytes // 2), dtype=np.uint8)
        dst = np.empty_like(src)
        calls["copy"] = lambda: np.copyto(dst, src)
    names = list(calls)
    # several threads: one runtime's idle workers spin a while after its last job (as compare_latency)
    pause = 0.0 if settings.threads == 1 else SWITCH_PAUSE_S
    for k in names:
        _timed(calls[k], settings.warmup)
    rounds: dict[str, list[list[float]]] = {k: [] for k in names}
    t0 = time.perf_counter()
    for r in range(settings.rounds):
        order = names[r % len(names):] + names[:r % len(names)]
        if r % 2:
            order = order[::-1]
        for k in order:
            if pause:
                time.sleep(pause)
                calls[k]()
            rounds[k].append(_timed(calls[k], settings.per_round))
        if r + 1 >= min(5, settings.rounds) and time.perf_counter() - t0 > settings.max_seconds:
            break
    found["rounds"] = rounds
    return found


def _ratio(ra: list[list[float]] | None, rb: list[list[float]] | None, settings: Settings) -> dict | None:
    """B against A over the same rounds (``comparison_from_rounds``)."""
    from .profiler.latency import comparison_from_rounds
    if not ra or not rb:
        return None
    c = comparison_from_rounds(ra, rb, threads=settings.threads)
    return {"ratio": c.ratio, "ci_low": c.ci_low, "ci_high": c.ci_high, "verdict": c.verdict, "rounds": c.rounds}


def _p50(rounds: list[list[float]] | None) -> float | None:
    if not rounds:
        return None
    return float(np.median([t for r in rounds for t in r]))


def _gbps(nbytes: int | None, us: float | None) -> float | None:
    return nbytes / (us * 1e3) if nbytes and us else None


def measure(variants: list[Variant], copy_bytes: int, exact_pairs: list[tuple[str, str]], settings: Settings,
            what: str) -> dict:
    from .runtime.isolate import run_isolated
    return run_isolated(_measure_child, variants, copy_bytes, exact_pairs, settings, what=what,
                        timeout=120.0 + 20.0 * settings.max_seconds)


def measure_case(c: Case, settings: Settings) -> dict:
    """One case measured: its row of the result (see :func:`run`)."""
    row: dict[str, Any] = {"kernel": c.kernel, "op": c.op, "layout": c.layout, "shapes": [list(s) for s in c.shapes],
                           "out_shape": list(c.out_shape), "elements": c.elements, "bytes": c.bytes}
    if c.error:
        return {**row, "error": c.error}
    variants = [Variant("builtin", c.builtin, False, c.inputs),
                Variant("kernel", c.kernel_model, True, c.inputs),
                Variant("xnnpack_int8", c.builtin, True, c.inputs, only_if_delegated=True),
                Variant("xnnpack_f32", c.float_model, True, c.float_inputs, only_if_delegated=True)]
    try:
        found = measure(variants, c.bytes, [("builtin", "kernel"), ("xnnpack_int8", "kernel"),
                                            ("builtin", "xnnpack_int8")], settings, what=f"timing {c.name}")
    except RuntimeFailure as e:
        return {**row, "error": str(e).splitlines()[0] if str(e) else type(e).__name__}
    rounds = found["rounds"]
    moved = {k: found["in_bytes"][k] + found["out_bytes"][k] for k in found["in_bytes"]}
    moved["copy"] = 2 * max(1, c.bytes // 2)
    us = {k: _p50(rounds.get(k)) for k in VARIANTS}
    gbps = {k: _gbps(moved.get(k), us[k]) for k in VARIANTS}
    gbps_int8 = {k: _gbps(c.bytes, us[k]) for k in VARIANTS}
    to_copy = _ratio(rounds.get("copy"), rounds.get("kernel"), settings)
    row.update({
        # bit-identical to what LiteRT runs by default: XNNPACK's int8 op where it takes it (the kernel
        # pass makes tables with XNNPACK on, and replaces only ops the target refuses), else the builtin
        "exact": found["exact"].get("kernel/xnnpack_int8", found["exact"].get("kernel/builtin")),
        "exact_vs": {"builtin": found["exact"].get("kernel/builtin"),
                     "xnnpack_int8": found["exact"].get("kernel/xnnpack_int8")},
        "xnnpack_int8_vs_builtin_exact": found["exact"].get("xnnpack_int8/builtin"),
        "us": us,
        "bytes_moved": moved,
        "gbps": gbps,
        # the int8 op's bytes per time for every variant (the float op moves 4x as many): a speed scale
        # on which the copy is the ceiling of a memory-bound int8 kernel
        "gbps_int8": gbps_int8,
        "kernel_vs_builtin": _ratio(rounds.get("builtin"), rounds.get("kernel"), settings),
        "kernel_vs_xnnpack_int8": _ratio(rounds.get("xnnpack_int8"), rounds.get("kernel"), settings),
        "kernel_vs_xnnpack_f32": _ratio(rounds.get("xnnpack_f32"), rounds.get("kernel"), settings),
        "kernel_vs_copy": to_copy,
        # the kernel's GB/s over the copy's at the same bytes: the copy's time over the kernel's
        "copy_fraction": (us["copy"] / us["kernel"]) if us["copy"] and us["kernel"] else None,
        "skipped": found["skipped"],
        "rounds": len(rounds.get("kernel") or []),
    })
    return row


# --------------------------------------------------------------------------- the machine

from .runtime.machine import machine  # noqa: E402,F401  (the report's "machine"; kb.machine() for callers)


# --------------------------------------------------------------------------- entry points

def check_filters(ops: Sequence[str] | None,
                  kernels: Sequence[str] | None) -> tuple[list[str] | None, list[str] | None]:
    """``ops``/``kernels`` normalized (op types upper case); UsageError for an unknown one."""
    out_ops = None
    if ops:
        out_ops = []
        for o in ops:
            t = o.strip().upper()
            if t not in OPS:
                raise UsageError(f"--op {o}: not an op of the sweep (choose from {', '.join(OPS)})")
            out_ops.append(t)
    out_k = None
    if kernels:
        known = kernel_codes()
        out_k = []
        for k in kernels:
            code = k.strip()
            match = [c for c in known if c.upper() == code.upper()]
            if not match:
                raise UsageError(f"--kernel {k}: not a kernel that replaces builtin ops "
                                 f"(choose from {', '.join(known)})")
            out_k.append(match[0])
    return out_ops, out_k


def run(sizes: Sequence[tuple[int, ...]] = (), ops: Sequence[str] | None = None,
        kernels: Sequence[str] | None = None, settings: Settings = Settings(),
        progress: Callable[[str], None] | None = None) -> dict:
    """Benchmark the kernels of the library against the builtin ops they replace.

    Returns ``{"machine", "settings", "sizes", "cases": [row], "uncovered": [...], "unbenchmarked":
    {code: why}}``; a row: ``kernel, op, layout, shapes, out_shape, elements, bytes`` (int8 bytes
    moved: inputs + output), ``exact`` (the kernel's bytes equal LiteRT's: XNNPACK's int8 op where
    it takes the op, else the builtin's; ``exact_vs`` each), ``us``/``gbps``/``bytes_moved`` per
    variant (builtin, kernel, xnnpack_int8, xnnpack_f32, copy; None where not run), ``gbps_int8``
    (the int8 op's bytes over each variant's time: one speed scale for all), ``kernel_vs_builtin``/
    ``kernel_vs_xnnpack_int8``/``kernel_vs_xnnpack_f32``/``kernel_vs_copy`` (``ratio`` = kernel time /
    the other's, ``ci_low``, ``ci_high``,
    ``verdict``, ``rounds``), ``copy_fraction`` (kernel GB/s / copy GB/s), ``skipped`` (variants
    not run, why), or ``error`` alone.
    """
    ops, kernels = check_filters(ops, kernels)
    sizes = list(sizes) or [parse_size(str(n)) for n in DEFAULT_SIZES]
    cases, uncovered = plan_cases(sizes, ops, kernels, settings.seed)
    if progress:
        progress(f"making {len(cases)} kernel model(s)")
    build_cases(cases, settings.seed)
    rows = []
    for c in cases:
        if progress:
            progress(f"{c.op} {c.layout} {'x'.join(map(str, c.out_shape))} ({c.kernel})")
        rows.append(measure_case(c, settings))
    seen = {r["kernel"] for r in rows}
    unbenchmarked = {code: "no op of the sweep is one it replaces (tflc.kernelbench.OPS has none it accepts)"
                     for code in (kernels or kernel_codes()) if code not in seen}
    return {"machine": machine(), "settings": dataclasses.asdict(settings),
            "sizes": [list(s) for s in sizes], "cases": rows, "uncovered": uncovered,
            "unbenchmarked": unbenchmarked}


def count_cases(sizes: Sequence[tuple[int, ...]] = (), ops: Sequence[str] | None = None,
                kernels: Sequence[str] | None = None) -> int:
    """How many cases :func:`run` will measure (for a progress bar)."""
    ops, kernels = check_filters(ops, kernels)
    return len(plan_cases(sizes, ops, kernels)[0])


def bench_models(model: bytes, reference: bytes, settings: Settings = Settings(), *, xnnpack: bool = True,
                 name: str = "custom") -> dict:
    """A model holding custom ops (its kernels registered: ``tflc.kernels.register``) against a
    reference model of the builtin ops they replace, on the same generated inputs, with a copy of
    the model's input + output bytes. Returns one row like :func:`run`'s (``kernel``: the model,
    ``builtin``: the reference; both run with XNNPACK unless ``xnnpack`` is False)."""
    variants = [Variant("builtin", reference, xnnpack, None), Variant("kernel", model, xnnpack, None)]
    probe = measure(variants, 0, [("builtin", "kernel")], Settings(rounds=1, per_round=1, warmup=0,
                                                                 threads=settings.threads, seed=settings.seed),
                    what=f"opening {name}")
    nbytes = probe["in_bytes"]["kernel"] + probe["out_bytes"]["kernel"]
    found = measure(variants, nbytes, [("builtin", "kernel")], settings, what=f"timing {name}")
    rounds = found["rounds"]
    moved = {k: found["in_bytes"][k] + found["out_bytes"][k] for k in found["in_bytes"]}
    moved["copy"] = 2 * max(1, nbytes // 2)
    us = {k: _p50(rounds.get(k)) for k in ("builtin", "kernel", "copy")}
    return {"kernel": name, "op": "model", "layout": "model", "bytes": nbytes,
            "exact": found["exact"].get("kernel/builtin"),
            "us": us, "bytes_moved": moved, "gbps": {k: _gbps(moved.get(k), us[k]) for k in us},
            "gbps_int8": {k: _gbps(nbytes, us[k]) for k in us},
            "kernel_vs_builtin": _ratio(rounds.get("builtin"), rounds.get("kernel"), settings),
            "kernel_vs_copy": _ratio(rounds.get("copy"), rounds.get("kernel"), settings),
            "copy_fraction": (us["copy"] / us["kernel"]) if us["copy"] and us["kernel"] else None,
            "rounds": len(rounds.get("kernel") or []), "skipped": found["skipped"]}
