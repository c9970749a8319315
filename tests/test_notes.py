"""tflc optimize's text: notes grouped at render time (every note kept in --json), the latency
guard's line (the ratio and the p50s from the same comparison), -v. No LiteRT, no timing."""
from __future__ import annotations

import json

import pytest

from tflc.report.notes import group_notes, hidden_details, note_lines, strip_names
from tflc.report.optimize_text import latency_line, optimize_lines

LONG = "model_1/model/re_lu/Relu6;model_1/model/batch_normalization/FusedBatchNormV3;" * 5   # ~400 characters

NOTES = [f"fold-pad: kept CONV_2D '{LONG}{k}': the convolution already uses SAME padding (the PAD would add to it)"
         for k in range(3)] + \
        [f"fold-pad: kept DEPTHWISE_CONV_2D 'dw{k}': the convolution already uses SAME padding (the PAD would add "
         "to it)" for k in range(2)] + \
        ["fold-affine: kept FULLY_CONNECTED 'enc/key': the ADD before it ('enc/add/AddV2') is also read by other ops",
         "fold-affine: kept FULLY_CONNECTED 'enc/query': the ADD before it ('enc/add_1/AddV2') is also read by other ops",
         "simplify-layer-norm: kept RSQRT 'ln1': its statistics are a layer norm's, but not applied in a form this "
         "pass knows (x*S + T on the statistics' own input)",
         "specialize-shapes: input 'tokens:0' has dynamic shape [-1, 32]: give --input-shape tokens:0:DxD... to "
         "specialize; nothing changed",
         "fold-constants: folded 3 op(s)", "fold-constants: folded 3 op(s)"]


def test_names_are_stripped_but_apostrophes_are_not_quotes():
    assert strip_names("the ADD before it ('a/b') is also read") == "the ADD before it is also read"
    assert strip_names("LiteRT computed [1] for 'x:0', the model says") == "LiteRT computed [1] for …, the model says"
    s = "a layer norm's, but not applied (x*S + T on the statistics' own input)"
    assert strip_names(s) == s


def test_notes_are_grouped_by_pass_and_reason():
    groups = group_notes(NOTES)
    assert [g.count for g in groups] == [5, 2, 1, 1, 2]
    pad = groups[0]
    assert pad.summary() == ("fold-pad kept 5 ops (3 CONV_2D, 2 DEPTHWISE_CONV_2D): the convolution already uses "
                             "SAME padding (the PAD would add to it)")
    assert groups[1].summary() == "fold-affine kept 2 FULLY_CONNECTED: the ADD before it is also read by other ops"
    assert groups[2].summary().startswith("simplify-layer-norm kept 1 RSQRT: its statistics are a layer norm's")
    assert groups[3].summary() == NOTES[8]                     # alone, it keeps the input name the user needs
    assert groups[4].summary() == "fold-constants: folded 3 op(s) (2 times)"
    assert sum(g.count for g in groups) == len(NOTES)          # nothing lost
    lines = note_lines(NOTES)
    assert len(lines) == 5 and max(len(x) for x in lines) < 160 and LONG not in "\n".join(lines)
    verbose = note_lines(NOTES, verbose=True)
    assert sum(LONG in x for x in verbose) == 3 and any("DEPTHWISE_CONV_2D 'dw1'" in x for x in verbose)
    assert hidden_details(NOTES) == 5 + 2 + 1 + 2


def _result(notes, latency):
    stats = {"ops": 10, "tensors": 20, "constant_bytes": 1000}
    return {"input": "m.tflite", "output": "o.tflite", "level": "O2", "skipped": [],
            "passes": [{"name": "fold-pad", "changed": False, "seconds": 0.001, "before": stats, "after": stats,
                        "notes": notes, "max_rel_error": None}],
            "before": stats, "after": stats, "size_before": 5000, "size_after": 5000,
            "check": {"identical": True, "outputs": [], "tolerance": 0.0, "steps": 3}, "latency": latency,
            "notes": notes}


