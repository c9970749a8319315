"""Pass contract, registry, pipeline parsing, per-pass stats, --verify-each."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from tflc.errors import UsageError, VerificationError
from tflc.io import read_model
from tflc.ir.core import Buffer
from tflc.optimize import optimize_file
from tflc.passes_api import Pass, all_passes, function_pass, parse_pipeline, split_pipeline
from tflc.analyses import AnalysisManager, analysis
from tflc.passmanager import PIPELINES, PassContext, pipeline_passes, run_pipeline


@dataclasses.dataclass
class _Opts:
    limit: int = 3
    ratio: float = 0.5
    enabled: bool = True
    name: str = "x"


class _Configurable(Pass):
    name = "configurable-test"
    description = "test pass with options"
    Options = _Opts

    def run(self, model, ctx):
        return False


def test_builtin_passes_follow_the_contract():
    passes = all_passes()
    assert "remove-dead-code" in passes
    for name, cls in passes.items():
        assert cls.name == name and cls.description and dataclasses.is_dataclass(cls.Options)
        assert (cls.__doc__ or "").strip() or (__import__(cls.__module__).__doc__ or ""), name


def test_pipelines_only_list_registered_passes():
    for level in PIPELINES:
        for p in pipeline_passes(level):
            assert p.name in all_passes()
    assert pipeline_passes("O0") == []
    with pytest.raises(UsageError, match="unknown optimization level"):
        pipeline_passes("O9")


def test_pipeline_text_with_options(monkeypatch):
    from tflc import passes_api
    monkeypatch.setitem(passes_api._REGISTRY, "configurable-test", _Configurable)
    assert split_pipeline("a,b{x=1,y=2},c") == ["a", "b{x=1,y=2}", "c"]
    (p, q) = parse_pipeline("configurable-test{limit=7,ratio=0.25,enabled=false,name=abc},remove-dead-code")
    assert p.options == _Opts(limit=7, ratio=0.25, enabled=False, name="abc")
    assert q.name == "remove-dead-code"
    with pytest.raises(UsageError, match="option 'limit' expects int"):
        parse_pipeline("configurable-test{limit=many}")
    with pytest.raises(UsageError, match="did you mean 'remove-dead-code'"):
        parse_pipeline("remove-dead-cod")


def test_function_pass_and_stats(example_model):
    @function_pass("drop-last-op", "remove the last operator (for testing)")
    def drop_last(model, ctx, options):
        sg = model.main
        last = sg.operators[-1]
        sg.replace_all_uses(last.outputs[0], last.inputs[0])
        sg.remove_op(last)
        return True

    m = read_model(example_model)
    ops = len(m.main.operators)
    recs = run_pipeline(m, [drop_last(), all_passes()["remove-dead-code"]()], PassContext())
    assert recs[0].changed and recs[0].before["ops"] == ops and recs[0].after["ops"] == ops - 1
    assert recs[1].seconds >= 0 and recs[1].after["tensors"] <= recs[1].before["tensors"]


def test_verifier_after_each_pass_names_the_pass(example_model):
    @function_pass("break-order", "reverse the ops (breaks topological order)")
    def breaker(model, ctx, options):
        model.main.reorder(list(reversed(model.main.operators)))
        return True

    with pytest.raises(VerificationError, match="after pass 'break-order'"):
        run_pipeline(read_model(example_model), [breaker()], PassContext())


def test_verify_each_names_the_first_pass_that_changes_outputs(example_model, tmp_path):
    @function_pass("harmless", "does nothing")
    def harmless(model, ctx, options):
        return False

    @function_pass("corrupt-weights", "changes a weight (a wrong rewrite)")
    def corrupt(model, ctx, options):
        t = model.main.ops_of_type("FULLY_CONNECTED")[0].inputs[1]
        arr = t.data.copy()
        arr *= 1.5
        t.buffer = Buffer(arr)
        return True

    out = tmp_path / "out.tflite"
    with pytest.raises(VerificationError, match="pass 'corrupt-weights' broke the model"):
        optimize_file(example_model, out, passes=[harmless(), corrupt(), harmless()], verify_each=True)
    assert not out.exists()
    # without --verify-each the final check still refuses to write it
    with pytest.raises(VerificationError, match="refusing to write"):
        optimize_file(example_model, out, passes=[corrupt()])
    assert not out.exists() and not list(tmp_path.iterdir())


def test_analysis_cache_is_invalidated_by_mutation(example_model):
    m = read_model(example_model)
    am = AnalysisManager()
    calls = []

    @analysis("test-count", "how often it was computed (test)")
    def count(model, ctx):
        calls.append(1)
        return len(calls)

    assert am.get("test-count", m, None) == 1
    assert am.get("test-count", m, None) == 1 and am.hits == 1
    t = m.main.outputs[0]
    m.main.set_shape(t, t.shape, t.shape_signature)     # any mutation moves the version stamp
    assert am.get("test-count", m, None) == 2


def test_optimize_o0_is_bit_identical_and_structural(example_model, tmp_path):
    res = optimize_file(example_model, tmp_path / "o0.tflite", level="O0")
    assert res.check["identical"] and res.passes == []
    assert res.before == res.after
    np.testing.assert_array_equal(read_model(tmp_path / "o0.tflite").main.ops_of_type("CONV_2D")[0].inputs[1].data,
                                  read_model(example_model).main.ops_of_type("CONV_2D")[0].inputs[1].data)


def _busywork_pass():
    from tflc.ir.core import Operator
    from tflc.rewrite import builtin_opcode
    from tflc.schema import fb

    @function_pass("add-busywork", "append MUL-by-one ops before the output (exact, but slower)")
    def busy(model, ctx, options):
        sg = model.main
        out = sg.outputs[0]
        prev = sg.new_tensor("busy_in", out.dtype, out.shape)
        sg.set_output(out.producer, 0, prev)
        one = sg.new_constant("one", np.ones((), np.float32))
        for i in range(30):
            nxt = out if i == 29 else sg.new_tensor(f"busy{i}", out.dtype, out.shape)
            sg.add_op(Operator(builtin_opcode("MUL"), [prev, one], [nxt], options=fb.MulOptionsT(),
                               options_type=fb.BuiltinOptions.MulOptions))
            prev = nxt
        return True
    return busy


class _FakeComparison:
    """Latency model for the guard's logic: a model is as slow as its op count."""

    def __init__(self, a, b):
        self.ratio = len(b.main.operators) / len(a.main.operators)
        self.ci_low = self.ci_high = self.ratio
        self.a = type("S", (), {"p50_us": float(len(a.main.operators))})()
        self.b = type("S", (), {"p50_us": float(len(b.main.operators))})()

    def slower(self, margin=0.0):
        return self.ci_low > 1 + margin


