"""The pass manager is itself a pass: sequences nest and run to a bounded fixpoint; levels are data."""
from __future__ import annotations

import numpy as np
import pytest

from tflc.errors import UsageError, VerificationError
from tflc.ir.build import add_op, new_model
from tflc.passes_api import Pass, PassManager, all_passes
from tflc.passmanager import LEVELS, Level, PassContext, pipeline_passes, run_pipeline
from tflc.schema import TYPE_CODES, fb


def _chain(n: int):
    """x -> n RELUs -> y."""
    m, sg = new_model()
    cur = sg.new_tensor("x", TYPE_CODES["FLOAT32"], (1, 4))
    sg.set_graph_inputs([cur])
    for i in range(n):
        nxt = sg.new_tensor(f"r{i}", TYPE_CODES["FLOAT32"], (1, 4))
        add_op(sg, "RELU", [cur], [nxt])
        cur = nxt
    sg.set_graph_outputs([cur])
    return m


class _DropOneRelu(Pass):
    """Removes the first of two RELUs in a row (RELU is idempotent): one per run."""
    name = "drop-one-relu"
    description = "one RELU(RELU(x)) -> RELU(x) per run (test)"

    def run(self, model, ctx):
        sg = model.main
        for op in sg.operators:
            nxt = op.outputs[0].consumers
            if op.type == "RELU" and len(nxt) == 1 and nxt[0].type == "RELU":
                sg.set_input(nxt[0], 0, op.inputs[0])
                sg.remove_op(op)
                sg.remove_unused_tensors()
                return True
        return False


class _Noop(Pass):
    name = "noop"
    description = "changes nothing (test)"

    def run(self, model, ctx):
        return False


def test_a_sequence_runs_to_a_fixpoint():
    m = _chain(6)
    pm = PassManager(passes=[_DropOneRelu(), _Noop()], max_iterations=10)
    assert pm.run(m, PassContext()) is True
    assert len(m.main.operators) == 1
    assert pm.iterations == 6, "5 iterations that change, one that finds the fixpoint"
    assert pm.run(m, PassContext()) is False and pm.iterations == 1


def test_the_bound_stops_a_sequence_that_keeps_changing_and_says_so():
    m, ctx = _chain(6), PassContext()
    pm = PassManager(passes=[_DropOneRelu()], max_iterations=3)
    assert pm.run(m, ctx) is True and pm.iterations == 3
    assert len(m.main.operators) == 3
    assert any("still changing after 3 iterations" in n for n in ctx.messages)


def test_managers_nest_and_report_as_one_pass():
    m, ctx = _chain(4), PassContext()
    inner = PassManager(passes=[_DropOneRelu()], max_iterations=10)
    outer = PassManager(passes=[_Noop(), inner])
    recs = run_pipeline(m, [outer], ctx)
    assert [r.name for r in recs] == ["pass-manager"] and recs[0].changed
    assert len(m.main.operators) == 1


def test_the_verifier_names_the_sub_pass_that_broke_the_ir():
    class _Break(Pass):
        name = "break-links"
        description = "puts an op out of topological order (test)"

        def run(self, model, ctx):
            sg = model.main
            sg.reorder(list(reversed(sg.operators)))
            return True

    class _Outer(PassManager):
        name = "outer-test"
        description = "a named sequence (test)"
        phases = (_Noop, _Break)

    with pytest.raises(VerificationError, match="after pass 'outer-test/break-links'"):
        run_pipeline(_chain(3), [_Outer()], PassContext())


def test_cancel_transposes_is_a_bounded_sequence_of_two_phases():
    ct = all_passes()["cancel-transposes"]()
    assert isinstance(ct, PassManager) and [p.name for p in ct.passes] == ["propagate", "finish"]
    assert ct.max_iterations == 20
    assert "propagate" not in all_passes() and "finish" not in all_passes(), "phases are not passes of their own"


def test_every_level_names_registered_passes_only():
    known = all_passes()
    for lvl in LEVELS.values():
        missing = [n for n in lvl.passes if n not in known]
        assert not missing, f"-{lvl.name} names unregistered passes {missing}"
        assert [p.name for p in pipeline_passes(lvl.name)] == list(lvl.passes)
    assert LEVELS["O2"].latency_guard and not LEVELS["O1"].latency_guard


def test_a_level_naming_a_missing_pass_is_an_error_not_a_skip(monkeypatch):
    monkeypatch.setitem(LEVELS, "O1", Level("O1", ("fold-constants", "no-such-pass"), False, "test"))
    with pytest.raises(UsageError, match="unknown pass 'no-such-pass'"):
        pipeline_passes("O1")
