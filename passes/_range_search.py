"""quantize-int8's ``ranges=auto``: which range estimator, for which part of the graph, by measurement.

No estimator wins everywhere (``docs/quantization-accuracy.md``), and not even everywhere in one
model: face_detection_short_range's box regressors gain from tight ranges in the shared backbone
(the mean of each sample's min/max), while its classificator head loses 5 dB with them. So the
choice is made per **output cone**:

* a tensor's *cone* is the set of graph outputs it reaches. Tensors that reach exactly one output
  form that output's exclusive cone (its head); every other tensor is *shared*;
* a tensor in output o's exclusive cone changes only o: the cones can be chosen independently,
  each by its own output's SQNR.

The search, every candidate measured in LiteRT against the float model on the calibration samples
(``passes._sensitivity.measure_all``: one isolated child per fold, the folds side by side, each
candidate built in its child), judged by each output's SQNR pooled over the samples
(``compare_pooled``: less noisy than the worst step), on calibration samples held out of the
candidate's ranges (k-fold, the caller's ``folds``):

1. one estimator everywhere, each of ``RANGE_METHODS``;
2. with several outputs and some exclusive cones, under each estimator as the shared one (even
   one poor alone: face_detection's best is avgminmax, last but one alone, with the classificator
   head on mse): every other estimator tried on all heads at once; each head keeps
   the one best for its own output (by more than the margin over the shared one), and that
   combination is measured;
3. the best mean output SQNR (dB) wins: each output's relative gain counts the same (the worst
   output alone would let one near-silent output, a presence score on images without a hand,
   decide for all); min/max unless another beats it by more than the margin.

At most 4 + 12 + 4 candidates per fold, each a clone, a rewrite and a few runs in one LiteRT child
per fold.
"""
from __future__ import annotations

import math
from typing import Any, Callable

from tflc.ir.core import Model, Operator

#: another estimator replaces the incumbent only when it beats it by more than this (dB)
AUTO_MARGIN_DB = 0.5
#: the same when every candidate is measured on held-out samples pooled over folds (k-fold, at
#: least 16 samples): a steadier measurement, a smaller margin
AUTO_MARGIN_CV_DB = 0.25
#: at most this many folds (of up to 2 x ``samples`` calibration samples each; the rest are left unused)
AUTO_FOLDS = 4
#: an identical output's SQNR, for the mean
CAP_DB = 100.0


def output_cones(model: Model, ops: list[Operator]) -> dict[int, str]:
    """Tensor uid -> the name of the only graph output it reaches, for the float activations of
    ``ops`` that reach exactly one (tensors reaching several, or none, are shared: absent)."""
    sg = model.main
    reach: dict[int, frozenset[str]] = {}
    for op in reversed(sg.operators):
        for t in op.outputs:
            if t is None:
                continue
            r: set[str] = {t.name} if sg.is_graph_output(t) else set()
            for use, _ in t.uses:
                for o in use.outputs:
                    if o is not None:
                        r |= reach.get(o.uid, frozenset())
            reach[t.uid] = frozenset(r)
    for t in sg.inputs:
        r = set()
        for use, _ in t.uses:
            for o in use.outputs:
                if o is not None:
                    r |= reach.get(o.uid, frozenset())
        reach[t.uid] = frozenset(r)
    out: dict[int, str] = {}
    for op in ops:
        for t in list(op.inputs) + list(op.outputs):
            if t is not None and not t.is_constant and len(reach.get(t.uid, ())) == 1:
                out[t.uid] = next(iter(reach[t.uid]))
    return out


