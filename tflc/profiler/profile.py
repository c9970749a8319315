"""Per-operator profiles: the data model, how raw measurements become it, and its analyses.

A :class:`Profile` holds one :class:`View` per way of running the model:

* ``xnnpack``: as LiteRT runs it by default, with the XNNPACK delegate. A delegated partition is
  one :class:`Partition`; the TFLite ops inside it get the time of the XNNPACK operators they
  became (mapped back by ``align``); ops left outside the delegate get their own events.
* ``builtin``: every op with TFLite's builtin kernels (``kernel_mode = builtin``), one exact event
  per node. Slower, but each op is seen alone: what costs, and why.

The per-op events are checked against the *measured* whole-model latency: the stock interpreter
with no profiler, measured the way ``tflc bench`` measures it (rounds of warm-up then timed runs;
the median), in rounds alternating with the profiled runs so that a slow phase of the machine
hits both. The check (``View.check``) is on the median total per run of the events: it must be
within 10% of the measured latency. The builtin op events (one per TFLite node, ``kernel_mode =
builtin``, and the CPU ops outside XNNPACK) each hold part of the profiler's own cost (clock reads,
event bookkeeping), ~0.13 µs on the machine this was written on: on a model of ~50 tiny ops that is
+20%. ``calibrate.py`` measures that cost per event on this machine (a chain of N 1-element ADDs
with and without the profiler; cached per LiteRT version); where it is available, the op events
less it give the *calibrated* total (an op's mean time less it per event, never below 0), and the check judges that one; the raw total
is kept and shown beside it. XNNPACK's own events are never calibrated: they are truncated to
whole µs and read low, not high. LiteRT's events have a resolution of one microsecond
(XNNPACK truncates each operator's time to whole microseconds; TFLite's op events are
differences of microsecond timestamps: unbiased, so their error shrinks when averaged over the
runs, see ``op_event_halfwidth``), so where that resolution alone could move the total by
more than 10% and decide the check, the check says "not checkable" rather than pass or fail.
The per-op times shown are the events as read (less the calibration above), never padded to the measured latency (an earlier
version spread the gap over the events, which made every sum "add up" by construction); a
sub-microsecond XNNPACK operator reads 0.
"""
from __future__ import annotations

import math

import hashlib
import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .collect import OpInfo, RawProfile, RawView

SCHEMA = 4          # 3: calibrated op events; 4: the timeline holds the runs nearest the median (timeline_runs)
SUM_TOLERANCE = 0.10
#: per-op times are averaged over the fastest runs (by their total); the slowest are machine noise
KEEP_FRACTION = 0.9

CHECK_OK, CHECK_OFF, CHECK_UNDECIDABLE = "ok", "off", "not checkable"


def op_event_halfwidth(op_events: int, runs: int = 1) -> float:
    """How far the op events' µs timestamps can move a per-run total averaged over ``runs`` runs.

    An op event is the difference of two timestamps read from a µs clock: its error lies in
    (-1, +1) µs, is zero on average and has variance 1/6 µs² (the difference of two uniform
    truncation errors). One run: the worst case, ``op_events`` µs. Averaged over ``runs`` runs:
    three standard deviations of the mean, ``3 sqrt(op_events / (6 runs))`` (never more than the
    worst case). XNNPACK's events are different: truncated durations, biased low, which averaging
    does not remove; they keep their worst case.
    """
    if op_events <= 0:
        return 0.0
    if runs <= 1:
        return float(op_events)
    return min(float(op_events), 3.0 * math.sqrt(op_events / (6.0 * runs)))


