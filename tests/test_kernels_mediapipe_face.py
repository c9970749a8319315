"""tflc.kernels.mediapipe_face: MediaPipe's face-mesh custom ops (Landmarks2TransformMatrix,
TransformTensorBilinear, TransformLandmarks, version 2) on hand-built one-op models, against numpy
references written from MediaPipe's semantics (mediapipe/util/tflite/operations/); their declared
constraints, at the IR and at prepare; no Python on the invoke path."""
from __future__ import annotations

import ctypes
import math
import sys
from pathlib import Path

import numpy as np
import pytest
from flatbuffers import flexbuffers

import tflc.kernels
from tflc.errors import RuntimeFailure
from tflc.io import read_model_bytes, serialize
from tflc.ir.build import new_model
from tflc.ir.core import OpCode, Operator
from tflc.runtime import Session
from tflc.schema import OP_CODES, TYPE_CODES

MF = pytest.importorskip("tflc.kernels.mediapipe_face")
L2M, BILINEAR, TLM = "Landmarks2TransformMatrix", "TransformTensorBilinear", "TransformLandmarks"
FACE_OPTIONS = {"left_rotation_idx": 33, "right_rotation_idx": 133, "output_height": 16, "output_width": 16,
                "scale_x": 1.5, "scale_y": 1.5, "target_rotation_radians": 0.0,
                "subset_idxs": [33, 7, 163, 144, 145, 153, 154, 155, 133, 246, 161, 160, 159, 158, 157, 173]}


@pytest.fixture(autouse=True)
def kernels():
    """The three kernels registered for each test (and the registry as it was afterwards)."""
    before = {c: tflc.kernels.lookup(c) for c in MF.KERNELS}
    MF.register_all(replace=True)
    yield
    for c, k in before.items():
        tflc.kernels.unregister(c)
        if k is not None:
            tflc.kernels.register(c, k)


def one_op(code, in_shapes, out_shape, options, *, version=2, dtype="FLOAT32") -> bytes:
    m, sg = new_model(f"{code} test")
    ins = [sg.new_tensor(f"in{k}", TYPE_CODES[dtype if k == 0 else "FLOAT32"], s) for k, s in enumerate(in_shapes)]
    out = sg.new_tensor("out", TYPE_CODES["FLOAT32"], out_shape)
    data = flexbuffers.Dumps(options) if options is not None else None
    sg.add_op(Operator(OpCode(OP_CODES["CUSTOM"], code, version), ins, [out], custom_options=data))
    sg.set_graph_inputs(ins)
    sg.set_graph_outputs([out])
    return serialize(m)


def run(code, inputs, out_shape, options, **kw):
    return Session(one_op(code, [x.shape for x in inputs], out_shape, options, **kw), name="t.tflite").run(inputs)[0]


# --------------------------------------------------------------------------- numpy references (float64)

def translate(tx, ty):
    m = np.eye(4)
    m[0, 3], m[1, 3] = tx, ty
    return m


def rotate(r):
    m = np.eye(4)
    m[:2, :2] = [[math.cos(r), -math.sin(r)], [math.sin(r), math.cos(r)]]
    return m


def ref_landmarks_to_matrix(lm, o):
    """The matrix taking an output_width x output_height crop's pixels to landmark coordinates: the
    crop centred on the subset's box, rotated to make left->right level at the target angle, sized
    to the box times scale."""
    lm = lm.reshape(-1, 3).astype(np.float64)
    left, right = lm[o["left_rotation_idx"], :2], lm[o["right_rotation_idx"], :2]
    rot = o.get("target_rotation_radians", 0.0) - math.atan2(right[1] - left[1], right[0] - left[0])
    pts = lm[o["subset_idxs"], :2] @ rotate(rot)[:2, :2].T
    lo, hi = pts.min(0), pts.max(0)
    centre = rotate(-rot)[:2, :2] @ ((lo + hi) / 2)
    scale = np.diag([o["scale_x"] * (hi - lo)[0] / o["output_width"], o["scale_y"] * (hi - lo)[1] / o["output_height"],
                     1, 1])
    return (translate(*centre) @ rotate(-rot) @ scale @ translate(-o["output_width"] / 2, -o["output_height"] / 2)
            ).reshape(1, 4, 4)


