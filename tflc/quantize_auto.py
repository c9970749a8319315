"""``--quantize auto``: the precision that makes the model fastest within the accuracy target, by
measurement.

Every mode is tried as a whole pipeline (``tflc optimize`` with ``--quantize MODE``): ``int8`` with
mixed precision towards the target (``quantize-int8{min-sqnr=...}``: the ops whose int8 costs the
most accuracy stay float, and ``float-islands`` keeps the int8 ops XNNPACK refuses inside its
partition), ``dynamic`` and ``fp16``; each result is checked in LiteRT as usual, then measured against
the input model: the smallest output SQNR against the float model on the same inputs, and the
latency, paired and interleaved. Of the results whose every output reaches the target, the
fastest of those measurably faster than the input (the 95% interval of the ratio under 0.98) is
written; where none is faster beyond noise, the most accurate of those not slower (a lossless fp16
over a lossy int8 of the same speed); where all are slower, the model is written without
quantization (never slower); where none reaches it, the most accurate one, and if every mode failed the float model
stays as it is (optimized without quantization). Every candidate is reported with its numbers.

``int16x8`` is not a candidate: XNNPACK takes none of it, so it is always the slowest (30-40x float
on the MediaPipe models); ask for it by name.

Per operator, the choice is made inside the int8 candidate: an op stays float where its int8
costs accuracy the target cannot afford (mixed precision), and where XNNPACK would leave it on a
slow builtin kernel it runs as a float island; the latency guard of -O2 drops what makes the whole
model slower.
"""
from __future__ import annotations

import math
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from .errors import TflcError, UsageError
from .profiler.paired import FASTER, SLOWER

#: the target when ``auto`` is given without one: an SQNR at which int8 errors are well below what
#: a model's own noise usually is (int8's floor of 10 dB only guards against broken quantization)
DEFAULT_TARGET_DB = 25.0
MODES = ("int8", "dynamic", "fp16")


@dataclass
class Candidate:
    mode: str
    path: str | None = None
    error: str | None = None
    min_sqnr_db: float | None = None
    ratio: float | None = None
    ci: tuple[float, float] | None = None
    verdict: str = ""
    size: int | None = None

    def to_json(self) -> dict:
        finite = self.min_sqnr_db is not None and math.isfinite(self.min_sqnr_db)
        return {"mode": self.mode, "error": self.error, "min_sqnr_db": self.min_sqnr_db if finite else None,
                "identical": self.min_sqnr_db == math.inf, "latency_ratio": self.ratio,
                "ci": list(self.ci) if self.ci else None, "verdict": self.verdict, "size": self.size}


def parse_auto(mode: str) -> float | None:
    """The target of ``auto`` / ``auto{min-sqnr=DB}``; None: not auto."""
    kind, brace, rest = mode.partition("{")
    if kind != "auto":
        return None
    if not brace:
        return DEFAULT_TARGET_DB
    body = rest.rstrip("}").strip()
    key, eq, value = body.partition("=")
    if key.strip() != "min-sqnr" or not eq:
        raise UsageError(f"--quantize auto takes one option, min-sqnr=DB (e.g. 'auto{{min-sqnr=30}}'), not {mode!r}")
    try:
        db = float(value)
    except ValueError:
        raise UsageError(f"--quantize auto: min-sqnr must be a number of dB, not {value!r}") from None
    if not (math.isfinite(db) and db > 0):
        raise UsageError(f"--quantize auto: min-sqnr must be a finite number of dB above 0, not {value.strip()}")
    return db


