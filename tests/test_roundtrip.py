"""-O0 is lossless: read -> write -> read keeps everything, and LiteRT gives bit-identical outputs."""
from __future__ import annotations

import numpy as np
import pytest

from tflc.io import read_model, read_model_bytes, serialize, write_model
from tflc.ir.canonical import _obj, canonical, diff
from tflc.ir.verify import check
from tflc.runtime import compare_models
from tflc.schema import fb

ZOO_MODELS = ["tiny_mlp", "mobilenet_tiny", "mobilenet_tiny_fp16", "mobilenet_tiny_int8",
              "transformer_encoder", "stateful_counter"]


def _roundtrip(path, tmp_path):
    m = read_model(path)
    assert check(m) == []
    out = tmp_path / "out.tflite"
    write_model(m, out)
    m2 = read_model(out)
    assert diff(m, m2) == []
    assert canonical(m) == canonical(m2)
    # writing the re-read model gives the very same bytes: the writer is deterministic
    assert serialize(m2) == out.read_bytes()
    cmp, ref = compare_models(str(path), str(out), steps=3)
    assert cmp.identical, cmp.to_json()
    return m, m2, ref


def test_shared_model_roundtrip_is_lossless(shared_model, tmp_path):
    _roundtrip(shared_model, tmp_path)


@pytest.mark.parametrize("name", ZOO_MODELS)
def test_zoo_model_roundtrip_is_lossless(zoo, name, tmp_path):
    _roundtrip(zoo(name), tmp_path)


def test_stateful_model_keeps_state_across_steps(zoo, tmp_path):
    m, _, ref = _roundtrip(zoo("stateful_counter"), tmp_path)
    assert len(m.subgraphs) >= 2
    types = {op.type for op in m.operators()}
    assert {"VAR_HANDLE", "ASSIGN_VARIABLE"} <= types
    outs = [step[0] for step in ref.outputs]
    # same interpreter, state carried: the invocations do not all give the same output
    assert any(not np.array_equal(outs[0], o) for o in outs[1:])


def test_raw_fields_survive(shared_model):
    """Field-by-field against the flatc object API, independent of tflc's own canonical form."""
    data = shared_model.read_bytes()
    a = fb.ModelT.InitFromPackedBuf(data, 0)
    b = fb.ModelT.InitFromPackedBuf(serialize(read_model_bytes(data)), 0)
    assert a.description == b.description and a.version == b.version
    assert [s.name for s in a.subgraphs] == [s.name for s in b.subgraphs]
    for sa, sb in zip(a.subgraphs, b.subgraphs):
        assert len(sa.operators) == len(sb.operators)
        for oa, ob in zip(sa.operators, sb.operators):
            ca, cb = a.operatorCodes[oa.opcodeIndex], b.operatorCodes[ob.opcodeIndex]
            assert (ca.builtinCode, ca.deprecatedBuiltinCode, ca.customCode, ca.version) == \
                   (cb.builtinCode, cb.deprecatedBuiltinCode, cb.customCode, cb.version)
            assert oa.builtinOptionsType == ob.builtinOptionsType
            assert _obj(oa.builtinOptions) == _obj(ob.builtinOptions)
            names_a = [sa.tensors[i].name if i >= 0 else None for i in oa.inputs]
            names_b = [sb.tensors[i].name if i >= 0 else None for i in ob.inputs]
            assert names_a == names_b
            if oa.customOptions is not None:
                assert bytes(oa.customOptions) == bytes(ob.customOptions)
    assert [(m.name) for m in a.metadata or []] == [(m.name) for m in b.metadata or []]
    for ma, mb in zip(a.metadata or [], b.metadata or []):
        assert bytes(a.buffers[ma.buffer].data) == bytes(b.buffers[mb.buffer].data)
    assert [s.signatureKey for s in a.signatureDefs or []] == [s.signatureKey for s in b.signatureDefs or []]
