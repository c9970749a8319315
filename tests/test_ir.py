"""The IR keeps use-def itself; the verifier names pass, op and tensor; graph views."""
from __future__ import annotations

import numpy as np
import pytest

from tflc.errors import VerificationError
from tflc.io import read_model
from tflc.ir import verify
from tflc.ir.core import Buffer, Operator, Tensor
from tflc.ir.graph import networkx_view, op_graph, topological_sort
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
    assert topological_sort(sg) is True
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
    g = networkx_view(sg)
    ops = [n for n, d in g.nodes(data=True) if d["kind"] == "op"]
    assert len(ops) == len(sg.operators)
    assert networkx_view(sg) is g                 # cached while unchanged
    conv = sg.ops_of_type("CONV_2D")[0]
    node = ("op", conv.index)
    assert g.in_degree(node) == sum(1 for t in conv.inputs if t is not None)
    import networkx as nx
    assert nx.is_directed_acyclic_graph(op_graph(sg))
    sg.remove_op(sg.operators[-1], detach=True)
    assert networkx_view(sg) is not g              # a mutation invalidates it


def test_clone_is_deep_but_shares_constants(example_model):
    m = read_model(example_model)
    c = m.clone()
    t0, t1 = m.main.operators[0].inputs[1], c.main.operators[0].inputs[1]
    assert t0 is not t1 and t0.buffer is t1.buffer
    c.main.remove_op(c.main.operators[-1], detach=True)
    assert len(m.main.operators) == len(c.main.operators) + 1


def test_clone_of_real_graphs_is_identical(zoo, shared_model):
    from tflc.ir.canonical import canonical
    for path in (zoo("transformer_encoder"), shared_model):
        m = read_model(path)
        c = m.clone()
        assert canonical(c) == canonical(m)
        assert check(c) == []


# --- stable identity ---------------------------------------------------------------------------

def _uids(model):
    return ([t.uid for sg in model.subgraphs for t in sg.tensors], [op.uid for op in model.operators()])


def test_uids_are_unique_in_the_model_and_kept_by_clone(zoo):
    m = read_model(zoo("stateful_counter"))            # two subgraphs: uids are unique across them
    tensors, ops = _uids(m)
    assert all(isinstance(u, int) for u in tensors + ops)
    assert len(set(tensors + ops)) == len(tensors) + len(ops)
    c = m.clone()
    assert _uids(c) == (tensors, ops)                    # the same tensors and ops, by identity
    sg = c.main
    t = sg.new_tensor("fresh", sg.tensors[0].dtype, (1,))
    assert t.uid not in set(tensors + ops)               # a clone's new tensor does not take a copied uid
    op = sg.operators[0]
    sg.remove_op(op, detach=True)
    sg.add_op(op, index=0)                               # re-added: the same op, the same uid
    assert op.uid == ops[0]
    assert _uids(c.clone()) == _uids(c)


def test_uids_of_a_new_graph_and_facts_across_clones():
    m = add_model(relu=True)
    sg = m.main
    facts = {t.uid: t.name for t in sg.tensors}
    c = m.clone().clone()
    assert {t.uid: t.name for t in c.main.tensors} == facts
    assert Tensor("loose", sg.tensors[0].dtype, (1,)).uid is None    # in no subgraph yet


# --- removing an op that is still needed --------------------------------------------------------

def test_remove_op_refuses_to_leave_readers_without_a_value():
    m = add_model(relu=True)
    sg = m.main
    add, relu = sg.operators
    with pytest.raises(ValueError, match=r"cannot remove Operator\(ADD -> 'y'\): its output 'y' is still read by "
                                         r"Operator\(RELU -> 'z'\)"):
        sg.remove_op(add)
    with pytest.raises(ValueError, match="its output 'z' is a graph output"):
        sg.remove_op(relu)
    assert len(sg.operators) == 2 and check(m) == []     # refused: nothing changed
    sg.replace_all_uses(relu.outputs[0], relu.inputs[0])
    sg.remove_op(relu)                                    # nothing reads it any more
    assert check(m) == []


def test_remove_op_detach_leaves_the_output_for_a_new_producer():
    m = add_model(relu=True)
    sg = m.main
    add, relu = sg.operators
    y = add.outputs[0]
    sg.remove_op(add, detach=True)
    assert y.producer is None
    assert any("input 0 tensor 'y' has no value" in p for p in check(m))
    sg.add_op(Operator(builtin_opcode("ADD"), list(add.inputs), [y], options=add.options,
                       options_type=add.options_type), before=relu)
    assert check(m) == []


