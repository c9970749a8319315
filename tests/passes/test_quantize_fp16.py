"""quantize-fp16 (``--quantize fp16``): store-float16-weights' rewrite, judged by SQNR against float."""
from __future__ import annotations

import pytest

from tflc.io import read_model
from tflc.passes_api import get_pass
from tflc.passmanager import plan_pipeline
from tflc.runtime.delegation import xnnpack_delegation


def test_the_plan():
    plan = plan_pipeline(level="O1", quantize="fp16")
    names = [p.name for p in plan.passes]
    assert names.index("quantize-fp16") < names.index("remove-dead-code") and "float-islands" not in names
    assert plan.min_sqnr_db == 40.0
    plan = plan_pipeline(level="O0", quantize="fp16{min-elements=64,min-sqnr-db=50}")
    q = plan.passes[0]
    assert q.name == "quantize-fp16" and q.options.min_elements == 64 and plan.min_sqnr_db == 50.0
    with pytest.raises(ValueError, match="min-elements"):
        get_pass("quantize-fp16").Options(min_elements=0)


def test_the_example_mobilenet(example_model, tmp_path):
    from tflc.optimize import optimize_file
    out = tmp_path / "fp16.tflite"
    res = optimize_file(example_model, out, level="O1", quantize="fp16")
    assert res.check["min_sqnr_db"] == 40.0 and all(v >= 45.0 for v in res.check["sqnr_db"].values())
    assert 0.45 * res.size_before < res.size_after < 0.6 * res.size_before
    m = read_model(out)
    weighted = [op for op in m.main.operators if op.type in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")]
    assert weighted
    for op in weighted:
        w = op.inputs[1]
        assert w.producer is not None and w.producer.type == "DEQUANTIZE"
        assert w.producer.inputs[0].type_name == "FLOAT16"
    assert any(n.startswith("quantize-fp16: ") and "stored as float16" in n for n in res.notes)
    dl = xnnpack_delegation(out)              # the float16 weights are unpacked once: one partition
    assert dl.taken == list(range(dl.nodes)) and len(dl.partitions) == 1