def ref_bilinear(x, m, oh, ow):
    """Bilinear samples of x[0] (H, W, C) at the matrix's image of each output pixel centre; zero
    where the point falls outside [0, W-1] x [0, H-1], out-of-range neighbours read as zero."""
    x = x[0].astype(np.float64)
    h, w, _ = x.shape
    a = m.reshape(4, 4).astype(np.float64)
    # pixel centres: shift the output grid by +0.5 before and the result by -0.5 after
    a = translate(-0.5, -0.5) @ a @ translate(0.5, 0.5)
    oy, ox = np.mgrid[0:oh, 0:ow].astype(np.float64)
    tx = a[0, 0] * ox + a[0, 1] * oy + a[0, 3]
    ty = a[1, 0] * ox + a[1, 1] * oy + a[1, 3]
    inside = (tx >= 0) & (tx <= w - 1) & (ty >= 0) & (ty <= h - 1)
    pad = np.zeros((h + 2, w + 2, x.shape[2]))
    pad[:h, :w] = x
    x0 = np.where(inside, np.floor(tx), 0).astype(int)
    y0 = np.where(inside, np.floor(ty), 0).astype(int)
    fx, fy = (tx - np.floor(tx))[..., None], (ty - np.floor(ty))[..., None]
    out = ((1 - fy) * ((1 - fx) * pad[y0, x0] + fx * pad[y0, x0 + 1])
           + fy * ((1 - fx) * pad[y0 + 1, x0] + fx * pad[y0 + 1, x0 + 1]))
    return np.where(inside[..., None], out, 0)[None]


def ref_transform_landmarks(lm, m):
    m = m.reshape(4, 4).astype(np.float64)
    out = lm.astype(np.float64).copy()
    out[..., 0] = m[0, 0] * lm[..., 0] + m[0, 1] * lm[..., 1] + m[0, 3]
    out[..., 1] = m[1, 0] * lm[..., 0] + m[1, 1] * lm[..., 1] + m[1, 3]
    return out


def matrix(a=1.0, b=0.0, c=0.0, d=1.0, tx=0.0, ty=0.0):
    m = np.eye(4, dtype=np.float32)
    m[0, :2], m[1, :2], m[0, 3], m[1, 3] = (a, b), (c, d), tx, ty
    return m.reshape(1, 4, 4)


def close(got, want, rtol=1e-5, atol=1e-4):
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=rtol, atol=atol)


# --------------------------------------------------------------------------- TransformTensorBilinear

BILINEAR_CASES = {
    "identity, same size": ((1, 6, 7, 3), matrix(), (6, 7)),
    "shift by whole pixels": ((1, 6, 7, 2), matrix(tx=2, ty=-1), (6, 7)),
    "the model's crop: 48x48x32 -> 16x16, rotated, scaled": (
        (1, 48, 48, 32), matrix(1.2 * math.cos(0.3), -1.2 * math.sin(0.3), 1.2 * math.sin(0.3), 1.2 * math.cos(0.3),
                                11.3, 7.9), (16, 16)),
    "upsampling past the edges": ((1, 5, 4, 1), matrix(0.37, 0.05, -0.02, 0.41, -0.7, 0.2), (17, 13)),
    "entirely out of range": ((1, 8, 8, 4), matrix(tx=100, ty=-50), (4, 4)),
    "H = 1": ((1, 1, 9, 2), matrix(0.5, 0, 0, 1, 1.25, 0), (1, 12)),
    "W = 1, C = 1": ((1, 9, 1, 1), matrix(1, 0, 0, 0.5, 0, 1.25), (12, 1)),
    "1x1 output": ((1, 4, 4, 5), matrix(tx=1.3, ty=1.6), (1, 1)),
}