def test_replace_op_keeps_the_outputs_that_are_read():
    m = add_model(relu=True)
    sg = m.main
    add, relu = sg.operators
    sub = Operator(builtin_opcode("SUB"), list(add.inputs), [add.outputs[0]], options=fb.SubOptionsT(),
                   options_type=fb.BuiltinOptions.SubOptions)
    sg.replace_op(add, sub)
    assert [op.type for op in sg.operators] == ["SUB", "RELU"] and check(m) == []
    other = sg.new_tensor("other", relu.outputs[0].dtype, relu.outputs[0].shape)
    with pytest.raises(ValueError, match="'z' would have no producer"):
        sg.replace_op(relu, Operator(builtin_opcode("RELU"), [sub.outputs[0]], [other]))


def test_verifier_rejects_a_read_of_a_tensor_nothing_produces():
    """Regression: an op reading a tensor without producer, constant data, graph input or variable
    status passed the verifier (e.g. after its producer was removed)."""
    m = add_model()
    sg = m.main
    orphan = sg.new_tensor("orphan", sg.inputs[0].dtype, (1, 4))
    z = sg.new_tensor("z", orphan.dtype, (1, 4))
    sg.add_op(Operator(builtin_opcode("RELU"), [orphan], [z]))
    sg.set_graph_outputs([sg.outputs[0], z])
    assert check(m) == ["subgraph 0 op #1 RELU: input 0 tensor 'orphan' has no value: no op produces it and it is "
                        "not a constant, a graph input or a variable (was its producer removed?)"]


def test_verifier_accepts_what_may_be_read_without_a_producer(zoo):
    from tflc.schema import TYPE_CODES
    m = add_model()
    sg = m.main
    x = sg.inputs[0]
    state = sg.new_tensor("state", x.dtype, x.shape, is_variable=True)     # a variable (LSTM state...)
    empty = sg.new_tensor("empty_shape", TYPE_CODES["INT32"], (0,))      # no data to miss
    s, r = sg.new_tensor("s", x.dtype, x.shape), sg.new_tensor("r", x.dtype, ())
    sg.add_op(Operator(builtin_opcode("ADD"), [x, state], [s], options=fb.AddOptionsT(),
                       options_type=fb.BuiltinOptions.AddOptions))
    sg.add_op(Operator(builtin_opcode("RESHAPE"), [s, empty], [r]))
    sg.add_op(Operator(builtin_opcode("FULLY_CONNECTED"), [x, sg.tensor("c"), None], [sg.new_tensor("f", x.dtype, (1, 1))],
                       options=fb.FullyConnectedOptionsT(), options_type=fb.BuiltinOptions.FullyConnectedOptions))
    sg.set_graph_outputs([*sg.outputs, r, sg.tensor("f")])
    assert check(m) == []                                # (the optional bias is None: not a read)
    # resource variables: VAR_HANDLE produces the resource READ_VARIABLE / ASSIGN_VARIABLE use
    assert check(read_model(zoo("stateful_counter"))) == []


# --- every change through a method: the version moves ---------------------------------------------

def test_field_setters_bump_the_version_and_copy_shared_options():
    from tflc.schema import TYPE_CODES
    m = add_model(relu=True)
    sg = m.main
    add, relu = sg.operators
    c, y = sg.tensor("c"), add.outputs[0]
    q = fb.QuantizationParametersT()
    q.scale, q.zeroPoint = np.ones(1, np.float32), np.zeros(1, np.int64)
    shared = add.options
    twin = Operator(builtin_opcode("ADD"), [sg.inputs[0], c], [sg.new_tensor("t", y.dtype, y.shape)],
                    options=shared, options_type=add.options_type)
    sg.add_op(twin)
    changes = [lambda: sg.set_dtype(y, TYPE_CODES["FLOAT16"]), lambda: sg.set_quantization(y, q),
               lambda: sg.set_shape(y, (4, 1), (-1, 1)), lambda: sg.rename(y, "why"),
               lambda: sg.set_buffer(c, Buffer(np.zeros(16, np.uint8))),
               lambda: sg.set_buffer(c, Buffer(np.zeros(8, np.uint8)), dtype=TYPE_CODES["FLOAT16"]),
               lambda: sg.update_options(add, fusedActivationFunction=1),
               lambda: sg.set_options(relu, None, 0), lambda: sg.require_version(add, 3),
               lambda: sg.set_opcode(add, builtin_opcode("ADD", 4))]
    for change in changes:
        before = m.version_stamp
        change()
        assert m.version_stamp != before, change
    assert (y.dtype, y.quantization, y.shape, y.shape_signature, y.name) == \
        (TYPE_CODES["FLOAT16"], q, (4, 1), (-1, 1), "why")
    assert add.options.fusedActivationFunction == 1 and shared.fusedActivationFunction == 0   # copy on write
    assert twin.options is shared and add.opcode.version == 4
    before = m.version_stamp
    sg.require_version(add, 2)                           # already newer: no change
    assert m.version_stamp == before
    with pytest.raises(AttributeError, match="no field 'padding'"):
        sg.update_options(add, padding=1)


def test_version_stamps_of_two_models_never_coincide():
    a, b = add_model(), add_model()
    assert a.version_stamp != b.version_stamp            # (id() could be reused once a model is freed)