def search(methods: tuple[str, ...], folds: list[tuple[Callable[[str, dict[int, str]], dict], Any]],
           build: Callable[[dict], bytes], reference: bytes, cones: dict[int, str],
           margin: float = AUTO_MARGIN_DB) -> dict:
    """The staged search above. ``folds``: (``params_for``, samples) pairs, each fold's
    ``params_for(shared, per_uid)`` -> params made from ranges that did not see its
    samples; a candidate's SQNR per output pools its noise over the folds. ``build(params)`` -> the
    quantized model's bytes. Returns ``{"chosen": shared estimator, "heads": {output: estimator},
    "methods": {uid: estimator}, "candidates": {...}, "trials": [...], "samples": n}``; raises
    ``TflcError`` where LiteRT could not measure."""
    from ._sensitivity import finite, measure_all, noise

    trials: list[dict] = []
    samples = [0]

    def run(configs: list[tuple[str, dict[str, str]]]) -> list[dict | None]:
        acc: list[dict | None] = [{} for _ in configs]
        total = 0
        jobs, todos = [], []
        for params_for, smp in folds:
            todo, fns, seen = [], [], {}
            for shared, heads in configs:
                per_uid = {u: heads[o] for u, o in cones.items() if o in heads and heads[o] != shared}
                prm = params_for(shared, per_uid)
                key = tuple(sorted(prm.items())) if isinstance(prm, dict) else prm
                if key not in seen:          # configurations that give the same parameters: built once
                    seen[key] = len(fns)
                    fns.append(lambda prm=prm: build(prm))
                todo.append(seen[key])
            jobs.append((fns, smp))
            todos.append(todo)
        # the folds' samples are independent: measured side by side (one LiteRT child per fold)
        measured = iter(measure_all(reference, [j for j in jobs if j[0]]))
        for (fns, _), todo in zip(jobs, todos):
            results, n = next(measured) if fns else ([], 0)
            total += n
            for c, k in enumerate(todo):
                res = results[k]
                if acc[c] is None or res is None or isinstance(res, str):
                    acc[c] = None
                    continue
                for d in res:
                    acc[c][d.name] = acc[c].get(d.name, 0.0) + noise(d.sqnr_db) * n
        samples[0] = max(samples[0], total)
        out: list[dict | None] = []
        for (shared, heads), a in zip(configs, acc):
            row = None if a is None else {o: (float("inf") if v == 0 else -10.0 * math.log10(v / max(total, 1)))
                                          for o, v in a.items()}
            trials.append({"shared": shared, "heads": dict(heads),
                           "sqnr_db": None if row is None else {o: finite(v) for o, v in row.items()}})
            out.append(row)
        return out

    def score(row: dict | None) -> float:
        """The figure of merit: the outputs' mean SQNR in dB (each output's relative gain counts the
        same; an identical output counts as CAP dB)."""
        if row is None or not row:
            return float("-inf")
        vals = [min(v, CAP_DB) if v == v else float("-inf") for v in row.values()]
        return sum(vals) / len(vals)

    # 1 and 2 in one measurement: each estimator everywhere, and (several outputs, some heads) for
    # each shared estimator, every other one on all heads at once (a head changes only its own
    # output, so one trial per pair says what each head gains). Not pruned by step 1: a shared
    # estimator poor alone can win with its heads.
    outputs = sorted(set(cones.values()))
    # one output: every tensor is its "head", nothing to choose apart from step 1
    keys = [(m, h) for m in methods for h in methods if h != m] if len(outputs) > 1 else []
    first = run([(m, {}) for m in methods] + [(m, {o: h for o in outputs}) for m, h in keys])
    rows = dict(zip(methods, first))
    ok = [m for m in methods if rows[m] is not None]
    if not ok:
        return {"chosen": None, "heads": {}, "methods": {}, "candidates": _table(rows), "trials": trials,
                "samples": samples[0]}
    combos: dict[str, tuple[dict[str, str], dict]] = {m: ({}, rows[m]) for m in ok}
    if keys:
        got = dict(zip(keys, first[len(methods):]))
        picked = {}
        for m in ok:
            heads = {}
            for o in outputs:
                base = rows[m].get(o, float("-inf"))
                cand = [(got[m, h][o], h) for h in methods if h != m and got.get((m, h)) is not None
                        and got[m, h].get(o, float("nan")) == got[m, h].get(o, float("nan"))]
                if cand and max(cand)[0] > base + margin:
                    heads[o] = max(cand)[1]
            if heads:
                picked[m] = heads
        if picked:                   # each shared estimator with its heads, measured together
            for m, row in zip(picked, run([(m, picked[m]) for m in picked])):
                if row is not None:
                    combos[m] = (picked[m], row)
    # 3. the best mean SQNR; min/max (no heads) unless beaten by more than the margin
    best = max(combos, key=lambda m: (score(combos[m][1]), -methods.index(m)))
    if "minmax" in combos and score(combos[best][1]) < score(combos["minmax"][1]) + margin:
        best = "minmax"              # within the measurement's noise: the estimator that clips nothing
    shared, (heads, current) = best, combos[best]
    per_uid = {u: heads[o] for u, o in cones.items() if o in heads and heads[o] != shared}
    return {"chosen": shared, "heads": heads, "methods": per_uid, "candidates": _table(rows),
            "sqnr_db": {o: finite(v) for o, v in current.items()}, "trials": trials, "samples": samples[0]}


def _table(rows: dict) -> dict:
    from ._sensitivity import finite
    return {m: (None if r is None else {"worst_sqnr_db": finite(min(r.values(), default=float("inf"))),
                                        "sqnr_db": {o: finite(v) for o, v in r.items()}}) for m, r in rows.items()}