def choose(src: str | os.PathLike, dst: str | os.PathLike, target_db: float, run: Callable[..., Any],
           kw: dict) -> Any:
    """Try every mode with ``run(src, tmp, **kw, quantize=mode)`` (``optimize_file``), keep the best
    (see the module docstring) at ``dst``; returns its result with the candidates in its notes and
    in ``result.auto``."""
    from .profiler import compare_latency
    from .runtime import compare_models
    dst_p = Path(dst)
    cands: list[Candidate] = []
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix=".tflc-auto-", dir=str(dst_p.parent)) as tmp:
        for mode in MODES:
            c = Candidate(mode)
            out = os.path.join(tmp, f"{mode}.tflite")
            spec = f"int8{{min-sqnr={target_db:g}}}" if mode == "int8" else mode
            try:
                results[mode] = run(src, out, **{**kw, "quantize": spec})
                c.path, c.size = out, os.path.getsize(out)
                # judged on --inputs, else on the calibration samples (in distribution), as optimize's check
                source = kw.get("input_source") or kw.get("calibration")
                cmp_out, _ = compare_models(str(src), out, options=kw.get("run_options") or _default_options(),
                                            source=source, shapes=kw.get("shapes") or None)
                # pooled over the samples, as the floor and int8's min-sqnr judge (diffs: the step
                # of largest error, a noisier figure)
                vals = [d.sqnr_db for d in (cmp_out.pooled or cmp_out.diffs)]
                c.min_sqnr_db = min(vals) if vals else math.inf
                lat = compare_latency(str(src), out, max_seconds=8.0, input_source=source,
                                      shapes=kw.get("shapes") or None)
                c.ratio, c.ci, c.verdict = lat.ratio, (lat.ci_low, lat.ci_high), lat.verdict
            except TflcError as e:                       # the temporary file is no business of the user's
                c.error = str(e).splitlines()[0].replace(f"refusing to write {out}", "not written")
            cands.append(c)
        accurate = [c for c in cands if c.path and c.min_sqnr_db is not None and c.min_sqnr_db >= target_db]
        ok = [c for c in accurate if c.verdict != SLOWER]
        faster = [c for c in ok if c.verdict == FASTER]
        if faster:
            best = min(faster, key=lambda c: c.ratio if c.ratio is not None else math.inf)
            why = f"the fastest whose every output reaches {target_db:g} dB"
        elif ok:
            # none measurably faster: a latency ratio inside the noise decides nothing, accuracy does
            best = max(ok, key=lambda c: (c.min_sqnr_db, -(c.size or 0)))
            why = (f"no mode whose every output reaches {target_db:g} dB is measurably faster than the input: "
                   "the most accurate of them")
        elif accurate:
            best = None
            why = (f"every mode whose outputs reach {target_db:g} dB is slower than the input in LiteRT: "
                   "written without quantization")
        else:
            done = [c for c in cands if c.path]
            best = max(done, key=lambda c: c.min_sqnr_db) if done else None
            why = (f"no mode reaches {target_db:g} dB on every output: the most accurate" if best else
                   "every mode failed")
        if best is None:
            res = run(src, dst, **{**kw, "quantize": None})
        else:
            os.replace(best.path, dst_p)
            res = results[best.mode]
            res.output = str(dst_p)
    if best is not None and best.min_sqnr_db == math.inf:
        why += "; its outputs are identical to the input's: every op stayed float"
    lines = [f"--quantize auto (target {target_db:g} dB): chose {best.mode if best else 'no quantization'} ({why})"]
    for c in cands:
        if c.error:
            lines.append(f"  {c.mode}: failed ({c.error})")
        else:
            sq = "identical" if c.min_sqnr_db == math.inf else f"{c.min_sqnr_db:.1f} dB"
            lines.append(f"  {c.mode}: worst output SQNR {sq} (pooled over the samples), latency {c.ratio:.3f}x "
                         f"[{c.ci[0]:.3f}-{c.ci[1]:.3f}] of the input's ({c.verdict}), {c.size} bytes")
    res.notes = list(res.notes) + ["\n".join(lines)]
    res.auto = {"target_db": target_db, "chosen": best.mode if best else None, "why": why,
                "candidates": [c.to_json() for c in cands]}
    return res


def _default_options() -> Any:
    from .runtime import RunOptions
    return RunOptions()
