"""The LiteRT harness: inputs (npz, images, generated), sessions, isolation."""
from __future__ import annotations

import os
import signal
import time

import numpy as np
import pytest

from tflc.errors import RuntimeFailure, UsageError
from tflc.runtime import Session, compare_models, load_inputs, parse_shape_overrides, run_isolated


def test_generated_inputs_fit_dtypes(zoo):
    s = Session(str(zoo("mobilenet_tiny_int8")))
    (x,), = load_inputs(None, s.input_details)
    assert x.dtype == np.int8 and x.shape == (1, 64, 64, 3) and x.min() < -64 and x.max() > 64
    s2 = Session(str(zoo("transformer_encoder")))
    (ids,), = load_inputs(None, s2.input_details, shapes={s2.input_names[0]: (2, 32)})
    assert ids.shape == (2, 32) and ids.dtype == np.int32 and ids.min() >= 0
    assert s2.run([ids])[0].shape[0] == 2        # dynamic batch resized


def test_npz_inputs_by_name_and_steps(zoo, tmp_path):
    s = Session(str(zoo("tiny_mlp")))
    d = s.input_details[0]
    data = np.random.default_rng(0).normal(size=(4, 1, 16)).astype(np.float32)
    np.savez(tmp_path / "in.npz", **{d["name"]: data})
    steps = load_inputs(str(tmp_path / "in.npz"), s.input_details)
    assert len(steps) == 4 and np.array_equal(steps[2][0], data[2])
    with pytest.raises(UsageError, match="no array for input"):
        np.savez(tmp_path / "bad.npz", other=data, more=data)
        load_inputs(str(tmp_path / "bad.npz"), s.input_details)


def test_image_folder_inputs(zoo, tmp_path):
    from PIL import Image
    for i in range(3):
        Image.fromarray(np.full((20, 30, 3), 80 * i, np.uint8)).save(tmp_path / f"img{i}.png")
    s = Session(str(zoo("mobilenet_tiny")))
    steps = load_inputs(str(tmp_path), s.input_details)
    assert len(steps) == 3 and steps[0][0].shape == (1, 64, 64, 3)
    assert np.allclose(steps[1][0], 80 / 255, atol=1e-6)
    q = Session(str(zoo("mobilenet_tiny_int8")))
    assert load_inputs(str(tmp_path), q.input_details)[2][0].dtype == np.int8


def test_shape_override_names_may_contain_colons():
    assert parse_shape_overrides(["serving_default_input_1:0:1x128"]) == {"serving_default_input_1:0": (1, 128)}
    with pytest.raises(UsageError):
        parse_shape_overrides(["input:1xq"])


def _crash():
    os.kill(os.getpid(), signal.SIGSEGV)


def _hang():
    time.sleep(60)


def test_isolation_turns_crashes_and_hangs_into_errors():
    with pytest.raises(RuntimeFailure, match="crashed \\(SIGSEGV\\)"):
        run_isolated(_crash)
    with pytest.raises(RuntimeFailure, match="did not finish"):
        run_isolated(_hang, timeout=1)
    assert run_isolated(sum, [1, 2, 3]) == 6


def _meet(mine, theirs):
    """Announce ``mine``, then wait for ``theirs``: two of these finish only when run side by side."""
    open(mine, "w").close()
    for _ in range(500):
        if os.path.exists(theirs):
            return mine
        time.sleep(0.01)
    raise TimeoutError(theirs)


def test_isolated_calls_run_side_by_side_and_come_back_in_order(tmp_path):
    from tflc.runtime.isolate import run_isolated_all
    a, b = str(tmp_path / "a"), str(tmp_path / "b")
    assert run_isolated_all([(_meet, (a, b)), (_meet, (b, a))], parallel=2, timeout=60) == [a, b]
    assert run_isolated_all([(sum, ([i, 1],)) for i in range(5)], parallel=2) == [1, 2, 3, 4, 5]
    # one at a time, the first never meets the second: the failure is the child's, after the batch
    os.unlink(a), os.unlink(b)
    with pytest.raises(RuntimeFailure, match="TimeoutError"):
        run_isolated_all([(_meet, (a, b)), (_meet, (b, a))], parallel=1, timeout=120)
    with pytest.raises(RuntimeFailure, match="crashed \\(SIGSEGV\\)"):
        run_isolated_all([(sum, ([1],)), (_crash, ()), (sum, ([2],))], parallel=2)


