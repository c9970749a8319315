"""tflc partition --target tflc: XNNPACK and tflc's kernels splitting one model, each split measured."""
from __future__ import annotations

import json

from tflc.cli.main import main
from tflc.io import serialize
from tflc.splits import SPLITS, measure_splits

from kernel_graphs import layer_norm_piece


def test_every_split_is_measured_and_checked(tmp_path):
    path = tmp_path / "piece.tflite"
    path.write_bytes(serialize(layer_norm_piece()))
    rows = measure_splits(str(path), max_seconds=1.0)
    assert [r["split"] for r in rows] == ["as is", *SPLITS]
    by = {r["split"]: r for r in rows}
    assert by["as is"]["builtin"] == 1 and by["as is"]["tflc_kernels"] == 0
    k = by["tflc kernels"]
    assert k["tflc_kernels"] == 1 and k["builtin"] == 0 and k["identical"] is True
    assert k["ci"][0] <= k["ratio"] <= k["ci"][1] and k["verdict"]
    f = by["float islands"]
    assert f["builtin"] == 0 and f["tflc_kernels"] == 0 and f["partitions"] == 1
    assert isinstance(by["chosen"]["decisions"], list) and by["chosen"]["decisions"]


def test_partition_target_tflc_names_the_kernel_of_each_cpu_op(tmp_path, capsys):
    path = tmp_path / "piece.tflite"
    path.write_bytes(serialize(layer_norm_piece()))
    rc = main(["partition", str(path), "--target", "tflc", "--no-profile", "--json"])
    out, err = capsys.readouterr()
    assert rc == 0, err
    rep = json.loads(out)
    cpu = [o for o in rep["ops"] if not o["delegated"]]
    assert [o["type"] for o in cpu] == ["SQUARED_DIFFERENCE"] and cpu[0]["kernel"] == "TFLC_LUT8X8"
    assert rep["kernels"] == {"ops": 1, "by_kernel": {"TFLC_LUT8X8": 1}}
    assert any(r.startswith("use-kernels:") for r in rep["rewrites"])
    rc = main(["partition", str(path), "--target", "tflc", "--no-profile"])
    out, _ = capsys.readouterr()
    assert rc == 0 and "tflc kernels: 1 of the 1 op(s) on the CPU have a tflc kernel (1 on TFLC_LUT8X8)" in out


def test_each_op_type_gets_builtin_kernel_and_island_measured(tmp_path):
    from tflc.splits import op_type_choices
    path = tmp_path / "piece.tflite"
    path.write_bytes(serialize(layer_norm_piece()))
    (d,) = op_type_choices(str(path), max_seconds=1.0)
    assert d["pattern"] == "SQUARED_DIFFERENCE => TFLC_LUT8X8"
    assert d["builtin_us"] > 0 and d["kernel_us"] > 0 and d["kernel"]["verdict"] and d["island"]["verdict"]
    assert d["fastest"] in ("tflc kernel", "float island", "builtin (no difference beyond noise)")
    if d["fastest"] != "builtin (no difference beyond noise)":
        key = "kernel" if d["fastest"] == "tflc kernel" else "island"
        assert d[key]["verdict"] == "faster"
