"""tflc bench-kernels: the kernels against the builtin ops they replace (tflc.kernelbench).

A tiny sweep (one small size, two ops, a few short rounds): the structure of the result, that the
kernel computes the builtin's very bytes, filters, and one-line usage errors. No timing is asserted.
"""
from __future__ import annotations

import json

import numpy as np
import pytest

from tflc import kernelbench as kb
from tflc.cli import main as cli

TINY = ["--sizes", "1K", "--rounds", "3", "--per-round", "3", "--max-time", "0.2"]


@pytest.fixture
def tflc_main(monkeypatch):
    """``tflc`` with the command registered (until tflc/cli/main.py lists it)."""
    if "bench_kernels" not in cli.COMMANDS:
        monkeypatch.setattr(cli, "COMMANDS", cli.COMMANDS + ["bench_kernels"])
    return cli.main


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    """One run of the command: --json and --plot, GELU (TFLC_LUT8) and SQUARED_DIFFERENCE (TFLC_LUT8X8)."""
    import contextlib
    import io
    mp = pytest.MonkeyPatch()
    if "bench_kernels" not in cli.COMMANDS:
        mp.setattr(cli, "COMMANDS", cli.COMMANDS + ["bench_kernels"])
    plot = tmp_path_factory.mktemp("plot") / "kernels.png"
    try:
        import matplotlib  # noqa: F401
        extra = ["--plot", str(plot)]
    except ImportError:
        extra, plot = [], None
    out, err = io.StringIO(), io.StringIO()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            rc = cli.main(["bench-kernels", "--op", "GELU,squared_difference", *TINY, "--json", *extra])
    finally:
        mp.undo()
    return rc, out.getvalue(), err.getvalue(), plot


def test_json_is_valid_and_every_case_has_its_numbers(sweep):
    rc, out, err, _ = sweep
    assert rc == 0, err
    res = json.loads(out)
    assert {"machine", "settings", "sizes", "cases", "uncovered", "unbenchmarked"} <= set(res)
    cases = res["cases"]
    assert {(c["kernel"], c["op"], c["layout"]) for c in cases} == {
        ("TFLC_LUT8", "GELU", "elementwise"), ("TFLC_LUT8X8", "SQUARED_DIFFERENCE", "elementwise"),
        ("TFLC_LUT8X8", "SQUARED_DIFFERENCE", "row-broadcast")}
    for c in cases:
        assert "error" not in c, c
        assert c["elements"] == 1024
        n_in = sum(int(np.prod(s)) for s in c["shapes"])
        assert c["bytes"] == n_in + 1024                       # int8: inputs read + output written
        for k in ("builtin", "kernel", "copy"):
            assert c["us"][k] > 0 and c["gbps"][k] > 0 and c["gbps_int8"][k] > 0, (k, c)
        assert c["gbps"]["kernel"] == pytest.approx(c["bytes"] / (c["us"]["kernel"] * 1e3))
        for key in ("kernel_vs_builtin", "kernel_vs_copy"):
            r = c[key]
            assert r["ci_low"] <= r["ratio"] <= r["ci_high"] and r["rounds"] >= 2, (key, r)
            assert r["verdict"] in ("faster", "slower", "no difference beyond noise")
        assert c["copy_fraction"] == pytest.approx(c["us"]["copy"] / c["us"]["kernel"])
        assert c["exact"] is True and c["exact_vs"]["builtin"] is True, c
        # XNNPACK takes neither int8 op, and takes both float ones
        assert c["us"]["xnnpack_int8"] is None and "xnnpack_int8" in c["skipped"]
        assert c["us"]["xnnpack_f32"] > 0 and c["kernel_vs_xnnpack_f32"]["ratio"] > 0
        assert c["bytes_moved"]["xnnpack_f32"] == 4 * c["bytes"]
    assert res["machine"]["cpu"]


def test_the_plot_is_written(sweep):
    rc, _, err, plot = sweep
    if plot is None:
        pytest.skip("matplotlib is not installed")
    assert rc == 0 and plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert f"plot: {plot}" in err


def test_the_kernel_computes_the_builtins_bytes():
    """The kernel model of each case against the builtin one-op model, in tflc.runtime.Session."""
    from tflc.runtime import RunOptions, Session
    cases, _ = kb.plan_cases([kb.parse_size("1K"), kb.parse_size("1x64x192")], ["GELU", "SQUARED_DIFFERENCE"])
    kb.build_cases(cases)
    assert len(cases) == 6 and not [c.error for c in cases if c.error]
    rng = np.random.default_rng(7)
    for c in cases:
        builtin = Session(c.builtin, RunOptions(xnnpack=False), name="builtin")
        kernel = Session(c.kernel_model, RunOptions(), name="kernel")
        assert kernel.custom_ops == {c.kernel: 1}
        for _ in range(3):
            xs = [rng.integers(-128, 128, size=s).astype(np.int8) for s in c.shapes]
            (a,), (b,) = builtin.run(xs), kernel.run(xs)
            assert a.dtype == b.dtype == np.int8 and a.shape == b.shape == c.out_shape
            assert a.tobytes() == b.tobytes(), c.name


