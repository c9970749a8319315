"""tflc bench: latency statistics, several models side by side, threads, contention, kernels.

Structure only: no assertion depends on how fast anything runs.
"""
from __future__ import annotations

import json
import os

import numpy as np
import pytest

from tflc.profiler import bench
from tflc.profiler.latency import LatencyStats


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


def test_recommend_notes_threads_that_hurt_under_load():
    pts = [bench.ThreadPoint(1, _stats(100), _stats(110, 150)),
           bench.ThreadPoint(2, _stats(60), _stats(90, 400))]
    rec = bench.recommend(pts)
    assert rec["best_isolated"] == 2 and rec["best_loaded"] == 1
    assert rec["warning"] and "hurts under load" in rec["warning"]
    assert rec["threads"] in (1, 2)
    alone = bench.recommend([bench.ThreadPoint(1, _stats(100)), bench.ThreadPoint(2, _stats(60))])
    assert alone["threads"] == 2 and alone["best_loaded"] is None


def test_background_load_starts_and_ends_its_processes():
    with bench.BackgroundLoad(2, max_seconds=30) as load:
        pids = list(load.pids)
        assert len(pids) == 2
        for pid in pids:
            os.kill(pid, 0)                       # alive
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)                       # reaped


def test_convert_inputs_quantizes_for_int8_models():
    ref = [{"name": "x", "dtype": np.float32, "quantization": (0.0, 0)}]
    q = [{"name": "x", "dtype": np.int8, "quantization": (0.5, -3)}]
    steps = [[np.array([0.0, 1.0, -1.0, 100.0], np.float32)]]
    (x,), = bench._convert_inputs(steps, ref, q)
    assert x.dtype == np.int8 and x.tolist() == [-3, -1, -5, 127]
    (y,), = bench._convert_inputs([[x]], q, ref)
    assert y.dtype == np.float32 and y.tolist() == [0.0, 1.0, -1.0, 65.0]


def test_run_bench_side_by_side(zoo, monkeypatch):
    monkeypatch.setattr(bench, "LOADED_MIN_SECONDS", 0.2)
    paths = [str(zoo("mobilenet_tiny")), str(zoo("mobilenet_tiny_int8"))]
    seen = []
    res = bench.run_bench(paths, threads=[1, 2], runs=10, warmup=2, contention=1, max_seconds=1.0,
                          progress=seen.append)
    assert len(res.models) == 2 and seen
    a, b = res.models
    for m in res.models:
        assert m.latency and m.latency.runs >= 10 and m.size_bytes > 0
        assert [p.threads for p in m.threads] == [1, 2] and all(p.loaded for p in m.threads)
        assert m.configs["xnnpack"] is m.latency and m.configs["builtin"] is not None
        assert m.recommendation["threads"] in (1, 2)
        assert m.peak_memory_bytes is None or m.peak_memory_bytes > 0
    assert a.accuracy is None                     # the reference
    assert b.accuracy and np.isfinite(b.accuracy["max_abs"])   # int8 inputs fed the same values
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
               "--report", str(report), "--json"])
    data = json.loads(capsys.readouterr().out)
    assert rc == 0 and len(data["models"]) == 2 and data["models"][1]["accuracy"]["identical"]
    assert data["models"][0]["latency"]["p99_us"] >= data["models"][0]["latency"]["p50_us"]
    text = report.read_text()
    assert "Threads: tiny_mlp" in text and "bench-threads.png" in text
    rc = main(["bench", model, "--runs", "5", "--no-variants", "--no-accuracy"])
    out = capsys.readouterr().out
    assert rc == 0 and "p50" in out and "Kernels" not in out
