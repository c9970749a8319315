"""Kernels for MediaPipe's face-mesh custom ops: tflc's worked example of user kernels.

MediaPipe's ``face_landmark_with_attention.tflite`` holds three custom ops that stock LiteRT has
no kernel for (their reference kernels live in MediaPipe, ``mediapipe/util/tflite/operations/``):

* ``Landmarks2TransformMatrix`` (v2): from a set of landmarks, the 4x4 matrix mapping an
  ``output_width x output_height`` crop, rotated so that two chosen landmarks are level and sized
  to the bounding box of a subset of landmarks (times ``scale_x``/``scale_y``), back to the
  landmarks' coordinates;
* ``TransformTensorBilinear`` (v2): samples an NHWC tensor bilinearly at the points such a
  matrix maps the output's pixel grid to (pixel centres, "align corners"); zero outside;
* ``TransformLandmarks`` (v2): applies the matrix's first two rows to 2D (or 3D: z copied)
  landmarks.

Each runs as a :class:`~tflc.kernels.NativeKernel`: ``invoke`` is a Numba ``@cfunc`` that LiteRT
calls directly (no Python per call), reading ``TfLiteNode``/``TfLiteTensor`` through raw pointers;
``prepare`` is a Python ctypes callback (once per shape change, not per call) that checks the op
against its declared constraints, decodes its flexbuffer options, resizes outputs as MediaPipe
does, and writes the decoded options into the op's parameter block, which ``init`` made when the
interpreter was built (the delegate keeps it with the op, so it is freed with the interpreter) and
``invoke`` reads through the op node's ``user_data``.

The maths follow MediaPipe's CPU kernels (float32 where they compute in float, double where they
do). Where MediaPipe would read out of bounds or leave outputs unwritten (a landmark index past
the input, a batch of more than one, a matrix of fewer than 16 floats), these kernels refuse the
op at prepare with a reason instead. Only version 2 of each op is implemented (the version the
MediaPipe 0.10 models use); version 1 ops differ in maths and are refused.

Register them explicitly, ``tflc.kernels.mediapipe_face.register_all()``, or through the entry
points in ``pyproject.toml`` (group ``tflc.kernels``), which an installed tflc reads on the first
kernel lookup. :data:`CONSTRAINTS` holds each op's constraints as a ``tflc.capabilities``
predicate over IR ops (``pred(op) -> (ok, reason)``, ``pred.describe()``); prepare applies the
same checks to the tensors LiteRT hands it.

The layout of LiteRT's structs, and the jitted readers over it, are shared with tflc's own kernels
(``kernels/_native.py``; a test compares the offsets with ``tflc.runtime.tflite_c``).
"""
from __future__ import annotations

import ctypes
import math
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np
from flatbuffers import flexbuffers
from numba import carray, cfunc, njit, types

from tflc.capabilities import Predicate

# the layout of LiteRT's structs and the readers over it are shared by every native kernel
from ._native import (CTX_REPORT_ERROR, CTX_RESIZE_TENSOR, CTX_TENSORS, ERROR, NODE_CUSTOM_DATA,
                      NODE_CUSTOM_SIZE, NODE_INPUTS, NODE_OUTPUTS, NODE_USER_DATA, OK, TENSOR_BYTES, TENSOR_DATA,
                      TENSOR_DIMS, TENSOR_SIZE, TENSOR_TYPE, Refused, _PrepareFn, _ReportFn)
from ._native import as_ptr as _as_ptr, dim as _dim, int_array as _int_array
from ._native import load_i32 as _load_i32, load_u64 as _load_u64, read_u64 as _u64
from ._native import resize_tensor as _resize_tensor, tensor_at as _tensor_at

TFLITE_FLOAT32 = 1                    # TfLiteType of float32 (the schema's FLOAT32 is 0)

# the three custom codes, the version implemented
LANDMARKS_TO_MATRIX, TENSOR_BILINEAR, TRANSFORM_LANDMARKS = \
    "Landmarks2TransformMatrix", "TransformTensorBilinear", "TransformLandmarks"
VERSION = 2

