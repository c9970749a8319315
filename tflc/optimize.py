"""``optimize``: read -> IR -> passes -> write -> check in LiteRT, as one library call.

The written model is checked before it is put in place: it is written to a temporary file next
to the target, read back, run in LiteRT against the input model on the same inputs, and only then
renamed over the target. A failed check leaves the target untouched.
"""
from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from .errors import UsageError, VerificationError
from .io import read_model, write_model
from .ir.canonical import diff as structural_diff
from .ir.core import Model
from .ir.verify import verify
from .passes_api import Pass
from .paths import check_output_path, temporary_sibling
from .passmanager import (PassContext, PassRecord, guard_latency, plan_pipeline, records_json, run_pipeline,
                          sqnr_violation)
from .runtime import MissingKernelError, RunOptions, check_kernels, compare_models
from .runtime.custom_ops import missing_message
from .runtime.inputs import check_shape_overrides

#: Largest relative output error accepted for float rewrites unless a pass or the user says more.
DEFAULT_TOLERANCE = 1e-5


def load(path: str | os.PathLike) -> Model:
    """Read and verify a model given by a user: every problem is a ModelFormatError (exit 2)."""
    from .errors import ModelFormatError
    model = read_model(path)
    try:
        verify(model)
    except VerificationError as e:
        raise ModelFormatError(f"{path}: invalid model: {str(e).removeprefix('verifier: ')}") from None
    return model


@dataclass
class OptimizeResult:
    input: str
    output: str | None           # None: refused, nothing written (OutputCheckFailed.report)
    level: str | None
    passes: list[PassRecord]
    before: dict[str, int]
    after: dict[str, int]
    size_before: int
    size_after: int
    check: dict[str, Any]
    seconds: float
    notes: list[str] = field(default_factory=list)
    latency: dict[str, Any] | None = None
    #: passes of the level left out because they may change outputs by more than --tolerance
    skipped: list[str] = field(default_factory=list)
    #: why they were left out when the user did not ask (the level's first result was out of bounds)
    skipped_why: str | None = None
    #: use-kernels' decisions (pattern, ops, builtin/kernel µs alone, whole-model ratios, choice)
    kernels: list[dict] = field(default_factory=list)
    #: quantize-int8's measurements on its samples: per-output SQNR / errors / cosine, the per-op
    #: sensitivity table, the ops mixed precision (min-sqnr) kept float (None: no such quantizer ran)
    quantization: dict | None = None
    #: ``--quantize auto``: the target, the mode chosen and why, every candidate's numbers
    auto: dict | None = None

    def to_json(self) -> dict:
        return {"input": self.input, "output": self.output, "level": self.level,
                "passes": records_json(self.passes), "before": self.before, "after": self.after,
                "size_before": self.size_before, "size_after": self.size_after, "check": self.check,
                "seconds": round(self.seconds, 4), "notes": self.notes, "latency": self.latency,
                "skipped": self.skipped, "skipped_why": self.skipped_why, "kernels": self.kernels,
                "quantization": self.quantization, "auto": self.auto}


def _structure_only(missing: dict[str, int], budget: float) -> dict[str, Any]:
    """The check of a model LiteRT cannot run: its structure was verified, its outputs not compared."""
    ops = ", ".join(f"'{c}' ({n} op{'s' if n != 1 else ''})" for c, n in missing.items())
    return {"compared": False, "identical": None, "structure_verified": True, "steps": 0, "outputs": [],
            "notes": [], "tolerance": budget, "missing_kernels": dict(missing),
            "reason": f"outputs not compared: LiteRT has no kernel for custom op{'s' if len(missing) > 1 else ''} "
                      f"{ops}; structure verified"}


def _lossy(pipeline: Sequence[Pass]) -> str:
    """Names the pipeline's passes that declare they may change outputs (for a failed check)."""
    lossy = [f"{p.name} (up to {p.tolerance:g})" for p in pipeline if p.tolerance > 0]
    return f"; passes that may change outputs: {', '.join(lossy)}" if lossy else ""


