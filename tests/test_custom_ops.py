"""Custom ops through the runtime's one door: registered kernels run them everywhere a model runs
(sessions, optimize's final check, --verify-each, compare, fold-constants' evaluation, shape
propagation, profile, bench); a custom op nothing runs is one clear error naming the file and
every missing op; -O0 still writes such a model, checked by structure."""
from __future__ import annotations

import ctypes

import numpy as np
import pytest

import tflc.kernels
from tflc.cli.main import main
from tflc.errors import RuntimeFailure, TflcError
from tflc.io import serialize
from tflc.ir.build import add_op, new_model
from tflc.ir.core import OpCode, Operator
from tflc.runtime import MissingKernelError, RunOptions, Session, check_kernels, run_model
from tflc.schema import OP_CODES, TYPE_CODES, fb

X = np.array([[1.0, 2.0, 3.0, 4.0]], np.float32)
C = np.arange(4, dtype=np.float32).reshape(1, 4)


def custom_model(codes=("MyOp",), options: bytes = b"\x07\x01\x02", shape=(1, 4)) -> bytes:
    """x -> CODE(x, c) -> ADD c -> ... for each code in ``codes``; float32 ``shape``."""
    m, sg = new_model("custom-op test")
    x = sg.new_tensor("x", TYPE_CODES["FLOAT32"], shape)
    c = sg.new_constant("c", np.arange(int(np.prod(shape)), dtype=np.float32).reshape(shape))
    cur = x
    for i, code in enumerate(codes):
        y = sg.new_tensor(f"{code}_{i}", TYPE_CODES["FLOAT32"], shape)
        sg.add_op(Operator(OpCode(OP_CODES["CUSTOM"], code), [cur, c], [y], custom_options=options))
        z = sg.new_tensor(f"add_{i}", TYPE_CODES["FLOAT32"], shape)
        add_op(sg, "ADD", [y, c], [z], fb.AddOptionsT(), fb.BuiltinOptions.AddOptions)
        cur = z
    sg.set_graph_inputs([x])
    sg.set_graph_outputs([cur])
    return serialize(m)


def my_op(inputs, options):
    """The test kernel: 10 x + c + (number of option bytes)."""
    x, c = inputs
    return [x * 10 + c + len(options)]


def expected(x=X, n=1, options_len=3):
    for _ in range(n):
        x = (x * 10 + C + options_len) + C
    return x


@pytest.fixture
def kernel():
    """``kernel(code, fn)`` registers a kernel for the test only."""
    codes = []

    def reg(code, fn, **kw):
        tflc.kernels.register(code, fn, replace=True, **kw)
        codes.append(code)
    yield reg
    for code in codes:
        tflc.kernels.unregister(code)


@pytest.fixture
def model_file(tmp_path):
    def write(name="m.tflite", **kw):
        p = tmp_path / name
        p.write_bytes(custom_model(**kw))
        return p
    return write


# --------------------------------------------------------------------------- no kernel: one clear error

@pytest.mark.parametrize("xnnpack", [True, False])
def test_a_custom_op_without_kernel_is_one_error_naming_the_file(model_file, xnnpack):
    path = model_file("face.tflite", codes=("MyOp", "MyOp"))
    with pytest.raises(MissingKernelError) as e:
        Session(str(path), RunOptions(xnnpack=xnnpack)).run([X])
    msg = str(e.value)
    assert msg.startswith(f"{path}: LiteRT has no kernel for custom op 'MyOp' (2 ops)")
    assert "tflc.kernels.register('MyOp', fn)" in msg and "'tflc.kernels' entry point" in msg
    assert "<model>" not in msg and "\n" not in msg and e.value.codes == {"MyOp": 2} and e.value.exit_code == 2


def test_every_missing_code_is_listed(model_file, kernel):
    path = model_file(codes=("OpA", "OpB", "OpA", "OpC"))
    assert check_kernels(path) == {"OpA": 2, "OpB": 1, "OpC": 1}
    kernel("OpB", my_op)
    assert check_kernels(path) == {"OpA": 2, "OpC": 1}
    with pytest.raises(MissingKernelError, match=r"custom ops 'OpA' \(2 ops\), 'OpC' \(1 op\);"):
        run_model(str(path))
    kernel("OpA", my_op)
    kernel("OpC", my_op)
    assert check_kernels(path) == {}


def test_custom_ops_litert_knows_are_not_missing(zoo):
    # no custom op at all: nothing is asked of LiteRT
    assert check_kernels(zoo("tiny_mlp")) == {}


# --------------------------------------------------------------------------- a registered kernel runs

@pytest.mark.parametrize("xnnpack", [True, False])
def test_a_registered_python_kernel_runs_in_a_session(kernel, xnnpack):
    kernel("MyOp", my_op)
    s = Session(custom_model(codes=("MyOp", "MyOp")), RunOptions(xnnpack=xnnpack), name="m.tflite")
    assert np.array_equal(s.run([X])[0], expected(n=2))
    assert s.custom_ops == {"MyOp": 2} and s.kernel_delegate.claimed == {0: [0, 2]}
    assert np.array_equal(s.run([X + 1])[0], expected(X + 1, n=2))     # again, other inputs