# --------------------------------------------------------------------------- options

# the options each op reads; a missing one reads as 0, as MediaPipe's flexbuffer parsing does
_OPTION_KINDS = {
    LANDMARKS_TO_MATRIX: {"subset_idxs": "ints", "left_rotation_idx": "int", "right_rotation_idx": "int",
                          "target_rotation_radians": "float", "output_height": "int", "output_width": "int",
                          "scale_x": "float", "scale_y": "float"},
    TENSOR_BILINEAR: {"output_height": "int", "output_width": "int"},
    TRANSFORM_LANDMARKS: {},
}
# keys of version 1 of an op (other maths), where only they tell the versions apart at run time
# (versions 1 of the other two ops take 4-D inputs, which their shape checks refuse)
_V1_KEYS = {LANDMARKS_TO_MATRIX: set(), TENSOR_BILINEAR: {"mode", "output_size"}, TRANSFORM_LANDMARKS: set()}
_INT32 = (-(1 << 31), (1 << 31) - 1)


def decode_options(code: str, data: bytes | None) -> dict[str, Any]:
    """The op's flexbuffer custom options as the kernel reads them (every key it reads, missing
    ones as 0). Raises :class:`Refused` for options that are not a map, a wrongly typed value, or
    version-1 keys."""
    kinds = _OPTION_KINDS[code]
    raw: dict = {}
    if data:
        try:
            raw = flexbuffers.Loads(bytes(data))
        except Exception as e:          # noqa: BLE001 - a corrupt buffer is a reason, not a crash
            raise Refused(f"its custom options are not a flexbuffer ({type(e).__name__}: {e})") from None
        if not isinstance(raw, dict):
            raise Refused(f"its custom options are a flexbuffer {type(raw).__name__}, not a map")
    v1 = sorted(set(raw) & _V1_KEYS[code])
    if v1:
        raise Refused(f"its options ({', '.join(v1)}) are those of {code} version 1, which is not implemented "
                      f"(only version {VERSION})")
    out: dict[str, Any] = {}
    for key, kind in kinds.items():
        v = raw.get(key)
        if v is None:
            out[key] = [] if kind == "ints" else (0.0 if kind == "float" else 0)
        elif kind == "ints":
            if not isinstance(v, (list, tuple)) or not all(isinstance(i, int) and not isinstance(i, bool)
                                                           and _INT32[0] <= i <= _INT32[1] for i in v):
                raise Refused(f"option {key} is {v!r}, needs a vector of 32-bit ints")
            out[key] = [int(i) for i in v]
        elif kind == "int":
            if not isinstance(v, int) or isinstance(v, bool) or not _INT32[0] <= v <= _INT32[1]:
                raise Refused(f"option {key} is {v!r}, needs a 32-bit int")
            out[key] = int(v)
        else:
            if not isinstance(v, (int, float)) or isinstance(v, bool):
                raise Refused(f"option {key} is {v!r}, needs a number")
            out[key] = float(np.float32(v))
    return out


# --------------------------------------------------------------------------- declared constraints

@dataclass(frozen=True)
class Spec:
    """One op's declared constraints: ``check(shapes, dtypes, options)`` returns the output shapes
    the kernel gives (MediaPipe's prepare) or raises :class:`Refused` with the reason."""
    code: str
    n_inputs: int
    n_outputs: int
    text: str                                       # the constraints in words, for docs and describe()
    shapes: Callable[[list[tuple[int, ...]], list[tuple[int, ...]], dict], list[tuple[int, ...]]]

    def check(self, in_shapes: Sequence[tuple[int, ...] | None], out_shapes: Sequence[tuple[int, ...] | None],
              dtypes: Sequence[str], options: bytes | None) -> tuple[list[tuple[int, ...]], dict]:
        if len(in_shapes) != self.n_inputs or len(out_shapes) != self.n_outputs:
            raise Refused(f"it has {len(in_shapes)} input(s) and {len(out_shapes)} output(s), needs "
                          f"{self.n_inputs} and {self.n_outputs}")
        for k, d in enumerate(dtypes):
            if d != "FLOAT32":
                which = f"input {k}" if k < len(in_shapes) else f"output {k - len(in_shapes)}"
                raise Refused(f"{which} is {d}, needs FLOAT32")
        for k, s in enumerate(in_shapes):
            if s is None or any(d < 0 for d in s):
                raise Refused(f"input {k} has the unknown or dynamic shape {s}, needs a static shape")
        opts = decode_options(self.code, options)
        outs = self.shapes([tuple(s) for s in in_shapes], [tuple(s) if s is not None else None for s in out_shapes],
                           opts)
        return outs, opts