def _sqnr_check(cmp: Any, min_db: float, check: dict, notes: list[str]) -> str | None:
    """A quantized result: every output's SQNR against the float model must reach ``min_db``
    (the SQNR pooled over the steps; the worst step's is reported beside it). Adds the figures to the
    check and one note per output; returns the first violation, or None."""
    check["min_sqnr_db"] = min_db
    check["sqnr_db"] = {}
    check["sqnr_db_worst_step"] = {}
    lows = cmp.worst_sqnr_db or [d.sqnr_db for d in cmp.diffs]
    for d, w, low in zip(cmp.pooled or cmp.diffs, cmp.diffs, lows):
        db = d.sqnr_db
        check["sqnr_db"][d.name] = None if db == float("inf") else round(float(db), 2)
        check["sqnr_db_worst_step"][d.name] = None if not math.isfinite(low) else round(float(low), 2)
        shown = "identical" if db == float("inf") else f"{db:.1f} dB"
        worst = f" (its worst sample {low:.1f} dB)" if cmp.steps > 1 and low != float("inf") else ""
        notes.append(f"quantized output '{d.name}': SQNR {shown} over {cmp.steps} sample(s){worst} against the float "
                     f"model (at least {min_db:g} dB required), max abs error {w.max_abs:.3g}")
    return sqnr_violation(cmp, min_db)


class OutputCheckFailed(VerificationError):
    """The written model's outputs are out of the pipeline's bounds (nothing was written).
    ``report``: what was measured before refusing (the passes, the check, the quantizer's figures,
    the notes), in ``OptimizeResult.to_json``'s keys, for ``--report`` and ``--json``."""

    report: dict | None = None


def optimize_file(src: str | os.PathLike, dst: str | os.PathLike, *, level: str | None = "O2",
                  passes: str | Sequence[Pass] | None = None, run_options: RunOptions = RunOptions(),
                  input_source: str | None = None, steps: int = 3, shapes: dict | None = None,
                  tolerance: float | None = None, verify_each: bool = False,
                  latency_guard: bool | None = None, target: str | None = None,
                  on_pass: Callable[[PassRecord], None] | None = None, quantize: str | None = None,
                  calibration: str | None = None, kernels: bool = False) -> OptimizeResult:
    """``latency_guard`` (default: as the level says, on at -O2) keeps the result only where LiteRT does not run it
    slower; see ``passmanager.guard_latency``. ``target`` (a ``tflc.targets`` name) adds the passes
    that raise that delegate's coverage to the level, and tells every pass which delegate it is for.

    At a level (no explicit pass list, no ``tolerance``), a result whose outputs are out of the
    bounds its lossy passes declare is not an error: the level is run again without those passes
    (as ``tolerance=0`` would), and the result says so. This happens where a model amplifies tiny
    float changes, e.g. a layer norm rewritten in front of a dynamic-range FULLY_CONNECTED, which
    re-quantizes its input at run time.

    ``quantize`` (``--quantize MODE``: ``int8``, ``dynamic`` or ``fp16``, or e.g. ``int8{io=int8,...}``
    with the quantizer's options; see ``passmanager.QUANTIZE_PASSES``) adds the quantizer (int8: and
    float-islands) before the level's clean-up; int8 is calibrated on ``calibration``
    (an .npz of samples; else ``input_source``, else generated data, with a warning). The result is
    then judged by each output's SQNR against the float model (at least the quantizer's
    ``min_sqnr_db``, reported per output in the notes), not by a relative tolerance; a result below
    it is an error (the level is not run again without the quantizer).

    ``kernels`` (``--kernels``) adds ``use-kernels``: ops the target leaves on LiteRT's builtin
    kernels run as exact tflc kernels where the whole model gets faster; the output then needs
    ``tflc.runtime`` (or tflc's kernels registered) to run."""
    kernels = kernels or target == "tflc"          # the target of XNNPACK and tflc's kernels
    kw = dict(kernels=kernels, level=level, passes=passes, run_options=run_options, input_source=input_source, steps=steps,
              shapes=shapes, tolerance=tolerance, verify_each=verify_each, latency_guard=latency_guard,
              target=target, on_pass=on_pass, quantize=quantize, calibration=calibration)
    if quantize is not None:
        from .quantize_auto import choose, parse_auto
        target_db = parse_auto(quantize)
        if target_db is not None:       # every mode, measured; the fastest within the target is kept
            _check_quantizable(load(Path(src)), src)      # once, not as each mode's failure
            return choose(src, dst, target_db, optimize_file, {k: v for k, v in kw.items() if k != "quantize"})
    try:
        return _optimize_once(src, dst, **kw)
    except OutputCheckFailed as e:
        if passes is not None or level is None or tolerance is not None or quantize is not None:
            raise
        first = str(e)
    res = _optimize_once(src, dst, **{**kw, "tolerance": 0.0})
    res.skipped_why = f"with them, {first.split('; passes that may')[0].split('; refusing')[0]}; the level ran again without them"
    return res