@pytest.mark.parametrize("case", BILINEAR_CASES)
def test_transform_tensor_bilinear_matches_the_reference(case):
    shape, m, (oh, ow) = BILINEAR_CASES[case]
    x = np.random.default_rng(1).standard_normal(shape).astype(np.float32)
    got = run(BILINEAR, [x, m], (1, oh, ow, shape[3]), {"output_height": oh, "output_width": ow})
    close(got, ref_bilinear(x, m, oh, ow))
    if case == "identity, same size":
        assert np.array_equal(got, x)
    if case == "shift by whole pixels":
        assert np.array_equal(got[0, 1:, :5], x[0, :5, 2:]) and not got[0, :, 5:].any() and not got[0, 0].any()
    if case == "entirely out of range":
        assert not got.any()


def test_a_nan_matrix_samples_nothing():
    """MediaPipe would turn floor(NaN) into an index; the kernel writes zeros."""
    x = np.ones((1, 4, 4, 2), np.float32)
    m = matrix(tx=float("nan"))
    got = run(BILINEAR, [x, m], (1, 4, 4, 2), {"output_height": 4, "output_width": 4})
    assert not got.any() and not np.isnan(got).any()


# --------------------------------------------------------------------------- Landmarks2TransformMatrix

def landmarks(n=468, seed=2):
    return (np.random.default_rng(seed).random((1, n, 3)) * [192, 192, 20]).astype(np.float32)


@pytest.mark.parametrize("changes", [{}, {"target_rotation_radians": 0.7}, {"scale_x": 2.0, "output_width": 24},
                                     {"subset_idxs": [5, 9, 77]}, {"subset_idxs": [10, 20]}],
                         ids=["face eye options", "target rotation", "other scale and width", "odd subset",
                              "two points"])
def test_landmarks_to_transform_matrix_matches_the_reference(changes):
    o = {**FACE_OPTIONS, **changes}
    lm = landmarks()
    got = run(L2M, [lm], (1, 4, 4), o)
    close(got, ref_landmarks_to_matrix(lm, o), rtol=1e-4, atol=2e-4)


def test_the_matrix_maps_the_crop_onto_the_box_of_level_landmarks():
    """Axis-aligned landmarks with left->right level: no rotation; the crop's centre maps to the
    box's centre, its corners to the box scaled by scale_x/scale_y about it."""
    lm = np.zeros((1, 4, 3), np.float32)
    lm[0, :, :2] = [[10, 20], [50, 20], [10, 40], [50, 40]]
    o = {**FACE_OPTIONS, "left_rotation_idx": 0, "right_rotation_idx": 1, "subset_idxs": [0, 1, 2, 3],
         "scale_x": 2.0, "scale_y": 1.0, "output_width": 8, "output_height": 4}
    m = run(L2M, [lm], (1, 4, 4), o)[0]
    assert np.allclose(m @ [4, 2, 0, 1], [30, 30, 0, 1]) and np.allclose(m @ [0, 0, 0, 1], [-10, 20, 0, 1])
    assert np.allclose(m @ [8, 4, 0, 1], [70, 40, 0, 1])


def test_coincident_rotation_landmarks_and_a_single_subset_point():
    """left == right: atan2(0, 0) is 0 (no rotation); one subset point: a zero-size box, a matrix
    that maps the whole crop onto that point."""
    lm = landmarks(10)
    o = {**FACE_OPTIONS, "left_rotation_idx": 3, "right_rotation_idx": 3, "subset_idxs": [7]}
    m = run(L2M, [lm], (1, 4, 4), o)
    close(m, ref_landmarks_to_matrix(lm, o))
    assert np.allclose(m[0] @ [5, 9, 0, 1], [*lm[0, 7, :2], 0, 1], atol=1e-4)


def test_the_output_is_resized_to_a_4x4_matrix_as_mediapipe_does():
    lm = landmarks(40)
    o = {**FACE_OPTIONS, "subset_idxs": [1, 2, 3], "left_rotation_idx": 0, "right_rotation_idx": 5}
    got = run(L2M, [lm], (16,), o)
    close(got, ref_landmarks_to_matrix(lm, o), rtol=1e-4, atol=2e-4)


# --------------------------------------------------------------------------- TransformLandmarks