def _matrix_ok(shape: tuple[int, ...], which: str) -> None:
    if math.prod(shape) != 16:
        raise Refused(f"{which} (the matrix) has shape {list(shape)}, needs 16 floats (a 4x4 matrix, e.g. [1, 4, 4])")


def _landmarks_to_matrix_shapes(ins, outs, o):
    (shape,) = ins
    if len(shape) != 3 or shape[0] != 1 or shape[2] != 3 or shape[1] < 1:
        raise Refused(f"input 0 (landmarks) has shape {list(shape)}, needs [1, N, 3] with N >= 1")
    n = shape[1]
    if not o["subset_idxs"]:
        raise Refused("option subset_idxs is empty, needs at least one landmark index")
    for key in ("left_rotation_idx", "right_rotation_idx"):
        if not 0 <= o[key] < n:
            raise Refused(f"option {key} is {o[key]}, needs an index in [0, {n - 1}] (the input's landmarks)")
    bad = [i for i in o["subset_idxs"] if not 0 <= i < n]
    if bad:
        raise Refused(f"option subset_idxs holds {bad[0]}, needs indices in [0, {n - 1}] (the input's landmarks)")
    for key in ("output_height", "output_width"):
        if o[key] <= 0:
            raise Refused(f"option {key} is {o[key]}, needs > 0")
    for key in ("scale_x", "scale_y"):
        if not o[key] > 0:
            raise Refused(f"option {key} is {o[key]}, needs > 0")
    return [(1, 4, 4)]


def _tensor_bilinear_shapes(ins, outs, o):
    data, matrix = ins
    if len(data) != 4 or data[0] != 1 or min(data) < 1:
        raise Refused(f"input 0 (data) has shape {list(data)}, needs [1, H, W, C] with H, W, C >= 1")
    _matrix_ok(matrix, "input 1")
    out = outs[0]
    if out is None or len(out) != 4:
        raise Refused(f"output 0 has shape {out}, needs [1, output_height, output_width, C]")
    want = (1, o["output_height"], o["output_width"], data[3])
    if o["output_height"] <= 0 or o["output_width"] <= 0:
        raise Refused(f"options output_height, output_width are {o['output_height']}, {o['output_width']}, need > 0")
    if tuple(out) != want:
        raise Refused(f"output 0 has shape {list(out)}, needs {list(want)} (output_height, output_width from the "
                      "options, the input's channels)")
    return [want]


def _transform_landmarks_shapes(ins, outs, o):
    landmarks, matrix = ins
    if len(landmarks) != 3 or landmarks[0] != 1 or landmarks[2] not in (2, 3):
        raise Refused(f"input 0 (landmarks) has shape {list(landmarks)}, needs [1, N, 2] or [1, N, 3]")
    _matrix_ok(matrix, "input 1")
    return [tuple(landmarks)]


SPECS: dict[str, Spec] = {
    LANDMARKS_TO_MATRIX: Spec(
        LANDMARKS_TO_MATRIX, 1, 1,
        "version 2; input 0 FLOAT32 [1, N, 3] landmarks; options subset_idxs (non-empty), left_rotation_idx, "
        "right_rotation_idx in [0, N), output_height, output_width > 0, scale_x, scale_y > 0, "
        "target_rotation_radians; output 0 FLOAT32 [1, 4, 4]",
        _landmarks_to_matrix_shapes),
    TENSOR_BILINEAR: Spec(
        TENSOR_BILINEAR, 2, 1,
        "version 2; input 0 FLOAT32 [1, H, W, C]; input 1 FLOAT32, 16 values (a 4x4 matrix); output 0 FLOAT32 "
        "[1, output_height, output_width, C] as the options say",
        _tensor_bilinear_shapes),
    TRANSFORM_LANDMARKS: Spec(
        TRANSFORM_LANDMARKS, 2, 1,
        "version 2; input 0 FLOAT32 [1, N, 2] or [1, N, 3] landmarks; input 1 FLOAT32, 16 values (a 4x4 matrix); "
        "output 0 FLOAT32, the input's shape",
        _transform_landmarks_shapes),
}