def test_filters_choose_the_cases():
    cases, uncovered = kb.plan_cases([kb.parse_size("1K")], ["GELU", "SUB"], ["TFLC_LUT8"])
    assert [(c.kernel, c.op) for c in cases] == [("TFLC_LUT8", "GELU")]
    assert {u["op"] for u in uncovered} == {"SUB"}               # no selected kernel replaces SUB
    cases, _ = kb.plan_cases([kb.parse_size("1K"), kb.parse_size("4K")], ["SUB"])
    assert [(c.kernel, c.layout, c.out_shape) for c in cases] == [
        ("TFLC_LUT8X8", "elementwise", (1, 4, 256)), ("TFLC_LUT8X8", "elementwise", (1, 16, 256)),
        ("TFLC_LUT8X8", "row-broadcast", (1, 4, 256)), ("TFLC_LUT8X8", "row-broadcast", (1, 16, 256))]
    assert cases[2].shapes == [(1, 4, 256), (1, 4, 1)]
    assert kb.check_filters(["gelu"], ["tflc_lut8"]) == (["GELU"], ["TFLC_LUT8"])
    assert kb.parse_sizes("1K,16k,1M,1x64x192,100") == [(1, 4, 256), (1, 64, 256), (1, 4096, 256), (1, 64, 192),
                                                       (1, 100)]


def test_the_kernel_filter_in_the_command(tflc_main, capsys):
    rc = tflc_main(["bench-kernels", "--kernel", "TFLC_LUT8", "--op", "GELU,SUB", "--sizes", "1K", "--quick",
                    "--rounds", "2", "--per-round", "2", "--max-time", "0.1", "--json"])
    res = json.loads(capsys.readouterr().out)
    assert rc == 0 and [(c["kernel"], c["op"]) for c in res["cases"]] == [("TFLC_LUT8", "GELU")]
    assert {(u["op"], u["layout"]) for u in res["uncovered"]} == {("SUB", "elementwise"), ("SUB", "row-broadcast")}


def test_the_table(sweep):
    from tflc.report.kernelbench_text import kernelbench_blocks
    from tflc.report.text import Table
    res = json.loads(sweep[1])
    blocks = kernelbench_blocks(res)
    tables = [b for b in blocks if isinstance(b, Table)]
    assert [t.title.split()[0] for t in tables] == ["TFLC_LUT8", "TFLC_LUT8X8"]
    text = "\n".join(t.plain() for t in tables)
    assert "GELU" in text and "row-broadcast" in text and "NO" not in text.split()


@pytest.mark.parametrize("argv, says", [
    (["--op", "FOO"], "--op FOO: not an op of the sweep"),
    (["--kernel", "TFLC_NOPE"], "--kernel TFLC_NOPE: not a kernel"),
    (["--sizes", "1x"], "--sizes"),
    (["--sizes", "0"], "--sizes"),
    (["--rounds", "0"], "--rounds"),
    (["--custom", "a.tflite"], "--custom MODEL and --against REF go together"),
    (["--custom", "missing.tflite", "--against", "missing.tflite"], "--custom missing.tflite: no such file"),
    (["--plot", "kernels.jpg"], "--plot kernels.jpg: the plot is a .png or .svg file"),
])
def test_bad_arguments_are_one_line_and_exit_2(tflc_main, capsys, argv, says):
    try:
        rc = tflc_main(["bench-kernels", *argv])
    except SystemExit as e:             # argparse's own errors
        rc = e.code
    err = capsys.readouterr().err
    assert rc == 2, err
    assert len(err.strip().splitlines()) == 1 and says in err, err


def test_a_users_kernel_is_swept_like_the_librarys_and_a_wrong_one_is_caught():
    """A kernel registered by the user (here a Python kernel that forgets to compute TANH)."""
    import tflc.kernels
    tflc.kernels.register("TEST_BENCH_IDENTITY", lambda inputs, options: [np.array(inputs[0])])
    kb.add_kernel("TEST_BENCH_IDENTITY", lambda op: (op.type == "TANH", "not a TANH"), options=lambda op: b"\x01")
    try:
        res = kb.run([kb.parse_size("1K")], ["TANH", "GELU"], ["TEST_BENCH_IDENTITY"],
                     kb.Settings(rounds=2, per_round=2, warmup=1, max_seconds=0.1))
    finally:
        tflc.kernels.unregister("TEST_BENCH_IDENTITY")
        kb.USER_KERNELS.pop("TEST_BENCH_IDENTITY", None)
    (case,) = res["cases"]
    assert (case["kernel"], case["op"]) == ("TEST_BENCH_IDENTITY", "TANH") and "error" not in case, case
    assert case["exact"] is False and case["us"]["kernel"] > 0
    assert {u["op"] for u in res["uncovered"]} == {"GELU"}


def test_custom_models_against_a_reference(tflc_main, capsys, tmp_path):
    cases, _ = kb.plan_cases([kb.parse_size("1K")], ["GELU", "TANH"], ["TFLC_LUT8"])
    kb.build_cases(cases)
    gelu, tanh = cases
    (tmp_path / "k.tflite").write_bytes(gelu.kernel_model)
    (tmp_path / "gelu.tflite").write_bytes(gelu.builtin)
    (tmp_path / "tanh.tflite").write_bytes(tanh.builtin)
    tiny = ["--rounds", "2", "--per-round", "2", "--max-time", "0.1", "--json"]
    rc = tflc_main(["bench-kernels", "--custom", str(tmp_path / "k.tflite"), "--against", str(tmp_path / "gelu.tflite"),
                    *tiny])
    (row,) = json.loads(capsys.readouterr().out)["cases"]
    assert rc == 0 and row["exact"] is True and row["bytes"] == 2048 and row["us"]["kernel"] > 0
    assert row["kernel_vs_builtin"]["ci_low"] <= row["kernel_vs_builtin"]["ratio"]
    rc = tflc_main(["bench-kernels", "--custom", str(tmp_path / "k.tflite"), "--against", str(tmp_path / "tanh.tflite"),
                    *tiny])
    assert rc == 1 and json.loads(capsys.readouterr().out)["cases"][0]["exact"] is False