def test_every_tensor_is_kept_with_preserve_all_tensors(kernel):
    kernel("MyOp", my_op)
    s = Session(custom_model(), RunOptions(preserve_all_tensors=True), name="m.tflite")
    values = s.tensor_values([X])
    by_name = {d["name"]: values[d["index"]] for d in s.tensor_details() if d["index"] in values}
    assert np.array_equal(by_name["MyOp_0"], X * 10 + C + 3) and np.array_equal(by_name["add_0"], expected())


def test_a_failing_kernel_is_one_error_naming_the_file_and_the_op(kernel):
    def broken(inputs, options):
        raise ValueError("boom")
    kernel("MyOp", broken)
    with pytest.raises(RuntimeFailure) as e:
        Session(custom_model(), name="m.tflite").run([X])
    assert str(e.value) == "LiteRT failed running m.tflite: the kernel for custom op 'MyOp' (node 0): ValueError: boom"
    kernel("MyOp", lambda inputs, options: [inputs[0][:, :2]])
    with pytest.raises(RuntimeFailure, match=r"output 0 \('MyOp_0'\) has shape \(1, 2\), the model's tensor is "
                                             r"\(1, 4\).*output_shapes"):
        Session(custom_model(), name="m.tflite").run([X])
    kernel("MyOp", lambda inputs, options: [X, X])
    with pytest.raises(RuntimeFailure, match="returned 2 output"):
        Session(custom_model(), name="m.tflite").run([X])


