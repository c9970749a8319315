"""tflc.qat / `tflc qat`: quantization-aware training of a tiny Keras model (Conv2D, PReLU, Dense),
converted to int8 and run through tflc's pipeline; PReLU needs tflc's QuantizeConfig."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest

import importlib.util  # noqa: E402

# Not imported here: importing tensorflow_model_optimization switches the process's tf.keras to
# Keras 2 (TF_USE_LEGACY_KERAS=1), and every model the test zoo builds afterwards would differ from
# the Keras 3 models the other tests expect. conftest.py runs this file last for the same reason.
if importlib.util.find_spec("tensorflow_model_optimization") is None or importlib.util.find_spec("tf_keras") is None:
    pytest.skip("QAT needs tensorflow-model-optimization and tf-keras", allow_module_level=True)

from tflc import qat as qat_mod  # noqa: E402
from tflc.cli.main import main  # noqa: E402
from tflc.io import read_model  # noqa: E402
from tflc.runtime import Session  # noqa: E402

N = 320


def _keras():
    tf, keras, tfmot = qat_mod._import_tf()
    return keras, tfmot


def _tiny_model():
    keras, _ = _keras()
    keras.utils.set_random_seed(3)
    inp = keras.Input((8, 8, 3), name="image")
    h = keras.layers.Conv2D(8, 3, padding="same", name="conv")(inp)
    h = keras.layers.PReLU(shared_axes=[1, 2], alpha_initializer=keras.initializers.Constant(0.2), name="prelu")(h)
    h = keras.layers.Flatten()(h)
    out = keras.layers.Dense(4, name="logits")(h)
    return keras.Model(inp, out)


@pytest.fixture(scope="module")
def keras_file(tmp_path_factory):
    d = tmp_path_factory.mktemp("qat")
    path = d / "tiny.keras"
    _tiny_model().save(path)
    x = np.random.default_rng(0).random((N, 8, 8, 3), dtype=np.float32)
    np.savez(d / "data.npz", x=x)
    return path, x


@pytest.fixture(scope="module")
def int8_result(keras_file):
    path, x = keras_file
    out = path.parent / "tiny.int8.tflite"
    return qat_mod.qat(path, x, output=out, epochs=1), out


def _tensor_types(op) -> list[str]:
    return [t.type_name for t in (*op.inputs, *op.outputs) if t is not None]


def test_qat_writes_an_int8_model(int8_result, keras_file):
    res, out = int8_result
    _, x = keras_file
    assert out.is_file() and res.output == str(out)
    assert res.size_output == out.stat().st_size and res.size_converted > 0
    m = read_model(out)
    ops = {op.type: op for op in m.main.operators}
    for name in ("CONV_2D", "FULLY_CONNECTED", "PRELU"):
        assert name in ops, sorted(ops)
        types = _tensor_types(ops[name])
        assert types[0] == "INT8" and types[-1] == "INT8", (name, types)
        assert "FLOAT32" not in types, (name, types)
    alpha = ops["PRELU"].inputs[1]                          # per tensor, symmetric: PReLUQuantizeConfig's grid
    assert alpha.is_constant and alpha.type_name == "INT8"
    assert len(alpha.quantization.scale) == 1 and list(alpha.quantization.zeroPoint) == [0]
    assert res.prelu_layers == ["prelu"] and res.float_ops == {}
    assert res.io == "int8" and res.distilled and res.epochs == 1
    assert len(res.loss) == 1 and math.isfinite(res.loss[0])
    assert res.train_samples + res.held_out_samples == N and res.held_out_samples == N // 10
    s = Session(str(out))
    assert [d["dtype"] for d in s.input_details] == [np.int8]
    scale, zero = s.input_details[0]["quantization"]
    q = np.clip(np.round(x[:1] / scale + zero), -128, 127).astype(np.int8)
    (y,) = s.run([q])
    assert y.dtype == np.int8 and y.shape == (1, 4)


def test_qat_reports_sqnr_against_float(int8_result):
    res, _ = int8_result
    assert list(res.sqnr_db) == ["logits"]
    db = res.sqnr_db["logits"]
    assert math.isfinite(db) and db > 10, res.sqnr_db
    data = res.to_json()
    json.dumps(data)
    assert data["optimize"]["level"] == "O2" and data["optimize"]["check"]["steps"] == 8   # on held-out samples


def test_prelu_needs_the_custom_config():
    keras, tfmot = _keras()
    model = _tiny_model()
    with pytest.raises(RuntimeError, match="PReLU.*not supported"):
        tfmot.quantization.keras.quantize_model(model)
    qm, prelus = qat_mod.quantize_model(model)
    assert prelus == ["prelu"]
    wrapped = [layer for layer in qm.layers if isinstance(getattr(layer, "layer", None), keras.layers.PReLU)]
    assert len(wrapped) == 1
    assert type(wrapped[0].quantize_config).__name__ == "PReLUQuantizeConfig"
    assert wrapped[0].layer.name == "prelu"


def test_cli_with_labels_and_float_io(keras_file, capsys):
    path, x = keras_file
    keras, _ = _keras()
    y = keras.models.load_model(path).predict(x, verbose=0) + 0.01
    data = path.parent / "labelled.npz"
    np.savez(data, x, y)                                   # arr_0, arr_1
    out = path.parent / "tiny.float-io.tflite"
    rc = main(["qat", str(path), str(data), "-o", str(out), "--io", "float", "--loss", "mse", "--json"])
    cap = capsys.readouterr()
    assert rc == 0, cap.err
    rep = json.loads(cap.out)
    assert rep["io"] == "float" and not rep["distilled"] and rep["output"] == str(out)
    assert rep["sqnr_db"]["logits"] is not None and rep["sqnr_db"]["logits"] > 10
    s = Session(str(out))
    assert s.input_details[0]["dtype"] == np.float32 and s.output_details[0]["dtype"] == np.float32
    ops = {op.type: op for op in read_model(out).main.operators}
    assert "FLOAT32" not in _tensor_types(ops["FULLY_CONNECTED"])


def test_cli_text_output(keras_file, capsys):
    path, _ = keras_file
    out = path.parent / "tiny.text.tflite"
    assert main(["qat", str(path), str(path.parent / "data.npz"), "-o", str(out), "--no-optimize",
                 "--epochs", "0"]) == 0                    # no fine-tuning: ranges from the float model only
    text = capsys.readouterr().out
    assert "SQNR against the float Keras model" in text and "prelu" in text and out.is_file()
    db = float(text.split("logits ")[1].split(" dB")[0])
    assert db > 10, text


@pytest.mark.parametrize("kind", ["not-npz", "no-x", "wrong-shape", "same-as-input", "keras3-file"])
def test_cli_bad_input_fails_in_one_line(keras_file, tmp_path, capsys, kind):
    path, x = keras_file
    data = tmp_path / "data.npz"
    out = tmp_path / "out.tflite"
    if kind == "keras3-file":                              # tfmot needs Keras 2: say so, before loading it
        import zipfile
        np.savez(data, x=x)
        path = tmp_path / "k3.keras"
        with zipfile.ZipFile(path, "w") as z:
            z.writestr("metadata.json", json.dumps({"keras_version": "3.15.1"}))
            z.writestr("config.json", "{}")
    elif kind == "not-npz":
        data.write_text("not an npz")
    elif kind == "no-x":
        np.savez(data, images=x)
    elif kind == "wrong-shape":
        np.savez(data, x=x[:, :4])
    else:
        np.savez(data, x=x)
        out = path
    before = path.read_bytes()
    rc = main(["qat", str(path), str(data), "-o", str(out)])
    err = capsys.readouterr().err.strip()
    assert rc == 2, err
    assert len(err.splitlines()) == 1 and err.startswith("tflc qat: error: "), err
    assert "Traceback" not in err
    if kind == "keras3-file":
        assert "Keras 3.15.1" in err and "tf_keras" in err
    assert path.read_bytes() == before
    assert not (tmp_path / "out.tflite").exists()


def test_missing_tfmot_is_one_line(keras_file, monkeypatch, capsys):
    import sys
    path, _ = keras_file
    monkeypatch.setitem(sys.modules, "tensorflow_model_optimization", None)
    rc = main(["qat", str(path), str(path.parent / "data.npz"), "-o", str(path.parent / "never.tflite")])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1
    assert "tensorflow-model-optimization" in err and "pip install 'tflc[tf]'" in err
    assert not (path.parent / "never.tflite").exists()


def test_outputs_are_matched_to_keras_outputs_by_name():
    """The converter orders outputs its own way (alphabetically here); each SQNR is the right one's."""
    keras, _ = _keras()
    keras.utils.set_random_seed(5)
    inp = keras.Input((12,))
    h = keras.layers.Dense(16, activation="relu")(inp)
    zeta = keras.layers.Dense(5, name="zeta")(h)
    alpha = keras.layers.Dense(3, name="alpha_head")(h)
    model = keras.Model(inp, [zeta, alpha])
    x = np.random.default_rng(1).random((200, 12), dtype=np.float32)
    before = [w.copy() for w in model.get_weights()]
    res = qat_mod.qat(model, x, epochs=1, level=None)
    assert all(np.array_equal(a, b) for a, b in zip(before, model.get_weights()))   # the float model is untouched
    assert res.output is None and res.model and res.size_output == len(res.model)
    assert sorted(res.sqnr_db) == ["alpha_head", "zeta"], res.sqnr_db
    assert all(math.isfinite(v) and v > 10 for v in res.sqnr_db.values()), res.sqnr_db
    assert not res.notes and res.prelu_layers == [] and res.optimize is None


def test_activation_ranges_start_from_the_float_model(keras_file):
    """tfmot starts every activation range at [-6, 6] and moves it with a 0.999 moving average;
    quantize_model(model, x) starts it at the float model's min/max on x instead."""
    keras, _ = _keras()
    path, x = keras_file
    model = keras.models.load_model(path)
    conv_out = keras.Model(model.inputs, model.get_layer("conv").output).predict(x[:256], verbose=0)
    qm, _ = qat_mod.quantize_model(model, x)
    got = {w.name.split(":")[0]: float(w.numpy()) for w in qm.get_layer("quant_conv").weights
           if "post_activation" in w.name}
    assert got["quant_conv/post_activation_min"] == pytest.approx(min(0.0, float(conv_out.min())), rel=1e-5)
    assert got["quant_conv/post_activation_max"] == pytest.approx(float(conv_out.max()), rel=1e-5)
    prelu = {w.name.split(":")[0]: float(w.numpy()) for w in qm.get_layer("quant_prelu").weights
             if "output_m" in w.name}
    assert -6 < prelu["quant_prelu/output_min"] <= 0 < prelu["quant_prelu/output_max"] < 6
