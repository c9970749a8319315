"""The analysis registry and manager: computed once per model state, invalidated unless preserved."""
from __future__ import annotations

import numpy as np
import pytest

from tflc.analyses import ALL, AnalysisManager, all_analyses, analysis
from tflc.errors import UsageError
from tflc.ir.build import add_op, new_model
from tflc.passes_api import Pass, PassManager, register
from tflc.passmanager import PassContext, run_pipeline
from tflc.schema import TYPE_CODES, fb

calls: list[str] = []


@analysis("test-op-count", "number of ops (test)")
def _op_count(model, ctx):
    calls.append("op-count")
    return sum(len(sg.operators) for sg in model.subgraphs)


@analysis("test-needs-data", "test data ranges", needs_inputs=True)
def _needs_data(model, ctx):
    return 0


def _model():
    m, sg = new_model()
    x = sg.new_tensor("x", TYPE_CODES["FLOAT32"], (1, 4))
    y = sg.new_tensor("y", TYPE_CODES["FLOAT32"], (1, 4))
    c = sg.new_constant("c", np.ones((1, 4), np.float32))
    add_op(sg, "ADD", [x, c], [y], fb.AddOptionsT(), fb.BuiltinOptions.AddOptions)
    sg.set_graph_inputs([x])
    sg.set_graph_outputs([y])
    return m


class _Rename(Pass):
    """Changes the model without touching what test-op-count measures, and says so."""
    name = "test-rename"
    description = "rename the output (test)"
    preserves = frozenset({"test-op-count"})

    def run(self, model, ctx):
        ctx.analyses.get("test-op-count", model, ctx)
        model.main.set_shape(model.main.outputs[0], (1, 4))      # a mutation: the version stamp moves
        return True


class _Touch(_Rename):
    name = "test-touch"
    description = "a change that preserves nothing (test)"
    preserves = frozenset()


def test_builtin_analyses_are_registered():
    known = all_analyses()
    assert {"profile", "shapes"} <= set(known)
    assert all(a.description for a in known.values())


def test_cached_per_model_state_and_recomputed_after_a_mutation():
    m, am = _model(), AnalysisManager()
    calls.clear()
    assert am.get("test-op-count", m, None) == 1
    assert am.get("test-op-count", m, None) == 1 and calls == ["op-count"] and am.hits == 1
    m.main.set_shape(m.main.outputs[0], (1, 4))          # outside any pass: the stamp catches it
    am.get("test-op-count", m, None)
    assert calls == ["op-count", "op-count"]


def test_a_pass_keeps_only_what_it_preserves():
    m, ctx = _model(), PassContext()
    calls.clear()
    recs = run_pipeline(m, [_Rename(), _Rename()], ctx)
    assert calls == ["op-count"], "preserved across both passes: computed once"
    assert recs[0].invalidated == [] and "test-op-count" in ctx.analyses.cached()
    recs = run_pipeline(m, [_Touch(), _Rename()], ctx)
    assert recs[0].invalidated == ["test-op-count"]
    assert calls == ["op-count", "op-count"], "recomputed after a pass that did not preserve it"


def test_preserves_all_and_unchanged_passes_keep_everything():
    m, am = _model(), AnalysisManager()
    am.get("test-op-count", m, None)
    assert am.after_pass(m, False, frozenset()) == []
    m.main.set_shape(m.main.outputs[0], (1, 4))
    assert am.after_pass(m, True, ALL) == [] and am.get("test-op-count", m, None) == 1
    assert am.hits == 1, "re-stamped to the new state: no recomputation"


def test_needs_name_registered_analyses():
    class _Bad(Pass):
        name = "test-needs-nothing-real"
        description = "needs an analysis nobody registered"
        needs = frozenset({"no-such-analysis"})

        def run(self, model, ctx):
            return False
    with pytest.raises(ValueError, match="unknown analyses no-such-analysis"):
        register(_Bad)


def test_a_pass_needing_user_inputs_fails_before_any_work():
    ran = []

    class _Calib(Pass):
        name = "test-calib"
        description = "needs data"
        needs = frozenset({"test-needs-data"})

        def run(self, model, ctx):
            ran.append(1)
            return False

    class _First(_Calib):
        name = "test-first"
        needs = frozenset()

    with pytest.raises(UsageError, match="needs test data ranges: give --inputs"):
        run_pipeline(_model(), [_First(), _Calib()], PassContext())
    assert ran == [], "checked up front, before the first pass ran"
    # nested: a manager needs what its passes need
    assert PassManager(passes=[_Calib()]).needs == frozenset({"test-needs-data"})
