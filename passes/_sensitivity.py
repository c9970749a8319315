"""quantize-int8's accuracy measurements in LiteRT: per-output errors, per-op sensitivity, mixed precision.

**Per-output error.** The float model and a quantized candidate run in LiteRT (``tflc.runtime``, the
same run options as the check) on the same samples; each output is compared as ``tflc optimize``'s
SQNR floor compares it (``tflc.runtime.compare_pooled``: SQNR, max and mean absolute error and
cosine similarity over all the samples at once).

**Per-op sensitivity: one op quantized at a time.** For each op the pass would quantize, the model
with ONLY that op int8 (QUANTIZE before it, DEQUANTIZE after, every other op float; the parameters
are those of the full quantization) is run against the float model. Its SQNR per output is the
noise that op's quantization (its weights, its input and output tensors) adds on its own.

Why this one and not "everything int8 except that op": (1) it isolates each op: in a model of ~100
quantized ops, removing one op's noise moves the total by a fraction of a dB, a difference of two
nearly equal noise powers that the other ops' noise swamps, so the ranking would be mostly noise;
(2) quantization noise from independent sources adds up in power to first order, so the one-at-a-
time noise powers ``10^(-SQNR_i/10)`` form a budget: their sum predicts the whole model's noise, and
their shares say how much of an output's noise each op accounts for, which is what mixed precision
needs to decide how many ops to keep float in one round; (3) it is the standard "per-layer
quantization enabled" analysis (AIMET's QuantAnalyzer, the TFLite quantization debugger's layer-wise
view). Its known bias: an op kept float between int8 neighbours still reads and writes quantized
tensors, so keeping it float gains less than its one-at-a-time noise; the mixed-precision loop
therefore measures the real model after every round and goes on until the target holds.

**Speed.** Every trial is built (clone, rewrite, serialize: a few ms) and run inside an isolated
LiteRT child (forked: the model is not copied through a pipe, only small results come back), the
trials split across one child per core, on a few samples: ~150 trials of a MediaPipe-sized model
take seconds.

**Mixed precision** (``measure_and_mix``) works towards a ``Goal``: the pass's ``min-sqnr`` and/or
``max-error``, or, with neither, the floor (``min-sqnr-db``) when every op int8 is under it (the
``fallback``).
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Sequence

from tflc.metrics import OutputDiff

#: mixed-precision rounds that may keep a single op float; later rounds keep 2, 4, 8, ... at least
ROUNDS_ONE_BY_ONE = 4
#: a round that lowers the worst output by more than this (dB) is undone
WORSE_DB = 0.5
#: give-back: the ops kept float that go back to int8 may use this share of the slack under the target
GIVE_BACK_SHARE = 0.7
#: the fallback to the floor settles this far (dB) above it: the passes after the quantizer (float
#: islands requantize at their edges) may move the written model's figure by a fraction of a dB
FLOOR_MARGIN_DB = 0.3
#: ... and searches towards this far above it, then gives ops back to int8 down to the margin: the
#: rounds' small steps towards a near target can stall where keeping a few ops float costs more
#: than it saves (hand_landmark_lite: a 10.3 dB target kept every op float, 15 dB kept 12 of 65)
FALLBACK_HEADROOM_DB = 5.0


@dataclass
class Samples:
    """Where the measurement samples come from (the calibration analysis' source and seed)."""

    source: str | None
    count: int
    seed: int
    shapes: dict | None
    run_options: Any
    #: the samples are ``count`` from this one on (held-out calibration samples)
    first: int = 0


def _measure(reference: bytes, candidates: Sequence[Callable[[], bytes] | bytes], smp: Samples,
             ) -> tuple[list[list[OutputDiff] | str], int]:
    """In the child: the reference on the samples once, then each candidate; per candidate its
    per-output diffs, or LiteRT's error (a string)."""
    from tflc.errors import TflcError
    from tflc.runtime import RunResult, Session, compare_pooled, load_inputs
    from tflc.runtime.inputs import convert_inputs
    keep = ("name", "index", "shape", "dtype", "quantization")
    ref = Session(reference, smp.run_options, name="the float model")
    steps = load_inputs(smp.source, ref.input_details, steps=smp.first + smp.count, seed=smp.seed, shapes=smp.shapes)
    steps = steps[smp.first:smp.first + smp.count]
    ref_res = RunResult([{k: d[k] for k in keep if k in d} for d in ref.input_details],
                        [{k: d[k] for k in keep if k in d} for d in ref.output_details], steps, ref.run_steps(steps))
    del ref
    out: list[list[OutputDiff] | str] = []
    for cand in candidates:
        try:
            data = cand() if callable(cand) else cand
            s = Session(data, smp.run_options, name="the quantized model")
            feed = convert_inputs(steps, ref_res.input_details, s.input_details)
            got = RunResult(ref_res.input_details, [{k: d[k] for k in keep if k in d} for d in s.output_details],
                            feed, s.run_steps(feed))
            out.append(compare_pooled(ref_res, got))
        except (TflcError, ValueError, RuntimeError) as e:
            out.append(f"{type(e).__name__}: {e}")
    return out, len(steps)


def measure(reference: bytes, candidates: Sequence[Callable[[], bytes] | bytes], smp: Samples
            ) -> tuple[list[list[OutputDiff] | str], int]:
    """Each candidate (bytes, or a function that builds them in the child) against ``reference``
    on the samples, in one isolated LiteRT child. Returns the per-candidate results and the
    number of samples used."""
    return measure_all(reference, [(candidates, smp)])[0]


def measure_all(reference: bytes, jobs: Sequence[tuple[Sequence[Callable[[], bytes] | bytes], Samples]]
                ) -> list[tuple[list[list[OutputDiff] | str], int]]:
    """``measure`` for each (candidates, samples) job, side by side: one isolated child per job,
    as many at once as there are cores for the run options' threads (and one at a time for a
    model over 256 MB, whose children would each hold it)."""
    from tflc.runtime.isolate import cores, run_isolated_all
    if not jobs:
        return []
    threads = max(1, int(getattr(jobs[0][1].run_options, "threads", 1) or 1))
    parallel = 1 if len(reference) > (256 << 20) else max(1, cores() // threads)
    return run_isolated_all([(_measure, (reference, list(c), smp)) for c, smp in jobs], timeout=1800.0,
                            what="LiteRT measuring the quantized model", parallel=parallel)


# --- the numbers -----------------------------------------------------------------------------

def finite(x: float | None, nd: int = 2) -> float | None:
    """A JSON-safe rounded number (None for inf / NaN)."""
    if x is None or not math.isfinite(x):
        return None
    return round(float(x), nd)


def noise(db: float) -> float:
    """Relative noise power of an SQNR in dB (0 for an identical output, 1e6 for a broken one)."""
    if db != db:
        return 1e6
    return 0.0 if db == float("inf") else min(1e6, 10.0 ** (-db / 10.0))


def worst_db(diffs: Sequence[OutputDiff]) -> float:
    vals = [d.sqnr_db if d.sqnr_db == d.sqnr_db else float("-inf") for d in diffs]
    return min(vals, default=float("inf"))


def outputs_json(diffs: Sequence[OutputDiff]) -> list[dict]:
    return [{"output": d.name, "sqnr_db": finite(d.sqnr_db), "max_abs": finite(d.max_abs, 6),
             "mean_abs": finite(d.mean_abs, 6), "cosine": finite(d.cosine, 6)} for d in diffs]


def describe(diffs: Sequence[OutputDiff]) -> str:
    return "; ".join(f"'{d.name}' SQNR {'identical' if d.sqnr_db == float('inf') else f'{d.sqnr_db:.1f} dB'}, "
                     f"max abs error {d.max_abs:.3g}, mean {d.mean_abs:.3g}, cosine {d.cosine:.5f}" for d in diffs)


@dataclass(frozen=True)
class Goal:
    """What mixed precision works towards: every output at or over ``min_sqnr`` dB, and (or) with a
    largest absolute error at most ``max_error``, against the float model.

    Both become, per output, the SQNR it must reach (``targets``), which is what the noise budget
    of ``pick`` and ``give_back_order`` works in: a max error E asks an output whose largest error
    is e for 20 log10(e / E) dB more (quantization errors scale with the noise amplitude, so the
    error shrinks by that factor). Whether the goal holds is decided on the measured errors
    (``met``), never on that estimate."""

    min_sqnr: float | None = None
    max_error: float | None = None

    @property
    def label(self) -> str:
        parts = ([f"min-sqnr={self.min_sqnr:g}"] if self.min_sqnr is not None else []) + \
                ([f"max-error={self.max_error:g}"] if self.max_error is not None else [])
        return ", ".join(parts)

    def targets(self, diffs: Sequence[OutputDiff]) -> dict[str, float]:
        out = {}
        for d in diffs:
            need = self.min_sqnr if self.min_sqnr is not None else float("-inf")
            if self.max_error is not None and d.max_abs > 0:
                # under E this is below the output's SQNR: the slack give-back may spend
                by_error = (d.sqnr_db + 20.0 * math.log10(d.max_abs / self.max_error)
                            if d.sqnr_db == d.sqnr_db and d.sqnr_db != float("inf") else float("inf"))
                need = max(need, by_error)
            out[d.name] = need
        return out

    def met(self, diffs: Sequence[OutputDiff]) -> bool:
        return all((self.min_sqnr is None or d.sqnr_db >= self.min_sqnr) and
                   (self.max_error is None or d.max_abs <= self.max_error) for d in diffs)

    def shortfall(self, diffs: Sequence[OutputDiff]) -> float:
        """How far (dB) the worst output is from the goal (<= 0: met); a round that raises it is undone."""
        t = self.targets(diffs)
        gaps = [t[d.name] - d.sqnr_db if d.sqnr_db == d.sqnr_db else float("inf") for d in diffs]
        return max(gaps, default=float("-inf"))


@dataclass
class Row:
    """One op of the sensitivity table: the model's per-output SQNR with only this op int8."""

    uid: int
    op_type: str
    tensor: str                       # the op's (first) output, which names it in notes
    sqnr_db: dict[str, float] = field(default_factory=dict)   # output -> dB (inf: identical)
    error: str | None = None          # LiteRT could not run the trial

    @property
    def worst(self) -> float:
        return min(self.sqnr_db.values(), default=float("inf"))

    @property
    def worst_output(self) -> str | None:
        return min(self.sqnr_db, key=self.sqnr_db.get) if self.sqnr_db else None

    def to_json(self) -> dict:
        return {"op": self.op_type, "output": self.tensor, "sqnr_db": finite(self.worst),
                "worst_output": self.worst_output,
                "sqnr_db_per_output": {k: finite(v) for k, v in self.sqnr_db.items()},
                **({"error": self.error} if self.error else {})}


def sensitivity(reference: bytes, ops: Sequence[Any], build: Callable[[set[int]], bytes], smp: Samples) -> list[Row]:
    """The sensitivity table: one row per op of ``ops`` (``build({uid})`` makes the model with only
    that op int8), most sensitive (lowest SQNR) first."""
    from tflc.runtime.isolate import cores
    trials = [(lambda u=op.uid: build({u})) for op in ops]
    # split across the cores (each child runs the float reference once more: a few samples)
    k = max(1, min(cores(), len(trials) // 8))
    chunks = [trials[i::k] for i in range(k)]
    parts = [r for r, _ in measure_all(reference, [(c, smp) for c in chunks])]
    results = [None] * len(trials)
    for i, part in enumerate(parts):
        results[i::k] = part
    rows = []
    for op, res in zip(ops, results):
        if isinstance(res, str):
            rows.append(Row(op.uid, op.type, op.output_name, {}, res))
        else:
            rows.append(Row(op.uid, op.type, op.output_name, {d.name: float(d.sqnr_db) for d in res}))
    rows.sort(key=lambda r: (r.error is not None, r.worst))
    return rows


def pick(rows: Sequence[Row], diffs: Sequence[OutputDiff], target_db: float | dict[str, float],
         least: int = 1) -> list[Row]:
    """The ops to keep float in one mixed-precision round: by their share of the noise of the
    outputs under ``target_db`` (one for all, or per output: ``Goal.targets``), most first, as many
    as the noise budget says bring every such output to its target (at least one). The
    one-at-a-time noise powers are scaled per output so that they add up to the measured noise
    (``scale``), which absorbs how far from additive it is.
    ``least``: take at least that many (later rounds grow, so that a model far from additive
    cannot take one round per op)."""
    tgt = target_db if isinstance(target_db, dict) else {d.name: target_db for d in diffs}
    goal = {d.name: noise(tgt[d.name]) for d in diffs}
    bad = [d for d in diffs if not d.sqnr_db >= tgt[d.name]]
    usable = [r for r in rows if r.error is None]
    if not bad or not usable:
        return []
    total = {d.name: noise(d.sqnr_db) for d in bad}
    share = {d.name: sum(noise(r.sqnr_db.get(d.name, float("inf"))) for r in usable) for d in bad}
    scale = {k: (total[k] / share[k] if share[k] > 0 else 1.0) for k in total}

    def weight(r: Row) -> float:
        return max(scale[k] * noise(r.sqnr_db.get(k, float("inf"))) / total[k] for k in total)

    order = sorted(usable, key=weight, reverse=True)
    left = dict(total)
    chosen = []
    for r in order:
        if len(chosen) >= least and (all(v <= goal[k] for k, v in left.items()) or weight(r) <= 0):
            break
        chosen.append(r)
        for k in left:
            left[k] -= scale[k] * noise(r.sqnr_db.get(k, float("inf")))
    return chosen


# --- in the pass ------------------------------------------------------------------------------

def _kept_text(k: dict) -> str:
    """An op mixed precision kept float, with why: the model's SQNR with only it int8."""
    db = "identical" if k["sqnr_db"] is None else f"{k['sqnr_db']:.1f} dB"
    return f"{k['op']} '{k['output']}' (alone {db} on '{k['worst_output']}', rank {k['rank']})"


def give_back_order(kept: Sequence[Row], trials: Sequence[list[OutputDiff] | str], diffs: Sequence[OutputDiff],
                    target_db: float | dict[str, float], use: float = GIVE_BACK_SHARE) -> list[Row]:
    """Ops kept float that may be int8 again: each trial is the model with one of them int8 again;
    their added noise powers (against the current ``diffs``), least first, while their sum stays
    within ``use`` of each output's slack under its target (one for all, or per output)."""
    tgt = target_db if isinstance(target_db, dict) else {d.name: target_db for d in diffs}
    now = {d.name: noise(d.sqnr_db) for d in diffs}
    slack = {k: noise(tgt[k]) - v for k, v in now.items()}
    if any(v <= 0 for v in slack.values()):
        return []
    cost = []
    for r, res in zip(kept, trials):
        if isinstance(res, str):
            continue
        add = {d.name: max(0.0, noise(d.sqnr_db) - now.get(d.name, 0.0)) for d in res}
        share = max((add[k] / slack[k] for k in slack if k in add), default=float("inf"))
        if share < use:
            cost.append((share, r, add))
    cost.sort(key=lambda c: c[0])
    used = dict.fromkeys(slack, 0.0)
    out = []
    for _, r, add in cost:
        if all(used[k] + add.get(k, 0.0) <= use * slack[k] for k in slack):
            out.append(r)
            for k in slack:
                used[k] += add.get(k, 0.0)
    return out


def measure_and_mix(p: Any, model: Any, demoted: dict[int, str], ops: list, params: dict, ctx: Any, *,
                    plan: Callable[[], Any], build: Callable[[dict, str], Callable[[set[int]], bytes]],
                    params_for: Callable[[set[int]], Any] | None = None, judged_on: int = 0):
    """Measure the quantized model's outputs against the float one in LiteRT; with ``sensitivity``
    or ``min_sqnr``, the per-op sensitivity table; with ``min_sqnr``, keep the most sensitive ops
    float, round by round, until every output reaches it. Returns the ops and parameters to
    quantize and the report for ``ctx.facts`` (None where nothing could be measured).

    The sensitivity table (one trial per op) runs on ``options.samples`` samples: it only ranks.
    Whether the model meets ``min_sqnr`` is judged on ``judged_on`` samples (the calibration set:
    what tflc optimize's floor checks when no --inputs are given), so that a target met here is not
    missed there by a hard sample the first few did not hold."""
    from tflc.analyses.calibration import SEED_OFFSET, calibration_source
    from tflc.errors import TflcError
    from tflc.io import serialize
    from tflc.runtime import RunOptions

    goal = Goal(p.options.min_sqnr, getattr(p.options, "max_error", None))
    t0 = time.perf_counter()
    smp = Samples(calibration_source(ctx), p.options.samples, int(getattr(ctx, "seed", 0) or 0) + SEED_OFFSET,
                  dict(getattr(ctx, "shapes", None) or {}) or None, getattr(ctx, "run_options", None) or RunOptions())
    judge = replace(smp, count=max(smp.count, judged_on))
    reference = serialize(model)
    io = p.options.io
    try:
        (diffs,), n = measure(reference, [build(params, io)({op.uid for op in ops})], judge)
    except TflcError as e:
        diffs = str(e)
    if isinstance(diffs, str):
        ctx.note(f"{p.name}: could not measure the quantized model in LiteRT: {diffs}")
        return ops, params, None
    floor = getattr(p.options, "min_sqnr_db", None)
    goal, fallback = _fallback(p, goal, diffs)
    # notes and reasons name what the rounds work towards: the user's target, or the fallback's floor
    target = f"the fallback to the {floor:g} dB floor" if fallback is not None else (goal.label or None)
    rows_n = p.options.sensitivity or (10 if target is not None else 0)
    rows: list = []
    if rows_n:
        try:
            rows = sensitivity(reference, ops, build(params, "float"), smp)
        except TflcError as e:
            ctx.note(f"{p.name}: could not measure the sensitivity table in LiteRT: {e}")
    first = diffs
    start = (ops, params, dict(demoted))         # the fallback's way back when it does not reach the floor
    sens_s = time.perf_counter() - t0
    rank = {r.uid: i + 1 for i, r in enumerate(rows)}
    rounds: list[dict] = []
    kept: list[dict] = []
    kept_rows: list[Row] = []
    no_gain: set[int] = set()
    undo = True
    given_back: list[dict] = []
    reached = None
    if target is not None:
        reached = goal.met(diffs)
        while not reached:
            quantized = {op.uid for op in ops}
            least = 1 if len(rounds) < ROUNDS_ONE_BY_ONE else 2 ** (len(rounds) - ROUNDS_ONE_BY_ONE + 1)
            chosen = pick([r for r in rows if r.uid in quantized and r.uid not in no_gain], diffs,
                          goal.targets(diffs), least)
            if not chosen and no_gain & quantized:       # only ops an undone round held are left: no more undoing
                no_gain, undo = set(), False
                chosen = pick([r for r in rows if r.uid in quantized], diffs, goal.targets(diffs), least)
            if not chosen:
                break
            before = diffs
            snapshot = dict(demoted)
            for r in chosen:
                demoted[r.uid] = f"{target}: among the most sensitive ops (round {len(rounds) + 1})"
            planned = plan()
            if planned is None:            # keep the last result that LiteRT ran (noted by _plan)
                demoted.clear()
                demoted.update(snapshot)
                break
            if not planned[0]:
                ops, params = planned
                diffs = []
                reached = True
                rounds.append({"kept_float": [r.tensor for r in chosen], "worst_sqnr_db": None})
                kept += [{**r.to_json(), "rank": rank[r.uid], "round": len(rounds)} for r in chosen]
                break
            new_ops, new_params = planned
            try:
                (res,), _ = measure(reference, [build(new_params, io)(
                    {op.uid for op in new_ops})], judge)
            except TflcError as e:
                res = str(e)
            if isinstance(res, str):
                ctx.note(f"{p.name}: min-sqnr: could not measure a round in LiteRT ({res}); kept the last one")
                demoted.clear()
                demoted.update(snapshot)
                break
            picked = {r.uid for r in chosen}
            others = any(r.error is None and r.uid in quantized and r.uid not in no_gain | picked for r in rows)
            if undo and others and goal.shortfall(res) > goal.shortfall(before) + WORSE_DB:
                # float islands can cost more than they save (their edges requantize): undo the
                # round, and try those ops again only when no other op is left
                rounds.append({"kept_float": [r.tensor for r in chosen], "worst_sqnr_db": finite(worst_db(res)),
                               "gain_db": finite(worst_db(res) - worst_db(before)), "undone": True})
                no_gain |= {r.uid for r in chosen}
                demoted.clear()
                demoted.update(snapshot)
                continue
            ops, params, diffs = new_ops, new_params, res
            gain = worst_db(diffs) - worst_db(before)
            rounds.append({"kept_float": [r.tensor for r in chosen], "worst_sqnr_db": finite(worst_db(diffs)),
                           "gain_db": finite(gain)})
            why = (f"{target}: one of the {len(chosen)} most sensitive int8 ops kept float in round "
                   f"{len(rounds)} (worst output {worst_db(before):.1f} -> {worst_db(diffs):.1f} dB; "
                   "each op's SQNR with only it int8 is in the mixed-precision note)")
            for r in chosen:
                kept.append({**r.to_json(), "rank": rank[r.uid], "round": len(rounds),
                             "round_gain_db": finite(gain)})
                kept_rows.append(r)
                demoted[r.uid] = why
            reached = goal.met(diffs)
        settle = Goal(min_sqnr=fallback["target_db"]) if fallback is not None else goal
        if fallback is not None and not reached and diffs and ops and settle.met(diffs):
            reached = True                 # short of the search target, over the floor: enough
        if reached and diffs and kept_rows and params_for is not None:
            ops, params, diffs, back = _give_back(p, reference, judge, demoted, kept_rows, ops, params, diffs, settle,
                                                  plan, build, params_for, ctx)
            if back:
                names = {r.tensor for r in back}
                kept = [k for k in kept if k["output"] not in names]
                given_back = [dict(r.to_json(), rank=rank[r.uid]) for r in back]
    if fallback is not None and (not reached or not ops):
        # keeping ops float did not reach the floor (or only with none left int8): back to every op
        # int8, which tflc optimize's floor then refuses with its own message (a float copy written
        # with exit 0 would surprise whoever asked for int8)
        ops, params, diffs = start[0], start[1], first
        demoted.clear()
        demoted.update(start[2])
        rounds, kept, given_back, reached = [], [], [], False
    seconds = time.perf_counter() - t0
    report = {"samples": n, "source": str(smp.source) if smp.source else "generated", "seconds": round(seconds, 2),
              "outputs": outputs_json(diffs), "outputs_all_int8": outputs_json(first)}
    if rows:
        report["sensitivity"] = [dict(r.to_json(), rank=i + 1) for i, r in enumerate(rows)]
        report["sensitivity_seconds"] = round(sens_s, 2)
        report["sensitivity_samples"] = smp.count
        report["sensitivity_method"] = ("each op int8 alone (every other op float): the model's SQNR per "
                                        "output against the float model")
        ctx.note(f"{p.name}: sensitivity (model SQNR with only that op int8, {smp.count} sample(s), "
                 f"{len(rows)} ops in {sens_s:.1f} s), most sensitive first: " + "; ".join(
                     f"{r.op_type} '{r.tensor}' " + (f"error: {r.error}" if r.error else
                                                     f"{r.worst:.1f} dB on '{r.worst_output}'")
                     for r in rows[:rows_n]))
    if fallback is not None:
        report["fallback"] = dict(fallback, kept_float=len(kept), reached=bool(reached))
        ctx.note(f"{p.name}: warning: with every op int8, '{fallback['output']}' measured "
                 f"{fallback['all_int8_worst_db']} dB on the calibration samples, under the {floor:g} dB floor: "
                 f"{len(kept)} op(s) kept float to hold it (fallback; int8{{fallback=false}} is full int8 or an "
                 f"error, int8{{min-sqnr-db=N}} lowers the floor)" if reached else
                 f"{p.name}: warning: with every op int8, '{fallback['output']}' measured "
                 f"{fallback['all_int8_worst_db']} dB, under the {floor:g} dB floor, and keeping ops float did "
                 f"not reach it (fallback): every op stays int8")
        if reached and kept:
            ctx.note(f"{p.name}: the fallback kept float (worst output {worst_db(first):.1f} -> "
                     f"{worst_db(diffs):.1f} dB): " + ", ".join(_kept_text(k) for k in kept))
    if target is not None and (fallback is None or reached):
        if fallback is None:           # a target the user set: reported as theirs
            report.update(min_sqnr=goal.min_sqnr, max_error=goal.max_error, reached=bool(reached))
        report.update(rounds=rounds, kept_float=kept, given_back=given_back)
    if target is not None and fallback is None:      # (the fallback's own warning says what it did)
        if given_back:
            ctx.note(f"{p.name}: {target}: {len(given_back)} op(s) that the rounds had kept float "
                     f"are int8 again (the target still holds with them int8): " + ", ".join(
                         f"{g['op']} '{g['output']}'" for g in given_back))
        if not rounds and reached:
            ctx.note(f"{p.name}: {target}: met with every op int8 (worst output "
                     f"{worst_db(diffs):.1f} dB)")
        elif reached and diffs:
            ctx.note(f"{p.name}: {target}: met after {len(rounds)} round(s) with {len(kept)} op(s) "
                     f"kept float (worst output {worst_db(first):.1f} -> {worst_db(diffs):.1f} dB): "
                     + ", ".join(_kept_text(k) for k in kept))
        elif not reached:
            ctx.note(f"{p.name}: {target}: not met (worst output {worst_db(first):.1f} -> "
                     f"{worst_db(diffs):.1f} dB after {len(rounds)} round(s), {len(kept)} op(s) kept float)"
                     + (": " + ", ".join(_kept_text(k) for k in kept) if kept else ""))
    if diffs:
        ctx.note(f"{p.name}: measured on {n} calibration sample(s): {describe(diffs)} (the quantizer's own "
                 "result, before the passes after it; the check of the written model is the final word)")
    return ops, params, report


def _fallback(p: Any, goal: Goal, diffs: Sequence[OutputDiff]) -> tuple[Goal, dict | None]:
    """With no target set and every op int8 under tflc optimize's floor (``min_sqnr_db``, on the same
    samples): the goal the fallback searches towards and its record; else ``goal`` and None."""
    floor = getattr(p.options, "min_sqnr_db", None)
    if goal.label or not getattr(p.options, "fallback", False) or floor is None or worst_db(diffs) >= floor:
        return goal, None
    worst = min(diffs, key=lambda d: d.sqnr_db if d.sqnr_db == d.sqnr_db else float("-inf"))
    return Goal(min_sqnr=floor + FALLBACK_HEADROOM_DB), {
        "floor_db": floor, "target_db": floor + FLOOR_MARGIN_DB, "search_db": floor + FALLBACK_HEADROOM_DB,
        "all_int8_worst_db": finite(worst_db(diffs)), "output": worst.name}


def _give_back(p, reference, smp, demoted, kept_rows, ops, params, diffs, goal, plan, build, params_for, ctx):
    """After the target holds: the ops the rounds kept float whose int8 costs little (each tried
    alone, in one LiteRT child) go back to int8 together, as far as the slack under the target
    allows; the result is measured, and halved until it holds (3 tries)."""
    from tflc.errors import TflcError
    io = p.options.io
    cur = {op.uid for op in ops}
    rows, trials = [], []
    for r in kept_rows:
        prm = params_for(cur | {r.uid})
        rows.append(r)
        trials.append(lambda u=cur | {r.uid}, prm=prm: build(prm, io)(u))
    try:
        results, _ = measure(reference, trials, smp) if trials else ([], 0)
    except TflcError:
        return ops, params, diffs, []
    back = give_back_order(rows, results, diffs, goal.targets(diffs))
    snapshot = dict(demoted)
    for _ in range(3):
        if not back:
            break
        for r in back:
            demoted.pop(r.uid, None)
        planned = plan()
        res = None
        if planned is not None and planned[0]:
            try:
                (res,), _ = measure(reference, [build(planned[1], io)({op.uid for op in planned[0]})], smp)
            except TflcError:
                res = None
        if planned is not None and planned[0] and not isinstance(res, (str, type(None))) and goal.met(res):
            return planned[0], planned[1], res, back
        demoted.clear()
        demoted.update(snapshot)
        back = back[:len(back) // 2]
    return ops, params, diffs, []