def _guarded(example_model, quantizes: bool):
    """The busywork pass and remove-dead-code, run and then judged by the guard (op-count latency)."""
    from tflc.passmanager import guard_latency
    busy = _busywork_pass()
    busy.quantizes = quantizes
    passes = [busy(), all_passes()["remove-dead-code"]()]
    original = read_model(example_model)
    model = original.clone()
    ctx = PassContext()
    run_pipeline(model, passes, ctx)
    kept, report = guard_latency(original, model, passes, ctx, compare=_FakeComparison)
    return original, kept, report, ctx


def test_latency_guard_drops_the_pass_that_slows_down(example_model):
    original, kept, report, ctx = _guarded(example_model, quantizes=False)
    assert [d["pass"] for d in report.dropped] == ["add-busywork"]
    assert len(kept.main.operators) == len(original.main.operators)
    assert any("dropped 'add-busywork'" in n for n in ctx.messages)


def test_latency_guard_keeps_a_quantizer_the_user_asked_for_even_when_it_is_slower(example_model):
    # as --quantize int16x8 is: slower on XNNPACK, and asked for
    original, kept, report, _ = _guarded(example_model, quantizes=True)
    assert report.dropped == [] and report.kept == ["add-busywork"]
    assert len(kept.main.operators) == len(original.main.operators) + 30
    assert report.ratio > 1 and report.verdict == "slower" and report.to_json()["kept_quantizers"] == ["add-busywork"]


