"""tflc partition end to end: the report as data, the text, the picture, the check against LiteRT."""
from __future__ import annotations

import json

import pytest

from tflc.cli.main import main
from tflc.io import read_model


def _run(capsys, *argv):
    rc = main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


def test_json_has_every_op_with_its_decision(zoo, capsys):
    path = zoo("transformer_encoder_3x192_int8")
    rc, out, err = _run(capsys, "partition", str(path), "--no-profile", "--check", "--json")
    assert rc == 0, err
    rep = json.loads(out)
    n = len(read_model(path).main.operators)
    assert [o["index"] for o in rep["ops"] if o["subgraph"] == 0] == list(range(n))
    for o in rep["ops"]:
        assert set(o) >= {"subgraph", "index", "type", "delegated"}
        assert o["delegated"] or o["reason"], o
    cpu = [o for o in rep["ops"] if not o["delegated"]]
    assert {"SOFTMAX", "GELU", "BATCH_MATMUL"} <= {o["type"] for o in cpu}
    assert rep["summary"]["partitions"] == len(rep["partitions"]) > 1
    assert rep["check"]["agrees"] is True
    assert any(r.startswith("float-islands:") for r in rep["rewrites"])


def test_text_groups_the_reasons_and_the_picture_is_written(zoo, capsys, tmp_path):
    path = zoo("mobilenet_v3_small_int8")
    html = tmp_path / "p.html"
    rc, out, err = _run(capsys, "partition", str(path), "--no-profile", "--html", str(html))
    assert rc == 0, err
    assert "Ops left on the CPU, by reason" in out
    assert "int8 HARD_SWISH is not taken by XNNPACK in LiteRT 2.3.0 (float only)" in out
    page = html.read_text()
    assert page.startswith("<!doctype html>") and "<svg" in page and "HARD_SWISH" in page
    assert [p.name for p in tmp_path.iterdir()] == ["p.html"], "written atomically, nothing else left"


def test_latency_shares_come_from_the_profile(zoo, capsys):
    rc, out, err = _run(capsys, "partition", str(zoo("tiny_mlp")), "--json")
    assert rc == 0, err
    lat = json.loads(out)["latency"]
    assert lat["view"] == "xnnpack" and lat["measured_us"] > 0
    assert abs(sum(p["us"] for p in lat["partitions"]) + sum(c["us"] for c in lat["cpu_ops"])
               - lat["per_op_total_us"]) < 1e-6


def test_rules_and_bad_usage(capsys):
    rc, out, _ = _run(capsys, "partition", "--target", "xnnpack", "--rules")
    assert rc == 0 and "SOFTMAX:" in out and "LiteRT 2.3.0" in out
    with pytest.raises(SystemExit) as e:
        main(["partition", "--rules", "--target", "no-such-delegate"])
    err = capsys.readouterr().err
    assert e.value.code == 2 and err.count("\n") == 1 and "invalid choice" in err
    rc, _, err = _run(capsys, "partition")
    assert rc == 2 and "give a model" in err
