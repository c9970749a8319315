"""remove-dead-code: dead chains go, graph outputs and side effects stay, outputs bit-identical."""
from __future__ import annotations

import numpy as np

from tflc.io import read_model, serialize
from tflc.ir.core import Operator
from tflc.ir.verify import check
from tflc.passes_api import parse_pipeline
from tflc.passmanager import PassContext, run_pipeline
from tflc.rewrite import builtin_opcode
from tflc.runtime import compare_models
from tflc.schema import fb


def _run(m):
    return run_pipeline(m, parse_pipeline("remove-dead-code"), PassContext())[0]


def test_dead_chain_is_removed(example_model):
    m = read_model(example_model)
    sg = m.main
    n = len(sg.operators)
    x = sg.inputs[0]
    prev = x
    for i in range(3):  # RELU -> RELU -> RELU that nothing reads
        t = sg.new_tensor(f"dead{i}", x.dtype, x.shape)
        sg.add_op(Operator(builtin_opcode("RELU"), [prev], [t]))
        prev = t
    rec = _run(m)
    assert rec.changed and len(sg.operators) == n and check(m) == []
    assert not any(t.name.startswith("dead") for t in sg.tensors)
    cmp, _ = compare_models(str(example_model), serialize(m), steps=1)
    assert cmp.identical


def test_graph_outputs_and_side_effects_stay(zoo):
    m = read_model(zoo("stateful_counter"))
    before = [op.type for op in m.operators()]
    rec = _run(m)
    assert not rec.changed and [op.type for op in m.operators()] == before
    assert "ASSIGN_VARIABLE" in before and "CALL_ONCE" in before


def test_live_model_is_untouched(shared_model):
    m = read_model(shared_model)
    n = len(list(m.operators()))
    assert not _run(m).changed and len(list(m.operators())) == n


def test_unused_output_of_a_multi_output_op_keeps_the_op(example_model):
    m = read_model(example_model)
    sg = m.main
    x = sg.inputs[0]
    a = sg.new_tensor("split_a", x.dtype, (1, 64, 64, 1))
    b = sg.new_tensor("split_b", x.dtype, (1, 64, 64, 2))
    sizes = sg.new_constant("sizes", np.array([1, 2], np.int32))
    axis = sg.new_constant("axis", np.array(3, np.int32))
    opts = fb.SplitVOptionsT()
    opts.numSplits = 2
    sg.add_op(Operator(builtin_opcode("SPLIT_V"), [x, sizes, axis], [a, b], options=opts,
                       options_type=fb.BuiltinOptions.SplitVOptions))
    sg.set_graph_outputs(list(sg.outputs) + [a])        # one output used, one not
    _run(m)
    assert sg.ops_of_type("SPLIT_V"), "the op still produces a graph output"
