"""--calibration DIR: a folder of images calibrates --quantize (resized, RGB/grayscale, scaled into --input-range)."""
from __future__ import annotations

import json

import numpy as np
import pytest

PIL = pytest.importorskip("PIL")
from PIL import Image  # noqa: E402

from tflc.analyses import get_analysis  # noqa: E402
from tflc.cli.main import main  # noqa: E402
from tflc.io import read_model as load  # noqa: E402
from tflc.runtime.inputs import InputSource, load_images  # noqa: E402


def _ctx(**kw):
    from types import SimpleNamespace
    return SimpleNamespace(**{"calibration": None, "input_source": None, "seed": 0, "shapes": {}, **kw})


@pytest.fixture
def images(tmp_path):
    """Five RGB PNGs of other sizes than the model's (each with a black and a white band), a grayscale
    JPEG, and a file that is no image."""
    d = tmp_path / "images"
    d.mkdir()
    rng = np.random.default_rng(7)
    for i in range(5):
        a = rng.integers(0, 256, (40 + 9 * i, 90, 3), dtype=np.uint8)
        a[: a.shape[0] // 3] = 0                     # black and white bands that survive resizing
        a[-(a.shape[0] // 3):] = 255
        Image.fromarray(a).save(d / f"img{i}.png")
    Image.fromarray(rng.integers(0, 256, (70, 50), dtype=np.uint8)).save(d / "z_gray.jpg")
    (d / "notes.txt").write_text("not an image")
    return d


def _details(h, w, c, dtype=np.float32):
    return [{"name": "x", "dtype": dtype, "shape": np.array([1, h, w, c]), "shape_signature": np.array([1, h, w, c]),
             "quantization": (0.0, 0)}]


def test_load_images_resizes_bilinear_in_name_order_and_scales_into_the_range(images):
    steps = load_images(images, _details(16, 12, 3), input_range=(-1.0, 1.0))
    assert len(steps) == 6, "the .txt is skipped"
    with Image.open(images / "img0.png") as im:
        ref = np.asarray(im.convert("RGB").resize((12, 16), Image.Resampling.BILINEAR), np.float32)
    x = steps[0][0]
    assert x.shape == (1, 16, 12, 3) and x.dtype == np.float32
    np.testing.assert_allclose(x[0], ref / 255.0 * 2.0 - 1.0, atol=1e-6)
    assert x.min() == -1.0 and x.max() == 1.0
    gray = load_images(images, _details(8, 8, 1))
    assert gray[-1][0].shape == (1, 8, 8, 1) and 0.0 <= gray[-1][0].min() and gray[-1][0].max() <= 1.0
    assert len(load_images(images, _details(8, 8, 3), limit=2)) == 2


def test_the_analysis_sees_the_input_range(images, zoo):
    m = load(zoo("mobilenet_tiny"))
    uid = m.main.inputs[0].uid
    for rng in ((-1.0, 1.0), (0.0, 1.0), (0.0, 255.0)):
        cal = get_analysis("calibration").compute(m, _ctx(calibration=InputSource(images, rng)))
        assert cal.error is None and cal.warning is None and cal.samples == 6
        assert (cal.ranges[uid].min, cal.ranges[uid].max) == pytest.approx(rng)
    cal = get_analysis("calibration").compute(m, _ctx(calibration=str(images), input_range=(-1, 1), calibration_samples=3))
    assert cal.samples == 3 and (cal.ranges[uid].min, cal.ranges[uid].max) == pytest.approx((-1, 1))
    cal = get_analysis("calibration").compute(m, _ctx(calibration=str(images)))
    assert (cal.ranges[uid].min, cal.ranges[uid].max) == pytest.approx((0, 1)), "default 0,1"


def _input_quant(path):
    """(scale, zero point) of the int8 tensor the model's float input is quantized into."""
    from tflc.ir.quant import is_quantized
    m = load(path)
    x = m.main.inputs[0]
    q = [op for op, _ in x.uses if op.type == "QUANTIZE"]
    t = q[0].outputs[0] if q else x
    assert is_quantized(t)
    return float(t.quantization.scale[0]), int(t.quantization.zeroPoint[0])


@pytest.mark.parametrize("lo,hi", [(-1.0, 1.0), (0.0, 1.0)])
def test_cli_folder_calibrates_int8_over_the_input_range(images, zoo, tmp_path, capsys, lo, hi):
    out = tmp_path / "q.tflite"
    args = ["optimize", str(zoo("mobilenet_tiny")), "-o", str(out), "--quantize", "int8", "--calibration", str(images),
            "--no-latency-guard", "--json"]
    if (lo, hi) != (0.0, 1.0):
        args += ["--input-range", f"{lo:g},{hi:g}"]        # '-1,1' as a word of its own, not '--input-range=-1,1'
    assert main(args) == 0
    data = json.loads(capsys.readouterr().out)
    assert any("calibrated on 6 sample(s) from" in n for n in data["notes"])
    assert not any("warning" in n for n in data["notes"])
    m = load(out)
    convs = [op for op in m.main.operators if op.type == "CONV_2D"]
    assert convs and all(op.inputs[1].type_name == "INT8" for op in convs)
    s, z = _input_quant(out)
    assert s * (-128 - z) == pytest.approx(lo, abs=2 * s) and s * (127 - z) == pytest.approx(hi, abs=2 * s)


def test_calibration_samples_caps_the_folder(images, zoo, tmp_path, capsys):
    out = tmp_path / "q.tflite"
    assert main(["optimize", str(zoo("mobilenet_tiny")), "-o", str(out), "--quantize", "int8", "--calibration",
                 str(images), "--calibration-samples", "2", "--no-latency-guard", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert any("calibrated on 2 sample(s)" in n for n in data["notes"])


def test_generated_data_warns(zoo, tmp_path, capsys):
    assert main(["optimize", str(zoo("mobilenet_tiny")), "-o", str(tmp_path / "q.tflite"), "--quantize", "int8",
                 "--no-latency-guard"]) == 0
    out = capsys.readouterr().out
    assert "warning: no calibration data" in out and "generated samples" in out


def _fails(args, capsys, *words):
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    for w in words:
        assert w in err, err
    return err


def test_bad_folders_and_models_are_one_line_errors(images, zoo, tmp_path, capsys):
    mob, out = str(zoo("mobilenet_tiny")), str(tmp_path / "q.tflite")
    base = ["optimize", mob, "-o", out, "--quantize", "int8", "--no-latency-guard"]
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "a.txt").write_text("x")
    _fails(base + ["--calibration", str(empty)], capsys, "no images")
    _fails(base + ["--calibration", str(tmp_path / "missing")], capsys, "no such file or folder")
    _fails(["optimize", str(zoo("tiny_mlp")), "-o", out, "--quantize", "int8", "--calibration", str(images)], capsys,
           "needs a model with one image input")
    _fails(base + ["--calibration", str(images), "--input-range", "1,0"], capsys, "--input-range")
    _fails(base + ["--calibration", str(images), "--input-range", "a,b"], capsys, "--input-range")
    _fails(base + ["--input-range", "0,1"], capsys, "folder of images")
    (images / "broken.png").write_bytes(b"\x89PNG not really")
    _fails(base + ["--calibration", str(images)], capsys, "broken.png", "cannot read the image")
    assert not (tmp_path / "q.tflite").exists()


def test_compare_feeds_an_image_folder_over_the_input_range(images, zoo, tmp_path, capsys):
    """compare (and bench, profile) take --input-range for an --inputs folder, as optimize does."""
    import argparse
    from tflc.cli.common import input_source
    src = input_source(argparse.Namespace(inputs=str(images), input_range="-1,1"))
    assert isinstance(src, InputSource) and src.input_range == (-1.0, 1.0)
    model = str(zoo("mobilenet_tiny"))
    got = {}
    for rng in ("-1,1", None):
        argv = ["compare", model, model, "--inputs", str(images), "--json"] + (["--input-range", rng] if rng else [])
        assert main(argv) == 0
        got[rng] = json.loads(capsys.readouterr().out)
    assert got["-1,1"]["steps"] == got[None]["steps"] == 6
    assert main(["compare", model, model, "--input-range", "-1,1"]) == 2
    assert "--input-range applies to a folder of images (--inputs DIR)" in capsys.readouterr().err


def test_a_calibration_file_that_is_no_npz_is_named_by_its_flag(zoo, tmp_path, capsys):
    bad = tmp_path / "cal.tflite"
    bad.write_bytes(b"TFL3")
    assert main(["optimize", str(zoo("mobilenet_tiny")), "-o", str(tmp_path / "q.tflite"), "--quantize", "int8",
                 "--calibration", str(bad)]) == 2
    assert f"--calibration {bad}: not an .npz file or a folder of images" in capsys.readouterr().err