def test_compare_detects_a_changed_weight(example_model, tmp_path):
    from tflc.io import read_model, write_model
    from tflc.ir.core import Buffer
    m = read_model(example_model)
    w = m.main.ops_of_type("FULLY_CONNECTED")[0].inputs[1]
    arr = w.data.copy()
    arr[0, 0] += 1.0
    w.buffer = Buffer(arr)
    write_model(m, tmp_path / "changed.tflite")
    cmp, _ = compare_models(str(example_model), str(tmp_path / "changed.tflite"), steps=2)
    assert not cmp.identical and cmp.diffs[0].max_abs > 0 and cmp.diffs[0].sqnr_db < 200


def test_zero_copy_views(zoo):
    s = Session(str(zoo("tiny_mlp")))
    x = np.random.default_rng(1).normal(size=(1, 16)).astype(np.float32)
    ref = s.run([x])[0]
    views = s.input_views()
    views[0][...] = x                       # written straight into LiteRT's input buffer
    del views
    s.invoke()
    out = s.interp.tensor(s.output_details[0]["index"])()
    assert np.array_equal(out, ref)
    del out
    again = s.run([x], copy=False)[0]
    assert np.array_equal(again, ref) and not again.flags.owndata


def test_user_inputs_are_checked(zoo, tmp_path):
    s = Session(str(zoo("mobilenet_tiny_int8")))
    name = s.input_names[0]
    np.savez(tmp_path / "small.npz", **{name: np.zeros((1, 32, 32, 3), np.int8)})
    with pytest.raises(UsageError, match="is 1x64x64x3, the array is 1x32x32x3"):
        load_inputs(str(tmp_path / "small.npz"), s.input_details)
    np.savez(tmp_path / "big.npz", **{name: np.full((1, 64, 64, 3), 1000, np.int32)})
    with pytest.raises(UsageError, match="do not fit"):
        load_inputs(str(tmp_path / "big.npz"), s.input_details)
    real = np.random.default_rng(0).uniform(-1, 1, (1, 64, 64, 3)).astype(np.float32)
    np.savez(tmp_path / "real.npz", **{name: real})
    (q,), = load_inputs(str(tmp_path / "real.npz"), s.input_details)     # quantized with the input's params
    scale, zp = s.input_details[0]["quantization"]
    assert q.dtype == np.int8 and np.allclose((q.astype(np.float32) - zp) * scale, real, atol=scale)
    (tmp_path / "broken.npz").write_bytes(b"not a zip")
    with pytest.raises(UsageError, match="not a readable .npz"):
        load_inputs(str(tmp_path / "broken.npz"), s.input_details)
    with pytest.raises(UsageError, match="no such file"):
        load_inputs(str(tmp_path / "missing.npz"), s.input_details)


def test_shape_overrides_are_checked_against_the_model(zoo):
    from tflc.io import read_model
    from tflc.runtime.inputs import check_shape_overrides
    inputs = read_model(zoo("transformer_encoder")).main.inputs
    name = inputs[0].name
    check_shape_overrides({name: (4, 32)}, inputs)
    with pytest.raises(UsageError, match="no such input"):
        check_shape_overrides({"token_ids": (4, 32)}, inputs)
    with pytest.raises(UsageError, match="does not fit"):
        check_shape_overrides({name: (4, 16)}, inputs)
    with pytest.raises(UsageError, match="given twice"):
        parse_shape_overrides([f"{name}:1x32", f"{name}:2x32"])


