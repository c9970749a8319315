"""A benchmark as text and tables: latency, the comparison against the first model, threads, kernels.

Every ratio of two measured latencies comes with its 95% interval over the paired rounds
(``tflc.profiler.paired``); sizes are exact."""
from __future__ import annotations

from typing import Any

from ..profiler.paired import FASTER, NOISE_BAND, SLOWER, UNDECIDED
from .text import Table, fmt_bytes, fmt_interval, fmt_ratio, fmt_us


def accuracy_text(acc: dict | None) -> str:
    if acc is None:
        return "-"
    if acc.get("comparable") is False:
        return f"not comparable ({acc.get('reason', 'different inputs or outputs')})"
    if acc.get("identical"):
        return "identical"
    return f"{acc['max_rel']:.3g} rel ({acc['max_abs']:.3g} abs)"


def recommendation_text(rec: dict | None) -> str:
    if not rec:
        return ""
    if rec.get("threads") is None:
        return f"no recommendation: {rec['reason']}"
    return f"recommended: {rec['reason']}" + (f". Note: {rec['warning']}" if rec.get("warning") else "")


def ratio_text(pr: Any, digits: int = 2) -> str:
    """A paired ratio and its 95% interval, "1.85x [1.80–1.90]" ("-" where not measured)."""
    if pr is None:
        return "-"
    if pr.ci_low is None:
        return f"{pr.ratio:.{digits}f}x"
    return f"{pr.ratio:.{digits}f}x [{fmt_interval(pr.ci_low, pr.ci_high, digits)}]"


def verdict_text(verdict: str, ratio: float | None) -> str:
    """The reading of a ratio against the first model, in words."""
    if verdict == FASTER and ratio:
        return f"faster ({1 / ratio:.2f}x the speed)"
    if verdict == SLOWER and ratio:
        return f"slower ({ratio:.2f}x the time)"
    if verdict == UNDECIDED:
        return "undecided (one round: no interval; --rounds 2 or more)"
    return verdict


def _band() -> str:
    return f"±{100 * NOISE_BAND:.0f}%"


def comparison_caption(ratios: list[dict]) -> str:
    """How the ratios against the first model were made and are read (also in ``tflc bench --help``)."""
    how = {r.get("paired") for r in ratios[1:]}
    rounds = "/".join(str(x) for x in sorted({r["p50_rounds"] for r in ratios[1:] if r.get("p50_rounds")})) or "no"
    parts = []
    if "one process" in how:
        parts.append(f"p50 x: the median over {rounds} rounds of each round's ratio, both models in one process, "
                     "interleaved (A B, B A, ...); p50 A → B: the p50s of those same runs (the latency table's come "
                     "from each model's own processes)")
    if "rounds" in how:
        parts.append("where no such comparison ran, p50 x pairs the rounds of the models' own processes")
    parts.append(f"[95% interval]: a bootstrap over the rounds; 'faster' or 'slower' only when the whole interval lies "
                 f"beyond {_band()} of 1 (two copies of one model read up to that far apart), else 'no difference "
                 "beyond noise'; size: exact")
    return "; ".join(parts) + "."


