"""``tflc optimize``'s result as text, from its JSON form (``OptimizeResult.to_json()``): the pass
table with its notes grouped (``notes``), the latency guard's line, and the check."""
from __future__ import annotations

from typing import Any

from ..summary import human_bytes
from .notes import hidden_details, note_lines


def latency_line(lat: dict[str, Any] | None) -> str | None:
    """The -O2 latency guard in one line. The ratio (median of per-round ratios), its interval and
    both p50s come from the same comparison, and the ratio of the two p50s is printed beside the
    ratio, so no two numbers on the line can contradict each other."""
    if not lat:
        return None
    if "skipped" in lat:
        return f"latency guard: skipped ({lat['skipped']})"
    lo, hi = lat["ci"]
    rounds = f" over {lat['rounds']} paired rounds" if lat.get("rounds") else " over paired rounds"
    p50 = (f"p50 {_us(lat['input_us'])} → {_us(lat['output_us'])} in the same runs"
           + (f", a ratio of {lat['p50_ratio']:.3f}" if lat.get("p50_ratio") else ""))
    verdict = lat.get("verdict")
    line = (f"latency in LiteRT: ratio {lat['ratio']:.3f} (median per-round ratio{rounds}, 95% interval "
            f"{lo:.3f}–{hi:.3f}{'; ' + verdict if verdict else ''}; {p50})")
    if lat.get("dropped"):
        line += "; dropped " + ", ".join(
            f"{d['pass']} (slower on its own: {d['ratio']:.3f}, {d['ci'][0]:.3f}–{d['ci'][1]:.3f})"
            if d.get("ratio") and d.get("ci") else f"{d['pass']} (slower)" for d in lat["dropped"])
    return line


def _us(us: float) -> str:
    return f"{us / 1000:.3g} ms" if us >= 1000 else f"{us:.0f} µs"


def optimize_lines(res: dict[str, Any], *, verbose: bool = False) -> list[str]:
    """The pass table (each pass's notes grouped below it; ``verbose``: the ops behind each
    group), the latency line and the check."""
    out: list[str] = []
    if res.get("skipped"):
        why = res.get("skipped_why") or "they may change outputs by more than the --tolerance asked for"
        out.append(f"skipped {', '.join(res['skipped'])}: {why}")
    passes = res.get("passes") or []
    hidden = 0
    if passes:
        w = max(len(r["name"]) for r in passes)
        checked = any(r.get("max_rel_error") is not None for r in passes)       # --verify-each
        out.append(f"  {'pass':<{w}}  {'changed':>7}  {'ms':>8}  {'ops':>11}  {'tensors':>11}  {'constant bytes':>21}"
                   + ("  max rel err (vs the model before it)" if checked else ""))
        for r in passes:
            b, a = r["before"], r["after"]
            err = r.get("max_rel_error")
            err_s = ("  " + ("identical" if err == 0 else f"{err:.3g}")) if err is not None else ""
            out.append(f"  {r['name']:<{w}}  {'yes' if r['changed'] else '-':>7}  {r['seconds'] * 1e3:8.1f}  "
                       f"{b['ops']:>5}→{a['ops']:<5}  {b['tensors']:>5}→{a['tensors']:<5}  "
                       f"{human_bytes(b['constant_bytes']):>10}→{human_bytes(a['constant_bytes']):<10}{err_s}"
                       .rstrip())
            out += note_lines(r.get("notes") or [], verbose=verbose, indent="      ")
            hidden += hidden_details(r.get("notes") or [])
    lat = latency_line(res.get("latency"))
    if lat:
        out.append(lat)
    b, a, c = res["before"], res["after"], res["check"]
    if c.get("compared") is False:      # -O0 of a model LiteRT cannot run: checked by structure only
        checked = c["reason"]
    elif c.get("min_sqnr_db") is not None and not c["identical"]:   # judged by SQNR, not by tolerance
        checked = (f"every output's SQNR at or over the {c['min_sqnr_db']:g} dB floor over {c['steps']} step(s) "
                   "in LiteRT")
    else:
        verdict = ("bit-identical" if c["identical"] else
                   f"max relative error {max((d['max_rel'] or 0) for d in c['outputs']):.3g} "
                   f"(tolerance {c['tolerance']:g})")
        checked = f"outputs {verdict} over {c['steps']} step(s) in LiteRT"
    out.append(f"wrote {res['output']}: {b['ops']} → {a['ops']} ops, {human_bytes(res['size_before'])} → "
               f"{human_bytes(res['size_after'])}; {checked}")
    if hidden and not verbose:
        out.append(f"({hidden} op name(s) behind the notes: -v lists them; --json has every note as written)")
    return out
