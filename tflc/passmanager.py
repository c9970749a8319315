"""The pass manager: runs a pipeline of passes over a Model, verifying and measuring each.

A ``PassManager`` is itself a pass: a sequence of passes, run once or, with ``max_iterations``,
repeated until no pass changes the model (bounded). Managers nest, so a pass made of phases
(``cancel-transposes``) is a small manager, and ``run_pipeline`` runs the top-level one.

After every pass the IR verifier runs (it names the pass that broke an invariant), and the
analyses the pass did not declare preserved (``Pass.preserves``) are invalidated. With
``verify_each`` the model is also written and run in LiteRT against the input model, and the
first pass whose outputs exceed its tolerance is named. Each top-level pass gets timing and
before/after statistics (ops, tensors, constant bytes) in the report.

The optimization levels live here too (``LEVELS``): which passes each runs and whether the
latency guard is on by default. A level naming a pass that is not registered is an error.
"""
from __future__ import annotations

import dataclasses
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from .analyses import AnalysisManager
from .errors import RuntimeFailure, UsageError, VerificationError
from .io import write_model
from .ir.core import Model
from .ir.verify import verify
from .passes_api import Pass, PassManager, check_needs, get_pass, run_pass  # noqa: F401  (PassManager re-exported)
from .runtime import RunOptions, RunResult

_O1 = ["fold-float16-weights", "fold-constants", "remove-identity", "fuse-activations", "fold-affine", "fold-pad",
       "cancel-transposes", "simplify-layer-norm", "remove-dead-code", "restore-float16-weights"]


@dataclass(frozen=True)
class Level:
    """An optimization level: its passes, whether the latency guard runs by default, what it is for."""

    name: str
    passes: tuple[str, ...]
    latency_guard: bool
    help: str


#: The levels, in order. ``tflc passes`` and ``tflc optimize --help`` are generated from these.
LEVELS: dict[str, Level] = {lvl.name: lvl for lvl in (
    Level("O0", (), False, "no passes: a pure, lossless rewrite (structure and outputs identical)"),
    Level("O1", tuple(_O1), False, "safe float simplifications (folding, identity removal, activation/affine/pad "
          "fusion, layout clean-up, layer norms rewritten; within 1e-5 where not bit-identical)"),
    Level("O2", tuple(_O1[:1] + ["specialize-shapes"] + _O1[1:]), True, "-O1 plus shape specialization "
          "(--input-shape) and the latency guard: the result is timed against IN in LiteRT and passes that slow "
          "it down are dropped"),
)}
#: what ``--target`` adds to a level, before its clean-up passes: rewrites that raise the target's
#: coverage (the target's rules decide where each applies). The lossless ones first (each proved
#: bit-identical in LiteRT, so they also run at --tolerance 0), then float-islands for what is left
TARGET_PASSES: tuple[str, ...] = ("split-requantize", "exact-islands", "float-islands")
#: what --kernels adds: tflc kernels for the ops the target leaves on LiteRT's builtin kernels
KERNEL_PASS = "use-kernels"

#: what ``--quantize MODE`` adds, before the level's clean-up passes (MODE with options, e.g.
#: ``int8{io=int8,percentile=99.99}``: the options of the mode's quantizer, its first pass). ``int8``:
#: quantize-int8, then float-islands (the int8 ops the target leaves on the CPU run in float inside
#: its partition); ``dynamic``: quantize-dynamic (int8 per-channel weights, float activations, where
#: XNNPACK takes the op so); ``fp16``: quantize-fp16 (float16 weights). Each is judged by SQNR.
QUANTIZE_PASSES: dict[str, tuple[str, ...]] = {"int8": ("quantize-int8", "float-islands"),
                                               "int16x8": ("quantize-int16x8",),
                                               "dynamic": ("quantize-dynamic",),
                                               "fp16": ("quantize-fp16",)}

#: level name -> pass names (kept for callers that only need the names)
PIPELINES: dict[str, list[str]] = {name: list(lvl.passes) for name, lvl in LEVELS.items()}


def get_level(level: str) -> Level:
    if level not in LEVELS:
        raise UsageError(f"unknown optimization level {level!r} (choose from {', '.join(LEVELS)})")
    return LEVELS[level]