def _ir_predicate(spec: Spec) -> Predicate:
    def test(op: Any) -> tuple[bool, str]:
        if op.type != spec.code:
            return False, f"op is {op.type}, needs {spec.code}"
        if op.opcode.version != VERSION:
            return False, f"{spec.code} version {op.opcode.version} is not implemented (only version {VERSION})"
        ins = [t for t in op.inputs]
        outs = [t for t in op.outputs]
        if any(t is None for t in ins + outs):
            return False, "an input or output is omitted"
        try:
            spec.check([t.shape for t in ins], [t.shape for t in outs], [t.type_name for t in ins + outs],
                       op.custom_options)
        except Refused as e:
            return False, str(e)
        return True, ""
    return Predicate(test, f"op is {spec.code} {spec.text}")


#: custom code -> the kernel's constraints as a ``tflc.capabilities`` predicate over IR ops
CONSTRAINTS: dict[str, Predicate] = {code: _ir_predicate(spec) for code, spec in SPECS.items()}


# --------------------------------------------------------------------------- the invoke functions (Numba)


u64, i32, f32 = np.uint64, np.int32, np.float32


@njit(inline="always")
def _floats(t, n):
    return carray(_as_ptr(_load_u64(t + u64(TENSOR_DATA))), (n,), np.float32)

@njit(inline="always")
def _mat4_mul(a, b, out):
    """out = a @ b, float32, summed in MediaPipe's order."""
    for r in range(4):
        for c in range(4):
            s = f32(0.0)
            for k in range(4):
                s = f32(s + a[r * 4 + k] * b[k * 4 + c])
            out[r * 4 + c] = s

_SIG = types.int32(types.uint64, types.uint64)


