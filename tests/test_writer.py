"""What the writer does on purpose: opcode table, dedup, alignment, dropping unused entries."""
from __future__ import annotations

import numpy as np

from tflc.io import read_model_bytes, serialize
from tflc.io.writer import ALIGN
from tflc.ir.core import OpCode, Operator
from tflc.rewrite import builtin_opcode
from tflc.schema import OP_CODES, TYPE_CODES, fb
from tflc.testing.graphs import add_model


def _raw(data: bytes):
    return fb.Model.GetRootAs(data, 0), fb.ModelT.InitFromPackedBuf(data, 0)


def test_constant_data_is_aligned():
    m = add_model((1, 3), const=np.ones((1, 3), np.float32))
    sg = m.main
    for i in range(5):  # odd-sized constants to disturb alignment
        sg.new_constant(f"odd{i}", np.arange(i + 1, dtype=np.int8))
        op = Operator(builtin_opcode("ADD"), [sg.outputs[0], sg.tensor("c")], [sg.new_tensor(f"y{i}", 0, (1, 3))],
                      options=fb.AddOptionsT(), options_type=fb.BuiltinOptions.AddOptions)
        sg.add_op(op)
        sg.set_graph_outputs([op.outputs[0]])
    # keep the odd constants referenced through a signature-free path: make them graph outputs
    sg.set_graph_outputs(list(sg.outputs) + [sg.tensor(f"odd{i}") for i in range(5)])
    data = serialize(m)
    root, _ = _raw(data)
    for i in range(root.BuffersLength()):
        b = root.Buffers(i)
        if b.DataLength():
            pos = b._tab.Vector(b._tab.Offset(4))
            assert pos % ALIGN == 0, f"buffer {i} at {pos}"


def test_identical_constants_are_stored_once_and_unused_buffers_dropped():
    m = add_model((1, 4), const=np.full((1, 4), 2.0, np.float32))
    sg = m.main
    twin = sg.new_constant("c_twin", np.full((1, 4), 2.0, np.float32))
    sg.new_constant("unused", np.arange(100, dtype=np.float32))      # referenced by nothing
    y2 = sg.new_tensor("y2", TYPE_CODES["FLOAT32"], (1, 4))
    sg.add_op(Operator(builtin_opcode("ADD"), [sg.outputs[0], twin], [y2], options=fb.AddOptionsT(),
                       options_type=fb.BuiltinOptions.AddOptions))
    sg.set_graph_outputs([y2])
    _, mt = _raw(serialize(m))
    with_data = [b for b in mt.buffers if b.data is not None and len(b.data)]
    assert len(with_data) == 1                     # c and c_twin share one buffer; "unused" is gone
    assert mt.buffers[0].data is None or len(mt.buffers[0].data) == 0   # the empty sentinel
    names = [t.name.decode() for t in mt.subgraphs[0].tensors]
    assert "unused" not in names and "c_twin" in names


def test_opcode_table_is_rebuilt_from_used_ops():
    m = add_model(relu=True)
    sg = m.main
    relu = sg.ops_of_type("RELU")[0]
    sg.replace_all_uses(relu.outputs[0], relu.inputs[0])
    sg.remove_op(relu)
    _, mt = _raw(serialize(m))
    assert [c.builtinCode for c in mt.operatorCodes] == [OP_CODES["ADD"]]


def test_deprecated_builtin_code_rules():
    """Codes above 127 are stored with deprecated_builtin_code = 127 (PLACEHOLDER_FOR_GREATER_OP_CODES)."""
    big = next(c for n, c in OP_CODES.items() if c > 127 and n == "BROADCAST_TO") if "BROADCAST_TO" in OP_CODES else 130
    m = add_model()
    op = m.main.operators[0]
    op.opcode = OpCode(big, None, 1, None)
    _, mt = _raw(serialize(m))
    assert mt.operatorCodes[0].builtinCode == big
    assert mt.operatorCodes[0].deprecatedBuiltinCode == 127
    m2 = read_model_bytes(serialize(m))
    assert m2.main.operators[0].opcode.builtin_code == big
    op.opcode = OpCode(OP_CODES["ADD"], None, 1, None)
    _, mt = _raw(serialize(m))
    assert mt.operatorCodes[0].deprecatedBuiltinCode == OP_CODES["ADD"]


def test_custom_ops_and_options_round_trip():
    m = add_model()
    sg = m.main
    y = sg.new_tensor("custom_out", TYPE_CODES["FLOAT32"], (1, 4))
    sg.add_op(Operator(OpCode(OP_CODES["CUSTOM"], "MyFancyOp", 1), [sg.outputs[0]], [y],
                       custom_options=b"\x01\x02flexbuffer-ish\x00", custom_options_format=0))
    sg.set_graph_outputs([y])
    m.metadata.append(("my_meta", __import__("tflc").ir.Buffer(b"hello metadata")))
    m2 = read_model_bytes(serialize(m))
    op = m2.main.operators[1]
    assert op.opcode.custom_code == "MyFancyOp" and op.custom_options == b"\x01\x02flexbuffer-ish\x00"
    assert [(n, bytes(b.data)) for n, b in m2.metadata] == [("my_meta", b"hello metadata")]
    assert m2.description == "tflc test graph"