@pytest.mark.parametrize("shape", [(1, 80, 2), (1, 5, 3), (1, 1, 2)])
def test_transform_landmarks_matches_the_reference(shape):
    lm = (np.random.default_rng(3).random(shape) * 16).astype(np.float32)
    m = matrix(1.3, -0.4, 0.35, 1.1, 60.5, 71.25)
    got = run(TLM, [lm, m], shape, None)
    close(got, ref_transform_landmarks(lm, m))
    if shape[2] == 3:
        assert np.array_equal(got[..., 2], lm[..., 2])      # z is copied
    assert np.array_equal(run(TLM, [lm, matrix()], shape, None), lm)


def test_outputs_follow_inputs_resized_at_run_time():
    """An input resized after the model was built prepares again: TransformLandmarks' output takes
    the input's shape (MediaPipe's prepare), on a second session of the same model too."""
    data = one_op(TLM, [(1, 5, 2), (1, 4, 4)], (1, 3, 2), None)        # a stale output shape in the file
    m = matrix(2, 0, 0, 3, 1, 1)
    s = Session(data, name="t.tflite")
    for n in (5, 7, 1):
        lm = np.arange(2 * n, dtype=np.float32).reshape(1, n, 2)
        close(s.run([lm, m])[0], ref_transform_landmarks(lm, m))
    lm = np.ones((1, 4, 3), np.float32)
    assert np.array_equal(Session(data, name="t.tflite").run([lm, m])[0], ref_transform_landmarks(lm, m))


# --------------------------------------------------------------------------- the three chained, as in the model

def test_crop_then_landmarks_back_round_trip():
    """The model's pattern: a matrix from landmarks crops a feature map; a point found in the crop
    goes back through the same matrix. A feature map that is its own x coordinate makes the crop's
    samples equal to the matrix's image of each pixel centre."""
    m, sg = new_model("chain")
    f = TYPE_CODES["FLOAT32"]
    lm, fmap, pts = sg.new_tensor("lm", f, (1, 60, 3)), sg.new_tensor("fmap", f, (1, 48, 48, 2)), \
        sg.new_tensor("pts", f, (1, 3, 2))
    mat, crop, back = sg.new_tensor("mat", f, (1, 4, 4)), sg.new_tensor("crop", f, (1, 16, 16, 2)), \
        sg.new_tensor("back", f, (1, 3, 2))
    o = {**FACE_OPTIONS, "subset_idxs": list(range(10, 30)), "left_rotation_idx": 10, "right_rotation_idx": 20}
    sg.add_op(Operator(OpCode(OP_CODES["CUSTOM"], L2M, 2), [lm], [mat], custom_options=flexbuffers.Dumps(o)))
    sg.add_op(Operator(OpCode(OP_CODES["CUSTOM"], BILINEAR, 2), [fmap, mat], [crop],
                       custom_options=flexbuffers.Dumps({"output_height": 16, "output_width": 16})))
    sg.add_op(Operator(OpCode(OP_CODES["CUSTOM"], TLM, 2), [pts, mat], [back]))
    sg.set_graph_inputs([lm, fmap, pts])
    sg.set_graph_outputs([mat, crop, back])
    rng = np.random.default_rng(4)
    lmv = (rng.random((1, 60, 3)) * [20, 20, 1] + [14, 14, 0]).astype(np.float32)
    yy, xx = np.mgrid[0:48, 0:48].astype(np.float32)
    fm = np.stack([xx, yy], -1)[None]
    p = np.array([[[3.5, 4.5], [8, 8], [15, 0]]], np.float32)
    s = Session(serialize(m), name="chain.tflite")
    got_m, got_crop, got_back = s.run([lmv, fm, p])
    want_m = ref_landmarks_to_matrix(lmv, o)
    close(got_m, want_m, rtol=1e-4, atol=2e-4)
    close(got_crop, ref_bilinear(fm, got_m, 16, 16), atol=1e-3)
    close(got_back, ref_transform_landmarks(p, got_m), atol=1e-3)
    # inside the map the samples are the transformed pixel centres (x, y) + 0.5 - 0.5
    centre = got_m[0] @ [8.5, 8.5, 0, 1] - [0.5, 0.5, 0, 0]
    assert np.allclose(got_crop[0, 8, 8], centre[:2], atol=1e-3)
    assert s.kernel_delegate.claimed == {0: [0, 1, 2]}


