"""restore-float16-weights: -O1/-O2 keep float16 models float16, losslessly."""
from __future__ import annotations

import numpy as np

from tflc.io import read_model, serialize
from tflc.ir.core import Buffer
from tflc.passes_api import function_pass, parse_pipeline
from tflc.passmanager import PassContext, run_pipeline
from tflc.runtime import compare_models
from tflc.schema import TYPE_CODES

F16 = TYPE_CODES["FLOAT16"]


def _f16_constants(m):
    return sorted(t.name for t in m.main.tensors if t.is_constant and t.dtype == F16)


def test_fold_then_restore_gives_back_the_float16_model(zoo):
    path = zoo("mobilenet_tiny_fp16")
    m = read_model(path)
    before = _f16_constants(m)
    recs = run_pipeline(m, parse_pipeline("fold-float16-weights,remove-dead-code,restore-float16-weights"),
                        PassContext())
    assert recs[0].after["ops"] < recs[0].before["ops"]            # unpacked in between
    assert _f16_constants(m) == before                                 # and packed again
    assert abs(len(serialize(m)) - path.stat().st_size) < 0.02 * path.stat().st_size
    cmp, _ = compare_models(str(path), serialize(m), steps=1)
    assert cmp.identical


def test_changed_weights_stay_float32(zoo):
    @function_pass("scale-a-weight", "multiplies one weight by 1/3 (not exact in float16)")
    def scale(model, ctx, options):
        t = model.main.ops_of_type("CONV_2D")[0].inputs[1]
        t.buffer = Buffer((t.data / np.float32(3.0)).astype(np.float32))
        return True

    m = read_model(zoo("mobilenet_tiny_fp16"))
    name = None
    ctx = PassContext()
    run_pipeline(m, parse_pipeline("fold-float16-weights"), ctx)
    name = m.main.ops_of_type("CONV_2D")[0].inputs[1].name
    run_pipeline(m, [scale(), *parse_pipeline("restore-float16-weights")], ctx)
    assert name not in _f16_constants(m)
    assert len(_f16_constants(m)) > 10


def test_without_fold_it_does_nothing(zoo):
    m = read_model(zoo("mobilenet_tiny"))
    assert run_pipeline(m, parse_pipeline("restore-float16-weights"), PassContext())[0].changed is False
    assert _f16_constants(m) == []