@cfunc(_SIG, nopython=True, cache=True)
def landmarks_to_matrix(context, node):
    op = _load_u64(node + u64(NODE_USER_DATA))            # the op as the model holds it
    params = _load_u64(op + u64(NODE_USER_DATA))          # made by init, filled by prepare
    if params == u64(0):
        return i32(ERROR)
    p = carray(_as_ptr(params), (5,), np.int32)
    pf = carray(_as_ptr(params + u64(20)), (3,), np.float32)
    n_idx, left, right, out_h, out_w = p[0], p[1], p[2], p[3], p[4]
    target, scale_x, scale_y = pf[0], pf[1], pf[2]
    idx = carray(_as_ptr(params + u64(32)), (n_idx,), np.int32)
    t_in = _tensor_at(context, _load_u64(op + u64(NODE_INPUTS)), 0)
    t_out = _tensor_at(context, _load_u64(op + u64(NODE_OUTPUTS)), 0)
    n = _dim(t_in, 1)
    lm = _floats(t_in, n * 3)
    out = _floats(t_out, 16)
    # rotation: the angle that levels left -> right, subtracted from the target
    rot = f32(target - f32(math.atan2(f32(lm[right * 3 + 1] - lm[left * 3 + 1]),
                                      f32(lm[right * 3] - lm[left * 3]))))
    c, s = f32(math.cos(rot)), f32(math.sin(rot))
    # bounding box of the subset, rotated
    max_x = min_x = max_y = min_y = f32(0.0)
    for j in range(n_idx):
        x, y = lm[idx[j] * 3], lm[idx[j] * 3 + 1]
        rx = f32(f32(f32(c * x) + f32(-s * y)) + f32(0.0))
        ry = f32(f32(f32(s * x) + f32(c * y)) + f32(0.0))
        if j == 0:
            max_x, min_x, max_y, min_y = rx, rx, ry, ry
        else:
            max_x, min_x = max(max_x, rx), min(min_x, rx)
            max_y, min_y = max(max_y, ry), min(min_y, ry)
    crop_w, crop_h = f32(max_x - min_x), f32(max_y - min_y)
    mx, my = f32(f32(min_x + max_x) / f32(2.0)), f32(f32(min_y + max_y) / f32(2.0))
    ci, si = f32(math.cos(-rot)), f32(math.sin(-rot))
    crop_x = f32(f32(f32(ci * mx) + f32(-si * my)) + f32(0.0))
    crop_y = f32(f32(f32(si * mx) + f32(ci * my)) + f32(0.0))
    # t = shift(crop) * rotation(-rot) * scale * shift(-output / 2)
    t = np.zeros(16, np.float32)
    m = np.zeros(16, np.float32)
    tmp = np.zeros(16, np.float32)
    for k in range(4):
        t[k * 5] = f32(1.0)
    m[:] = 0.0
    for k in range(4):
        m[k * 5] = f32(1.0)
    m[3], m[7] = crop_x, crop_y
    _mat4_mul(t, m, tmp)
    t[:] = tmp
    r2 = f32(-rot)
    m[:] = 0.0
    m[0], m[1], m[4], m[5] = f32(math.cos(r2)), f32(-f32(math.sin(r2))), f32(math.sin(r2)), f32(math.cos(r2))
    m[10], m[15] = f32(1.0), f32(1.0)
    _mat4_mul(t, m, tmp)
    t[:] = tmp
    m[:] = 0.0
    m[0] = f32(f32(scale_x * crop_w) / f32(out_w))
    m[5] = f32(f32(scale_y * crop_h) / f32(out_h))
    m[10], m[15] = f32(1.0), f32(1.0)
    _mat4_mul(t, m, tmp)
    t[:] = tmp
    m[:] = 0.0
    for k in range(4):
        m[k * 5] = f32(1.0)
    m[3], m[7] = f32(-1.0 * (out_w / 2.0)), f32(-1.0 * (out_h / 2.0))
    _mat4_mul(t, m, tmp)
    for k in range(16):
        out[k] = tmp[k]
    return i32(OK)