def _check_quantizable(model: Model, src: str | os.PathLike) -> None:
    """--quantize on a model with no float tensor (an int8 model: hey_jarvis) has nothing to do: say
    so before calibrating it, rather than write an unchanged copy and exit 0."""
    from .schema import TYPE_CODES
    floats = {TYPE_CODES["FLOAT32"], TYPE_CODES["FLOAT16"]}
    if any(t.dtype in floats for sg in model.subgraphs for t in sg.tensors):
        return
    kinds = sorted({t.type_name for sg in model.subgraphs for t in sg.tensors if not t.is_constant} - {"RESOURCE"})
    raise UsageError(f"{src}: nothing to quantize: the model has no float tensor (its activations are "
                     f"{', '.join(kinds) or 'not float'}: it is already quantized)")


def _optimize_once(src: str | os.PathLike, dst: str | os.PathLike, *, level: str | None, passes, run_options,
                   input_source, steps, shapes, tolerance, verify_each, latency_guard, target,
                   on_pass, quantize=None, calibration=None, kernels=False) -> OptimizeResult:
    t0 = time.perf_counter()
    src_p = Path(src)
    model = load(src_p)
    if quantize is not None:
        _check_quantizable(model, src_p)
    dst_p = check_output_path(dst, not_same_as=[src_p])
    if shapes:
        check_shape_overrides(shapes, model.main.inputs)
    before = model.stats()
    if target is not None:
        from .targets import get_target
        get_target(target)                              # an unknown target is a usage error, before any work
    plan = plan_pipeline(level=level, passes=passes, tolerance=tolerance, latency_guard=latency_guard,
                         default_tolerance=DEFAULT_TOLERANCE, target=target, quantize=quantize, kernels=kernels)
    pipeline, level, skipped, budget, guard = plan.passes, plan.level, plan.skipped, plan.tolerance, plan.latency_guard
    # custom ops that LiteRT cannot run and no kernel is registered for: -O0 still writes the model
    # (checked by structure); a pipeline cannot be checked at all, so it stops here, before any work
    missing = check_kernels(src_p, run_options)
    if missing and pipeline:
        raise MissingKernelError(missing_message(str(src_p), missing, xnnpack=run_options.xnnpack)
                                 + "; -O0 writes it unchanged (checked by structure)", codes=missing)
    ctx = PassContext(run_options=run_options, input_source=input_source, steps=steps,
                      shapes=dict(shapes or {}), reference=str(src_p), tolerance=budget, pipeline=list(pipeline),
                      target=target, calibration=calibration)
    original = model.clone() if guard else None
    records = run_pipeline(model, pipeline, ctx, verify_each=verify_each, on_pass=on_pass)
    latency, slow = None, None
    if guard and original is not None and any(r.changed for r in records):
        model, report = guard_latency(original, model, pipeline, ctx)
        latency, slow = report.to_json(), report.warning
    elif guard:
        latency = {"skipped": "no pass changed the model"}

    tmp = temporary_sibling(dst_p)
    try:
        size_after = write_model(model, tmp)
        written = read_model(tmp)                       # the file, not the IR, is what we check
        verify(written, after="write")
        notes = [slow] if slow else []
        if not pipeline:                                # -O0: structure must be identical too
            d = structural_diff(model, written)
            if d:
                raise VerificationError(f"-O0 rewrite is not lossless: {'; '.join(d)}")
        if missing:                                     # -O0 of a model LiteRT cannot run
            os.replace(tmp, dst_p)
            return OptimizeResult(str(src_p), str(dst_p), level, records, before, model.stats(),
                                  src_p.stat().st_size, size_after, _structure_only(missing, budget),
                                  time.perf_counter() - t0, notes + ctx.messages, latency, [p.name for p in skipped])
        # a quantized model is checked on --inputs, else on its calibration samples (in distribution)
        quantizing = quantize is not None or any(p.quantizes for p in pipeline)
        check_source = input_source if input_source is not None or not quantizing else calibration
        if check_source is not input_source:
            notes.append(f"quantized outputs checked on the calibration samples ({calibration}): give --inputs "
                         "for held-out data")
        for p, r in zip(pipeline, records):            # a quantizer's warnings, and whether it did anything
            if p.quantizes:
                notes += [f"warning: {n.split(': warning: ', 1)[1]}" for n in r.notes
                          if n.startswith(f"{p.name}: warning: ")]
            if p.quantizes and not r.changed:
                last = [n.split(": ", 1)[-1] for n in r.notes if n.startswith(f"{p.name}: ")][-1:]
                notes.append(f"warning: {p.name} did not change the model" + (f" ({last[0]})" if last else ""))
        quantization = ctx.facts.get("quantize-int8") or ctx.facts.get("quantize-int16x8")

        def result(output: str | None) -> OptimizeResult:      # what was measured, written or refused
            return OptimizeResult(str(src_p), output, level, records, before, model.stats(),
                                  src_p.stat().st_size, size_after, check, time.perf_counter() - t0,
                                  notes + ctx.messages, latency, [p.name for p in skipped],
                                  kernels=list(ctx.facts.get("use-kernels", [])), quantization=quantization)
        cmp, _ = compare_models(str(src_p), tmp, options=run_options, source=check_source, steps=steps,
                                seed=ctx.seed, shapes=ctx.shapes, ref_result=ctx._ref_result)
        check = cmp.to_json()
        check["tolerance"] = budget
        if plan.quant_steps:
            check["quant_steps"] = plan.quant_steps
        if plan.min_sqnr_db is not None:
            bad = _sqnr_check(cmp, plan.min_sqnr_db, check, notes)
        else:
            bad = cmp.violation(budget, plan.quant_steps)
        if bad is not None:
            hint = ""
            if plan.min_sqnr_db is not None and quantize:
                mode = quantize.split("{", 1)[0]
                fb = (quantization or {}).get("fallback")
                mixed = ("keeping the ops that cost the most float did not reach it either (tried: the "
                         "fallback); --quantize auto tries the other modes" if fb and not fb.get("reached") else
                         "the fallback held it on the calibration samples, not here: calibrate on data like these "
                         "inputs, or set a higher target with --min-sqnr DB" if fb else
                         "to keep the ops that cost the most float until it holds, add --min-sqnr DB (or use "
                         "--quantize auto)" if mode in ("int8", "int16x8") else
                         "--quantize auto keeps float what does not hold (mixed precision is int8's)")
                hint = f"; {mixed}; to accept it, lower the floor: --quantize '{mode}{{min-sqnr-db=N}}'"
            quantizers = [p.name for p in pipeline if p.quantizes]
            why = (f"; quantized by {', '.join(quantizers)}" if plan.min_sqnr_db is not None and quantizers
                   else _lossy(pipeline))
            err = (OutputCheckFailed if budget > 0 or plan.quant_steps or plan.min_sqnr_db is not None
                   else VerificationError)(f"{bad}{why}; refusing to write {dst_p}{hint}")
            err.report = {**result(None).to_json(), "written": False}
            raise err
        os.replace(tmp, dst_p)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    return result(str(dst_p))