def test_convert_inputs_quantizes_for_int8_models():
    from tflc.runtime.inputs import convert_inputs
    ref = [{"name": "x", "dtype": np.float32, "quantization": (0.0, 0), "shape": [4]}]
    q = [{"name": "x", "dtype": np.int8, "quantization": (0.5, -3), "shape": [4]}]
    steps = [[np.array([0.0, 1.0, -1.0, 100.0], np.float32)]]
    (x,), = convert_inputs(steps, ref, q)
    assert x.dtype == np.int8 and x.tolist() == [-3, -1, -5, 127]
    (y,), = convert_inputs([[x]], q, ref)
    assert y.dtype == np.float32 and y.tolist() == [0.0, 1.0, -1.0, 65.0]
    with pytest.raises(UsageError, match="not comparable"):
        convert_inputs(steps, ref, [dict(q[0], shape=[5])])


def test_preserve_all_tensors_keeps_every_intermediate(zoo):
    """The profiler's op-alone capture and calibration read every tensor of one run."""
    from tflc.runtime import RunOptions
    s = Session(str(zoo("tiny_mlp")), RunOptions(xnnpack=False, preserve_all_tensors=True))
    x = np.random.default_rng(2).normal(size=(1, 16)).astype(np.float32)
    values = s.tensor_values([x])
    details = s.tensor_details()
    assert len(values) >= len(details) - 1 and np.array_equal(values[s.input_details[0]["index"]], x)
    assert np.array_equal(values[s.output_details[0]["index"]], s.run([x])[0])
    # each FULLY_CONNECTED's output is kept (not overwritten by later ops): recompute the first
    from tflc.io import read_model
    m = read_model(zoo("tiny_mlp"))
    fc = m.main.ops_of_type("FULLY_CONNECTED")[0]
    w, b = fc.inputs[1].data, fc.inputs[2].data if len(fc.inputs) > 2 and fc.inputs[2] is not None else 0
    idx = m.main.tensors.index(fc.outputs[0])
    y = x @ w.T + b
    y = np.maximum(y, 0) if fc.options.fusedActivationFunction == 1 else y
    assert np.allclose(values[idx], y, atol=1e-5)


def test_errors_name_the_model_never_a_placeholder(tmp_path):
    from tflc.errors import RuntimeFailure
    bad = tmp_path / "broken.tflite"
    bad.write_bytes(b"\x1c\x00\x00\x00TFL3" + b"\x00" * 40)
    with pytest.raises(RuntimeFailure) as e:
        Session(str(bad))
    assert str(bad) in str(e.value)
    with pytest.raises(RuntimeFailure) as e:
        Session(bad.read_bytes())
    assert "the in-memory model" in str(e.value)
    with pytest.raises(RuntimeFailure) as e:
        Session(bad.read_bytes(), name="face.tflite")
    assert "face.tflite" in str(e.value) and "<model>" not in str(e.value)


def test_npz_keys_that_name_no_input_are_refused_not_matched_by_position(tmp_path):
    from tflc.runtime.inputs import load_npz

    def detail(name):
        return {"name": name, "shape": np.array([1, 4]), "shape_signature": np.array([1, 4]),
                "dtype": np.float32, "quantization": (0.0, 0)}
    a, b = np.zeros((2, 1, 4), np.float32), np.ones((2, 1, 4), np.float32)
    np.savez(tmp_path / "one.npz", images=a)
    with pytest.raises(UsageError, match="no array for input 'x' .has images; key the arrays by the inputs' names, 'x'"):
        load_npz(tmp_path / "one.npz", [detail("x")])
    np.savez(tmp_path / "one.npz", a)
    assert np.array_equal(load_npz(tmp_path / "one.npz", [detail("x")])[1][0], a[1])
    # keys that name no input: their order in the file is a guess, so they are refused, not paired
    np.savez(tmp_path / "two.npz", b_ids=b, a_mask=a)
    with pytest.raises(UsageError, match="no array for input 'ids'.*'ids', 'mask'.*arr_0"):
        load_npz(tmp_path / "two.npz", [detail("ids"), detail("mask")])
    np.savez(tmp_path / "named.npz", mask=a, ids=b)
    steps = load_npz(tmp_path / "named.npz", [detail("ids"), detail("mask")])
    assert np.array_equal(steps[0][0], b[0]) and np.array_equal(steps[0][1], a[0])
    np.savez(tmp_path / "pos.npz", b, a)
    steps = load_npz(tmp_path / "pos.npz", [detail("ids"), detail("mask")])
    assert np.array_equal(steps[0][0], b[0]) and np.array_equal(steps[0][1], a[0])