@cfunc(_SIG, nopython=True, cache=True)
def tensor_bilinear(context, node):
    op = _load_u64(node + u64(NODE_USER_DATA))
    if _load_u64(op + u64(NODE_USER_DATA)) == u64(0):
        return i32(ERROR)
    ins = _load_u64(op + u64(NODE_INPUTS))
    t_in, t_m = _tensor_at(context, ins, 0), _tensor_at(context, ins, 1)
    t_out = _tensor_at(context, _load_u64(op + u64(NODE_OUTPUTS)), 0)
    h, w, ch = _dim(t_in, 1), _dim(t_in, 2), _dim(t_in, 3)
    oh, ow = _dim(t_out, 1), _dim(t_out, 2)
    x = _floats(t_in, h * w * ch)
    mm = _floats(t_m, 16)
    out = _floats(t_out, oh * ow * ch)
    x0, x1, x2, x3 = mm[0], mm[1], mm[2], mm[3]
    y0, y1, y2, y3 = mm[4], mm[5], mm[6], mm[7]
    # align corners: T -> S (T A), S and A shifting by -0.5 and +0.5 (computed in double, as in C)
    x3 = f32(float(x3) + (float(x0) * 0.5 + float(x1) * 0.5 - 0.5))
    y3 = f32(float(y3) + (float(y0) * 0.5 + float(y1) * 0.5 - 0.5))
    zero, one = f32(0.0), f32(1.0)
    for oy in range(oh):
        for ox in range(ow):
            fx, fy = f32(ox), f32(oy)
            tx = f32(f32(f32(f32(x0 * fx) + f32(x1 * fy)) + f32(x2 * zero)) + f32(x3 * one))
            ty = f32(f32(f32(f32(y0 * fx) + f32(y1 * fy)) + f32(y2 * zero)) + f32(y3 * one))
            base = (oy * ow + ox) * ch
            # (a NaN coordinate samples nothing: MediaPipe would convert floor(NaN) to an index)
            if tx < 0.0 or tx > f32(w - 1) or ty < 0.0 or ty > f32(h - 1) or tx != tx or ty != ty:
                for z in range(ch):
                    out[base + z] = zero
                continue
            flx, fly = math.floor(tx), math.floor(ty)
            c0, r0 = int(flx), int(fly)
            right = float(f32(tx - f32(flx)))
            lower = float(f32(ty - f32(fly)))
            # inside the input, (r0, c0) is too; its right and lower neighbours may not be
            b00 = (r0 * w + c0) * ch
            has_right, has_lower = c0 + 1 < w, r0 + 1 < h
            b01, b10 = b00 + ch, b00 + w * ch
            b11 = b10 + ch
            wr, wl = 1.0 - right, 1.0 - lower
            if has_right and has_lower:      # slices: a loop LLVM vectorizes (3x faster than indexing x)
                q11s, q21s = x[b00:b00 + ch], x[b01:b01 + ch]
                q12s, q22s = x[b10:b10 + ch], x[b11:b11 + ch]
                o = out[base:base + ch]
                for z in range(ch):
                    upper = f32(wr * float(q11s[z]) + right * float(q21s[z]))
                    low = f32(wr * float(q12s[z]) + right * float(q22s[z]))
                    o[z] = f32(lower * float(low) + wl * float(upper))
            else:                    # a neighbour past the edge reads as zero
                for z in range(ch):
                    q11 = x[b00 + z]
                    q21 = x[b01 + z] if has_right else zero
                    q12 = x[b10 + z] if has_lower else zero
                    q22 = x[b11 + z] if has_right and has_lower else zero
                    upper = f32(wr * float(q11) + right * float(q21))
                    low = f32(wr * float(q12) + right * float(q22))
                    out[base + z] = f32(lower * float(low) + wl * float(upper))
    return i32(OK)

@cfunc(_SIG, nopython=True, cache=True)
def transform_landmarks(context, node):
    op = _load_u64(node + u64(NODE_USER_DATA))
    if _load_u64(op + u64(NODE_USER_DATA)) == u64(0):
        return i32(ERROR)
    ins = _load_u64(op + u64(NODE_INPUTS))
    t_in, t_m = _tensor_at(context, ins, 0), _tensor_at(context, ins, 1)
    t_out = _tensor_at(context, _load_u64(op + u64(NODE_OUTPUTS)), 0)
    n, d = _dim(t_in, 1), _dim(t_in, 2)
    lm = _floats(t_in, n * d)
    mm = _floats(t_m, 16)
    out = _floats(t_out, n * d)
    zero, one = f32(0.0), f32(1.0)
    for k in range(n):
        x, y = lm[k * d], lm[k * d + 1]
        out[k * d] = f32(f32(f32(f32(mm[0] * x) + f32(mm[1] * y)) + f32(mm[2] * zero)) + f32(mm[3] * one))
        out[k * d + 1] = f32(f32(f32(f32(mm[4] * x) + f32(mm[5] * y)) + f32(mm[6] * zero)) + f32(mm[7] * one))
        if d == 3:
            out[k * d + 2] = lm[k * d + 2]
    return i32(OK)

_INVOKES = {LANDMARKS_TO_MATRIX: landmarks_to_matrix, TENSOR_BILINEAR: tensor_bilinear,
            TRANSFORM_LANDMARKS: transform_landmarks}


# --------------------------------------------------------------------------- prepare (Python, once per shape)

def _params_block(code: str, opts: dict) -> np.ndarray:
    """What invoke reads from ``user_data``: int32 words (floats stored as their bits)."""
    if code != LANDMARKS_TO_MATRIX:
        return np.ones(1, np.int32)       # nothing to pass; non-zero marks "prepared"
    idx = opts["subset_idxs"]
    block = np.zeros(8 + len(idx), np.int32)
    block[:5] = [len(idx), opts["left_rotation_idx"], opts["right_rotation_idx"], opts["output_height"],
                 opts["output_width"]]
    block[5:8] = np.array([opts["target_rotation_radians"], opts["scale_x"], opts["scale_y"]], np.float32).view(np.int32)
    block[8:] = idx
    return block


