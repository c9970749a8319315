"""quantize-int8's range estimators (minmax, percentile, MSE-optimal, auto), bias correction and
cross-layer equalization."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tflc.analyses.calibration import TensorRange
from tflc.io import read_model, read_model_bytes, serialize
from tflc.ir.build import add_op, new_model
from tflc.passes._equalize import equalize
from tflc.passes._ranges import mse_range, quantization_mse, tensor_range
from tflc.passes.quantize_int8 import AUTO_MARGIN_DB, QuantizeInt8Options
from tflc.passes_api import parse_pipeline
from tflc.passmanager import PassContext, run_pipeline
from tflc.runtime import Session
from tflc.schema import TYPE_CODES, fb

F32 = TYPE_CODES["FLOAT32"]
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "mobilenet_tiny.tflite"


# --- the MSE estimator -------------------------------------------------------------------------

@pytest.mark.parametrize("seed", [0, 1, 2])
def test_mse_range_is_inside_min_max_and_beats_it_on_a_heavy_tailed_sample(seed):
    rng = np.random.default_rng(seed)
    v = rng.standard_t(3, 50_000)                       # heavy tails: a few far outliers
    lo, hi = mse_range(v)
    assert v.min() <= lo < 0 < hi <= v.max()
    assert hi - lo < v.max() - v.min(), "the tails are clipped"
    err = quantization_mse(v, lo, hi)
    assert err < 0.95 * quantization_mse(v, v.min(), v.max())
    # the histogram's estimate finds what a brute-force search of the real error finds
    fr = np.linspace(0.5, 1, 21)
    best = min(quantization_mse(v, v.min() * f, v.max() * g) for f in fr for g in fr)
    assert err <= 1.02 * best


def test_mse_range_of_a_calibrated_tensor_keeps_a_zero_side_and_ignores_exact_zeros():
    rng = np.random.default_rng(3)
    v = np.maximum(rng.laplace(0, 1, 60_000), 0).astype(np.float32)    # a ReLU's output: half exact zeros
    r = TensorRange(float(v.min()), float(v.max()), np.sort(v), v.size)
    lo, hi = tensor_range(r, "mse")
    assert lo == 0.0 and 0 < hi <= r.max
    assert quantization_mse(v, lo, hi) <= quantization_mse(v, r.min, r.max)
    assert tensor_range(r, "minmax") == (r.min, r.max)
    assert tensor_range(r, "percentile", 99.0)[1] < r.max
    counts, edges = r.histogram()
    assert counts.sum() == v.size and len(counts) == 2048


def test_options_check_ranges():
    with pytest.raises(ValueError):
        QuantizeInt8Options(ranges="max")
    assert QuantizeInt8Options(ranges="auto").ranges == "auto"


# --- auto: see tests/passes/test_quantize_range_search.py


# --- bias correction ----------------------------------------------------------------------------

def _conv_model(w: np.ndarray, b: np.ndarray, hw: int = 8, depthwise: bool = False, same: bool = False) -> bytes:
    m, sg = new_model("bias correction")
    cin = w.shape[3] if not depthwise else w.shape[3]
    x = sg.new_tensor("x", F32, (1, hw, hw, cin))
    wt = sg.new_constant("w", w.astype(np.float32))
    bt = sg.new_constant("b", b.astype(np.float32))
    y = sg.new_tensor("y", F32, (1, hw, hw, w.shape[0] if not depthwise else w.shape[3]))
    if depthwise:
        o = fb.DepthwiseConv2DOptionsT()
        o.padding, o.strideW, o.strideH, o.depthMultiplier = 0 if same else 1, 1, 1, 1     # SAME / VALID
        o.dilationWFactor = o.dilationHFactor = 1
        k = 0 if same else w.shape[1] - 1
        y = sg.new_tensor("y", F32, (1, hw - k, hw - k, w.shape[3]))
        add_op(sg, "DEPTHWISE_CONV_2D", [x, wt, bt], [y], o, fb.BuiltinOptions.DepthwiseConv2DOptions)
    else:
        o = fb.Conv2DOptionsT()
        o.padding, o.strideW, o.strideH = 0 if same else 1, 1, 1            # SAME (a zero border) / VALID
        o.dilationWFactor = o.dilationHFactor = 1
        k = 0 if same else w.shape[1] - 1
        y = sg.new_tensor("y", F32, (1, hw - k, hw - k, w.shape[0]))
        add_op(sg, "CONV_2D", [x, wt, bt], [y], o, fb.BuiltinOptions.Conv2DOptions)
    sg.set_graph_inputs([x])
    sg.set_graph_outputs([y])
    return serialize(m)


@pytest.mark.parametrize("depthwise,same", [(False, False), (True, False), (False, True), (True, True)])
def test_bias_correction_removes_the_systematic_shift_of_weight_rounding(tmp_path, depthwise, same):
    rng = np.random.default_rng(7)
    cout, cin = (6, 4) if not depthwise else (1, 6)
    # every weight sits 0.45 of a step above a grid point (the scale is fixed by one weight at 127
    # steps): rounding always goes down, a systematic bias of the output for positive inputs
    shape = (cout, 3, 3, cin)
    step = 0.01
    q = rng.integers(-60, 60, shape).astype(np.float64)
    w = (q + 0.45) * step
    chan = 0 if not depthwise else 3
    idx = [0, 0, 0, 0]
    for c in range(shape[chan]):
        idx[chan] = c
        w[tuple(idx)] = 127 * step
    b = rng.normal(0, 0.05, shape[0] if not depthwise else shape[3])
    path = tmp_path / "conv.tflite"
    path.write_bytes(_conv_model(w, b, hw=5, depthwise=depthwise, same=same))
    x = rng.uniform(0.2, 1.0, (8, 1, 5, 5, shape[3])).astype(np.float32)   # positive: E[x] far from 0
    cal = tmp_path / "cal.npz"
    np.savez(cal, x=x)
    ref = Session(str(path)).run_steps([[s] for s in x])

    def mean_error(bc: str) -> float:
        m = read_model(path)
        run_pipeline(m, parse_pipeline(f"quantize-int8{{bias-correction={bc},samples=2}}"),
                     PassContext(calibration=str(cal)))
        got = Session(serialize(m)).run_steps([[s] for s in x])
        return float(np.mean([np.mean(g[0] - r[0]) for g, r in zip(got, ref)]))

    plain, corrected = mean_error("false"), mean_error("true")
    assert abs(plain) > 0.01, plain              # the construction does shift the output
    # on a 5x5 map most outputs of a SAME 3x3 conv read the zero border: the correction counts it
    assert abs(corrected) < 0.1 * abs(plain), (plain, corrected)


# --- cross-layer equalization ---------------------------------------------------------------------

def _pair_model(act: int, rng) -> bytes:
    """depthwise 3x3 (channels of very different ranges, fused ``act``) -> pointwise 1x1 conv."""
    m, sg = new_model("cle")
    c, cout = 8, 5
    x = sg.new_tensor("x", F32, (1, 10, 10, c))
    w1 = rng.normal(0, 1, (1, 3, 3, c)) * np.logspace(-2, 1, c)       # ranges from 0.01 to 10
    b1 = rng.normal(0, 0.1, c)
    y = sg.new_tensor("y", F32, (1, 10, 10, c))
    o = fb.DepthwiseConv2DOptionsT()
    o.padding, o.strideW, o.strideH, o.depthMultiplier, o.fusedActivationFunction = 0, 1, 1, 1, act
    o.dilationWFactor = o.dilationHFactor = 1
    add_op(sg, "DEPTHWISE_CONV_2D", [x, sg.new_constant("w1", w1.astype(np.float32)),
                                     sg.new_constant("b1", b1.astype(np.float32))], [y], o,
           fb.BuiltinOptions.DepthwiseConv2DOptions)
    w2 = rng.normal(0, 0.5, (cout, 1, 1, c))
    z = sg.new_tensor("z", F32, (1, 10, 10, cout))
    o2 = fb.Conv2DOptionsT()
    o2.padding, o2.strideW, o2.strideH = 0, 1, 1
    o2.dilationWFactor = o2.dilationHFactor = 1
    add_op(sg, "CONV_2D", [y, sg.new_constant("w2", w2.astype(np.float32)),
                           sg.new_constant("b2", np.zeros(cout, np.float32))], [z], o2,
           fb.BuiltinOptions.Conv2DOptions)
    sg.set_graph_inputs([x])
    sg.set_graph_outputs([z])
    return serialize(m)


def test_equalization_keeps_the_float_outputs_and_evens_the_channel_ranges(tmp_path):
    rng = np.random.default_rng(11)
    path = tmp_path / "pair.tflite"
    path.write_bytes(_pair_model(fb.ActivationFunctionType.RELU, rng))
    m = read_model(path)
    res = equalize(m)
    assert res["pairs"] == 1
    assert res["spread_after"] < 0.2 * res["spread_before"]
    x = [[rng.normal(0, 1, (1, 10, 10, 8)).astype(np.float32)] for _ in range(3)]
    before = Session(str(path)).run_steps(x)
    after = Session(serialize(m)).run_steps(x)
    for a, b in zip(after, before):
        scale = max(1.0, float(np.abs(b[0]).max()))
        np.testing.assert_allclose(a[0], b[0], atol=1e-5 * scale, rtol=0)


def test_equalization_leaves_relu6_pairs_alone(tmp_path):
    rng = np.random.default_rng(12)
    data = _pair_model(fb.ActivationFunctionType.RELU6, rng)
    m = read_model_bytes(data)
    res = equalize(m)
    assert res["pairs"] == 0 and any("RELU6" in k for k in res["skipped"])
    assert serialize(m) == data


def test_equalize_and_bias_correction_in_the_pass(tmp_path):
    rng = np.random.default_rng(13)
    path = tmp_path / "pair.tflite"
    path.write_bytes(_pair_model(fb.ActivationFunctionType.RELU, rng))
    cal = tmp_path / "cal.npz"
    np.savez(cal, x=rng.normal(0, 1, (4, 1, 10, 10, 8)).astype(np.float32))
    m = read_model(path)
    ctx = PassContext(calibration=str(cal))
    run_pipeline(m, parse_pipeline("quantize-int8{equalize=true,bias-correction=true,samples=2}"), ctx)
    fact = ctx.facts["quantize-int8"]
    assert fact["equalize"]["pairs"] == 1 and fact["bias_correction"] is True
    assert any("equalize: 1 conv pair" in n for n in ctx.messages)
    assert all(o["sqnr_db"] > 20 for o in fact["outputs"])
