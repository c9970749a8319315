"""The int8 MobileNetV2 tflc writes (``--quantize 'int8{io=int8}' --target ethos-u``) compiles with Arm's
Vela with every operator on the NPU, as the TF converter's own full-int8 MobileNetV2 does; and the
ethos-u target's prediction (``tflc partition --target ethos-u``) agrees with Vela op by op.

The model is Keras' MobileNetV2 (alpha 0.35, 96x96, random weights: ``zoo.mobilenet_v2_035_96``)
calibrated on natural images (the scikit-image sample photographs where scikit-image is installed,
else smooth synthetic images). With random weights the 1000-way softmax is near uniform (every
probability ~1e-3, under half a step of the int8 output's 1/256), so the output's SQNR says nothing
here: the floor is lowered to 0 dB (the converter's int8 scores the same). Needs TensorFlow (the zoo)
and Vela (``ethos-u-vela``, in the dev extra); skipped without them."""
from __future__ import annotations

import numpy as np
import pytest

from tflc.io import read_model
from tflc.schema import numpy_dtype
from tflc.targets import get_target
from tflc.targets.plan import make_plan
from tflc.targets.vela_check import find_vela, run_vela

VELA = find_vela()
pytestmark = pytest.mark.skipif(VELA is None, reason="vela is not installed (pip install ethos-u-vela: the dev extra)")
ACCELERATOR = "ethos-u55-128"
SIZE = 96


def _images(count: int, size: int) -> np.ndarray:
    """``count`` RGB images ``size x size`` in [-1, 1]: crops of scikit-image's photographs, or smooth
    synthetic scenes (blurred noise plus gradients) where scikit-image is missing."""
    rng = np.random.default_rng(0)
    try:
        from skimage import data, transform
        photos = [data.astronaut(), data.coffee(), data.chelsea(), data.rocket(), data.immunohistochemistry(),
                  np.stack([data.camera()] * 3, -1)]
    except ImportError:
        photos = None
    out = np.empty((count, size, size, 3), np.float32)
    for i in range(count):
        if photos is not None:
            img = photos[i % len(photos)]
            side = int(min(img.shape[:2]) * rng.uniform(0.5, 1.0))
            y, x = rng.integers(0, img.shape[0] - side + 1), rng.integers(0, img.shape[1] - side + 1)
            a = transform.resize(img[y:y + side, x:x + side] / 255.0, (size, size), order=1, anti_aliasing=True)
        else:
            noise = rng.uniform(0, 1, (size // 8, size // 8, 3))
            a = np.kron(noise, np.ones((8, 8, 1)))
            g = np.linspace(0, 1, size)
            a = 0.6 * a + 0.4 * (g[:, None, None] * rng.uniform(0, 1, 3) + g[None, :, None] * rng.uniform(0, 1, 3)) / 2
        out[i] = 2.0 * np.clip(a, 0, 1) - 1.0
    return out


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    zoo = pytest.importorskip("tflc.testing.zoo")
    try:
        float_path = zoo.build("mobilenet_v2_035_96")
        converter_path = zoo.build("mobilenet_v2_035_96_int8")
    except RuntimeError as e:  # no TensorFlow
        pytest.skip(str(e))
    from tflc.optimize import optimize_file
    tmp = tmp_path_factory.mktemp("mnv2_vela")
    cal = tmp / "cal.npz"
    np.savez(cal, _images(16, SIZE)[:, None])
    out = tmp / "mnv2_int8.tflite"
    optimize_file(float_path, out, level="O1", target="ethos-u", quantize="int8{io=int8,min-sqnr-db=0}",
                  calibration=str(cal))
    return {"float": float_path, "converter": converter_path, "tflc": out}


def _split(path):
    model = read_model(path)
    result = run_vela(model, ACCELERATOR)
    return model, result


def test_tflc_int8_mobilenet_v2_all_on_npu(models):
    model, r = _split(models["tflc"])
    ops = model.subgraphs[0].operators
    assert all(numpy_dtype(t.dtype) == np.int8 for t in (model.subgraphs[0].inputs + model.subgraphs[0].outputs))
    assert {op.type for op in ops} >= {"CONV_2D", "DEPTHWISE_CONV_2D", "ADD", "MEAN", "FULLY_CONNECTED", "SOFTMAX"}
    cpu = [(ops[i].type, r.reasons.get((0, i))) for i in r.cpu[0]]
    assert cpu == [], f"Vela left ops on the CPU: {cpu}"
    assert r.npu_ops_in_output[0] == 1          # one NPU partition: the whole graph
    # the ethos-u target predicts the same
    plan = make_plan(model, get_target("ethos-u"))
    assert all(d.delegated for d in plan.ops)


def test_converter_int8_mobilenet_v2_all_on_npu(models):
    """The anchor: the TF converter's full-int8 MobileNetV2, int8 in and out."""
    model, r = _split(models["converter"])
    assert r.cpu[0] == []
    assert r.npu_ops_in_output[0] == 1


def test_without_target_the_softmax_island_is_on_the_cpu_as_predicted(models, tmp_path):
    """Without --target, --quantize int8 is for XNNPACK, which takes no int8 SOFTMAX: float-islands runs it
    in float (DEQUANTIZE, SOFTMAX, QUANTIZE), and those three are what Vela leaves on the CPU; the
    ethos-u target predicts exactly that split."""
    from tflc.optimize import optimize_file
    cal = tmp_path / "cal.npz"
    np.savez(cal, _images(8, SIZE)[:, None])
    out = tmp_path / "xnnpack_int8.tflite"
    optimize_file(models["float"], out, level="O1", quantize="int8{io=int8,min-sqnr-db=0}", calibration=str(cal))
    model, r = _split(out)
    ops = model.subgraphs[0].operators
    assert sorted(ops[i].type for i in r.cpu[0]) == ["DEQUANTIZE", "QUANTIZE", "SOFTMAX"]
    predicted = [i for i, d in enumerate(make_plan(model, get_target("ethos-u")).ops) if not d.delegated]
    assert predicted == r.cpu[0]
