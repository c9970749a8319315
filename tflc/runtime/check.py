"""LiteRT as the judge: run a reference and a candidate model on the same inputs and compare.

Each model runs in its own isolated child (see ``isolate``), for several steps on one interpreter,
so stateful models are compared across invocations with their state carried over.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from ..errors import RuntimeFailure, UsageError, VerificationError
from ..metrics import OutputDiff, diff_output
from .inputs import Step, convert_inputs, load_inputs
from . import custom_ops, modelinfo
from .interpreter import RunOptions, Session, find_missing
from .isolate import run_isolated


@dataclass
class RunResult:
    input_details: list[dict]
    output_details: list[dict]
    inputs: list[Step]
    outputs: list[list[np.ndarray]]


def _lite(details: Sequence[dict]) -> list[dict]:
    keep = ("name", "index", "shape", "shape_signature", "dtype", "quantization")
    return [{k: d[k] for k in keep if k in d} for d in details]


def _run(model: Any, options: RunOptions, inputs: list[Step] | None, source: str | None,
         steps: int, seed: int, shapes: dict | None, convert_from: list[dict] | None = None,
         name: str = "") -> RunResult:
    s = Session(model, options, name=name)
    if inputs is None:
        inputs = load_inputs(source, s.input_details, steps=steps, seed=seed, shapes=shapes)
    elif convert_from is not None:
        inputs = convert_inputs(inputs, convert_from, s.input_details)
    outs = s.run_steps(inputs)
    return RunResult(_lite(s.input_details), _lite(s.output_details), inputs, outs)


def run_model(model: str | os.PathLike | bytes, *, options: RunOptions = RunOptions(),
              inputs: list[Step] | None = None, source: str | None = None, steps: int = 1, seed: int = 0,
              shapes: dict | None = None, what: str | None = None,
              convert_from: list[dict] | None = None, name: str = "") -> RunResult:
    """Run ``model`` (isolated) on given, loaded or generated inputs. With ``convert_from`` (the
    input details of the model the inputs were made for), inputs are (de)quantized to fit.
    ``name`` names the model in errors (default: its path)."""
    label = what or (f"LiteRT on {name or model}" if not isinstance(model, bytes) or name else "LiteRT")
    return run_isolated(_run, model if isinstance(model, bytes) else str(model), options, inputs,
                        source, steps, seed, shapes, convert_from, name, what=label)


@dataclass
class Comparison:
    diffs: list[OutputDiff]                 # per output, the worst step
    steps: int
    notes: list[str] = field(default_factory=list)
    #: per output, all the steps at once (``compare_pooled``: the SQNR floor's figure)
    pooled: list[OutputDiff] = field(default_factory=list)
    #: per output, the lowest SQNR of any one step (``diffs`` is the step of largest abs error,
    #: which need not be the step of lowest SQNR)
    worst_sqnr_db: list[float] = field(default_factory=list)

    @property
    def identical(self) -> bool:
        return all(d.identical for d in self.diffs)

    def worst_rel(self) -> float:
        return max((d.max_rel for d in self.diffs), default=0.0)

    def violation(self, tolerance: float, steps: int = 0) -> str | None:
        """Why the candidate is out of bounds, or None. An integer output on the reference's
        quantization grid may move ``steps`` steps (when steps > 0); any other output is judged by
        ``tolerance`` (relative to its peak; 0: bit-identical)."""
        for d in sorted(self.diffs, key=lambda d: (d.identical, -d.max_rel if d.max_rel == d.max_rel else 0)):
            if steps and d.max_steps is not None:
                if d.max_steps > steps:
                    return (f"output '{d.name}' moves by {d.max_steps} quantization steps from the input model's, "
                            f"over the {steps} allowed")
            elif tolerance == 0.0:
                if not d.identical:
                    return f"output '{d.name}' is not bit-identical to the input model's (max abs error {d.max_abs:.3g})"
            elif not d.max_rel <= tolerance:        # NaN is out of bounds too
                return (f"output '{d.name}' differs from the input model's by {d.max_rel:.3g} (relative), over the "
                        f"tolerance {tolerance:g}")
        return None

    def to_json(self) -> dict:
        out = {"identical": self.identical, "steps": self.steps, "outputs": [d.to_json() for d in self.diffs],
               "notes": self.notes}
        if self.pooled:
            out["pooled"] = [d.to_json() for d in self.pooled]
        if self.worst_sqnr_db:
            out["worst_step_sqnr_db"] = {d.name: (None if not np.isfinite(v) else round(float(v), 2))
                                         for d, v in zip(self.diffs, self.worst_sqnr_db)}
        return out


def compare_results(ref: RunResult, got: RunResult) -> Comparison:
    if len(ref.output_details) != len(got.output_details):
        raise UsageError(f"the models have {len(ref.output_details)} and {len(got.output_details)} outputs: "
                         "not comparable")
    diffs: list[OutputDiff] = []
    lowest: list[float] = []
    for k, (rd, gd) in enumerate(zip(ref.output_details, got.output_details)):
        worst: OutputDiff | None = None
        low = float("inf")
        for step in range(len(ref.outputs)):
            d = diff_output(rd["name"], ref.outputs[step][k], got.outputs[step][k],
                            rd.get("quantization"), gd.get("quantization"))
            if worst is None or _worse(d, worst):
                worst = d
            low = min(low, d.sqnr_db if d.sqnr_db == d.sqnr_db else float("-inf"))
        assert worst is not None
        diffs.append(worst)
        lowest.append(low)
    return Comparison(diffs, len(ref.outputs), pooled=compare_pooled(ref, got), worst_sqnr_db=lowest)


def compare_pooled(ref: RunResult, got: RunResult) -> list[OutputDiff]:
    """Each output compared over all the steps at once (its SQNR is the pooled signal over the
    pooled noise), where ``compare_results`` keeps the worst step: a steadier figure of merit when
    choosing between candidates, the one benchmarks report."""
    if len(ref.output_details) != len(got.output_details):
        raise UsageError(f"the models have {len(ref.output_details)} and {len(got.output_details)} outputs: "
                         "not comparable")
    out = []
    for k, (rd, gd) in enumerate(zip(ref.output_details, got.output_details)):
        a = np.stack([np.asarray(o[k]) for o in ref.outputs])
        b = np.stack([np.asarray(o[k]) for o in got.outputs])
        out.append(diff_output(rd["name"], a, b, rd.get("quantization"), gd.get("quantization")))
    return out


def _worse(a: OutputDiff, b: OutputDiff) -> bool:
    if a.identical != b.identical:
        return not a.identical
    key = lambda d: (d.max_abs if d.max_abs == d.max_abs else float("inf"))  # noqa: E731  NaN is worst
    return key(a) > key(b)


def compare_models(ref: Any, cand: Any, *, options: RunOptions = RunOptions(), source: str | None = None,
                   steps: int = 3, seed: int = 0, shapes: dict | None = None,
                   ref_result: RunResult | None = None) -> tuple[Comparison, RunResult]:
    """Run both on the same inputs. A failure of the reference is the input's fault
    (RuntimeFailure, exit 2); a failure of the candidate is a verification failure (exit 1)."""
    if ref_result is None:
        ref_result = run_model(ref, options=options, source=source, steps=steps, seed=seed, shapes=shapes,
                               what="LiteRT on the input model")
    try:
        got = run_model(cand, options=options, inputs=ref_result.inputs, what=f"LiteRT on {_label(cand)}",
                        convert_from=ref_result.input_details)
    except RuntimeFailure as e:
        raise VerificationError(str(e)) from None
    cmp = compare_results(ref_result, got)
    ri = [(d["name"], np.dtype(d["dtype"]).name) for d in ref_result.input_details]
    gi = [(d["name"], np.dtype(d["dtype"]).name) for d in got.input_details]
    if [x[1] for x in ri] != [x[1] for x in gi]:
        cmp.notes.append("input types differ (" + ", ".join(f"{a[1]} -> {b[1]}" for a, b in zip(ri, gi))
                         + "): the same real values were fed, quantized to fit")
    elif ri != gi:
        cmp.notes.append("input names differ")
    return cmp, ref_result


def _label(model: Any) -> str:
    return "the second model" if isinstance(model, (bytes, bytearray)) else str(model)


def check_kernels(model: str | os.PathLike | bytes, options: RunOptions = RunOptions(), *,
                  name: str = "") -> dict[str, int]:
    """The custom ops of ``model`` that LiteRT cannot run with ``options`` and no kernel is
    registered for: code -> ops ({} when every op can run). LiteRT is asked (isolated) only when
    some custom op has no registered kernel."""
    if not custom_ops.unregistered(modelinfo.model_buffer(model)):
        return {}
    data = model if isinstance(model, (bytes, bytearray)) else str(model)
    return run_isolated(find_missing, data, options, what=f"LiteRT on {name or _label(model)}")