def _prepare_op(code: str, context: int, node: int) -> None:
    op = _u64(node + NODE_USER_DATA)
    tensors = _u64(context + CTX_TENSORS)
    ins, outs = _int_array(_u64(op + NODE_INPUTS)), _int_array(_u64(op + NODE_OUTPUTS))
    if any(i < 0 for i in ins + outs):
        raise Refused("an input or output is omitted")
    addr = [tensors + i * TENSOR_SIZE for i in ins + outs]
    dtypes = ["FLOAT32" if ctypes.c_int.from_address(a).value == TFLITE_FLOAT32 else
              f"TfLiteType {ctypes.c_int.from_address(a).value}" for a in addr]
    shapes = [tuple(_int_array(_u64(a + TENSOR_DIMS))) for a in addr]
    size = ctypes.c_int.from_address(op + NODE_CUSTOM_SIZE).value
    data = ctypes.string_at(_u64(op + NODE_CUSTOM_DATA), size) if size > 0 else b""
    want, opts = SPECS[code].check(shapes[:len(ins)], shapes[len(ins):], dtypes, data)
    for a, have, shape in zip(addr[len(ins):], shapes[len(ins):], want):
        if tuple(have) != tuple(shape):
            _resize_tensor(context, a, shape)
    block = _params_block(code, opts)
    held = _u64(op + NODE_USER_DATA)      # the block init made, owned by the interpreter's delegate
    if not held:
        raise Refused("no parameter block: the kernel was registered without its init")
    (ctypes.c_int32 * block.size).from_address(held)[:] = block.tolist()


def _init(code: str) -> Callable[[bytes], np.ndarray]:
    """``init``: a parameter block of the op's size, which lives as long as the interpreter (prepare
    fills it). Options it cannot read give a placeholder: prepare then refuses the op with the reason."""
    def init(options: bytes) -> np.ndarray:
        try:
            return _params_block(code, decode_options(code, options))
        except Refused:
            return np.zeros(1, np.int32)
    return init


def _make_prepare(code: str) -> Any:
    def prepare(context: int, node: int) -> int:
        try:
            _prepare_op(code, context, node)
            return OK
        except BaseException as e:       # noqa: BLE001 - nothing may unwind into LiteRT
            msg = str(e) if isinstance(e, Refused) else f"{type(e).__name__}: {e}"
            try:
                _ReportFn(_u64(context + CTX_REPORT_ERROR))(context, b"%s",
                                                             f"{code} (tflc.kernels.mediapipe_face): {msg}".encode())
            except Exception:            # noqa: BLE001
                pass
            return ERROR
    return _PrepareFn(prepare)


# --------------------------------------------------------------------------- the kernels

_PREPARES = {code: _make_prepare(code) for code in SPECS}      # module globals: live as long as the process


def _kernel(code: str) -> Any:
    from .kernel import NativeKernel
    return NativeKernel(invoke=_INVOKES[code].address, prepare=ctypes.cast(_PREPARES[code], ctypes.c_void_p).value,
                        init=_init(code))


# the kernels, by custom code (what the entry points name)
Landmarks2TransformMatrix = _kernel(LANDMARKS_TO_MATRIX)
TransformTensorBilinear = _kernel(TENSOR_BILINEAR)
TransformLandmarks = _kernel(TRANSFORM_LANDMARKS)
KERNELS = {LANDMARKS_TO_MATRIX: Landmarks2TransformMatrix, TENSOR_BILINEAR: TransformTensorBilinear,
           TRANSFORM_LANDMARKS: TransformLandmarks}


def register_all(*, replace: bool = False) -> dict[str, Any]:
    """Register the three kernels with ``tflc.kernels.register``; returns them by custom code."""
    from .registry import register
    return {code: register(code, k, replace=replace) for code, k in KERNELS.items()}