def test_latency_guard_keeps_a_result_that_is_not_slower(example_model):
    from tflc.passmanager import guard_latency
    original = read_model(example_model)
    model = original.clone()
    kept, report = guard_latency(original, model, [], PassContext(), compare=_FakeComparison)
    assert kept is model and report.dropped == [] and report.ratio == 1.0


def test_o2_measures_latency_in_litert(zoo, tmp_path):
    from tflc.runtime import Session
    path = zoo("transformer_encoder")
    name = Session(str(path)).input_names[0]
    res = optimize_file(path, tmp_path / "o2.tflite", level="O2", shapes={name: (1, 32)})
    assert any(r.changed for r in res.passes)
    lat = res.latency
    assert lat is not None and lat["input_us"] > 0 and lat["output_us"] > 0
    assert lat["ci"][0] <= lat["ratio"] <= lat["ci"][1]


def test_verify_each_blames_the_lossy_pass_not_the_exact_one_after_it(zoo, tmp_path):
    from tflc.passes_api import parse_pipeline
    path = zoo("tiny_mlp")
    # store-float16-weights is lossy (within its tolerance); remove-dead-code after it is exact
    res = optimize_file(path, tmp_path / "a.tflite", passes="store-float16-weights,remove-dead-code",
                        verify_each=True)
    assert res.passes[0].max_rel_error > 0 and res.check["identical"] is False
    with pytest.raises(VerificationError, match="after pass 'store-float16-weights'.*over the tolerance 1e-09"):
        optimize_file(path, tmp_path / "b.tflite", passes=parse_pipeline("store-float16-weights,remove-dead-code"),
                      verify_each=True, tolerance=1e-9)


@pytest.mark.parametrize("spec,needle", [
    ("store-float16-weights{dequantize-version=99}", "dequantize-version must be 2"),
    ("store-float16-weights{ops=}", "ops must name"),
    ("store-float16-weights{min-elements=-3}", "min-elements must be 1"),
    ("fold-constants{max-bytes=-1}", "max-bytes must be 0"),
    ("remove-dead-code,,fold-pad", "empty entry"),
    ("fold-constants{max-bytes=1,max-bytes=2}", "given twice"),
])
def test_bad_pass_options_are_usage_errors(spec, needle):
    with pytest.raises(UsageError, match=needle):
        parse_pipeline(spec)


# --- the -O2 latency guard keeps what one pass tells a later one -------------------------------

def _float16_fc_model(n: int = 256):
    """y = FULLY_CONNECTED(x, DEQUANTIZE(w16), DEQUANTIZE(b16)): weights stored as float16, as the
    TF converter writes them with ``supported_types=[tf.float16]``."""
    from tflc.ir.build import add_op, builtin_opcode, new_model
    from tflc.ir.core import Operator
    from tflc.schema import TYPE_CODES, fb
    f32 = TYPE_CODES["FLOAT32"]
    model, sg = new_model("float16 fully-connected")
    rng = np.random.default_rng(0)
    x = sg.new_tensor("x", f32, (1, n))
    w16 = sg.new_constant("w", rng.standard_normal((n, n)).astype(np.float16))
    b16 = sg.new_constant("b", rng.standard_normal(n).astype(np.float16))
    w, b, y = sg.new_tensor("w_dequantize", f32, (n, n)), sg.new_tensor("b_dequantize", f32, (n,)), \
        sg.new_tensor("y", f32, (1, n))
    for src, dst in ((w16, w), (b16, b)):
        sg.add_op(Operator(builtin_opcode("DEQUANTIZE", 3), [src], [dst]))      # (version 3, as TF writes)
    add_op(sg, "FULLY_CONNECTED", [x, w, b], [y], fb.FullyConnectedOptionsT(),
           fb.BuiltinOptions.FullyConnectedOptions)
    sg.set_graph_inputs([x])
    sg.set_graph_outputs([y])
    return model


class _Timing:
    def __init__(self, us: float):
        self.p50_us = us