def test_optimize_text_groups_notes_and_json_keeps_them(capsys, monkeypatch):
    data = _result(NOTES, {"skipped": "no pass changed the model"})
    text = optimize_lines(data)
    assert sum(x.strip().startswith("note:") for x in text) == 5
    assert text[-1].startswith("(10 op name(s) behind the notes: -v lists them")
    assert len(optimize_lines(data, verbose=True)) == len(text) - 1 + 10
    # through the CLI: text grouped, --json every note as written
    import tflc.cli.cmd_optimize as cmd
    from tflc.cli.main import main

    class Res:
        def to_json(self):
            return data
    monkeypatch.setattr(cmd, "optimize_file", lambda *a, **k: Res())
    assert main(["optimize", "m.tflite", "-o", "o.tflite"]) == 0
    out = capsys.readouterr().out
    assert "fold-pad kept 5 ops" in out and LONG not in out
    assert main(["optimize", "m.tflite", "-o", "o.tflite", "-v"]) == 0
    assert LONG in capsys.readouterr().out
    assert main(["optimize", "m.tflite", "-o", "o.tflite", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["passes"][0]["notes"] == NOTES


def test_latency_line_numbers_agree():
    lat = {"ratio": 1.031, "ci": [1.004, 1.060], "rounds": 20, "input_us": 16000.0, "output_us": 16500.0,
           "p50_ratio": 16500.0 / 16000.0, "verdict": "no difference beyond noise", "dropped": []}
    line = latency_line(lat)
    assert line == ("latency in LiteRT: ratio 1.031 (median per-round ratio over 20 paired rounds, 95% interval "
                    "1.004–1.060; no difference beyond noise; p50 16 ms → 16.5 ms in the same runs, a ratio of 1.031)")
    assert latency_line({"skipped": "no pass changed the model"}) == "latency guard: skipped (no pass changed the model)"


def test_a_slower_result_of_an_asked_for_quantizer_is_a_warning_and_an_sqnr_check_is_not_called_a_tolerance():
    from tflc.passmanager import GuardReport
    g = GuardReport(32.9, (32.2, 33.8), 871.0, 28650.0, kept=["quantize-int16x8"])
    assert g.warning.startswith("warning: the written model is slower than the input in LiteRT (ratio 32.900); "
                                "quantize-int16x8 is kept because --quantize asked for it")
    assert GuardReport(0.99, (0.97, 1.01), 871.0, 862.0, kept=["quantize-int8"]).warning is None
    assert GuardReport(32.9, (32.2, 33.8), 871.0, 28650.0).warning is None, "no quantizer asked for: dropped instead"
    data = _result([], {"skipped": "-O1"})
    data["check"] = {"identical": False, "steps": 8, "tolerance": 0.06, "min_sqnr_db": 10.0,
                     "outputs": [{"max_rel": 0.48}]}
    line = optimize_lines(data)[-1]
    assert "SQNR at or over the 10 dB floor over 8 step(s)" in line and "tolerance" not in line


class _Stats:
    def __init__(self, p50):
        self.p50_us = p50


class _Cmp:
    """A comparison of b against a with made-up numbers: 'slower' when ratio is above 1.02."""

    def __init__(self, ratio, a_us, rounds=20):
        self.ratio, self.ci_low, self.ci_high, self.rounds = ratio, ratio - 0.01, ratio + 0.01, rounds
        self.a, self.b = _Stats(a_us), _Stats(a_us * ratio)

    def slower(self, margin=0.0):
        return self.ci_low > 1 + margin


def test_guard_report_takes_every_number_from_the_final_comparison(example_model):
    """The first comparison runs in a slow phase (A at 19 ms); the guard replays, and the final one
    runs at 16 ms: the p50s printed beside the final ratio are the final comparison's, both of them
    (the old report kept the first one's input p50: 1.031 next to p50s 16% apart)."""
    from tflc.io import read_model
    from tflc.passmanager import PassContext, guard_latency
    original = read_model(example_model)
    made = iter([_Cmp(1.10, 19000.0), _Cmp(1.031, 16000.0)])
    kept, report = guard_latency(original, original.clone(), [], PassContext(), compare=lambda a, b: next(made))
    assert report.ratio == 1.031 and report.rounds == 20
    assert report.input_us == 16000.0 and report.output_us == pytest.approx(16496.0)
    assert report.p50_ratio == pytest.approx(1.031)
    j = report.to_json()
    assert j["verdict"] == "slower" and j["p50_ratio"] == pytest.approx(1.031)
    line = latency_line(j)
    assert "ratio 1.031" in line and "p50 16 ms → 16.5 ms in the same runs, a ratio of 1.031" in line