def test_no_python_runs_per_invoke():
    """The invokes are Numba cfuncs: after the first run (prepare, in Python), a run calls no Python
    code of the kernels' module."""
    x = np.random.default_rng(5).random((1, 8, 8, 4)).astype(np.float32)
    s = Session(one_op(BILINEAR, [(1, 8, 8, 4), (1, 4, 4)], (1, 4, 4, 4), {"output_height": 4, "output_width": 4}),
                name="t.tflite")
    s.run([x, matrix(tx=1)])
    seen = []

    def profile(frame, event, arg):
        if event == "call" and frame.f_code.co_filename == MF.__file__:
            seen.append(frame.f_code.co_name)
    sys.setprofile(profile)
    try:
        for _ in range(3):
            out = s.run([x, matrix(tx=1)])[0]
    finally:
        sys.setprofile(None)
    assert seen == [] and np.array_equal(out, x[:, :4, 1:5])


# --------------------------------------------------------------------------- declared constraints

REFUSED = {
    "batch of 2": (BILINEAR, [(2, 8, 8, 1), (1, 4, 4)], (2, 4, 4, 1), {"output_height": 4, "output_width": 4},
                   "input 0 (data) has shape [2, 8, 8, 1], needs [1, H, W, C]"),
    "rank 3 data": (BILINEAR, [(8, 8, 1), (1, 4, 4)], (1, 4, 4, 1), {"output_height": 4, "output_width": 4},
                    "needs [1, H, W, C]"),
    "options disagree with the output": (BILINEAR, [(1, 8, 8, 1), (1, 4, 4)], (1, 4, 4, 1),
                                         {"output_height": 5, "output_width": 4}, "needs [1, 5, 4, 1]"),
    "version-1 options": (BILINEAR, [(1, 8, 8, 1), (1, 4, 4)], (1, 4, 4, 1), {"mode": "bilinear", "output_size": [4, 4]},
                          "version 1, which is not implemented"),
    "a 3x3 matrix": (TLM, [(1, 5, 2), (1, 3, 3)], (1, 5, 2), None, "needs 16 floats"),
    "4-D landmarks (version 1)": (TLM, [(1, 1, 5, 2), (1, 4, 4)], (1, 1, 5, 2), None, "needs [1, N, 2] or [1, N, 3]"),
    "an index past the landmarks": (L2M, [(1, 100, 3)], (1, 4, 4), FACE_OPTIONS,
                                    "option right_rotation_idx is 133, needs an index in [0, 99]"),
    "an empty subset": (L2M, [(1, 468, 3)], (1, 4, 4), {**FACE_OPTIONS, "subset_idxs": []}, "subset_idxs is empty"),
    "zero scale": (L2M, [(1, 468, 3)], (1, 4, 4), {**FACE_OPTIONS, "scale_y": 0.0}, "option scale_y is 0.0, needs > 0"),
    "a height past int32": (BILINEAR, [(1, 8, 8, 1), (1, 4, 4)], (1, 4, 4, 1), {"output_height": 1 << 40,
                            "output_width": 4}, "option output_height is 1099511627776, needs a 32-bit int"),
    "2-D landmarks": (L2M, [(1, 468, 2)], (1, 4, 4), FACE_OPTIONS, "needs [1, N, 3]"),
    "a float subset": (L2M, [(1, 468, 3)], (1, 4, 4), {**FACE_OPTIONS, "subset_idxs": [1.5]}, "needs a vector of 32-bit ints"),
}


@pytest.mark.parametrize("case", REFUSED)
def test_ops_outside_the_constraints_are_refused_with_the_reason(case):
    code, in_shapes, out_shape, options, reason = REFUSED[case]
    data = one_op(code, in_shapes, out_shape, options)
    ok, why = MF.CONSTRAINTS[code](read_model_bytes(data).main.operators[0])     # on the IR
    assert not ok and reason in why
    inputs = [np.zeros(s, np.float32) for s in in_shapes]
    with pytest.raises(RuntimeFailure) as e:                                        # at prepare
        Session(data, name="t.tflite").run(inputs)
    assert reason in str(e.value) and f"{code} (tflc.kernels.mediapipe_face)" in str(e.value)