class _Comparison:
    def __init__(self, slower: bool):
        self.ratio = 1.5 if slower else 1.0
        self.ci_low = self.ci_high = self.ratio
        self.a, self.b, self.rounds = _Timing(100.0), _Timing(100.0 * self.ratio), 10
        self._slower = slower

    def slower(self, margin=0.0):
        return self._slower


class _SlowerOnlyAsAWhole:
    """``compare`` stub: the pipeline's result is slower than its input, but no single pass is
    slower than the model before it -- so the guard replays every pass and keeps each one."""

    def __init__(self):
        self.calls = 0

    def __call__(self, a, b):
        self.calls += 1
        return _Comparison(slower=self.calls == 1)


def test_latency_guard_replay_keeps_float16_weights_float16():
    """Regression: the guard replays the passes on clones of the model; fold-float16-weights tells
    restore-float16-weights (through ctx.facts) which weights were float16, and that must survive
    the clones, else the guard's result carries the weights as float32 (262 KB instead of 131 KB)."""
    from tflc.passmanager import guard_latency
    original = _float16_fc_model(256)
    o1 = original.clone()
    run_pipeline(o1, pipeline_passes("O1"), PassContext())
    f16_bytes = 256 * 256 * 2 + 256 * 2
    assert o1.stats()["constant_bytes"] == f16_bytes          # -O1 stores the weights as float16 again
    stub = _SlowerOnlyAsAWhole()
    kept, report = guard_latency(original, o1, pipeline_passes("O1"), PassContext(), compare=stub)
    assert stub.calls > 2 and report.dropped == []               # every pass was replayed and kept
    assert kept is not o1
    assert kept.stats()["constant_bytes"] == o1.stats()["constant_bytes"]
    assert sorted(op.type for op in kept.operators()) == sorted(op.type for op in o1.operators())


def test_latency_guard_forgets_what_a_dropped_pass_recorded(example_model):
    """A pass the guard drops takes its facts with it, also those it changed in place."""
    from tflc.passmanager import guard_latency
    busy = _busywork_pass()
    seen: list[dict] = []

    @function_pass("note-fact", "record a fact (no change to the model)")
    def note(model, ctx, options):
        ctx.facts.setdefault("test-fact", {})["note"] = True
        return False

    @function_pass("busy-and-note", "slow the model down and add to the fact")
    def busy_and_note(model, ctx, options):
        ctx.facts["test-fact"]["busy"] = True
        return busy().run(model, ctx)

    @function_pass("read-fact", "see what the earlier passes recorded")
    def read(model, ctx, options):
        seen.append(dict(ctx.facts.get("test-fact", {})))
        return False

    passes = [note(), busy_and_note(), read()]
    original = read_model(example_model)
    model = original.clone()
    run_pipeline(model, passes, PassContext())
    more_ops_is_slower = lambda a, b: _Comparison(len(b.main.operators) > len(a.main.operators))  # noqa: E731
    _, report = guard_latency(original, model, passes, PassContext(), compare=more_ops_is_slower)
    assert [d["pass"] for d in report.dropped] == ["busy-and-note"]
    assert seen[-1] == {"note": True}


def test_the_guard_replays_passes_with_the_pipelines_settings(example_model):
    """The replay's context carries the run's settings (the target, the inputs, ...), not defaults."""
    from tflc.passmanager import guard_latency
    seen = []

    @function_pass("see-target", "records the target it runs for (test)")
    def see(model, ctx, options):
        seen.append(ctx.target)
        return False

    busy = _busywork_pass()
    original = read_model(example_model)
    model = original.clone()
    ctx = PassContext(target="xnnpack")
    passes = [busy(), see()]
    run_pipeline(model, passes, ctx)
    guard_latency(original, model, passes, ctx, compare=_FakeComparison)
    assert seen == ["xnnpack", "xnnpack"], "once in the pipeline, once in the guard's replay"


def test_the_passes_that_quantize_say_so():
    from tflc.passes_api import all_passes
    quantizers = {n for n, cls in all_passes().items() if cls.quantizes}
    assert quantizers == {"quantize-fp16", "quantize-dynamic", "quantize-int8", "quantize-int16x8"}