def bench_blocks(result: Any) -> list[Table | str]:
    blocks: list[Table | str] = []
    ratios = result.ratios()          # by position: two models may share a file name
    made = sorted({m.latency.runs for m in result.models if m.latency})
    if not made or made == [result.runs]:
        runs = f"{result.runs} runs"
    else:
        runs = f"{made[0] if len(made) == 1 else f'{made[0]}..{made[-1]}'} of the {result.runs} runs asked for"
    t = Table(f"Latency (XNNPACK, {result.threads[0]} thread(s), {runs}, in {result.rounds} round(s) of "
              f"{result.warmup} warm-up runs then timed runs)",
              ["model", "size", "p50", "p90", "p99", "mean ± std", "peak memory", "max error vs first"])
    for k, m in enumerate(result.models):
        lat = m.latency
        acc = "(reference)" if k == 0 and len(result.models) > 1 else accuracy_text(m.accuracy)
        t.rows.append([m.name, fmt_bytes(m.size_bytes), fmt_us(lat.p50_us if lat else None),
                       fmt_us(lat.p90_us if lat else None), fmt_us(lat.p99_us if lat else None),
                       f"{fmt_us(lat.mean_us)} ± {fmt_us(lat.std_us)}" if lat else "-",
                       fmt_bytes(m.peak_memory_bytes), acc])
    blocks.append(t)
    if len(result.models) > 1:
        c = Table(f"Against the first model, {result.models[0].name} ({result.threads[0]} thread(s), XNNPACK)",
                  ["model", "size x", "p50 x [95% interval]", "reading", "p50 A → B (same runs)", "peak memory x"],
                  align="lrrlrr")
        for k, m in enumerate(result.models[1:], start=1):
            r = ratios[k]
            ci = r.get("p50_ci") or [None, None]
            p50 = (f"{r['p50']:.3f}x [{fmt_interval(ci[0], ci[1], digits=3)}]" if ci[0] is not None
                   else fmt_ratio(r.get("p50")))
            same = (f"{fmt_us(r['a_p50_us'])} → {fmt_us(r['b_p50_us'])} ({r['p50_ratio']:.3f}x)"
                    if r.get("a_p50_us") else "-")
            mci = r.get("memory_ci") or [None, None]
            mem = (f"{r['memory']:.2f}x [{fmt_interval(mci[0], mci[1])}]" if mci[0] is not None
                   else fmt_ratio(r.get("memory")))
            c.rows.append([m.name, fmt_ratio(r.get("size")), p50, verdict_text(r["verdict"], r.get("p50")), same, mem])
        c.caption = comparison_caption(ratios)
        blocks.append(c)
    if len(result.threads) > 1 or result.contention:
        for m in result.models:
            cols = ["threads", "p50 alone", "speed-up [95%]", "cv"]
            if result.contention:
                cols += ["p50 under load", "p90 under load", "speed-up (p90) [95%]", "cv", "p90 load/alone [95%]"]
            tt = Table(f"Threads: {m.name}" + (f" (load: {result.contention} busy process(es) on "
                                               f"{result.cpu_count} cores)" if result.contention else ""), cols)
            for p, sp in zip(m.threads, m.speedups()):
                row = [str(p.threads), fmt_us(p.isolated.p50_us), ratio_text(sp["speedup"]), f"{p.isolated.cv:.2f}"]
                if result.contention and p.loaded:
                    row += [fmt_us(p.loaded.p50_us), fmt_us(p.loaded.p90_us), ratio_text(sp["speedup_loaded_p90"]),
                            f"{p.loaded.cv:.2f}", ratio_text(sp["loaded_over_alone_p90"])]
                tt.rows.append(row)
            tt.caption = ("speed-up: against the first thread count, the median of the per-round ratios (paired "
                          "rounds), with its 95% interval; not the ratio of the p50s. "
                          + recommendation_text(m.recommendation))
            blocks.append(tt)
    if any(len(m.configs) > 1 for m in result.models):
        tflc = any("tflc" in m.configs for m in result.models)      # only where a model holds tflc kernels
        cols = ["model", "XNNPACK p50", "builtin p50", "builtin / XNNPACK [95%]"]
        if tflc:
            cols += ["tflc delegate p50", "tflc / XNNPACK [95%]"]
        ct = Table(f"Kernels ({result.threads[0]} thread(s))", cols)
        for m in result.models:
            x, b, tf = m.configs.get("xnnpack"), m.configs.get("builtin"), m.configs.get("tflc")
            kr = m.kernel_ratios()
            row = [m.name, fmt_us(x.p50_us if x else None), fmt_us(b.p50_us if b else None),
                   ratio_text(kr.get("builtin")) if kr.get("builtin") else
                   fmt_ratio(b.p50_us / x.p50_us if b and x else None)]
            if tflc:
                row += [fmt_us(tf.p50_us if tf else None),
                        ratio_text(kr.get("tflc")) if kr.get("tflc") else
                        fmt_ratio(tf.p50_us / x.p50_us if tf and x else None)]
            ct.rows.append(row)
        blocks.append(ct)
    for m in result.models:
        for n in m.notes:
            blocks.append(f"note ({m.name}): {n}")
    for n in getattr(result, "notes", []):
        blocks.append(f"note: {n}")
    return blocks
