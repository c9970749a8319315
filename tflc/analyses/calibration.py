"""The ``calibration`` analysis: the range of every float tensor on calibration inputs, in every
subgraph: the main one's tensors, and those the ops of the others write (a WHILE body's, an IF
branch's; in a loop body, each sample contributes its last iteration's values, which LiteRT keeps).

The float model runs in LiteRT (builtin kernels, every intermediate kept:
``RunOptions(preserve_all_tensors=True)``) on each calibration sample, in an isolated child, and
each float tensor's values are summarized: min, max, a bounded sample of its values (sorted)
from which a percentile range is read (``TensorRange.range(percentile)``) and a histogram
(``TensorRange.histogram``, ``HIST_BINS`` bins over [min, max]) for the MSE range estimator, and the
mean of each channel (last axis; ``channel_mean``: a layer input's E[x], for bias correction).

Where the samples come from, first found: ``ctx.calibration`` (``--calibration DATA.npz``: keys are
the inputs' names as LiteRT reports them, or ``arr_0``.. in input order; the first axis is the
sample; or ``--calibration DIR``, a folder of images: see below), then ``ctx.input_source``
(``--inputs``), else ``GENERATED_SAMPLES`` generated samples (floats uniform in [-1, 1], seeded
apart from the check's inputs), with a warning in the result (``warning``) that the pass reports:
ranges from generated data fit generated data only.

A folder of images (PNG, JPEG, ...; ``tflc.runtime.inputs.load_images``) feeds a model with one
NHWC image input: files sorted by name, each resized (bilinear) to the input's H x W, RGB or
grayscale as its channels say, pixels 0..255 mapped onto the input range (``--input-range LO,HI``,
carried by the source as a ``tflc.runtime.inputs.InputSource``, or ``ctx.input_range``; default
0,1). A folder that cannot feed the model (no images, a model with no single image input, no
Pillow) is the user's to fix: a ``UsageError``, not a failed calibration. ``--calibration-samples N``
(``InputSource.limit`` or ``ctx.calibration_samples``) takes the first N samples of the data given,
or generates N.

Registered without ``needs_inputs``: that flag makes a pass refuse to run without ``--inputs``,
and generated data with a warning is what the quantizer falls back to.

The value maps a tensor's ``uid`` to its ``TensorRange``; ``error`` says why LiteRT could not run it.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import analysis

_PREFIX = "tflc_calib_"
#: samples generated when no calibration data is given
GENERATED_SAMPLES = 32
#: generated samples use another seed than the check's inputs (which use ctx.seed): the check is not run
#: on the data the ranges came from
SEED_OFFSET = 1000
#: values kept per tensor over all samples (for percentiles), spread evenly over the samples
KEEP_VALUES = 1 << 16
#: bins of a tensor's histogram (``TensorRange.histogram``), over its [min, max]
HIST_BINS = 2048


@dataclass
class TensorRange:
    min: float
    max: float
    samples: np.ndarray          # sorted float32 values (a bounded, seeded subsample), for percentiles
    count: int = 0               # values seen
    #: the mean over the samples of each channel (the last axis), e.g. a layer input's E[x] for bias correction
    channel_mean: np.ndarray | None = None
    #: each calibration sample's own min and max (in sample order), for estimators that average them
    sample_min: np.ndarray | None = None
    sample_max: np.ndarray | None = None
    #: for each value of ``samples``, the calibration sample it came from (``without``)
    sample_ids: np.ndarray | None = None
    #: estimators' results on this summary (``passes._ranges.tensor_range``)
    memo: dict = field(default_factory=dict, repr=False, compare=False)

    def without(self, held_out: "set[int] | range") -> "TensorRange":
        """The same summary with the samples ``held_out`` (their indices) left out: what the
        calibration would have given without them (``channel_mean`` stays the full one). Where a
        tensor lacks per-sample records, or every sample would go, it is returned unchanged."""
        if self.sample_min is None or self.sample_ids is None:
            return self
        n = self.sample_min.size
        keep = np.ones(n, bool)
        keep[[i for i in held_out if 0 <= i < n]] = False
        if not keep.any() or keep.all():
            return self
        vals = self.samples[keep[np.minimum(self.sample_ids, n - 1)]]
        return TensorRange(float(self.sample_min[keep].min()), float(self.sample_max[keep].max()), vals,
                           int(self.count * keep.sum() / n), self.channel_mean, self.sample_min[keep],
                           self.sample_max[keep], None)

    def histogram(self, bins: int = HIST_BINS) -> tuple[np.ndarray, np.ndarray]:
        """(counts, edges): a ``bins``-bin histogram of the values kept over [min, max] (what the
        MSE range estimator searches; ``passes._ranges``)."""
        lo, hi = self.min, self.max
        if not hi > lo:
            hi = lo + 1e-12
        return np.histogram(self.samples, bins=bins, range=(lo, hi))

    def range(self, percentile: float | None = None) -> tuple[float, float]:
        """(lo, hi): the min/max, or the ``percentile`` (e.g. 99.99) of the values kept, each side."""
        if percentile is None or percentile >= 100 or self.samples.size == 0:
            return self.min, self.max
        lo = float(np.percentile(self.samples, 100.0 - percentile))
        hi = float(np.percentile(self.samples, percentile))
        return max(lo, self.min), min(hi, self.max)


@dataclass
class CalibrationResult:
    ranges: dict[int, TensorRange] = field(default_factory=dict)
    samples: int = 0
    source: str = "generated"     # the file, or "generated"
    warning: str | None = None
    error: str | None = None


def calibration_source(ctx: Any) -> str | None:
    """The samples' source; a plain path gets ``ctx.input_range`` / ``ctx.calibration_samples``
    where the context has them (the Python API's way to say what the CLI's flags say)."""
    source = getattr(ctx, "calibration", None) or getattr(ctx, "input_source", None)
    if source is None:
        return None
    rng, cap = getattr(ctx, "input_range", None), getattr(ctx, "calibration_samples", None)
    if (rng is not None and getattr(source, "input_range", None) is None) or (cap and getattr(source, "limit", None) is None):
        from ..runtime.inputs import InputSource
        source = InputSource(source, getattr(source, "input_range", None) or rng, getattr(source, "limit", None) or cap)
    return source


def _collect(model_bytes: bytes, names: dict[str, int], source: str | None, samples: int, seed: int,
             shapes: dict | None, keep: int) -> tuple[dict[int, tuple[float, float, np.ndarray, int]], int]:
    """In the child: run every sample, summarize every float tensor by name (``names``: the
    tensors to read, of every subgraph; their names are unique in the model)."""
    from ..runtime import RunOptions, Session
    from ..runtime.inputs import load_inputs
    s = Session(model_bytes, RunOptions(xnnpack=False, preserve_all_tensors=True), name="the model")
    steps = load_inputs(source, s.input_details, steps=samples, seed=seed, shapes=shapes)
    details = {(g, int(d["index"])): names[d["name"]] for g in range(s.num_subgraphs)
               for d in s.tensor_details(g) if d["name"] in names and (g == 0 or d["name"].startswith(_PREFIX))}
    per_sample = max(64, keep // max(1, len(steps)))
    rng = np.random.default_rng(seed)
    acc: dict[str, list] = {}
    for step in steps:
        s.run(step)
        values = {(g, i): v for g in range(s.num_subgraphs)
                  for i, v in s.tensor_values(None, g, dtypes=(np.float32,)).items()}
        for idx, name in details.items():
            v = values.get(idx)
            if v is None or v.dtype != np.float32 or v.size == 0:
                continue
            flat = v.reshape(-1)
            finite = flat[np.isfinite(flat)]
            if finite.size == 0:
                continue
            pick = finite if finite.size <= per_sample else rng.choice(finite, per_sample, replace=False)
            pick = (pick, np.full(pick.size, len(acc[name][6]) if name in acc else 0, np.uint16))
            cm = None
            if finite.size == flat.size and v.ndim >= 1:
                cm = v.reshape(-1, v.shape[-1]).astype(np.float64).mean(axis=0)
            a = acc.get(name)
            if a is None:
                acc[name] = [float(finite.min()), float(finite.max()), [pick], int(finite.size), cm,
                             1 if cm is not None else 0, [], []]
            else:
                a[0], a[1] = min(a[0], float(finite.min())), max(a[1], float(finite.max()))
                a[2].append(pick)
                a[3] += int(finite.size)
                if cm is not None and a[4] is not None and a[4].shape == cm.shape:
                    a[4], a[5] = a[4] + cm, a[5] + 1
            a = acc[name]
            a[6].append(float(finite.min()))
            a[7].append(float(finite.max()))
    out = {}
    for n, a in acc.items():
        vals = np.concatenate([v for v, _ in a[2]]).astype(np.float32)
        ids = np.concatenate([i for _, i in a[2]])
        order = np.argsort(vals, kind="stable")
        out[n] = (a[0], a[1], vals[order], a[3], (a[4] / a[5]).astype(np.float32) if a[4] is not None and a[5] else None,
                  np.asarray(a[6], np.float32), np.asarray(a[7], np.float32), ids[order])
    return out, len(steps)


@analysis("calibration", "per-tensor value ranges of the float model on calibration inputs (--calibration)")
def calibration(model: Any, ctx: Any) -> CalibrationResult:
    from ..errors import TflcError, UsageError
    from ..io import serialize
    from ..runtime import run_isolated
    source = calibration_source(ctx)
    probe = model.clone()
    sg = probe.main
    names = {t.name: t.uid for t in sg.inputs}       # inputs keep their names (the .npz keys)
    for t in list(sg.tensors):
        if not sg.is_graph_input(t):
            sg.rename(t, f"{_PREFIX}{t.uid}")        # the clone keeps the model's uids
            names[t.name] = t.uid
    # the other subgraphs (control-flow bodies and conditions, initializers): the tensors their own
    # ops write, which hold the last iteration's values; not their inputs, which alias the caller's
    # buffers (a WHILE condition's read back as garbage once the loop is done)
    for other in probe.subgraphs[1:]:
        for op in other.operators:
            for t in op.outputs:
                if t is not None and not t.name.startswith(_PREFIX):      # (once per tensor)
                    other.rename(t, f"{_PREFIX}{t.uid}")
                    names[t.name] = t.uid
    shapes = dict(getattr(ctx, "shapes", None) or {})
    n = int(getattr(ctx, "calibration_samples", 0) or GENERATED_SAMPLES)
    try:
        named, count = run_isolated(_collect, serialize(probe), names, source, n, int(getattr(ctx, "seed", 0) or 0) + SEED_OFFSET,
                                    shapes or None, KEEP_VALUES, what="LiteRT calibrating the model")
    except UsageError as e:
        from pathlib import Path
        if source is not None and (Path(source).is_dir() or not Path(source).exists()):
            raise                                    # a folder (or path) that cannot feed the model
        return CalibrationResult(error=str(e), source=str(source))
    except TflcError as e:
        return CalibrationResult(error=str(e), source=str(source) if source else "generated")
    ranges = {uid: TensorRange(*summary) for uid, summary in named.items()}
    warning = None
    if source is None:
        warning = (f"no calibration data (--calibration DATA.npz or a folder of images): ranges from {count} "
                   "generated samples (uniform in [-1, 1]); they fit real inputs only as far as those look alike")
    return CalibrationResult(ranges, count, str(source) if source else "generated", warning)