def test_constraints_accept_the_ops_they_run_and_say_what_they_need():
    data = one_op(L2M, [(1, 468, 3)], (1, 4, 4), FACE_OPTIONS)
    assert MF.CONSTRAINTS[L2M](read_model_bytes(data).main.operators[0]) == (True, "")
    v1 = one_op(TLM, [(1, 5, 2), (1, 4, 4)], (1, 5, 2), None, version=1)
    assert MF.CONSTRAINTS[TLM](read_model_bytes(v1).main.operators[0]) == (
        False, "TransformLandmarks version 1 is not implemented (only version 2)")
    int_in = one_op(TLM, [(1, 5, 2), (1, 4, 4)], (1, 5, 2), None, dtype="INT32")
    assert MF.CONSTRAINTS[TLM](read_model_bytes(int_in).main.operators[0]) == (False, "input 0 is INT32, needs FLOAT32")
    assert "[1, H, W, C]" in MF.CONSTRAINTS[BILINEAR].describe()


# --------------------------------------------------------------------------- how the kernels are found

def test_the_struct_offsets_are_the_runtimes():
    from tflc.runtime import tflite_c as T
    assert (MF.CTX_TENSORS, MF.CTX_RESIZE_TENSOR, MF.CTX_REPORT_ERROR) == (
        T.TfLiteContext.tensors.offset, T.TfLiteContext.ResizeTensor.offset, T.TfLiteContext.ReportError.offset)
    assert (MF.NODE_INPUTS, MF.NODE_OUTPUTS, MF.NODE_USER_DATA, MF.NODE_CUSTOM_DATA, MF.NODE_CUSTOM_SIZE) == (
        T.TfLiteNode.inputs.offset, T.TfLiteNode.outputs.offset, T.TfLiteNode.user_data.offset,
        T.TfLiteNode.custom_initial_data.offset, T.TfLiteNode.custom_initial_data_size.offset)
    assert (MF.TENSOR_SIZE, MF.TENSOR_TYPE, MF.TENSOR_DATA, MF.TENSOR_DIMS, MF.TENSOR_BYTES) == (
        ctypes.sizeof(T.TfLiteTensor), T.TfLiteTensor.type.offset, T.TfLiteTensor.data.offset,
        T.TfLiteTensor.dims.offset, T.TfLiteTensor.bytes.offset)
    assert [c for c, dt in T.DTYPES.items() if dt is np.float32] == [MF.TFLITE_FLOAT32]


def test_register_all_and_entry_point_targets():
    """``register_all()`` registers the three; a package's entry points can name the module's
    kernels (``Landmarks2TransformMatrix = "tflc.kernels.mediapipe_face:Landmarks2TransformMatrix"``)."""
    from importlib import metadata
    got = MF.register_all(replace=True)
    assert set(got) == {L2M, BILINEAR, TLM} and all(tflc.kernels.lookup(c) is k for c, k in got.items())
    assert all(k.kind == "native" and k.prepare for k in got.values())
    with pytest.raises(ValueError, match="already registered"):
        MF.register_all()
    for code in (L2M, BILINEAR, TLM):
        ep = metadata.EntryPoint(name=code, value=f"tflc.kernels.mediapipe_face:{code}", group=tflc.kernels.ENTRY_POINT_GROUP)
        assert tflc.kernels.as_kernel(ep.load()) is MF.KERNELS[code]


def test_the_docs_python_kernel_example_runs():
    """docs/kernels.md: its PythonKernel example ('ScaleBy') registers and runs."""
    import re
    text = (Path(__file__).resolve().parents[1] / "docs" / "kernels.md").read_text()
    code = re.search(r"```python\n# my_kernels.py\n(.*?)```", text, re.S).group(1)
    try:
        exec(compile(code, "kernels.md", "exec"), {})
        x = np.arange(4, dtype=np.float32).reshape(1, 4)
        got = Session(one_op("ScaleBy", [(1, 4)], (1, 4), {"factor": 2.5}), name="t.tflite").run([x])[0]
        assert np.array_equal(got, x * 2.5)
    finally:
        tflc.kernels.unregister("ScaleBy")
    assert "tflc.kernels.mediapipe_face:TransformTensorBilinear" in text and "register_all()" in text
