"""Bad input: one line on stderr, exit code 2, no traceback, nothing written or lost."""
from __future__ import annotations

import struct
import subprocess
import sys

import numpy as np
import pytest

from tflc.cli.main import main


def _run(capsys, *argv):
    rc = main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


def _assert_one_line_error(rc, err, *, code=2, contains=""):
    assert rc == code, err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    assert contains.lower() in lines[0].lower()


@pytest.fixture
def good(example_model):
    return example_model.read_bytes()


CASES = {
    "truncated": lambda d: d[:1000],
    "truncated-half": lambda d: d[: len(d) // 2],
    "random-bytes": lambda d: bytes((i * 7919 + 13) % 251 for i in range(4096)),
    "png": lambda d: b"\x89PNG\r\n\x1a\n" + b"\0" * 64,
    "empty": lambda d: b"",
    "root-out-of-range": lambda d: struct.pack("<I", len(d) + 100) + d[4:],
    "offset-out-of-range": lambda d: d[:40] + b"\xff" * 8 + d[48:],
    "tiny": lambda d: b"TFL3",
}
MESSAGES = {"png": "PNG image", "empty": "empty file", "random-bytes": "not a .tflite model",
            "root-out-of-range": "root table offset", "truncated": "truncated"}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_files_give_one_line_and_exit_2(case, good, tmp_path, capsys):
    bad = tmp_path / f"{case}.tflite"
    bad.write_bytes(CASES[case](good))
    for cmd in (["inspect", str(bad)], ["optimize", str(bad), "-o", str(tmp_path / "out.tflite")]):
        rc, _, err = _run(capsys, *cmd)
        _assert_one_line_error(rc, err, contains=MESSAGES.get(case, ""))
    assert not (tmp_path / "out.tflite").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")], "temporary files left behind"


def test_missing_file_and_directory(tmp_path, capsys):
    rc, _, err = _run(capsys, "inspect", str(tmp_path / "nope.tflite"))
    _assert_one_line_error(rc, err, contains="no such file")
    rc, _, err = _run(capsys, "inspect", str(tmp_path))
    _assert_one_line_error(rc, err, contains="directory")


def test_unknown_operator_is_reported(example_model, tmp_path, capsys):
    from tflc.io import read_model, write_model
    from tflc.ir.core import OpCode
    m = read_model(example_model)
    op = m.main.operators[0]
    op.opcode = OpCode(250, None, 1, None)       # no such builtin operator
    path = tmp_path / "unknown_op.tflite"
    write_model(m, path)
    rc, _, err = _run(capsys, "inspect", str(path))
    _assert_one_line_error(rc, err, contains="unknown builtin operator code 250")


def test_never_overwrites_input(example_model, tmp_path, capsys):
    src = tmp_path / "m.tflite"
    src.write_bytes(example_model.read_bytes())
    before = src.read_bytes()
    rc, _, err = _run(capsys, "optimize", str(src), "-o", str(src), "-O0")
    _assert_one_line_error(rc, err, contains="refusing to overwrite")
    link = tmp_path / "link.tflite"
    link.symlink_to(src)
    rc, _, err = _run(capsys, "optimize", str(src), "-o", str(link), "-O0")
    _assert_one_line_error(rc, err, contains="refusing to overwrite")
    assert src.read_bytes() == before


@pytest.mark.parametrize("argv,needle", [
    (["optimize", "IN"], "-o/--output"),
    (["optimize", "IN", "-o", "OUT", "--passes", "no-such-pass"], "unknown pass"),
    (["optimize", "IN", "-o", "OUT", "--passes", "remove-dead-code{bad=1}"], "has no option"),
    (["optimize", "IN", "-o", "OUT", "--passes", "remove-dead-code{"], "unbalanced"),
    (["optimize", "IN", "-o", "OUT", "--threads", "0"], "positive integer"),
    (["optimize", "IN", "-o", "OUT", "--input-shape", "x"], "--input-shape"),
    (["optimize", "IN", "-o", "OUT", "--quantize", "int8", "--min-sqnr", "0"], "above 0"),
    (["optimize", "IN", "-o", "OUT", "--quantize", "auto{min-sqnr=-5}"], "above 0"),
    (["optimize", "IN", "-o", "OUT", "--quantize", "fp16", "--io", "int8"], "--io needs --quantize int8"),
    (["optimize", "IN", "-o", "OUT", "--quantize", "int16x8", "--io", "uint8"], "io=uint8 is for int8"),
    (["optimize", "IN", "-o", "OUT", "--quantize", "int8", "--io", "uint8", "--quantize", "fp16"],
     "--quantize given twice"),
    (["optimize", "-o", "OUT", "--quantize", "IN"], "--quantize takes an optional MODE"),
    (["frobnicate"], "invalid choice"),
])
def test_bad_arguments(argv, needle, example_model, tmp_path, capsys):
    argv = [str(example_model) if a == "IN" else str(tmp_path / "o.tflite") if a == "OUT" else a for a in argv]
    try:
        rc, _, err = _run(capsys, *argv)
    except SystemExit as e:  # argparse exits by itself
        rc, err = e.code, capsys.readouterr().err
    _assert_one_line_error(rc, err, contains=needle)


def test_real_process_exit_code_and_stderr(tmp_path):
    bad = tmp_path / "x.tflite"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 64)
    p = subprocess.run([sys.executable, "-m", "tflc.cli.main", "inspect", str(bad)], capture_output=True, text=True)
    assert p.returncode == 2 and p.stdout == ""
    assert p.stderr.strip().count("\n") == 0 and "PNG" in p.stderr


