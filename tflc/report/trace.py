"""Chrome / Perfetto trace (the JSON "Trace Event Format") of profiled invocations.

One process per view (XNNPACK, builtin), one row per operator (and one for the whole Invoke and
one per XNNPACK partition), rows in execution order; each profiled invocation is a slice on each
row, so the same op across runs lines up on one row. Open in https://ui.perfetto.dev or
chrome://tracing. XNNPACK's per-operator events carry no timestamps: inside a partition the ops
are laid end to end (their durations are measured; their positions follow from them).

The runs shown are representative: those whose total is nearest the view's median total
(``View.timeline_runs``, nearest first), not the first or the fastest; the trace's metadata
(``otherData.views``) names them with their totals and the median.
"""
from __future__ import annotations

import json
import os
from typing import Any

from ..profiler.profile import Profile

_VIEW_NAMES = {"xnnpack": "LiteRT + XNNPACK (default)", "builtin": "builtin kernels"}


def trace_events(profile: Profile, runs: int | None = None) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    for pid, (name, view) in enumerate(profile.views.items(), start=1):
        title = f"{_VIEW_NAMES.get(name, name)} ({view.method})"
        events.append({"ph": "M", "name": "process_name", "pid": pid, "args": {"name": title}})
        events.append({"ph": "M", "name": "process_sort_index", "pid": pid, "args": {"sort_index": pid}})
        timeline = view.timeline[:runs] if runs else view.timeline
        starts = [s[2] for run in timeline for s in run]
        t0 = min(starts) if starts else 0.0
        tracks: dict[str, int] = {}
        by_label = {f"{o.type}#{o.index}": o for o in view.ops}

        def tid(track: str) -> int:
            if track not in tracks:
                tracks[track] = len(tracks) + 1
                events.append({"ph": "M", "name": "thread_name", "pid": pid, "tid": tracks[track],
                               "args": {"name": track}})
                events.append({"ph": "M", "name": "thread_sort_index", "pid": pid, "tid": tracks[track],
                               "args": {"sort_index": tracks[track]}})
            return tracks[track]
        tid("Invoke")
        for p in view.partitions:
            tid(p.label)
        picked = view.timeline_runs[:len(timeline)]
        for k, run in enumerate(timeline):
            for label, track, start, dur in sorted(run, key=lambda s: (s[2], -s[3])):
                args: dict[str, Any] = {"run": k}
                if k < len(picked):
                    args["profiled_run"] = picked[k].get("run")
                o = by_label.get(track)
                if o is not None:
                    args.update(inputs=", ".join(o.inputs), outputs=", ".join(o.outputs),
                                avg_us=round(o.avg_us, 2), where=o.where, tensor=o.name)
                events.append({"ph": "X", "name": label, "cat": name, "pid": pid, "tid": tid(track),
                               "ts": round(start - t0, 3), "dur": round(max(dur, 0.0), 3), "args": args})
    return events


def runs_metadata(profile: Profile, runs: int | None = None) -> dict[str, Any]:
    """Per view: which profiled runs the trace shows and why (nearest the median total)."""
    out: dict[str, Any] = {}
    for name, view in profile.views.items():
        n = len(view.timeline[:runs] if runs else view.timeline)
        picked = view.timeline_runs[:n]
        if not picked:
            out[name] = {"shown": n, "how": "one synthetic run (the ops timed alone, end to end)"
                         if view.method == "op-alone" else "the runs kept"}
            continue
        med = picked[0].get("median_us")
        out[name] = {"shown": n, "of_runs": view.runs, "median_total_us": med,
                     "how": "the profiled runs whose total of op events is nearest the median total, nearest first",
                     "runs": [{"profiled_run": p["run"], "total_us": round(p["total_us"], 3)} for p in picked]}
    return out


def write_trace(profile: Profile, path: str | os.PathLike, runs: int | None = None) -> int:
    """Write the trace; returns the number of slices written."""
    events = trace_events(profile, runs)
    data = {"traceEvents": events, "displayTimeUnit": "ns",
            "otherData": {"model": profile.model, "sha256": profile.sha256, "threads": profile.threads,
                          "tool": f"tflc {profile.tflc_version}", "views": runs_metadata(profile, runs)}}
    from ..paths import atomic_writer, check_output_path
    p = check_output_path(path, flag="--trace")        # a missing folder is an error, not made
    with atomic_writer(p, "w") as f:                      # atomic, a normal file's permissions
        f.write(json.dumps(data))
    return sum(1 for e in events if e["ph"] == "X")