def sum_check(raw_us: float, measured_us: float | None, *, xnnpack_events: int = 0, op_events: int = 0,
              tolerance: float = SUM_TOLERANCE, runs: int = 1) -> str | None:
    """Is the raw per-op sum within ``tolerance`` of the measured latency?

    "ok" / "off" decide on the raw sum itself where the events' resolution (XNNPACK events read
    up to 1 µs low; op events, averaged over ``runs`` runs, see :func:`op_event_halfwidth`) is
    finer than the tolerance. Where it is coarser, the check still decides when the verdict holds
    at both ends of what the resolution allows, and is "not checkable" otherwise. None: no
    measured latency to check against.
    """
    if not measured_us or measured_us <= 0:
        return None
    lo_ok, hi_ok = (1.0 - tolerance) * measured_us, (1.0 + tolerance) * measured_us
    within = lo_ok <= raw_us <= hi_ok
    op_w = op_event_halfwidth(op_events, runs)
    low, high = raw_us - op_w, raw_us + xnnpack_events + op_w
    if high - low <= tolerance * measured_us:
        return CHECK_OK if within else CHECK_OFF
    if high < lo_ok or low > hi_ok:
        return CHECK_OFF                    # off even at the far end of the resolution
    if lo_ok <= low and high <= hi_ok:
        return CHECK_OK                     # within at both ends
    return CHECK_UNDECIDABLE


@dataclass
class OpStat:
    key: str                      # "subgraph/index"
    subgraph: int
    index: int
    type: str
    name: str
    inputs: list[str]
    outputs: list[str]
    avg_us: float
    min_us: float
    max_us: float
    std_us: float
    where: str                    # "XNNPACK#0", "CPU", "builtin", "alone"
    xnn_ops: list[str] = field(default_factory=list)
    note: str = ""
    percent: float = 0.0
    cum_percent: float = 0.0


@dataclass
class Partition:
    index: int
    nodes: list[int]
    avg_us: float
    min_us: float
    max_us: float
    xnn_ops: int
    percent: float = 0.0

    @property
    def label(self) -> str:
        return f"XNNPACK#{self.index}"