def pipeline_passes(level: str) -> list[Pass]:
    """The configured passes of ``level``; a level naming an unregistered pass is an error."""
    return [get_pass(n)() for n in get_level(level).passes]


@dataclass
class Plan:
    """What ``tflc optimize`` will run: the passes, those a level left out for the tolerance asked
    for, the output tolerance the result is checked against, and whether the latency guard runs."""

    passes: list[Pass]
    level: str | None
    skipped: list[Pass]
    tolerance: float
    latency_guard: bool
    #: quantization steps an integer output may move (the most any pass declares)
    quant_steps: int = 0
    #: a quantizing pipeline is judged by each output's SQNR against the float model (dB), not by
    #: ``tolerance`` (the most any pass declares; None: no quantizer)
    min_sqnr_db: float | None = None


def quantize_passes(mode: str) -> list[Pass]:
    """The passes ``--quantize MODE`` adds: ``int8``, ``dynamic`` or ``fp16``, optionally with the options of
    the mode's quantizer (``int8{opt=val,...}``)."""
    from .passes_api import parse_pipeline
    kind, brace, rest = mode.partition("{")
    if kind not in QUANTIZE_PASSES:
        raise UsageError(f"unknown --quantize mode {kind!r} (choose from {', '.join(QUANTIZE_PASSES)}, or auto)")
    first, *others = QUANTIZE_PASSES[kind]
    return parse_pipeline(first + brace + rest) + [get_pass(n)() for n in others]


def plan_pipeline(*, level: str | None = "O2", passes: "str | Sequence[Pass] | None" = None,
                  tolerance: float | None = None, latency_guard: bool | None = None,
                  default_tolerance: float = 1e-5, target: str | None = None, quantize: str | None = None,
                  kernels: bool = False) -> Plan:
    """The one place that turns a level (or an explicit pass list) and the user's options into a plan.

    A level adapts to ``tolerance``: its passes that may change outputs by more are skipped (an
    explicit list is taken as asked). The check tolerance is ``tolerance`` if given, else 0 for a
    lossless pipeline, else the largest of ``default_tolerance`` and what the passes declare. The
    latency guard runs if asked, else as the level says (never for an explicit list).
    ``kernels`` adds ``use-kernels``: after the target's lossless coverage rewrites and before
    ``float-islands`` where ``target`` brought them (exact kernels and islands then compete), else
    before the clean-up.
    """
    from .passes_api import parse_pipeline
    if isinstance(passes, str):
        pipeline, level = parse_pipeline(passes), None
    elif passes is not None:
        pipeline, level = list(passes), None
    else:
        pipeline = pipeline_passes(level or "O0")
        if target is not None and pipeline:            # -O0 stays a pure rewrite
            at = next((i for i, p in enumerate(pipeline) if p.name == "remove-dead-code"), len(pipeline))
            pipeline[at:at] = [get_pass(n)() for n in TARGET_PASSES]
    if quantize is not None:                           # before the clean-up (also after an explicit list)
        pipeline = list(pipeline)
        have = {q.name for q in pipeline}
        extra = [p for p in quantize_passes(quantize) if p.quantizes or p.name not in have]
        at = next((i for i, p in enumerate(pipeline) if p.name == "remove-dead-code"), None)
        if at is None:
            pipeline += extra + [get_pass("remove-dead-code")()]
        else:
            coverage = [i for i, p in enumerate(pipeline[:at]) if p.name in TARGET_PASSES]
            at = coverage[0] if coverage else at    # the quantizer goes before --target's rewrites
            pipeline[at:at] = extra
    if kernels:
        pipeline = list(pipeline)
        names = [p.name for p in pipeline]
        if KERNEL_PASS not in names:
            at = (names.index("float-islands") if "float-islands" in names else
                  names.index("exact-islands") + 1 if "exact-islands" in names else
                  names.index("remove-dead-code") if "remove-dead-code" in names else len(pipeline))
            pipeline.insert(at, get_pass(KERNEL_PASS)())
    skipped: list[Pass] = []
    if level is not None and tolerance is not None:
        skipped = [p for p in pipeline if p.tolerance > tolerance]
        pipeline = [p for p in pipeline if p.tolerance <= tolerance]
    for p in pipeline:        # use-kernels leaves an op to float-islands only where that pass runs
        if p.name == KERNEL_PASS and level is not None:
            p.options.islands = any(q.name == "float-islands" for q in pipeline)
    lossless = all(p.tolerance == 0.0 for p in pipeline)
    budget = tolerance if tolerance is not None else (
        0.0 if lossless else max([default_tolerance] + [p.tolerance for p in pipeline]))
    guard = latency_guard if latency_guard is not None else (level is not None and get_level(level).latency_guard)
    sqnr = [float(p.min_sqnr_db) for p in pipeline if getattr(p, "min_sqnr_db", None) is not None]
    return Plan(pipeline, level, skipped, budget, guard, max([0] + [p.quant_steps for p in pipeline]),
                max(sqnr) if sqnr else None)


