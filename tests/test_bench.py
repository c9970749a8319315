"""tflc bench: latency statistics, several models side by side, threads, contention, kernels.

Structure only: no assertion depends on how fast anything runs.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from tflc.profiler import bench
from tflc.profiler.latency import LatencyStats


def _umask():
    m = os.umask(0)
    os.umask(m)
    return m


def _stats(p50, p90=None, threads=1):
    s = [p50] * 9 + [p90 or p50]
    return LatencyStats.from_samples(s, threads=threads)


def test_parse_threads():
    assert bench.parse_threads("1,2,4") == [1, 2, 4]
    assert bench.parse_threads("4, 1") == [1, 4]
    auto = bench.parse_threads("auto")
    assert auto[0] == 1 and auto[-1] == (os.cpu_count() or 1)
    from tflc.errors import UsageError
    for bad in ("0", "x", ""):
        with pytest.raises(UsageError):
            bench.parse_threads(bad)


def test_latency_stats():
    s = LatencyStats.from_samples(np.arange(1, 101, dtype=float))
    assert s.runs == 100 and s.min_us == 1 and s.max_us == 100 and s.p50_us == pytest.approx(50.5)
    assert s.p90_us == pytest.approx(90.1) and s.mean_us == pytest.approx(50.5) and s.cv > 0
    assert "samples" not in s.to_json() and len(s.to_json(samples=True)["samples"]) == 100


def _spread(p50, p90, n=50):
    """n samples with that median and 90th percentile, and little noise between them."""
    s = [p50] * (n // 2) + list(np.linspace(p50, p90, n - n // 2))
    return LatencyStats.from_samples(s)


def test_recommend_notes_threads_that_hurt_under_load():
    pts = [bench.ThreadPoint(1, _stats(100), _spread(110, 150)),
           bench.ThreadPoint(2, _stats(60), _spread(90, 400))]
    rec = bench.recommend(pts)
    assert rec["best_isolated"] == 2 and rec["best_loaded"] == 1
    assert rec["warning"] and "hurts under load" in rec["warning"]
    assert rec["threads"] in (1, 2)
    alone = bench.recommend([bench.ThreadPoint(1, _stats(100)), bench.ThreadPoint(2, _stats(60))])
    assert alone["threads"] == 2 and alone["best_loaded"] is None


def test_recommend_says_when_the_noise_is_too_high_to_decide():
    rng = np.random.default_rng(1)

    def noisy():          # one distribution, cv ~0.5: the two counts cannot be told apart
        return LatencyStats.from_samples(100 * rng.lognormal(0.0, 0.5, size=60))
    rec = bench.recommend([bench.ThreadPoint(1, noisy()), bench.ThreadPoint(2, noisy())])
    assert rec["threads"] is None and "too noisy" in rec["reason"] and rec["stability"] < 0.9
    from tflc.report.render import recommendation_text
    assert recommendation_text(rec).startswith("no recommendation: ")
    clear = bench.recommend([bench.ThreadPoint(1, noisy()),
                             bench.ThreadPoint(2, LatencyStats.from_samples(np.asarray(noisy().samples) / 3))])
    assert clear["threads"] == 2 and clear["stability"] >= 0.9


def test_recommend_resamples_rounds():
    # 2 threads looks faster, but only because one of its three rounds was not in a slow phase of
    # the machine... or two were: resampling the rounds, not just the runs, shows the doubt
    one = LatencyStats.from_samples([100.0] * 60)
    two = LatencyStats.from_samples([90.0] * 40 + [130.0] * 20)
    assert bench.recommend([bench.ThreadPoint(1, one), bench.ThreadPoint(2, two)])["threads"] == 2
    one.round_sizes, two.round_sizes = [20, 20, 20], [20, 20, 20]
    rec = bench.recommend([bench.ThreadPoint(1, one), bench.ThreadPoint(2, two)])
    assert rec["threads"] is None and rec["candidate"] == 2


def test_unique_labels():
    assert bench.unique_labels(["m.tflite", "o2/m.tflite"]) == ["m.tflite", "o2/m.tflite"]
    assert bench.unique_labels(["a/x/m.tflite", "b/x/m.tflite", "c.tflite"]) == ["a/x/m.tflite", "b/x/m.tflite",
                                                                                   "c.tflite"]
    assert bench.unique_labels(["m.tflite", "./m.tflite"]) == ["m.tflite [1]", "m.tflite [2]"]
    assert bench.unique_labels(["/x/a.tflite", "/y/b.tflite"]) == ["a.tflite", "b.tflite"]


def _model(label, size, p50, **kw):
    m = bench.ModelBench(label, label, size, "0" * 64, **kw)
    m.latency = LatencyStats.from_samples([p50] * 10)
    m.threads = [bench.ThreadPoint(1, m.latency)]
    m.configs = {"xnnpack": m.latency, "builtin": LatencyStats.from_samples([5 * p50] * 10)}
    return m


def test_ratios_and_rows_by_position_not_name():
    # the normal original-vs-optimized run: two files with the same base name
    res = bench.BenchResult([_model("m.tflite", 1000, 200.0), _model("o2/m.tflite", 990, 146.0)], [1], 10, 2, 0)
    r = res.ratios()
    assert [x["index"] for x in r] == [0, 1] and r[0]["size"] == 1.0 and r[0]["p50"] == 1.0
    assert r[0]["verdict"] == "reference"
    # no rounds known and no comparison: the ratio of the p50s, and no reading
    assert r[1]["size"] == pytest.approx(0.99) and r[1]["p50"] == pytest.approx(0.73)
    assert r[1]["verdict"] == "undecided" and r[1]["p50_ci"] is None
    from tflc.report.render import bench_blocks
    table = bench_blocks(res)[0]
    assert [row[0] for row in table.rows] == ["m.tflite", "o2/m.tflite"]
    assert table.rows[0][1] == "1000 B" and "KB" in bench_blocks(
        bench.BenchResult([_model("a", 4096, 1.0)], [1], 10, 2, 0))[0].rows[0][1]      # KB = 1024, as tflc
    against = bench_blocks(res)[1]
    assert against.title.startswith("Against the first model, m.tflite")
    assert [row[0] for row in against.rows] == ["o2/m.tflite"] and against.rows[0][1] == "0.99x"
    same = bench.BenchResult([_model("m.tflite", 1000, 200.0), _model("m.tflite", 990, 146.0),
                              _model("m.tflite", 500, 100.0)], [1], 10, 2, 0)
    rows = bench_blocks(same)[1].rows                # even under one name, each row gets its own ratios
    assert [r[1] for r in rows] == ["0.99x", "0.50x"] and [r[2] for r in rows] == ["0.73x", "0.50x"]
    assert len(bench_blocks(bench.BenchResult([_model("a", 1, 1.0)], [1], 10, 2, 0))) == 2   # one model: no ratios
    kernels = [b for b in bench_blocks(res) if getattr(b, "title", "").startswith("Kernels")][0]
    assert not any("tflc" in c for c in kernels.columns)            # no model holds tflc kernels
    res.models[1].configs["tflc"] = None
    kernels = [b for b in bench_blocks(res) if getattr(b, "title", "").startswith("Kernels")][0]
    assert "tflc delegate p50" in kernels.columns


def _rounds(values_per_round, n=10, noise=None):
    """LatencyStats whose rounds are known: round k holds n runs around values_per_round[k]."""
    s = []
    for v in values_per_round:
        s += [v * (1 + (noise[j % len(noise)] if noise else 0.0)) for j in range(n)]
    st = LatencyStats.from_samples(s)
    st.round_sizes, st.round_ids = [n] * len(values_per_round), list(range(len(values_per_round)))
    return st


def _comparison(ratios_per_round, base=100.0):
    from tflc.profiler.latency import comparison_from_rounds
    return comparison_from_rounds([[base] * 10 for _ in ratios_per_round], [[base * q] * 10 for q in ratios_per_round])


def test_every_ratio_against_the_first_has_an_interval_and_a_reading():
    a, b, c = _model("a.tflite", 1000, 100.0), _model("b.tflite", 1000, 100.0), _model("c.tflite", 800, 70.0)
    b.comparison = _comparison([1.01, 0.99, 1.0, 1.02, 0.98, 1.0, 1.01, 0.99, 1.0, 1.0])   # the same model
    c.comparison = _comparison([0.70, 0.71, 0.69, 0.70, 0.72, 0.70, 0.68, 0.70, 0.71, 0.70])
    res = bench.BenchResult([a, b, c], [1], 10, 2, 0, rounds=5)
    r = res.ratios()
    assert r[1]["verdict"] == "no difference beyond noise" and r[1]["paired"] == "one process"
    assert r[1]["p50_ci"][0] <= 1.0 <= r[1]["p50_ci"][1] and r[1]["p50_rounds"] == 10
    assert r[2]["verdict"] == "faster" and r[2]["p50_ci"][1] < 0.98
    assert r[2]["p50_ratio"] == pytest.approx(r[2]["b_p50_us"] / r[2]["a_p50_us"])   # same runs
    data = res.to_json()
    assert data["ratios"][1]["verdict"] == "no difference beyond noise"
    assert data["models"][2]["comparison"]["verdict"] == "faster"
    from tflc.report.render import bench_blocks, print_blocks
    rows = bench_blocks(res)[1].rows
    assert rows[0][3] == "no difference beyond noise" and rows[1][3].startswith("faster")
    assert "[" in rows[0][2] and "–" in rows[0][2]                # the ratio with its interval
    assert rows[1][4] == "100 µs → 70 µs (0.700x)"                 # p50s of the comparison's own runs
    import io
    out = io.StringIO()
    print_blocks(bench_blocks(res), out)
    assert "no difference beyond noise" in out.getvalue() and "beyond ±2% of 1" in out.getvalue()


def test_without_a_comparison_the_rounds_are_paired():
    a, b = _model("a", 1, 100.0), _model("b", 1, 100.0)
    a.latency, b.latency = _rounds([100, 130, 100, 160, 100]), _rounds([101, 131, 99, 162, 100])
    r = bench.BenchResult([a, b], [1], 10, 2, 0, rounds=5).ratios()[1]
    assert r["paired"] == "rounds" and r["p50_rounds"] == 5 and r["verdict"] == "no difference beyond noise"
    b.latency = _rounds([120, 156, 120, 192, 120])                 # 20% slower in every round
    r = bench.BenchResult([a, b], [1], 10, 2, 0, rounds=5).ratios()[1]
    assert r["p50"] == pytest.approx(1.2) and r["verdict"] == "slower"


def test_thread_and_kernel_ratios_are_paired_by_round():
    m = _model("a", 1, 100.0)
    one, two = _rounds([100, 150, 100, 100, 150]), _rounds([50, 75, 50, 50, 75])      # 2x in every round
    m.threads = [bench.ThreadPoint(1, one), bench.ThreadPoint(2, two)]
    m.latency = one
    m.configs = {"xnnpack": one, "builtin": _rounds([500, 750, 500, 500, 750])}
    sp = m.speedups()
    assert sp[0]["speedup"].ratio == pytest.approx(1.0) and sp[1]["speedup"].ratio == pytest.approx(2.0)
    assert sp[1]["speedup"].ci_low == pytest.approx(2.0)           # the slow rounds hit both counts
    assert m.kernel_ratios()["builtin"].ratio == pytest.approx(5.0)
    j = m.to_json()
    assert j["thread_ratios"][1]["speedup"]["ratio"] == pytest.approx(2.0)
    assert j["kernel_ratios"]["builtin"]["ci"] == [pytest.approx(5.0), pytest.approx(5.0)]
    from tflc.report.render import bench_blocks
    res = bench.BenchResult([m], [1, 2], 10, 2, 0, rounds=5)
    threads = [b for b in bench_blocks(res) if getattr(b, "title", "").startswith("Threads")][0]
    assert threads.rows[1][2] == "2.00x [2.00–2.00]"
    kernels = [b for b in bench_blocks(res) if getattr(b, "title", "").startswith("Kernels")][0]
    assert kernels.rows[0][3] == "5.00x [5.00–5.00]"


def _fake_bench(monkeypatch, order=None):
    """run_bench with made-up measurements: each call returns its runs at 100 µs (no LiteRT)."""
    now = [0.0]

    def fake_measure(model, *, runs, threads, xnnpack=True, **kw):
        if order is not None:
            order.append((Path(model).name, threads, xnnpack))
        now[0] += 0.01
        return LatencyStats.from_samples([100.0] * runs), 1000

    compared = []

    def fake_compare(first, other, **kw):
        compared.append((first, other, kw))
        return _comparison([1.0, 1.01, 0.99, 1.0, 1.0, 1.0])
    monkeypatch.setattr(bench, "_measure", fake_measure)
    monkeypatch.setattr(bench, "_compare_models", fake_compare)
    monkeypatch.setattr(bench, "_clock", lambda: now[0])
    monkeypatch.setattr(bench, "_tflc_delegate_factory", lambda data: (None, "no tflc kernels"))
    return compared


def test_rounds_alternate_the_order_and_keep_their_ids(monkeypatch, tmp_path):
    a, b = tmp_path / "a.tflite", tmp_path / "b.tflite"
    a.write_bytes(b"a"), b.write_bytes(b"b")
    order: list = []
    compared = _fake_bench(monkeypatch, order)
    res = bench.run_bench([str(a), str(b)], runs=40, rounds=4, xnnpack_variants=False, accuracy=False)
    names = [o[0] for o in order]
    assert names == ["a.tflite", "b.tflite", "b.tflite", "a.tflite"] * 2        # A B, B A, ...
    m0, m1 = res.models
    assert m0.latency.round_ids == [0, 1, 2, 3] and m0.latency.round_sizes == [10] * 4
    assert sorted(m0.peak_rounds) == [0, 1, 2, 3] and m0.peak_memory_bytes == 1000
    assert len(compared) == 1 and compared[0][2]["rounds"] == 16 and compared[0][2]["threads"] == 1
    assert res.ratios()[1]["paired"] == "one process" and res.ratios()[1]["memory"] == pytest.approx(1.0)


def test_a_failed_comparison_falls_back_to_the_rounds(monkeypatch, tmp_path):
    from tflc.errors import RuntimeFailure
    a, b = tmp_path / "a.tflite", tmp_path / "b.tflite"
    a.write_bytes(b"a"), b.write_bytes(b"b")
    _fake_bench(monkeypatch)

    def broken(*a, **k):
        raise RuntimeFailure("LiteRT cannot prepare b.tflite: no")
    monkeypatch.setattr(bench, "_compare_models", broken)
    res = bench.run_bench([str(a), str(b)], runs=20, rounds=2, xnnpack_variants=False, accuracy=False)
    r = res.ratios()[1]
    assert r["paired"] == "rounds" and r["p50"] == pytest.approx(1.0)
    assert any("pairs the rounds" in n for n in res.models[1].notes)


def test_tradeoff_plot_labels_each_model(tmp_path):
    pytest.importorskip("matplotlib")
    from tflc.report.render import plot_tradeoff
    res = bench.BenchResult([_model("m.tflite", 1000, 200.0), _model("o2/m.tflite", 990, 199.0),
                             _model("other/very_long_model_name_int8.tflite", 500, 300.0)], [1], 10, 2, 0)
    res.models[1].accuracy = {"comparable": True, "identical": False, "max_rel": 1e-3, "max_abs": 1e-4}
    res.models[2].accuracy = {"comparable": False, "reason": "different outputs"}
    assert plot_tradeoff(res)[:4] == b"\x89PNG"


def test_accuracy_of_unrelated_models_is_not_comparable(zoo):
    a, b = str(zoo("mobilenet_tiny")), str(zoo("tiny_mlp"))
    acc, _ = bench._accuracy(a, b, None, None)
    assert acc["comparable"] is False and acc["reason"] == "different inputs" and "[1,16]" in acc["detail"]
    from tflc.report.render import accuracy_text
    assert accuracy_text(acc) == "not comparable (different inputs)"
    assert accuracy_text({"comparable": False, "reason": "different outputs"}) == \
        "not comparable (different outputs)"
    from tflc.runtime.check import RunResult
    ref = RunResult([], [], [], [[np.zeros((1, 213)), np.zeros((1, 15))]])
    got = RunResult([], [], [], [[np.zeros((1, 896, 16)), np.zeros((1, 896, 1))]])
    assert "float64[1,213]" in bench._outputs_mismatch(ref, got)
    assert bench._outputs_mismatch(ref, ref) == ""


def test_builtin_failure_note_says_it_is_about_the_builtin_run():
    note = bench._builtin_note("LiteRT cannot prepare s.tflite: Encountered unresolved custom op: Conv2DTB.")
    assert note.startswith("builtin kernels only (no XNNPACK)") and "only XNNPACK runs it" in note


def test_rounds_and_max_time_bound_the_whole_measurement(monkeypatch):
    # a fake clock and measurement: each round costs 1 s (process start, warm-up and runs)
    now = [0.0]
    calls = []

    def fake_measure(model, *, runs, **kw):
        calls.append(runs)
        now[0] += 1.0
        return LatencyStats.from_samples([100.0] * runs), None
    monkeypatch.setattr(bench, "_measure", fake_measure)
    monkeypatch.setattr(bench, "_clock", lambda: now[0])
    monkeypatch.setattr(bench, "_tflc_delegate_factory", lambda data: (None, "no tflc kernels"))
    res = bench.run_bench([__file__], runs=10, rounds=500, max_seconds=100.0, xnnpack_variants=False,
                          accuracy=False)
    assert len(calls) == 10 and res.rounds == 10 and res.runs == 10 and res.models[0].latency.runs == 10
    assert "10 rounds, not 500" in " ".join(res.notes)
    calls.clear()
    res = bench.run_bench([__file__], runs=100, rounds=10, max_seconds=3.0, xnnpack_variants=False,
                          accuracy=False)
    assert len(calls) == 3 and sum(calls) == 30                  # 3 s spent: the other 7 rounds skipped
    assert "--max-time 3 s" in " ".join(res.notes)


def test_background_load_starts_and_ends_its_processes():
    with bench.BackgroundLoad(2, max_seconds=30) as load:
        pids = list(load.pids)
        assert len(pids) == 2
        for pid in pids:
            os.kill(pid, 0)                       # alive
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)                       # reaped


def test_run_bench_side_by_side(zoo, monkeypatch):
    monkeypatch.setattr(bench, "LOADED_MIN_SECONDS", 0.2)
    paths = [str(zoo("mobilenet_tiny")), str(zoo("mobilenet_tiny_int8"))]
    seen = []
    res = bench.run_bench(paths, threads=[1, 2], runs=10, warmup=2, contention=1, max_seconds=1.0, rounds=2,
                          progress=seen.append)
    assert len(res.models) == 2 and seen
    a, b = res.models
    for m in res.models:
        assert m.latency and m.latency.runs >= 10 and m.size_bytes > 0
        assert [p.threads for p in m.threads] == [1, 2] and all(p.loaded for p in m.threads)
        assert m.configs["xnnpack"] is m.latency and m.configs["builtin"] is not None
        assert m.recommendation["threads"] in (1, 2, None) and m.recommendation["reason"]
        assert m.peak_memory_bytes is None or m.peak_memory_bytes > 0
    assert a.accuracy is None                     # the reference
    assert b.accuracy and b.accuracy["comparable"] and np.isfinite(b.accuracy["max_abs"])   # int8: same values
    r = res.ratios()
    assert r[0]["size"] == 1.0 and r[1]["size"] < 1.0 and r[1]["p50"] > 0
    data = json.loads(json.dumps(res.to_json()))
    assert data["contention"] == 1 and len(data["models"][1]["threads"]) == 2


def test_cli_bench(zoo, tmp_path, capsys):
    pytest.importorskip("matplotlib")
    from tflc.cli.main import main
    model = str(zoo("tiny_mlp"))
    report = tmp_path / "b.md"
    rc = main(["bench", model, model, "--runs", "10", "--warmup", "2", "--threads", "1,2", "--max-time", "1",
               "--rounds", "2", "--report", str(report), "--json"])
    data = json.loads(capsys.readouterr().out)
    assert rc == 0 and len(data["models"]) == 2 and data["models"][1]["accuracy"]["identical"]
    assert [m["name"] for m in data["models"]] == [Path(model).name + " [1]", Path(model).name + " [2]"]
    assert data["models"][0]["latency"]["p99_us"] >= data["models"][0]["latency"]["p50_us"]
    text = report.read_text()
    assert "Threads: tiny_mlp" in text and "bench-threads.png" in text and "tflc delegate" not in text
    assert report.stat().st_mode & 0o777 == 0o666 & ~_umask()
    for bad in (["--report", str(tmp_path / "no" / "b.md")], ["--report", str(tmp_path / "b.txt")]):
        assert main(["bench", model, *bad]) == 2
    assert not (tmp_path / "no").exists()
    for bad in (["--max-time", "0"], ["--warmup", "-2"]):
        with pytest.raises(SystemExit) as e:
            main(["bench", model, *bad])
        assert e.value.code == 2
    rc = main(["bench", model, "--runs", "5", "--no-variants", "--no-accuracy"])
    out = capsys.readouterr().out
    assert rc == 0 and "p50" in out and "Kernels" not in out


def test_cli_bench_input_shape_in_tflc_words(zoo, monkeypatch, capsys):
    from tflc.cli.main import main
    from tflc.errors import RuntimeFailure
    dyn, static = str(zoo("transformer_encoder")), str(zoo("mobilenet_tiny"))
    called = []
    monkeypatch.setattr(bench, "run_bench", lambda *a, **k: called.append(1))
    for model, spec, words in [(dyn, "serving_default_token_ids:0:1x33", "does not fit the input's shape ?x32"),
                               (static, "serving_default_image:0:1x32x32x3", "does not fit the input's shape"),
                               (static, "nosuch:1x2", "the model has no such input")]:
        assert main(["bench", model, "--input-shape", spec]) == 2
        err = capsys.readouterr().err
        assert words in err and err.count("\n") == 1 and "XNNPack" not in err, err
    assert not called                                    # refused before any measuring
    # a shape that fits the signature but that LiteRT cannot prepare: tflc's words first

    def refuse(*a, **k):
        raise RuntimeFailure(f"LiteRT cannot prepare {dyn}: XNNPack delegate failed to reshape runtime; node number "
                             "171 (TfLiteXNNPackDelegate) failed to prepare.")
    monkeypatch.setattr(bench, "run_bench", refuse)
    assert main(["bench", dyn, "--input-shape", "serving_default_token_ids:0:7x32"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("tflc bench: error: --input-shape serving_default_token_ids:0:7x32: the model cannot run "
                          "with this shape") and err.count("\n") == 1


def test_cli_report_checks_matplotlib_before_measuring(monkeypatch, tmp_path, capsys):
    import sys
    from tflc.cli.main import main
    import tflc.profiler as profiler
    monkeypatch.setitem(sys.modules, "matplotlib", None)          # not installed
    called = []
    monkeypatch.setattr(bench, "run_bench", lambda *a, **k: called.append("bench"))
    monkeypatch.setattr(profiler, "get_profile", lambda *a, **k: called.append("profile"))
    model = str(Path(__file__).resolve().parents[1] / "examples" / "mobilenet_tiny.tflite")
    for cmd in ("bench", "profile"):
        for report in ("r.md", "r.html"):
            assert main([cmd, model, "--report", str(tmp_path / report)]) == 2
            err = capsys.readouterr().err
            assert "needs matplotlib" in err and "pip install 'tflc[report]'" in err and err.count("\n") == 1
    assert not called and list(tmp_path.iterdir()) == []          # nothing measured, nothing left behind
