"""--quantize int16x8: TFLite's 16x8 scheme (int16 symmetric activations, int8 per-channel weights, int64 biases)."""
from __future__ import annotations

import json

import numpy as np
import pytest

from tflc.cli.main import main
from tflc.io import read_model, serialize
from tflc.ir.build import add_op, new_model
from tflc.ir.quant import is_quantized
from tflc.runtime import RunOptions, Session
from tflc.schema import TYPE_CODES, fb


@pytest.fixture(scope="module")
def quantized(zoo, tmp_path_factory):
    """mobilenet_tiny quantized int8 and int16x8 on the same calibration samples: {mode: (path, json)}."""
    d = tmp_path_factory.mktemp("int16x8")
    model = str(zoo("mobilenet_tiny"))
    rng = np.random.default_rng(11)
    x = rng.uniform(0, 1, (12, 1, 64, 64, 3)).astype(np.float32)
    x = (x + np.linspace(0, 1, 64, dtype=np.float32)[None, None, :, None, None]) / 2     # some structure
    np.savez(d / "cal.npz", x)
    out = {}
    for mode in ("int8", "int16x8"):
        p = d / f"{mode}.tflite"
        import contextlib
        import io
        buf = io.StringIO()
        with contextlib.redirect_stdout(buf):
            rc = main(["optimize", model, "-o", str(p), "--quantize", mode, "--calibration", str(d / "cal.npz"),
                       "--no-latency-guard", "--json"])
        assert rc == 0, buf.getvalue()
        out[mode] = (p, json.loads(buf.getvalue()))
    return out


def test_activations_int16_zero_point_0_weights_int8_biases_int64(quantized):
    path, _ = quantized["int16x8"]
    m = read_model(path)
    convs = [op for op in m.main.operators if op.type in ("CONV_2D", "DEPTHWISE_CONV_2D")]
    assert convs
    for op in convs:
        x, w, b = op.inputs[:3]
        y = op.outputs[0]
        for t in (x, y):
            assert t.type_name == "INT16" and is_quantized(t)
            assert list(t.quantization.zeroPoint) == [0]
        assert w.type_name == "INT8" and set(w.quantization.zeroPoint) == {0} and len(w.quantization.scale) > 1
        assert np.abs(w.data.astype(int)).max() <= 127
        assert b.type_name == "INT64" and set(b.quantization.zeroPoint) == {0}
        np.testing.assert_allclose(b.quantization.scale, np.float32(x.quantization.scale[0]) *
                                   np.asarray(w.quantization.scale, np.float32), rtol=1e-6)
    sm = [op for op in m.main.operators if op.type == "SOFTMAX"]
    assert sm and sm[0].outputs[0].type_name == "INT16"
    assert sm[0].outputs[0].quantization.scale[0] == pytest.approx(1 / 32768)


def test_runs_in_litert_and_beats_int8(quantized):
    p16, j16 = quantized["int16x8"]
    _, j8 = quantized["int8"]
    for use_xnnpack in (False, True):
        s = Session(p16.read_bytes(), RunOptions(xnnpack=use_xnnpack))
        y = s.run([np.full((1, 64, 64, 3), 0.5, np.float32)])[0]
        assert y.shape == (1, 10) and np.isfinite(y).all() and abs(float(y.sum()) - 1) < 0.01
    db16 = list(j16["check"]["sqnr_db"].values())[0]
    db8 = list(j8["check"]["sqnr_db"].values())[0]
    assert db16 > db8 + 3, (db16, db8)


def test_warning_and_notes(quantized):
    _, j = quantized["int16x8"]
    notes = "\n".join(j["notes"])
    assert "quantize-int16x8: warning: int16x8: XNNPACK delegates none of it" in notes
    assert "ops int16x8" in notes


def _sqdiff_model():
    """x -> SQUARED_DIFFERENCE(x, c) -> ADD(., c) -> y: LiteRT has no int16 SQUARED_DIFFERENCE."""
    F32 = TYPE_CODES["FLOAT32"]
    m, sg = new_model("int16 refusal")
    x = sg.new_tensor("x", F32, (1, 8))
    c = sg.new_constant("c", np.linspace(-1, 1, 8, dtype=np.float32).reshape(1, 8))
    d = sg.new_tensor("d", F32, (1, 8))
    add_op(sg, "SQUARED_DIFFERENCE", [x, c], [d])
    y = sg.new_tensor("y", F32, (1, 8))
    add_op(sg, "ADD", [d, c], [y], fb.AddOptionsT(), fb.BuiltinOptions.AddOptions)
    sg.set_graph_inputs([x])
    sg.set_graph_outputs([y])
    return m


def test_an_op_litert_refuses_in_int16_stays_float(monkeypatch):
    from tflc.passes import quantize_int8 as q
    from tflc.testing.graphs import run_passes
    monkeypatch.setattr(q, "INT16_SUPPORTED", q.INT16_SUPPORTED | {"SQUARED_DIFFERENCE"})
    m = _sqdiff_model()
    ctx = run_passes(m, "quantize-int16x8")
    notes = "\n".join(ctx.messages)
    assert "kept SQUARED_DIFFERENCE 'd' float: LiteRT refused it in int16" in notes, notes
    ops = {op.type: op for op in m.main.operators}
    assert ops["SQUARED_DIFFERENCE"].outputs[0].type_name == "FLOAT32"
    assert ops["ADD"].outputs[0].type_name == "INT16"
    s = Session(serialize(m), RunOptions(xnnpack=False))
    assert np.isfinite(s.run([np.zeros((1, 8), np.float32)])[0]).all()


def test_option_of_quantize_int8_and_bad_value():
    from tflc.passes_api import parse_pipeline
    p, = parse_pipeline("quantize-int8{activations=int16}")
    assert p.options.activations == "int16"
    with pytest.raises(Exception, match="activations"):
        parse_pipeline("quantize-int8{activations=int4}")