@dataclass
class PassContext:
    """What a pass may use besides the model: runtime settings, inputs, analyses, a log."""

    run_options: RunOptions = field(default_factory=RunOptions)
    input_source: str | None = None          # .npz / image folder; None: generated inputs
    #: calibration samples (.npz, first axis = sample) for the ``calibration`` analysis (--calibration)
    calibration: str | None = None
    steps: int = 3
    seed: int = 0
    shapes: dict[str, tuple[int, ...]] = field(default_factory=dict)
    reference: str | None = None             # path of the input model (numeric checks)
    analyses: AnalysisManager = field(default_factory=AnalysisManager)
    #: the delegate target the model is optimized for (``tflc.targets``; the ``partition`` analysis)
    target: str | None = None
    #: settings of the ``profile`` analysis (``tflc.profiler.get_profile`` keywords: views, runs, ...)
    profile_options: dict[str, Any] = field(default_factory=dict)
    messages: list[str] = field(default_factory=list)
    #: what one pass tells a later one (e.g. which weights were float16 before folding)
    facts: dict[str, Any] = field(default_factory=dict)
    #: overall output tolerance (relative) of the pipeline, checked by --verify-each after each pass
    tolerance: float | None = None
    #: the pipeline being run (its passes' declared quantization steps bound --verify-each's check)
    pipeline: list = field(default_factory=list)
    _ref_result: RunResult | None = None
    _prev_result: RunResult | None = None

    def note(self, msg: str) -> None:
        """A remark for the report (e.g. why a rewrite was not applied)."""
        self.messages.append(msg)


@dataclass
class PassRecord:
    name: str
    changed: bool
    seconds: float
    before: dict[str, int]
    after: dict[str, int]
    notes: list[str] = field(default_factory=list)
    max_rel_error: float | None = None       # with verify_each
    invalidated: list[str] = field(default_factory=list)   # analyses dropped after the pass


def run_pipeline(model: Model, passes: Sequence[Pass], ctx: PassContext, *, verify_each: bool = False,
                 on_pass: Callable[[PassRecord], None] | None = None) -> list[PassRecord]:
    """Run ``passes`` once each, in order (the top-level manager), with a record per pass."""
    for p in passes:                       # before any work: a missing analysis or data fails fast
        check_needs(p, ctx)
    records = []
    for p in passes:
        before = model.stats()
        n_msgs = len(ctx.messages)
        t0 = time.perf_counter()
        changed, invalidated = run_pass(p, model, ctx)
        dt = time.perf_counter() - t0
        rec = PassRecord(p.name, changed, dt, before, model.stats(), ctx.messages[n_msgs:], invalidated=invalidated)
        if verify_each and ctx.reference is not None:
            rec.max_rel_error = _numeric_check(model, p, ctx)
        records.append(rec)
        if on_pass:
            on_pass(rec)
    return records