@dataclass
class View:
    name: str                                 # "xnnpack" | "builtin"
    method: str                               # "litert-profiler" | "op-alone" | "unavailable"
    ops: list[OpStat]                         # every op, hot first
    partitions: list[Partition] = field(default_factory=list)
    measured: dict | None = None              # whole model, stock interpreter, no profiler (measured_stats)
    profiled_invoke_us: float | None = None   # LiteRT's Invoke event in the profiled runs (median)
    raw_sum_us: float = 0.0                   # the events as read: median total per run (or ops alone: sum)
    sum_us: float = 0.0                       # the per-op times shown (means over the kept runs)
    correction: dict = field(default_factory=dict)   # what was subtracted or added to the events (ops alone)
    runs: int = 0                             # profiled runs made
    kept: int = 0                             # of which the per-op means use the fastest
    notes: list[str] = field(default_factory=list)
    timeline: list[list[list]] = field(default_factory=list)   # a few runs, see _timeline
    #: which runs the timeline holds, nearest the median first: {"run": k (0-based, of the profiled
    #: runs), "total_us": that run's total of the events}; "median_us": the median total they are near
    timeline_runs: list[dict] = field(default_factory=list)
    xnnpack_events: int = 0                   # per run: events truncated to whole µs
    op_events: int = 0                        # per run: events that are differences of µs timestamps
    requested: dict = field(default_factory=dict)    # runs / warmup / max_seconds / rounds asked for
    paired_ratio: float | None = None         # raw total / measured, round by round (see _paired_ratio)
    # the profiler's own cost per op event, measured on this machine (calibrate.py); None: not calibrated
    calibration: dict | None = None
    calibrated_sum_us: float | None = None    # the events less that cost: median total per run
    calibrated_paired_ratio: float | None = None

    @property
    def calibrated_ratio(self) -> float | None:
        """The calibrated per-op total against the measured latency (round by round, as raw_ratio)."""
        m = self.measured_us
        if not m or self.calibrated_sum_us is None:
            return None
        return self.calibrated_paired_ratio if self.calibrated_paired_ratio is not None else self.calibrated_sum_us / m

    @property
    def checked_sum(self) -> str:
        """Which per-op total the check judges: "calibrated" where the calibration is available, else "raw"."""
        return "calibrated" if self.calibrated_ratio is not None else "raw"

    @property
    def checked_ratio(self) -> float | None:
        return self.calibrated_ratio if self.checked_sum == "calibrated" else self.raw_ratio

    @property
    def measured_us(self) -> float | None:
        """The measured whole-model latency: the median, as ``tflc bench`` reports it (p50)."""
        return self.measured["median_us"] if self.measured else None

    @property
    def raw_ratio(self) -> float | None:
        """The raw per-op total against the measured latency: the median of the per-round ratios
        where the runs came in rounds (a slow phase of the machine then hits both sides of a ratio
        alike), else the ratio of the medians."""
        m = self.measured_us
        if not m:
            return None
        return self.paired_ratio if self.paired_ratio is not None else self.raw_sum_us / m

    @property
    def sum_ratio(self) -> float | None:
        """The per-op times shown against the measured latency: information, not the check."""
        m = self.measured_us
        return self.sum_us / m if m else None

    @property
    def resolution_us(self) -> float:
        """How far the events' 1 µs resolution can move the averaged per-run total, in all."""
        return float(self.xnnpack_events) + 2 * op_event_halfwidth(self.op_events, self.kept)

    def check(self, tolerance: float = SUM_TOLERANCE) -> str | None:
        """"ok", "off", "not checkable" or None (nothing measured): see :func:`sum_check`; on the
        calibrated total where there is one (``checked_sum``), else on the raw one."""
        m, r = self.measured_us, self.checked_ratio
        if not m or r is None:
            return None
        return sum_check(r * m, m, xnnpack_events=self.xnnpack_events, op_events=self.op_events,
                         tolerance=tolerance, runs=self.kept)

    def sums_ok(self, tolerance: float = SUM_TOLERANCE) -> bool | None:
        """True / False where the check decides; None where it cannot (resolution, no measurement)."""
        c = self.check(tolerance)
        return None if c in (None, CHECK_UNDECIDABLE) else c == CHECK_OK

    @property
    def check_is_strong(self) -> bool | None:
        """Whether the events resolve the total finer than the 10% check."""
        m = self.measured_us
        return None if not m else self.resolution_us <= SUM_TOLERANCE * m

    def top(self, n: int = 10) -> list[OpStat]:
        return self.ops[:n]

    def by_type(self) -> list[dict]:
        agg: dict[str, dict] = {}
        for o in self.ops:
            a = agg.setdefault(o.type, {"type": o.type, "count": 0, "total_us": 0.0})
            a["count"] += 1
            a["total_us"] += o.avg_us
        total = self.sum_us or 1.0
        rows = sorted(agg.values(), key=lambda a: -a["total_us"])
        cum = 0.0
        for a in rows:
            a["avg_us"] = a["total_us"] / a["count"]
            a["percent"] = 100.0 * a["total_us"] / total
            cum += a["percent"]
            a["cum_percent"] = cum
        return rows

    def runtime_rows(self) -> list[dict]:
        """The view as LiteRT runs it: each delegated partition one line (its ops named), CPU ops alone."""
        rows = []
        for p in self.partitions:
            inner = [o for o in self.ops if o.where == p.label]
            rows.append({"what": p.label, "type": "XNNPACK partition", "avg_us": p.avg_us, "min_us": p.min_us,
                         "max_us": p.max_us, "percent": p.percent, "ops": len(p.nodes),
                         "inner": [f"{o.type}#{o.index}" for o in inner if o.avg_us > 0][:12]})
        for o in self.ops:
            if not o.where.startswith("XNNPACK"):
                rows.append({"what": f"{o.type}#{o.index}" if o.subgraph == 0 else f"{o.type}#{o.key}",
                             "type": o.type, "avg_us": o.avg_us, "min_us": o.min_us, "max_us": o.max_us,
                             "percent": o.percent, "ops": 1, "inner": []})
        rows.sort(key=lambda r: -r["avg_us"])
        return rows

    def to_json(self) -> dict:
        d = asdict(self)
        d.update(measured_us=self.measured_us, raw_ratio=self.raw_ratio, sum_ratio=self.sum_ratio,
                 calibrated_ratio=self.calibrated_ratio, checked_sum=self.checked_sum,
                 checked_ratio=self.checked_ratio,
                 check=self.check(), sums_ok=self.sums_ok(), check_is_strong=self.check_is_strong,
                 resolution_us=self.resolution_us, by_type=self.by_type())
        return d

    @classmethod
    def from_json(cls, d: dict) -> "View":
        d = dict(d)
        for k in ("measured_us", "raw_ratio", "sum_ratio", "check", "sums_ok", "check_is_strong", "resolution_us",
                  "by_type", "calibrated_ratio", "checked_sum", "checked_ratio"):
            d.pop(k, None)
        d["ops"] = [OpStat(**o) for o in d.get("ops", [])]
        d["partitions"] = [Partition(**p) for p in d.get("partitions", [])]
        return cls(**d)