def test_rare_schema_fields_round_trip():
    """Fields the converter models here do not use: sparsity, intermediates, mutating inputs,
    has_rank, shape_signature, debug metadata indices, builtin_options_2."""
    from tflc.ir.canonical import canonical
    m = add_model((1, 4))
    sg = m.main
    add = sg.operators[0]
    sp = fb.SparsityParametersT()
    sp.traversalOrder = np.array([0, 1], np.int32)
    dm = fb.DimensionMetadataT()
    dm.format, dm.denseSize = 0, 4
    sp.dimMetadata = [dm]
    c = sg.tensor("c")
    c.sparsity = sp
    c.has_rank = True
    inter = sg.new_tensor("inter", TYPE_CODES["FLOAT32"], (1, 4), shape_signature=(-1, 4))
    add._intermediates.append(inter)
    add.mutating_variable_inputs = [False, False]
    add.debug_metadata_index = 3
    sg.debug_metadata_index = 1
    o2 = fb.StablehloConcatenateOptionsT()
    o2.dimension = 1
    add.options2, add.options2_type = o2, fb.BuiltinOptions2.StablehloConcatenateOptions
    m2 = read_model_bytes(serialize(m))
    assert canonical(m2) == canonical(m)
    t2 = m2.main.tensor("c")
    assert t2.sparsity is not None and list(t2.sparsity.traversalOrder) == [0, 1] and t2.has_rank
    op2 = m2.main.operators[0]
    assert op2.intermediates[0].name == "inter" and op2.intermediates[0].shape_signature == (-1, 4)
    assert op2.options2.dimension == 1 and op2.debug_metadata_index == 3


def _zero_point_vector(root, tensor_index: int) -> tuple[int, list[int]]:
    t = root.Subgraphs(0).Tensors(tensor_index)
    q = t.Quantization()
    pos = q._tab.Vector(q._tab.Offset(10))          # field 3 of QuantizationParameters: zero_point
    return pos, list(q.ZeroPointAsNumpy())


def test_equal_vectors_are_stored_once():
    # Per-channel quantization carries an int64 zero point per channel (LiteRT wants as many as
    # scales); stored once per distinct vector, not once per tensor.
    m = add_model((1, 4), const=np.ones((1, 4), np.float32))
    sg = m.main
    for t in sg.tensors:
        q = fb.QuantizationParametersT()
        q.scale = np.linspace(0.1, 0.4, 4).astype(np.float32) * (1 + len(t.name))
        q.zeroPoint = np.zeros(4, np.int64)
        q.quantizedDimension = 1
        sg.set_quantization(t, q)
    data = serialize(m)
    root, mt = _raw(data)
    n = root.Subgraphs(0).TensorsLength()
    assert n >= 3
    vectors = [_zero_point_vector(root, i) for i in range(n)]
    assert len({pos for pos, _ in vectors}) == 1                # one stored vector, read by all
    assert all(v == [0, 0, 0, 0] for _, v in vectors)
    scales = [list(t.quantization.scale) for t in mt.subgraphs[0].tensors]
    assert len({tuple(s) for s in scales}) == len({len(t.name) for t in mt.subgraphs[0].tensors})
    # what is shared reads back as each tensor's own values
    back = read_model_bytes(data)
    for t in back.main.tensors:
        np.testing.assert_allclose(t.quantization.scale, np.linspace(0.1, 0.4, 4) * (1 + len(t.name)), rtol=1e-6)


def test_quantization_vectors_are_written_with_the_schema_types():
    # a pass may hand the IR lists or float64 arrays; the file holds float32 scales and int64 zero
    # points whatever they were, and equal vectors are still stored once
    m = add_model((1, 4), const=np.ones((1, 4), np.float32))
    sg = m.main
    for i, t in enumerate(sg.tensors):
        q = fb.QuantizationParametersT()
        q.scale = [0.5, 0.25] if i % 2 else np.array([0.5, 0.25], np.float64)
        q.zeroPoint = [0, 0] if i % 2 else np.zeros(2, np.int32)
        q.quantizedDimension = 1
        sg.set_quantization(t, q)
    data = serialize(m)
    root, mt = _raw(data)
    for t in mt.subgraphs[0].tensors:
        assert t.quantization.scale.dtype == np.float32 and list(t.quantization.scale) == [0.5, 0.25]
        assert list(t.quantization.zeroPoint) == [0, 0]
    n = root.Subgraphs(0).TensorsLength()
    assert len({_zero_point_vector(root, i)[0] for i in range(n)}) == 1
    assert isinstance(sg.tensors[0].quantization.scale, np.ndarray)      # the IR's own objects untouched
    assert sg.tensors[0].quantization.scale.dtype == np.float64