def sqnr_violation(cmp: Any, min_db: float) -> str | None:
    """The first output whose SQNR against the reference is under ``min_db`` (a quantized result), or None.
    The SQNR is pooled over the steps (``Comparison.pooled``): one step on which an output is near
    silent (a segmentation mask of a crop with no person, a presence score of 0.001) has an SQNR
    far below 0 dB for an error nobody would call broken."""
    over = f" over {cmp.steps} samples" if cmp.pooled and cmp.steps > 1 else ""
    for d in cmp.pooled or cmp.diffs:
        if not d.sqnr_db >= min_db:                 # NaN is out of bounds too
            return (f"output '{d.name}' has an SQNR of {d.sqnr_db:.1f} dB{over} against the input model's, under the "
                    f"{min_db:g} dB required")
    return None


def _numeric_check(model: Model, p: Pass, ctx: PassContext) -> float:
    """Run the model after ``p`` on the input's inputs. ``p`` is judged against the model before
    it (its own tolerance: an earlier lossy pass is not blamed on a later exact one); the result
    so far is judged against the input model with the pipeline's overall tolerance."""
    from .runtime import compare_results, run_model
    if ctx._ref_result is None:
        ctx._ref_result = run_model(ctx.reference, options=ctx.run_options, source=ctx.input_source,
                                    steps=ctx.steps, seed=ctx.seed, shapes=ctx.shapes,
                                    what="LiteRT on the input model")
    prev = ctx._prev_result or ctx._ref_result
    with tempfile.TemporaryDirectory(prefix="tflc-verify-") as d:
        path = Path(d) / "after.tflite"
        write_model(model, path)
        try:
            got = run_model(str(path), options=ctx.run_options, inputs=ctx._ref_result.inputs,
                            what=f"LiteRT after pass '{p.name}'")
        except RuntimeFailure as e:
            raise VerificationError(f"pass '{p.name}' broke the model: {e}") from None
    step = compare_results(prev, got)
    budget = max(p.tolerance, 0.0)
    own_sqnr = getattr(p, "min_sqnr_db", None)
    bad = sqnr_violation(step, own_sqnr) if own_sqnr is not None else step.violation(budget, p.quant_steps)
    if bad is not None:
        allows = f"an SQNR of {own_sqnr:g} dB or more" if own_sqnr is not None else (
            "bit-identical only") if budget == 0 and not p.quant_steps else (
            f"{budget:g}" + (f" or {p.quant_steps} quantization step(s)" if p.quant_steps else ""))
        raise VerificationError(f"pass '{p.name}' broke the model: {bad.replace('the input model', 'the model before it')}"
                                f"; the pass allows {allows}")
    total = compare_results(ctx._ref_result, got)
    steps = max([0] + [q.quant_steps for q in ctx.pipeline])
    sqnr = [float(q.min_sqnr_db) for q in ctx.pipeline if getattr(q, "min_sqnr_db", None) is not None]
    if sqnr:                                # a quantizing pipeline: judged by SQNR against the input
        bad = sqnr_violation(total, max(sqnr))
    else:
        bad = total.violation(ctx.tolerance, steps) if ctx.tolerance is not None else None
    if bad is not None:
        raise VerificationError(f"after pass '{p.name}' {bad}")
    ctx._prev_result = got
    return total.worst_rel()


