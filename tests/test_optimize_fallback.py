"""A level whose lossy passes push the outputs out of bounds falls back to its exact passes."""
from __future__ import annotations

import pytest

from tflc.errors import VerificationError
from tflc.optimize import optimize_file


def test_a_dynamic_range_model_falls_back_to_the_exact_rewrites(zoo, tmp_path):
    # simplify-layer-norm changes the layer norms by ~1e-7, and the dynamic-range FULLY_CONNECTED
    # after them re-quantizes its input at run time: the outputs move by ~4e-3, over 1e-5
    path = zoo("transformer_encoder_3x192_dynamic_int8")
    res = optimize_file(path, tmp_path / "o1.tflite", level="O1")
    assert "simplify-layer-norm" in res.skipped
    assert res.skipped_why and "the level ran again without them" in res.skipped_why
    assert res.check["identical"] is True and (tmp_path / "o1.tflite").exists()
    # an explicit pass list is taken as asked: the failure stands and nothing is written
    with pytest.raises(VerificationError, match="refusing to write"):
        optimize_file(path, tmp_path / "x.tflite", passes="simplify-layer-norm")
    assert not (tmp_path / "x.tflite").exists()
