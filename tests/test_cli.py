"""The tflc command end to end: inspect, passes, optimize, compare; --json and reports."""
from __future__ import annotations

import json

import pytest

from tflc.cli.main import main


def _json(capsys, *argv):
    rc = main(list(argv) + ["--json"])
    out, err = capsys.readouterr()
    assert rc == 0, err
    return json.loads(out)


def test_inspect_text_and_json(example_model, capsys):
    assert main(["inspect", str(example_model)]) == 0
    text = capsys.readouterr().out
    assert "CONV_2D" in text and "input" in text and "FLOAT32" in text
    s = _json(capsys, "inspect", str(example_model))
    sg = s["subgraphs"][0]
    assert s["operators"] == sg["operators"] == sum(sg["ops_by_type"].values())
    assert sg["inputs"][0]["shape"] == [1, 64, 64, 3]
    assert s["constant_bytes_by_type"]["FLOAT32"] > 100_000


def test_inspect_dynamic_and_stateful(zoo, capsys):
    s = _json(capsys, "inspect", str(zoo("transformer_encoder")))
    assert s["subgraphs"][0]["dynamic_inputs"] and s["subgraphs"][0]["inputs"][0]["shape_signature"][0] == -1
    s = _json(capsys, "inspect", str(zoo("stateful_counter")))
    assert len(s["subgraphs"]) == 2 and s["signatures"][0]["key"] == "serving_default"


def test_passes_lists_levels(capsys):
    data = _json(capsys, "passes")
    names = {p["name"] for p in data["passes"]}
    assert "remove-dead-code" in names and data["pipelines"]["O0"] == []
    assert set(data["pipelines"]["O1"]) <= names


@pytest.mark.parametrize("level", ["-O0", "-O1", "-O2"])
def test_optimize_levels_write_checked_models(example_model, tmp_path, capsys, level):
    out = tmp_path / "out.tflite"
    report = tmp_path / "report.json"
    data = _json(capsys, "optimize", str(example_model), "-o", str(out), level, "--report", str(report))
    assert out.exists() and json.loads(report.read_text()) == data
    assert data["check"]["steps"] == 3 and data["after"]["ops"] <= data["before"]["ops"]
    if level == "-O0":
        assert data["check"]["identical"] and data["passes"] == []
    else:
        assert data["check"]["outputs"][0]["max_rel"] <= 1e-5


def test_optimize_text_output(example_model, tmp_path, capsys):
    assert main(["optimize", str(example_model), "-o", str(tmp_path / "o.tflite"), "-O0"]) == 0
    out = capsys.readouterr().out
    assert "bit-identical" in out and "wrote" in out


def test_compare(example_model, zoo, tmp_path, capsys):
    data = _json(capsys, "compare", str(example_model), str(example_model))
    assert data["identical"] and data["outputs"][0]["cosine"] == pytest.approx(1.0)
    fp16 = zoo("mobilenet_tiny_fp16")
    f32 = zoo("mobilenet_tiny")
    data = _json(capsys, "compare", str(f32), str(fp16))
    o = data["outputs"][0]
    assert not data["identical"] and 0 < o["max_abs"] < 0.05 and o["sqnr_db"] > 20
    assert main(["compare", str(f32), str(fp16), "--tolerance", "1e-9"]) == 1
    assert "FAILED" in capsys.readouterr().out


def test_inspect_ops_listing(example_model, capsys):
    s = _json(capsys, "inspect", str(example_model), "--ops")
    assert len(s["ops"]) == s["operators"]
    conv = next(r for r in s["ops"] if r["type"] == "CONV_2D")
    assert conv["inputs"][0] == "FLOAT32[1x64x64x3]" and conv["inputs"][1].endswith("c")


def test_compare_float_with_its_int8_version(zoo, capsys):
    data = _json(capsys, "compare", str(zoo("mobilenet_tiny")), str(zoo("mobilenet_tiny_int8")))
    o = data["outputs"][0]
    assert 0 < o["max_rel"] < 0.2 and o["cosine"] > 0.99
    assert any("quantized to fit" in n for n in data["notes"])


def test_compare_unrelated_models_is_a_usage_error(zoo, capsys):
    rc = main(["compare", str(zoo("mobilenet_tiny")), str(zoo("stateful_counter"))])
    err = capsys.readouterr().err
    assert rc == 2 and "not comparable" in err and err.count("\n") == 1


def test_readme_example(tmp_path, capsys):
    """The README's first command: the shipped transformer, batch fixed, loses >= 40% of its ops;
    its outputs stay within the stated tolerance (layer norms are rewritten, 1e-5)."""
    import re
    from pathlib import Path
    repo = Path(__file__).resolve().parents[1]
    line = next(ln for ln in (repo / "README.md").read_text().splitlines() if "tflc optimize examples/" in ln)
    argv = line.split("&& tflc ", 1)[1].split()
    argv[argv.index("-o") + 1] = str(tmp_path / "out.tflite")
    argv = [str(repo / a) if a.startswith("examples/") else a for a in argv]
    data = _json(capsys, *argv)
    check = data["check"]
    assert check["tolerance"] <= 1e-5 and all(o["max_rel"] <= check["tolerance"] for o in check["outputs"])
    assert data["after"]["ops"] <= 0.6 * data["before"]["ops"]
    assert re.search(r"serving_default_token_ids:0:1x32", line)


def test_tolerance_zero_keeps_only_exact_rewrites(tmp_path, capsys):
    """At a level, --tolerance 0 leaves out the passes that may change outputs (and says so) instead
    of failing the check; the result is bit-identical. An explicit --passes list is taken as asked."""
    from pathlib import Path
    model = str(Path(__file__).resolve().parents[1] / "examples" / "transformer_encoder_tfkeras.tflite")
    shape = ["--input-shape", "serving_default_token_ids:0:1x32", "--no-latency-guard"]
    data = _json(capsys, "optimize", model, "-o", str(tmp_path / "exact.tflite"), "--tolerance", "0", *shape)
    assert data["skipped"] == ["fold-affine", "simplify-layer-norm"]
    assert data["check"]["identical"] and "simplify-layer-norm" not in [p["name"] for p in data["passes"]]
    assert data["after"]["ops"] == 83
    data = _json(capsys, "optimize", model, "-o", str(tmp_path / "default.tflite"), *shape)
    assert data["skipped"] == [] and data["after"]["ops"] == 71 and not data["check"]["identical"]
    rc = main(["optimize", model, "-o", str(tmp_path / "x.tflite"), "--passes", "specialize-shapes,cancel-transposes,"
               "simplify-layer-norm", "--tolerance", "0", *shape])
    _, err = capsys.readouterr()
    assert rc == 1 and "not bit-identical" in err and not (tmp_path / "x.tflite").exists()


def test_optimize_says_what_the_guard_and_verify_each_did(example_model, tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        main(["optimize", str(example_model), "-o", str(tmp_path / "a.tflite"), "--latency-guard", "--no-latency-guard"])
    assert e.value.code == 2 and "not allowed with" in capsys.readouterr().err
    # mobilenet_tiny: no pass changes it, so -O2's guard has nothing to time, and says so
    assert main(["optimize", str(example_model), "-o", str(tmp_path / "b.tflite"), "--verify-each"]) == 0
    out = capsys.readouterr().out
    assert "latency guard: skipped (no pass changed the model)" in out
    assert "max rel err (vs the model before it)" in out and out.count("identical") >= 5