@dataclass
class Profile:
    model: str
    sha256: str
    size_bytes: int
    threads: int
    views: dict[str, View]
    litert_version: str | None = None
    tflc_version: str = ""
    created: str = ""
    input_shapes: list[list[int]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    schema: int = SCHEMA
    cached: bool = False          # loaded from the cache (not serialized)

    def view(self, name: str | None = None) -> View:
        if name is None:
            name = "xnnpack" if "xnnpack" in self.views else next(iter(self.views))
        return self.views[name]

    def hottest(self, view: str | None = None, n: int = 1) -> list[str]:
        return [f"{o.type}#{o.key}" for o in self.view(view).ops[:n]]

    def to_json(self) -> dict:
        d = {k: v for k, v in asdict(self).items() if k not in ("views", "cached")}
        d["views"] = {k: v.to_json() for k, v in self.views.items()}
        return d

    @classmethod
    def from_json(cls, d: dict) -> "Profile":
        d = dict(d)
        if d.get("schema") != SCHEMA:
            raise ValueError(f"profile schema {d.get('schema')} (this tflc reads {SCHEMA})")
        d["views"] = {k: View.from_json(v) for k, v in d["views"].items()}
        return cls(**d)

    def save(self, path: str | os.PathLike) -> None:
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        tmp = p.with_name(f".{p.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(self.to_json(), indent=1, default=_json_default))
        os.replace(tmp, p)

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Profile":
        return cls.from_json(json.loads(Path(path).read_text()))


def _json_default(o: Any) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    return str(o)


# --------------------------------------------------------------------------- raw -> view

def _stats(values: Sequence[float]) -> tuple[float, float, float, float]:
    a = np.asarray(values, dtype=float)
    if a.size == 0:
        return 0.0, 0.0, 0.0, 0.0
    return float(a.mean()), float(a.min()), float(a.max()), float(a.std())


def measured_stats(values: Sequence[float], *, warmup: int = 0, rounds: int = 1) -> dict | None:
    """Whole-model latency over runs, as ``tflc bench`` reports it: the median (p50) of all runs."""
    if not values:
        return None
    a = np.asarray(values, dtype=float)
    p50, p90 = np.percentile(a, [50, 90])
    return {"median_us": float(p50), "p90_us": float(p90), "mean_us": float(a.mean()), "min_us": float(a.min()),
            "max_us": float(a.max()), "std_us": float(a.std()), "runs": int(a.size), "warmup": int(warmup),
            "rounds": int(rounds), "samples": [round(float(x), 3) for x in values]}


def _paired_ratio(totals: Sequence[float], run_rounds: Sequence[int], measured: Sequence[float],
                  measured_rounds: Sequence[int]) -> float | None:
    """The median over rounds of (median raw total / median measured latency) in that round; None
    when the rounds are unknown or fewer than 2 have both sides."""
    if len(run_rounds) != len(totals) or len(measured_rounds) != len(measured):
        return None
    ratios = []
    for r in sorted(set(run_rounds) & set(measured_rounds)):
        a = [t for t, k in zip(totals, run_rounds) if k == r]
        b = [t for t, k in zip(measured, measured_rounds) if k == r]
        if a and b and np.median(b) > 0:
            ratios.append(float(np.median(a) / np.median(b)))
    return float(np.median(ratios)) if len(ratios) >= 2 else None


def _self_times(cpu: list[tuple]) -> dict[tuple[int, int], tuple[float, int]]:
    """CPU op events of one run -> {(subgraph, node): (self time, events)}; nested events (control
    flow subgraphs inside WHILE/IF/CALL_ONCE) are subtracted from their parent."""
    evs = sorted(cpu, key=lambda e: (e[4], -e[5]))
    out: dict[tuple[int, int], list[float]] = {}
    stack: list[tuple[int, int, tuple[int, int]]] = []  # open (start, end, key)
    for e in evs:
        _, _, node, sg, start, el = e
        key = (int(sg), int(node))
        end = start + el
        # a child is an event of another subgraph inside the parent's interval
        while stack and not (start >= stack[-1][0] and end <= stack[-1][1] and stack[-1][2][0] != key[0]):
            stack.pop()
        cell = out.setdefault(key, [0.0, 0])
        cell[0] += el
        cell[1] += 1
        if stack:
            out[stack[-1][2]][0] -= el
        stack.append((start, end, key))
    return {k: (v[0], v[1]) for k, v in out.items()}


def _segments(xnn: list[tuple]) -> list[list[tuple]]:
    segs: list[list[tuple]] = []
    last = None
    for e in xnn:
        if e is None:          # a CPU op event in between: the next XNNPACK event starts a new partition
            last = None
            continue
        if last is None or e[2] <= last:
            segs.append([])
        segs[-1].append(e)
        last = e[2]
    return segs


def _base_stat(info: OpInfo, times: Sequence[float], where: str, note: str = "", xnn: list[str] | None = None,
               shift: float = 0.0) -> OpStat:
    mean, mn, mx, sd = _stats(times)
    return OpStat(f"{info.subgraph}/{info.index}", info.subgraph, info.index, info.type, info.name,
                  info.inputs, info.outputs, max(0.0, mean + shift), max(0.0, mn + shift), max(0.0, mx + shift),
                  sd, where, xnn or [], note)


def _finish(view: View) -> View:
    view.ops.sort(key=lambda o: (-o.avg_us, o.subgraph, o.index))
    total = sum(o.avg_us for o in view.ops)
    view.sum_us = total
    cum = 0.0
    for o in view.ops:
        o.percent = 100.0 * o.avg_us / total if total else 0.0
        cum += o.percent
        o.cum_percent = cum
    for p in view.partitions:
        p.percent = 100.0 * p.avg_us / total if total else 0.0
    return view


def _keep_runs(totals: Sequence[float], keep: float = KEEP_FRACTION) -> list[int]:
    order = np.argsort(np.asarray(totals, dtype=float), kind="stable")
    k = max(1, int(round(len(order) * keep)))
    return sorted(int(i) for i in order[:k])


def build_view(rv: RawView, ops: list[OpInfo]) -> View:
    if rv.method == "op-alone":
        return _build_alone(rv, ops)
    return _build_profiler(rv, ops)


def _build_alone(rv: RawView, ops: list[OpInfo]) -> View:
    measured = measured_stats(rv.measured_us, warmup=rv.warmup, rounds=rv.rounds)
    stats = []
    where = "alone"
    for info in ops:
        key = f"{info.subgraph}/{info.index}"
        if info.subgraph != 0:
            continue
        times = rv.alone_us.get(key)
        note = rv.alone_notes.get(key, "")
        stats.append(_base_stat(info, times or [0.0], where, note))
    n = max((len(v) for v in rv.alone_us.values()), default=0)
    view = View(rv.view, rv.method, stats, measured=measured, runs=n, kept=n, requested=dict(rv.requested),
                notes=list(rv.notes) + [f"each op timed alone as a one-op model, less {rv.baseline_us:.1f} µs "
                                        "for calling a model"])
    view.raw_sum_us = sum(o.avg_us for o in stats)
    view.correction = {"baseline_us": rv.baseline_us, "total_us": 0.0}
    t, line = 0.0, []
    for o in stats:              # one synthetic run: the ops end to end, in model order
        label = f"{o.type}#{o.index}"
        line.append([label, label, t, o.avg_us])
        t += o.avg_us
    view.timeline = [[["Invoke (sum of ops timed alone)", "Invoke", 0.0, t]] + line]
    return _finish(view)


def _build_profiler(rv: RawView, ops: list[OpInfo]) -> View:
    from .align import align
    by_key = {(o.subgraph, o.index): o for o in ops}
    notes = list(rv.notes)
    rounds_of = list(rv.run_rounds) if len(rv.run_rounds) == len(rv.runs) else []
    if rounds_of:
        rounds_of = [k for r, k in zip(rv.runs, rounds_of) if r]
    runs = [r for r in rv.runs if r]
    if not runs:
        return View(rv.view, "unavailable", [], measured=measured_stats(rv.measured_us, warmup=rv.warmup,
                                                                        rounds=rv.rounds),
                    notes=notes + ["no profiled run"], requested=dict(rv.requested))
    # per run: xnn events (with CPU separators), cpu events, invoke
    parsed = []
    for k, r in enumerate(runs):
        seq: list[tuple | None] = []
        cpu = []
        inv = 0.0
        for e in r:
            if e[0] == 8:
                seq.append(e)
            elif e[0] == 2:
                cpu.append(e)
                seq.append(None)
            elif e[0] == 1 and e[1] == "Invoke":
                inv += e[5]
        parsed.append((_segments(seq), _self_times(cpu), inv, r, k))
    # alignment from the first run; runs with another XNNPACK structure are dropped
    ref_segs = parsed[0][0]
    shape = [[e[1] for e in s] for s in ref_segs]
    same = [p for p in parsed if [[e[1] for e in s] for s in p[0]] == shape]
    if len(same) < len(parsed):
        notes.append(f"{len(parsed) - len(same)} profiled run(s) with another XNNPACK op sequence were dropped")
    parsed = same
    parts = [list(p) for p in rv.partitions]
    # which TFLite node each XNNPACK op belongs to, and its partition
    owner: list[list[tuple[int, int]]] = []          # per segment, per event: (partition, node)
    cpu_nodes = {k for p in parsed for k in p[1]}
    if ref_segs:
        if not parts:      # no partition info: every main-subgraph node not seen on the CPU
            parts = [[o.index for o in ops if o.subgraph == 0 and (0, o.index) not in cpu_nodes]]
        if len(parts) == len(ref_segs):
            for k, seg in enumerate(ref_segs):
                nodes = parts[k]
                own = align([by_key[(0, n)].type for n in nodes], [e[1] for e in seg])
                owner.append([(k, nodes[i] if i >= 0 else -1) for i in own])
        else:
            flat = [(k, n) for k, nodes in enumerate(parts) for n in nodes]
            tags = [e[1] for seg in ref_segs for e in seg]
            own = align([by_key[(0, n)].type for _, n in flat], tags)
            it = iter(own)
            for seg in ref_segs:
                owner.append([flat[next(it)] if flat else (0, -1) for _ in seg])
            notes.append(f"{len(ref_segs)} XNNPACK event groups for {len(parts)} partitions: aligned as one sequence")
    # per run, per op: raw time and event counts
    n_runs = len(parsed)
    op_raw: dict[tuple[int, int], np.ndarray] = {}
    op_nx: dict[tuple[int, int], int] = {}
    op_nc: dict[tuple[int, int], int] = {}
    op_xnn: dict[tuple[int, int], list[str]] = {}
    part_raw = np.zeros((len(parts), n_runs))
    part_nx = [0] * len(parts)
    totals = np.zeros(n_runs)
    cal_totals = np.zeros(n_runs)
    cal = rv.calibration.get("per_event_us") if rv.calibration else None
    cal_us = float(cal) if isinstance(cal, (int, float)) and cal >= 0 else None
    # the builtin interpreter's fixed cost per invoke (calibrate.py): in no op event, but in the latency
    inv_fixed = rv.calibration.get("invoke_us") if rv.calibration and rv.view == "builtin" else None
    inv_us = float(inv_fixed) if isinstance(inv_fixed, (int, float)) and inv_fixed >= 0 else 0.0
    invokes = np.zeros(n_runs)
    for r, (segs, cpu, inv, _, _) in enumerate(parsed):
        invokes[r] = inv
        for s, seg in enumerate(segs):
            for j, e in enumerate(seg):
                pk, node = owner[s][j] if s < len(owner) else (0, -1)
                key = (0, node)
                op_raw.setdefault(key, np.zeros(n_runs))[r] += e[5]
                if r == 0:
                    op_nx[key] = op_nx.get(key, 0) + 1
                    op_xnn.setdefault(key, []).append(e[1])
                    if pk < len(parts):
                        part_nx[pk] += 1
                if pk < len(parts):
                    part_raw[pk, r] += e[5]
                totals[r] += e[5]
                cal_totals[r] += e[5]      # XNNPACK's own events: not calibrated (they read low, not high)
        for key, (self_us, n) in cpu.items():
            op_raw.setdefault(key, np.zeros(n_runs))[r] += self_us
            op_nc[key] = max(op_nc.get(key, 0), n)
            totals[r] += self_us
            cal_totals[r] += self_us - n * (cal_us or 0.0)
    measured = measured_stats(rv.measured_us, warmup=rv.warmup, rounds=rv.rounds)
    keep = _keep_runs(totals)
    raw_sum = float(np.median(totals))
    paired = _paired_ratio(list(totals), [rounds_of[p[4]] for p in parsed] if rounds_of else [],
                           rv.measured_us, rv.measured_rounds)
    nx, nc = sum(op_nx.values()), sum(op_nc.values())
    dx = dc = 0.0                # the events as read: never padded to `measured`
    if cal_us is not None and nc:
        # the op events less the profiler's measured cost per event: an op's mean over the kept runs less
        # that cost for each of its events, never below 0 (not each integer-µs reading: one that reads 0
        # cannot be lowered, and clamping it would bias the total high); the totals per run likewise
        dc = -cal_us
        cal_totals = np.maximum(cal_totals, 0.0) + inv_us   # a run's total is a time: never below 0
        cal_sum: float | None = float(np.median(cal_totals))
        cal_paired = _paired_ratio(list(cal_totals), [rounds_of[p[4]] for p in parsed] if rounds_of else [],
                                   rv.measured_us, rv.measured_rounds)
    else:
        cal_sum = cal_paired = None
    in_part = {n: k for k, nodes in enumerate(parts) for n in nodes}
    stats: list[OpStat] = []
    for info in ops:
        key = (info.subgraph, info.index)
        raw = op_raw.get(key)
        shift = op_nx.get(key, 0) * dx + op_nc.get(key, 0) * dc
        if info.subgraph == 0 and info.index in in_part and key not in op_nc:
            where = f"XNNPACK#{in_part[info.index]}"
            note = "" if raw is not None else "no XNNPACK operator of its own (folded or fused)"
        elif raw is not None:
            where = "CPU" if rv.view == "xnnpack" else "builtin"
            note = ""
        else:
            if info.subgraph != 0:
                continue      # another subgraph's op that never ran (e.g. an init subgraph already done)
            where = "CPU" if rv.view == "xnnpack" else "builtin"
            note = "no event (did not run in steady state)"
        times = raw[keep] if raw is not None else [0.0]
        stats.append(_base_stat(info, times, where, note, op_xnn.get(key), shift if raw is not None else 0.0))
    partitions = []
    for k, nodes in enumerate(parts):
        vals = part_raw[k, keep] + part_nx[k] * dx
        mean, mn, mx, _ = _stats(vals)
        partitions.append(Partition(k, list(nodes), mean, mn, mx, part_nx[k]))
    view = View(rv.view, rv.method, stats, partitions, measured,
                float(np.median(invokes)) if invokes.any() else None, raw_sum, 0.0,
                {"xnnpack_us_per_event": dx, "op_us_per_event": dc, "total_us": dx * nx + dc * nc},
                len(runs), len(keep), notes, xnnpack_events=nx, op_events=nc, requested=dict(rv.requested),
                paired_ratio=paired, calibration=dict(rv.calibration) if rv.calibration else None,
                calibrated_sum_us=cal_sum, calibrated_paired_ratio=cal_paired)
    picked = representative_runs(list(totals), TIMELINE_RUNS)
    view.timeline = [_timeline(parsed[r][3], owner, by_key, dx, dc) for r in picked]
    view.timeline_runs = [{"run": int(parsed[r][4]), "total_us": float(totals[r]), "median_us": raw_sum}
                          for r in picked]
    return _finish(view)


TIMELINE_RUNS = 5


def representative_runs(totals: Sequence[float], n: int = TIMELINE_RUNS) -> list[int]:
    """The ``n`` runs whose totals are nearest the median total, nearest first (ties: the earlier
    run). A trace shows these: the first runs, or the fastest, can be outliers (a 14 ms model once
    traced at 30 ms), and what a user wants to see is a typical run."""
    a = np.asarray(totals, dtype=float)
    if a.size == 0:
        return []
    med = float(np.median(a))
    return sorted(range(a.size), key=lambda k: (abs(a[k] - med), k))[:max(0, n)]


def _timeline(run: list[tuple], owner: list[list[tuple[int, int]]], by_key: dict, dx: float,
              dc: float) -> list[list]:
    """One profiled run as slices ``[label, track, start_us, dur_us]`` (absolute µs). XNNPACK's
    events carry no timestamps: they are laid end to end after the previous CPU event, in order."""
    out: list[list] = []
    cursor = None
    seg, pos, last = -1, 0, None
    part_span: dict[int, list[float]] = {}
    for e in run:
        kind, tag, m1, m2, start, el = e
        if kind == 1 and tag == "Invoke":
            out.append(["Invoke", "Invoke", float(start), float(el)])
            if cursor is None:
                cursor = float(start)
        elif kind == 2:
            info = by_key.get((int(m2), int(m1)))
            label = f"{info.type}#{info.index}" if info else tag
            if int(m2):
                label += f" (subgraph {int(m2)})"
            dur = max(0.0, el + dc)
            out.append([label, label, float(start), dur])
            cursor = float(start) + dur
            last = None
        elif kind == 8:
            if last is None or m1 <= last:
                seg, pos = seg + 1, 0
            last = m1
            pk, node = owner[seg][pos] if seg < len(owner) and pos < len(owner[seg]) else (0, -1)
            pos += 1
            info = by_key.get((0, node))
            label = f"{info.type}#{info.index}" if info else tag
            t0 = cursor if cursor is not None else 0.0
            dur = el + dx
            out.append([f"{label} [{tag}]", label, t0, dur])
            span = part_span.setdefault(pk, [t0, t0])
            span[1] = t0 + dur
            cursor = t0 + dur
    for pk, (a, b) in part_span.items():
        out.append([f"XNNPACK#{pk}", f"XNNPACK#{pk}", a, b - a])
    return out


def build_profile(raw: RawProfile, *, model_name: str, data: bytes) -> Profile:
    from .._version import __version__
    views = {name: build_view(rv, raw.ops) for name, rv in raw.views.items()}
    return Profile(model_name, hashlib.sha256(data).hexdigest(), len(data), raw.threads, views,
                   raw.litert_version, __version__, time.strftime("%Y-%m-%dT%H:%M:%S"), raw.input_shapes,
                   list(raw.notes))