@pytest.mark.parametrize("target,needle", [
    ("fifo", "not a regular file"), ("dir", "is a directory"), ("readonly", "read-only"),
    ("missing-dir", "no such directory"), ("empty", "empty path"),
])
def test_unsafe_output_paths_are_refused_before_any_work(target, needle, example_model, tmp_path, capsys):
    out = {"fifo": tmp_path / "fifo", "dir": tmp_path, "readonly": tmp_path / "ro.tflite",
           "missing-dir": tmp_path / "nope" / "o.tflite", "empty": ""}[target]
    if target == "fifo":
        import os
        os.mkfifo(out)
    if target == "readonly":
        out.write_bytes(b"keep me")
        out.chmod(0o444)
    rc, _, err = _run(capsys, "optimize", str(example_model), "-o", str(out), "-O0")
    _assert_one_line_error(rc, err, contains=needle)
    if target == "readonly":
        assert out.read_bytes() == b"keep me"


def test_symlink_output_writes_the_target(example_model, tmp_path, capsys):
    real = tmp_path / "real.tflite"
    real.write_bytes(b"old")
    link = tmp_path / "link.tflite"
    link.symlink_to(real)
    assert main(["optimize", str(example_model), "-o", str(link), "-O0"]) == 0
    assert link.is_symlink() and real.read_bytes()[4:8] == b"TFL3"


@pytest.mark.parametrize("report,needle", [
    ("same-as-output", "refusing to overwrite"), ("missing-dir", "no such directory"),
    ("not-json", "expected a .json"), ("dir", "is a directory"),
])
def test_bad_report_path_is_refused_before_writing_anything(report, needle, example_model, tmp_path, capsys):
    out = tmp_path / "out.tflite"
    rep = {"same-as-output": out, "missing-dir": tmp_path / "no" / "r.json",
           "not-json": tmp_path / "r.tflite", "dir": tmp_path / "d.json"}[report]
    if report == "dir":
        rep.mkdir()
    rc, _, err = _run(capsys, "optimize", str(example_model), "-o", str(out), "-O0", "--report", str(rep))
    _assert_one_line_error(rc, err, contains=needle)
    assert not out.exists()


def test_json_errors_are_json(tmp_path, capsys):
    import json
    rc, out, err = _run(capsys, "inspect", str(tmp_path / "missing.tflite"), "--json")
    assert rc == 2 and json.loads(out) == {"error": err.split("error: ", 1)[1].strip(), "exit_code": 2}


def test_unknown_argument_names_the_subcommand(example_model, tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        main(["optimize", str(example_model), "-o", str(tmp_path / "o.tflite"), "-O3"])
    assert e.value.code == 2
    assert "tflc optimize: error: unrecognized arguments: -O3" in capsys.readouterr().err


def test_non_finite_data_is_refused_in_one_line(example_model, tmp_path, capsys):
    from tflc.runtime import Session
    d = Session(str(example_model)).input_details[0]
    bad = tmp_path / "nan.npz"
    data = np.zeros((2, *d["shape"]), np.float32)
    data[1].flat[0] = np.nan
    np.savez(bad, **{d["name"]: data})
    out = tmp_path / "q.tflite"
    assert main(["optimize", str(example_model), "-o", str(out), "--quantize", "int8", "--calibration", str(bad)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "1 of" in err[0] and "NaN or infinite" in err[0] and "nan.npz" in err[0], err
    assert not out.exists()


def test_calibration_without_quantization_is_refused(example_model, tmp_path, capsys):
    cal = tmp_path / "cal.npz"
    np.savez(cal, np.zeros((1, 1), np.float32))
    out = tmp_path / "o.tflite"
    rc, _, err = _run(capsys, "optimize", str(example_model), "-o", str(out), "--calibration", str(cal))
    _assert_one_line_error(rc, err, contains="--calibration is read by quantization")
    assert not out.exists()


def test_quantizing_a_model_with_no_float_tensor_is_refused(zoo, tmp_path, capsys):
    out = tmp_path / "o.tflite"
    rc, _, err = _run(capsys, "optimize", str(zoo("mobilenet_tiny_int8")), "-o", str(out), "--quantize", "int8")
    _assert_one_line_error(rc, err, contains="nothing to quantize: the model has no float tensor")
    assert "already quantized" in err and not out.exists()
