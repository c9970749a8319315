"""The IR keeps use-def itself; the verifier names pass, op and tensor; graph views."""
from __future__ import annotations

import numpy as np
import pytest

from tflc.errors import VerificationError
from tflc.io import read_model
from tflc.ir import verify
from tflc.ir.core import Buffer, Operator
from tflc.ir.graph import op_graph
from tflc.ir.verify import check
from tflc.rewrite import builtin_opcode
from tflc.schema import fb
from tflc.testing.graphs import add_model


def test_use_def_is_maintained_by_mutations():
    m = add_model(relu=True)
    sg = m.main
    add, relu = sg.operators
    x, c = add.inputs
    y = add.outputs[0]
    assert y.producer is add and y.consumers == [relu] and x.uses == [(add, 0)]
    sg.set_input(add, 1, x)                       # x + x
    assert c.uses == [] and sorted(i for _, i in x.uses) == [0, 1]
    sg.replace_all_uses(y, x)                     # relu now reads x directly
    assert y.uses == [] and relu.inputs[0] is x
    sg.remove_op(add)
    assert y.producer is None and x.uses == [(relu, 0)]
    assert check(m) == []


def test_replace_all_uses_updates_graph_outputs():
    m = add_model()
    sg = m.main
    y = sg.outputs[0]
    z = sg.new_tensor("z", y.dtype, y.shape)
    sg.replace_all_uses(y, z)
    assert sg.outputs == (z,)


def test_double_producer_is_refused():
    m = add_model()
    sg = m.main
    y = sg.operators[0].outputs[0]
    with pytest.raises(ValueError, match="already produced"):
        sg.add_op(Operator(builtin_opcode("RELU"), [sg.inputs[0]], [y]))


def test_verifier_names_op_and_tensor():
    m = add_model(relu=True)
    sg = m.main
    sg.tensor("c").buffer = Buffer(np.zeros(3, np.uint8))      # wrong size for FLOAT32[1,4]
    with pytest.raises(VerificationError, match=r"tensor 'c': buffer holds 3 bytes, FLOAT32\[1, 4\] needs 16"):
        verify(m)


def test_verifier_catches_topological_order_and_names_the_pass():
    m = add_model(relu=True)
    sg = m.main
    add, relu = sg.operators
    sg.reorder([relu, add])
    with pytest.raises(VerificationError) as e:
        verify(m, after="my-pass")
    assert "after pass 'my-pass'" in str(e.value) and "op #0 RELU" in str(e.value) and "'y'" in str(e.value)
    assert sg.topological_sort() is True
    verify(m)


def test_verifier_catches_bad_quantization_and_subgraph_refs():
    m = add_model()
    sg = m.main
    q = fb.QuantizationParametersT()
    q.scale, q.zeroPoint, q.quantizedDimension = np.ones(3, np.float32), np.zeros(3, np.int64), 1
    sg.tensor("c").quantization = q
    opts = fb.CallOnceOptionsT()
    opts.initSubgraphIndex = 5
    sg.add_op(Operator(builtin_opcode("CALL_ONCE"), [], [], options=opts,
                       options_type=fb.BuiltinOptions.CallOnceOptions), index=0)
    problems = check(m)
    assert any("per-channel scales" in p for p in problems)
    assert any("initSubgraphIndex refers to subgraph 5" in p for p in problems)


def test_networkx_view_and_cache(example_model):
    m = read_model(example_model)
    sg = m.main
    g = sg.to_networkx()
    ops = [n for n, d in g.nodes(data=True) if d["kind"] == "op"]
    assert len(ops) == len(sg.operators)
    assert sg.to_networkx() is g                 # cached while unchanged
    conv = sg.ops_of_type("CONV_2D")[0]
    node = ("op", conv.index)
    assert g.in_degree(node) == sum(1 for t in conv.inputs if t is not None)
    import networkx as nx
    assert nx.is_directed_acyclic_graph(op_graph(sg))
    sg.remove_op(sg.operators[-1])
    assert sg.to_networkx() is not g              # a mutation invalidates it


def test_clone_is_deep_but_shares_constants(example_model):
    m = read_model(example_model)
    c = m.clone()
    t0, t1 = m.main.operators[0].inputs[1], c.main.operators[0].inputs[1]
    assert t0 is not t1 and t0.buffer is t1.buffer
    c.main.remove_op(c.main.operators[-1])
    assert len(m.main.operators) == len(c.main.operators) + 1


def test_clone_of_real_graphs_is_identical(zoo, shared_model):
    from tflc.ir.canonical import canonical
    for path in (zoo("transformer_encoder"), shared_model):
        m = read_model(path)
        c = m.clone()
        assert canonical(c) == canonical(m)
        assert check(c) == []
