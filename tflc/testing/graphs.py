"""Tiny hand-built graphs for unit tests (converter-built models are in ``zoo``)."""
from __future__ import annotations

import numpy as np

from ..ir.core import Model, Operator
from ..ir.build import add_op, builtin_opcode, new_model  # noqa: F401  (re-exported for the tests)
from ..schema import TYPE_CODES, fb


def add_model(shape=(1, 4), const: np.ndarray | None = None, relu: bool = False) -> Model:
    """out = relu?(x + c): one or two ops, float32."""
    m = Model(description="tflc test graph")
    sg = m.add_subgraph("main")
    x = sg.new_tensor("x", TYPE_CODES["FLOAT32"], shape)
    c = sg.new_constant("c", const if const is not None else np.arange(np.prod(shape), dtype=np.float32).reshape(shape))
    y = sg.new_tensor("y", TYPE_CODES["FLOAT32"], shape)
    opts = fb.AddOptionsT()
    sg.add_op(Operator(builtin_opcode("ADD"), [x, c], [y], options=opts, options_type=fb.BuiltinOptions.AddOptions))
    out = y
    if relu:
        z = sg.new_tensor("z", TYPE_CODES["FLOAT32"], shape)
        sg.add_op(Operator(builtin_opcode("RELU"), [y], [z]))
        out = z
    sg.set_graph_inputs([x])
    sg.set_graph_outputs([out])
    return m


def gather_model(table: np.ndarray) -> Model:
    """out = GATHER(table, idx) along axis 0: a model whose size is its table."""
    m = Model(description="tflc gather test")
    sg = m.add_subgraph("main")
    idx = sg.new_tensor("idx", TYPE_CODES["INT32"], (1,))
    t = sg.new_constant("table", table)
    y = sg.new_tensor("rows", TYPE_CODES["FLOAT32"], (1,) + table.shape[1:])
    opts = fb.GatherOptionsT()
    opts.axis = 0
    sg.add_op(Operator(builtin_opcode("GATHER"), [t, idx], [y], options=opts,
                       options_type=fb.BuiltinOptions.GatherOptions))
    sg.set_graph_inputs([idx])
    sg.set_graph_outputs([y])
    return m


# --- helpers shared by the pass tests ---------------------------------------------------------

def run_passes(model: Model, spec: str):
    """Run a pipeline (``'a,b{x=1}'``) in place; the written result must verify. Returns the context."""
    from ..io import read_model_bytes, serialize
    from ..ir.verify import verify
    from ..passes_api import parse_pipeline
    from ..passmanager import PassContext, run_pipeline
    ctx = PassContext()
    run_pipeline(model, parse_pipeline(spec), ctx)
    verify(read_model_bytes(serialize(model)))
    return ctx


def assert_identical(ref, model: Model, xnnpack: bool = True, steps: int = 1) -> None:
    """``model`` gives bit-identical outputs to ``ref`` (a path or bytes) in LiteRT."""
    from ..io import serialize
    from ..runtime import RunOptions, compare_models
    cmp, _ = compare_models(ref, serialize(model), options=RunOptions(xnnpack=xnnpack), steps=steps)
    assert cmp.identical, cmp.to_json()