@dataclass
class GuardReport:
    """What the -O2 latency guard measured, and the passes it dropped.

    Every number comes from one comparison (the last one made: the result against the input):
    ``ratio`` is its median per-round ratio, ``input_us`` / ``output_us`` the p50s of the same
    runs, and ``p50_ratio`` their ratio, printed beside ``ratio`` so that the two can be checked
    against each other (they agree to within the rounds' spread)."""

    ratio: float                              # optimized / input latency (median per-round ratio)
    ci: tuple[float, float]
    input_us: float                           # p50 of the input's runs, in the same rounds
    output_us: float                          # p50 of the result's runs, in the same rounds
    dropped: list[dict] = field(default_factory=list)
    rounds: int = 0                           # paired rounds behind the ratio
    #: quantizers the replay kept without timing them: the user asked for them (--quantize MODE)
    kept: list[str] = field(default_factory=list)

    @classmethod
    def of(cls, c: Any) -> "GuardReport":
        """The report of one ``LatencyComparison`` (b: the result, a: the input)."""
        return cls(c.ratio, (c.ci_low, c.ci_high), c.a.p50_us, c.b.p50_us, rounds=getattr(c, "rounds", 0))

    def measured(self, c: Any) -> None:
        """Take every number from comparison ``c``, keeping the dropped passes."""
        self.ratio, self.ci, self.rounds = c.ratio, (c.ci_low, c.ci_high), getattr(c, "rounds", 0)
        self.input_us, self.output_us = c.a.p50_us, c.b.p50_us

    @property
    def p50_ratio(self) -> float | None:
        return self.output_us / self.input_us if self.input_us else None

    @property
    def warning(self) -> str | None:
        """A slower result kept because a quantizer the user asked for made it (None otherwise)."""
        if not self.kept or self.verdict != "slower":
            return None
        return (f"warning: the written model is slower than the input in LiteRT (ratio {self.ratio:.3f}); "
                f"{', '.join(self.kept)} is kept because --quantize asked for it (--quantize auto chooses the "
                "mode by speed within its accuracy target)")

    @property
    def verdict(self) -> str:
        from .profiler.paired import reading
        return reading(*self.ci)

    def to_json(self) -> dict:
        return {"ratio": self.ratio, "ci": list(self.ci), "rounds": self.rounds, "input_us": self.input_us,
                "output_us": self.output_us, "p50_ratio": self.p50_ratio, "verdict": self.verdict,
                "dropped": self.dropped, "kept_quantizers": self.kept}


def guard_latency(original: Model, optimized: Model, passes: Sequence[Pass], ctx: PassContext,
                  margin: float = 0.02, compare: Callable[[Model, Model], Any] | None = None,
                  ) -> tuple[Model, GuardReport]:
    """Keep the pipeline's result only where it is not slower in LiteRT.

    One interleaved A/B measurement of the whole result decides in the common case. If the
    result is slower (95% confidence, beyond ``margin``), the passes are replayed one at a time
    from ``original`` and each change is kept only if it does not slow the model down; the
    dropped passes are reported with their measured ratio. A quantizer (``Pass.quantizes``) is
    kept untimed: the user asked for that precision (int16x8 is slower on XNNPACK by design,
    dynamic is chosen for size); the report says so, and ``--quantize auto`` is what chooses by
    speed. ``compare(a, b)`` returns a
    ``tflc.profiler.LatencyComparison`` of b against a (default: measured in LiteRT).
    """
    if compare is None:
        from .io import serialize
        from .profiler import compare_latency

        def compare(a: Model, b: Model):
            return compare_latency(serialize(a), serialize(b), threads=ctx.run_options.threads,
                                   xnnpack=ctx.run_options.xnnpack, input_source=ctx.input_source,
                                   shapes=ctx.shapes or None, seed=ctx.seed, max_seconds=10.0)

    whole = compare(original, optimized)
    report = GuardReport.of(whole)
    if not whole.slower(margin):
        return optimized, report
    import copy
    current = original.clone()
    # the same settings (target, inputs, calibration, ...), but its own analyses, facts and notes
    replay = dataclasses.replace(ctx, analyses=AnalysisManager(), messages=[], facts={}, _ref_result=None,
                                 _prev_result=None)
    for p in passes:
        candidate = current.clone()
        facts = copy.deepcopy(replay.facts)   # if the pass is dropped, so is what it recorded (also in
                                              # place); facts are keyed by uid, which clones keep
        if not p.run(candidate, replay):
            continue
        verify(candidate, after=p.name)
        if p.quantizes:
            current = candidate
            report.kept.append(p.name)
            continue
        c = compare(current, candidate)
        if c.slower(margin):
            replay.facts = facts
            report.dropped.append({"pass": p.name, "ratio": c.ratio, "ci": [c.ci_low, c.ci_high]})
            ctx.note(f"-O2 dropped '{p.name}': it made the model {100 * (c.ratio - 1):.1f}% slower in LiteRT "
                     f"(95% interval {c.ci_low:.3f}-{c.ci_high:.3f})")
        else:
            current = candidate
    final = compare(original, current)
    report.measured(final)        # the ratio and both p50s from the same runs (input_us was the first's)
    return current, report


def records_json(records: list[PassRecord]) -> list[dict]:
    return [asdict(r) for r in records]