def test_output_shapes_resize_a_kernels_outputs(kernel):
    m, sg = new_model("custom-op test")
    x = sg.new_tensor("x", TYPE_CODES["FLOAT32"], (1, 4))
    y = sg.new_tensor("y", TYPE_CODES["FLOAT32"], (1, 4))          # the file says (1, 4); the op makes (1, 2)
    sg.add_op(Operator(OpCode(OP_CODES["CUSTOM"], "Halve"), [x], [y]))
    sg.set_graph_inputs([x])
    sg.set_graph_outputs([y])
    kernel("Halve", tflc.kernels.PythonKernel(lambda ins, o: [ins[0][:, ::2]],
                                               output_shapes=lambda shapes, o: [(shapes[0][0], shapes[0][1] // 2)]))
    out = Session(serialize(m), name="halve.tflite").run([X])[0]
    assert out.tolist() == [[1.0, 3.0]]


def test_a_native_kernel_is_called_by_litert_with_the_op_as_the_model_holds_it(kernel):
    """NativeKernel: LiteRT calls the function itself (here a ctypes function standing in for a
    Numba cfunc); ``node->user_data`` is a TfLiteNode with the op's inputs, outputs and options."""
    from tflc.runtime import tflite_c as T
    seen = []

    def invoke(context, node):
        op = T.TfLiteNode.from_address(T.TfLiteNode.from_address(node).user_data)
        ctx = T.Context(context)
        ins, outs = T.int_array(op.inputs), T.int_array(op.outputs)
        seen.append((ins, outs, ctypes.string_at(op.custom_initial_data, op.custom_initial_data_size)))
        x, c = (T.tensor_view(ctx.tensor(i)) for i in ins)
        T.tensor_view(ctx.tensor(outs[0]))[...] = x * 10 + c + op.custom_initial_data_size
        return T.kTfLiteOk
    fn = T.InvokeFn(invoke)
    kernel("MyOp", tflc.kernels.NativeKernel(invoke=ctypes.cast(fn, ctypes.c_void_p).value))
    s = Session(custom_model(), name="m.tflite")
    assert np.array_equal(s.run([X])[0], expected()) and seen[0] == ([0, 1], [2], b"\x07\x01\x02")


def test_the_delegate_refuses_structs_that_do_not_read_as_the_model(kernel, monkeypatch):
    from tflc.runtime import modelinfo
    kernel("MyOp", my_op)
    real = modelinfo.subgraph_layouts

    def wrong(buf):
        return [modelinfo.SubgraphLayout([n + "?" for n in sg.tensor_names], sg.tensor_types, sg.node_codes)
                for sg in real(buf)]
    monkeypatch.setattr(modelinfo, "subgraph_layouts", wrong)
    with pytest.raises(RuntimeFailure, match="LiteRT cannot load m.tflite: .*layouts are not the expected ones"):
        Session(custom_model(), name="m.tflite")


def test_every_place_that_runs_a_model_uses_the_kernels(kernel, tmp_path):
    """fold-constants' evaluation and shape propagation go through the same door."""
    from tflc.evaluate import run_ops
    from tflc.io import read_model_bytes
    from tflc.runtime import tensor_shapes
    kernel("MyOp", my_op)
    data = custom_model()
    assert tensor_shapes(data)["add_0"] == (1, 4)
    m = read_model_bytes(data)
    op = m.main.operators[0]
    got = run_ops([op], {id(op.inputs[0]): X})
    assert np.array_equal(got[id(op.outputs[0])], X * 10 + C + 3)


def test_the_c_api_refuses_models_run_by_tflc_kernels(kernel):
    from tflc.runtime import capi
    kernel("MyOp", my_op)
    with pytest.raises(TflcError, match="does not run custom ops on tflc.kernels kernels \\(MyOp\\)"):
        capi.compiled_model(custom_model(), name="m.tflite")


def test_tflc_kernels_are_found_for_bench(kernel):
    from tflc.profiler.bench import _tflc_delegate_factory
    from tflc.runtime.delegate import KernelDelegate
    assert _tflc_delegate_factory(custom_model()) == (None, "no tflc kernels in this model")
    data = custom_model(codes=("TFLC_ADD",))
    factory, why = _tflc_delegate_factory(data)
    assert factory is None and "none registered for TFLC_ADD" in why
    kernel("TFLC_ADD", my_op)
    factory, why = _tflc_delegate_factory(data)
    assert why == "" and isinstance(factory(), KernelDelegate)
    s = Session(data, RunOptions(delegates=(factory(),)), name="t.tflite")     # the caller's delegate is used
    assert np.array_equal(s.run([X])[0], expected())


# --------------------------------------------------------------------------- the commands

def test_O0_writes_a_model_litert_cannot_run_checked_by_structure(model_file, tmp_path, capsys):
    src, out = model_file(codes=("MyOp", "MyOp")), tmp_path / "out.tflite"
    assert main(["optimize", str(src), "-o", str(out), "-O0"]) == 0
    text = capsys.readouterr().out
    assert "outputs not compared: LiteRT has no kernel for custom op 'MyOp' (2 ops); structure verified" in text
    assert out.exists()
    assert main(["optimize", str(src), "-o", str(tmp_path / "o.json.tflite"), "-O0", "--json"]) == 0
    import json
    check = json.loads(capsys.readouterr().out)["check"]
    assert check["compared"] is False and check["structure_verified"] and check["missing_kernels"] == {"MyOp": 2}


@pytest.mark.parametrize("level", ["-O1", "-O2"])
def test_higher_levels_say_which_ops_have_no_kernel(model_file, tmp_path, capsys, level):
    src, out = model_file(codes=("MyOp", "Other")), tmp_path / "out.tflite"
    assert main(["optimize", str(src), "-o", str(out), level]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(src) in err and "Traceback" not in err
    assert "LiteRT has no kernel for custom ops 'MyOp' (1 op), 'Other' (1 op)" in err
    assert "tflc.kernels.register('MyOp', fn)" in err and not out.exists()


def test_compare_profile_and_bench_say_which_ops_have_no_kernel(model_file, capsys):
    src = str(model_file())
    for argv in (["compare", src, src], ["bench", src, "--runs", "5"]):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert f"{src}: LiteRT has no kernel for custom op 'MyOp' (1 op)" in err, argv
    from tflc.profiler import get_profile
    with pytest.raises(MissingKernelError, match=f"{src}: LiteRT has no kernel for custom op 'MyOp'"):
        get_profile(src, runs=5, cache=False)


def test_with_a_registered_kernel_optimize_and_compare_run_it(model_file, kernel, tmp_path, capsys):
    kernel("MyOp", my_op)
    src = model_file(codes=("MyOp", "MyOp"))
    for level in ("-O0", "-O2"):
        out = tmp_path / f"out{level}.tflite"
        assert main(["optimize", str(src), "-o", str(out), level, "--json"]) == 0
        import json
        check = json.loads(capsys.readouterr().out)["check"]
        assert check["identical"] and check["steps"] == 3 and check.get("compared", True)
    assert main(["optimize", str(src), "-o", str(tmp_path / "v.tflite"), "-O1", "--verify-each"]) == 0
    capsys.readouterr()
    assert main(["compare", str(src), str(tmp_path / "out-O2.tflite")]) == 0
    assert "identical" in capsys.readouterr().out


def test_with_a_registered_kernel_profile_and_bench_run_it(model_file, kernel):
    from tflc.profiler import get_profile
    from tflc.profiler.bench import run_bench
    kernel("MyOp", my_op)
    src = str(model_file())
    prof = get_profile(src, runs=5, warmup=1, max_seconds=5.0, cache=False)
    for v in prof.views.values():
        assert [o.type for o in v.ops] == ["MyOp", "ADD"] and v.method == "op-alone"
        assert any("tflc.kernels kernels (MyOp)" in n for n in v.notes)
    res = run_bench([src], runs=5, warmup=1, rounds=1, max_seconds=2.0, accuracy=False)
    mb = res.models[0]
    assert mb.latency.runs == 5 and mb.configs["builtin"] is not None