def test_raw_uint8_pixels_for_a_float_input_are_refused_not_cast(tmp_path):
    from tflc.runtime.inputs import load_npz
    d = {"name": "image", "shape": np.array([1, 2, 2, 3]), "shape_signature": np.array([1, 2, 2, 3]),
         "dtype": np.float32, "quantization": (0.0, 0)}
    np.savez(tmp_path / "px.npz", image=np.full((3, 1, 2, 2, 3), 200, np.uint8))
    with pytest.raises(UsageError, match="uint8 .raw pixels.*--input-range"):
        load_npz(tmp_path / "px.npz", [d])
    np.savez(tmp_path / "f.npz", image=np.full((3, 1, 2, 2, 3), 0.5, np.float32))
    assert load_npz(tmp_path / "f.npz", [d])[0][0].dtype == np.float32


def test_an_empty_npz_and_a_missing_sample_axis_are_one_line_errors(tmp_path):
    from tflc.runtime.inputs import load_npz
    d = {"name": "image", "shape": np.array([1, 4, 4, 3]), "shape_signature": np.array([1, 4, 4, 3]),
         "dtype": np.float32, "quantization": (0.0, 0)}
    np.savez(tmp_path / "empty.npz", image=np.zeros((0, 1, 4, 4, 3), np.float32))
    with pytest.raises(UsageError, match="holds no samples"):
        load_npz(tmp_path / "empty.npz", [d])
    np.savez(tmp_path / "flat.npz", image=np.zeros((8, 4, 4, 3), np.float32))
    with pytest.raises(UsageError, match=r"the array is 8x4x4x3 \(samples go on an axis of their own.*8x1x4x4x3"):
        load_npz(tmp_path / "flat.npz", [d])


def test_machine_names_the_cpu_and_the_isa_flags_int8_speed_depends_on(tmp_path, monkeypatch):
    import builtins
    from tflc.runtime import machine as mach
    fake = tmp_path / "cpuinfo"
    fake.write_text("processor\t: 0\nmodel name\t: Test CPU 9000\nflags\t\t: fpu sse2 avx2 avx512f avx512_vnni\n")
    real_open = builtins.open
    monkeypatch.setattr(builtins, "open", lambda p, *a, **k: real_open(fake if p == "/proc/cpuinfo" else p, *a, **k))
    info = mach.machine()
    assert info["cpu"] == "Test CPU 9000" and info["flags"] == ["avx2", "avx512f", "avx512_vnni"]
    assert info["avx512_vnni"] is True and "flags avx2 avx512f avx512_vnni" in mach.describe(info)


def test_integer_inputs_are_quantized_as_the_float_twins_quantize_op_does():
    """An image scaled into [-1, 1] at 2/255 lands on .5 steps: the conversion must break those
    ties as XNNPACK's QUANTIZE does, or an int8-input model is fed other values than its float twin."""
    from tflc.io import serialize
    from tflc.ir.build import add_op, new_model
    from tflc.passes.quantize_int8 import qparams
    from tflc.runtime.inputs import quantize_like_litert
    from tflc.schema import TYPE_CODES
    scale, zp = 2 / 255, -1
    m, sg = new_model("q")
    x = sg.new_tensor("x", TYPE_CODES["FLOAT32"], (1, 256))
    q = sg.new_tensor("q", TYPE_CODES["INT8"], (1, 256), quantization=qparams(scale, zp))
    add_op(sg, "QUANTIZE", [x], [q])
    sg.set_graph_inputs([x])
    sg.set_graph_outputs([q])
    real = (np.arange(256, dtype=np.float32) / np.float32(127.5) - np.float32(1.0))[None]
    got = Session(serialize(m)).run([real])[0]
    assert np.array_equal(got, quantize_like_litert(real, scale, zp, np.int8))
