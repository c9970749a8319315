"""Table kernels: an 8-bit elementwise op (or a chain of them) as one lookup per element.

An int8/uint8 elementwise op quantized per tensor is a function of its input bytes alone: with one
input computed at run time (every other input a single constant value), of 256 values; with two,
of 65,536 pairs. So it is exactly a table, and the table can be made by LiteRT itself (the pass
runs the op on every value), which makes the kernel bit-identical to LiteRT's builtin kernel by
construction, whatever fixed-point arithmetic that kernel uses. A chain of such ops is the
composition of their tables: one pass over memory instead of one per op.

* ``TFLC_LUT8``: ``y[i] = table[x[i]]``, 256 bytes (GELU, RSQRT, HARD_SWISH, an ADD of a constant
  epsilon, and chains of them).
* ``TFLC_LUT8X8``: ``y[i] = table[a[i] * 256 + b[i]]`` with numpy broadcasting (rank <= 4),
  65,536 bytes (SQUARED_DIFFERENCE, SUB, MUL, MINIMUM, DIV of two activations).
* ``TFLC_LUT8C``: one table of 256 bytes per channel of the last axis, ``y[.., c] = table[c][x[.., c]]``:
  an op whose constant differs along the channels only (PRELU's per-channel slope, an ADD or MUL
  of a per-channel vector); options also hold ``channels``.

Custom options: a flexbuffer map ``{"version": 1, "table": blob}``; the index of a byte is the
input's bit pattern read as uint8 (int8 -128 is index 128). :data:`REPLACES` holds, as
``tflc.capabilities`` predicates, which builtin ops each kernel can stand for; :data:`CONSTRAINTS`
what it accepts as a custom op.
"""
from __future__ import annotations

import ctypes
from typing import Any

import numpy as np
from flatbuffers import flexbuffers
from numba import cfunc, njit

from tflc.capabilities import Predicate
from tflc.ir.opinfo import ELEMENTWISE_BINARY, ELEMENTWISE_UNARY
from tflc.ir.quant import quant_params

from . import _native as N
from .kernel import NativeKernel

LUT8, LUT8X8, LUT8C = "TFLC_LUT8", "TFLC_LUT8X8", "TFLC_LUT8C"
VERSION = 1
TABLE_SIZE = {LUT8: 256, LUT8X8: 65536}
_BYTES = ("INT8", "UINT8")
_NOT_TABLES = frozenset({"CAST", "DEQUANTIZE", "LOGICAL_NOT"})   # results that are not 8-bit quantized


# --------------------------------------------------------------------------- options

def encode_options(table: np.ndarray, channels: int | None = None) -> bytes:
    """The custom options of a table kernel (``table``: 256 or 65,536 values, int8 or uint8; with
    ``channels``, a TFLC_LUT8C table of ``channels`` x 256 values, channel-major)."""
    t = np.ascontiguousarray(table).reshape(-1)
    if channels is not None:
        if t.dtype not in (np.int8, np.uint8) or channels < 1 or t.size != 256 * channels:
            raise ValueError(f"a per-channel table is channels x 256 int8/uint8 values, not {t.size} for {channels}")
        return bytes(flexbuffers.Dumps({"version": VERSION, "channels": int(channels),
                                        "table": t.view(np.uint8).tobytes()}))
    if t.dtype not in (np.int8, np.uint8) or t.size not in (256, 65536):
        raise ValueError(f"a table is 256 or 65536 int8/uint8 values, not {t.size} {t.dtype}")
    return bytes(flexbuffers.Dumps({"version": VERSION, "table": t.view(np.uint8).tobytes()}))


def decode_table(code: str, options: bytes) -> np.ndarray:
    """The table in ``options`` (uint8), or :class:`~._native.Refused` with the reason."""
    try:
        raw = flexbuffers.Loads(bytes(options)) if options else None
    except Exception as e:  # noqa: BLE001
        raise N.Refused(f"its custom options are not a flexbuffer ({type(e).__name__})") from None
    if not isinstance(raw, dict):
        raise N.Refused("its custom options are not a flexbuffer map")
    if raw.get("version") != VERSION:
        raise N.Refused(f"options version {raw.get('version')!r}, this tflc reads version {VERSION}")
    table = raw.get("table")
    if code == LUT8C:
        c = raw.get("channels")
        if not isinstance(c, int) or isinstance(c, bool) or c < 1:
            raise N.Refused(f"its options hold channels={c!r}, {code} needs a channel count >= 1")
        want = 256 * c
    else:
        want = TABLE_SIZE[code]
    if not isinstance(table, (bytes, bytearray)) or len(table) != want:
        raise N.Refused(f"its table has {len(table) if isinstance(table, (bytes, bytearray)) else 'no'} bytes, "
                        f"{code} needs {want}")
    return np.frombuffer(bytes(table), np.uint8).copy()


# --------------------------------------------------------------------------- which ops a table is

def _uniform_constant(t: Any) -> bool:
    return t.data is not None and (t.data.size <= 1 or bool(np.all(t.data.reshape(-1) == t.data.reshape(-1)[0])))


def _eight_bit(t: Any) -> str:
    q = quant_params(t)
    if t.type_name not in _BYTES:
        return f"{t.type_name}, needs INT8 or UINT8"
    if q is not None and q.per_channel:
        return f"quantized per channel (axis {q.axis}), needs per-tensor quantization"
    return ""


def _replaces(op: Any, live_wanted: int, constants_uniform: bool = True) -> tuple[bool, str]:
    if op.type in _NOT_TABLES or op.opcode.is_custom:
        return False, f"{op.type} is not an 8-bit elementwise op"
    if op.type not in ELEMENTWISE_UNARY and op.type not in ELEMENTWISE_BINARY:
        return False, f"{op.type} is not elementwise"
    if len(op.outputs) != 1 or op.outputs[0] is None:
        return False, "it needs exactly one output"
    bad = _eight_bit(op.outputs[0])
    if bad:
        return False, f"its output is {bad}"
    live = [t for t in op.inputs if t is not None and not t.is_constant]
    if len(live) != live_wanted:
        return False, f"it reads {len(live)} tensor(s) computed at run time, a {'256' if live_wanted == 1 else '65,536'}-entry table needs {live_wanted}"
    for t in live:
        bad = _eight_bit(t)
        if bad:
            return False, f"input {t.name!r} is {bad}"
    for t in op.inputs:
        if constants_uniform and t is not None and t.is_constant and not _uniform_constant(t):
            return False, f"constant input {t.name!r} holds different values at different positions (not a function of the input value alone)"
    out = op.outputs[0]
    if live_wanted == 1 and tuple(out.shape or ()) != tuple(live[0].shape or ()):
        return False, f"the output's shape {list(out.shape or ())} differs from the input's {list(live[0].shape or ())}"
    if live_wanted == 2:
        if any(len(t.shape or ()) > 4 for t in (*live, out)):
            return False, "a tensor has rank > 4, TFLC_LUT8X8 broadcasts up to rank 4"
        try:
            b = tuple(np.broadcast_shapes(tuple(live[0].shape or ()), tuple(live[1].shape or ())))
        except ValueError:
            return False, "its inputs do not broadcast"
        if b != tuple(out.shape or ()):
            return False, f"the inputs broadcast to {list(b)}, the output is {list(out.shape or ())}"
    return True, ""


def _replaces_channels(op: Any) -> tuple[bool, str]:
    """One run-time input, constants that differ along the last axis only (some of them do: else
    TFLC_LUT8 takes the op), the output of the input's shape."""
    ok, why = _replaces(op, 1, constants_uniform=False)
    if not ok:
        return ok, why
    x = next(t for t in op.inputs if t is not None and not t.is_constant)
    shape = tuple(x.shape or ())
    if not shape or shape[-1] < 1:
        return False, f"its input has shape {list(shape)}, a per-channel table needs a last axis"
    channels, varying = shape[-1], False
    for t in op.inputs:
        if t is None or not t.is_constant or _uniform_constant(t):
            continue
        cs = tuple(t.shape or ())
        if not cs or any(d != 1 for d in cs[:-1]) or cs[-1] != channels or len(cs) > len(shape):
            return False, (f"constant input {t.name!r} of shape {list(cs)} varies other than along the last axis "
                           f"({channels} channels)")
        varying = True
    if not varying:
        return False, "its constants are single values (TFLC_LUT8 takes it)"
    return True, ""


#: kernel -> which builtin ops it can stand for (its table then made by LiteRT from the op)
REPLACES: dict[str, Predicate] = {
    LUT8: Predicate(lambda op: _replaces(op, 1),
                    "an elementwise op with one int8/uint8 input computed at run time (per-tensor quantization), "
                    "every other input a single constant value, and an int8/uint8 output of the input's shape"),
    LUT8C: Predicate(_replaces_channels,
                     "an elementwise op with one int8/uint8 input computed at run time (per-tensor quantization), "
                     "constants that differ along its last axis only (a PRELU slope, an ADD/MUL of a channel vector), "
                     "and an int8/uint8 output of the input's shape"),
    LUT8X8: Predicate(lambda op: _replaces(op, 2),
                      "an elementwise op of two int8/uint8 inputs computed at run time (per-tensor quantization), "
                      "broadcast (rank <= 4) to its int8/uint8 output"),
}


def _custom_ok(code: str, op: Any) -> tuple[bool, str]:
    if op.type != code:
        return False, f"op is {op.type}, needs {code}"
    try:
        decode_table(code, op.custom_options or b"")
    except N.Refused as e:
        return False, str(e)
    n = 2 if code == LUT8X8 else 1
    if len(op.inputs) != n or len(op.outputs) != 1:
        return False, f"{code} has {n} input(s) and 1 output"
    for t in (*op.inputs, *op.outputs):
        if t is None or t.type_name not in _BYTES:
            return False, f"tensor {getattr(t, 'name', None)!r} is {getattr(t, 'type_name', 'omitted')}, needs INT8 or UINT8"
    return True, ""


CONSTRAINTS: dict[str, Predicate] = {
    LUT8: Predicate(lambda op: _custom_ok(LUT8, op), "one int8/uint8 input, one int8/uint8 output of its shape, a 256-byte table"),
    LUT8X8: Predicate(lambda op: _custom_ok(LUT8X8, op),
                      "two int8/uint8 inputs broadcast (rank <= 4) to one int8/uint8 output, a 65,536-byte table"),
    LUT8C: Predicate(lambda op: _custom_ok(LUT8C, op),
                     "one int8/uint8 input whose last axis has the options' channel count, one int8/uint8 output of "
                     "its shape, a 256-byte table per channel"),
}


# --------------------------------------------------------------------------- reference (numpy)

def reference(code: str, table: np.ndarray, *inputs: np.ndarray, out_dtype: Any = np.int8) -> np.ndarray:
    """What the kernel computes, in numpy (for tests and for composing tables)."""
    t = np.asarray(table).reshape(-1).view(np.uint8)
    if code == LUT8:
        return t[np.asarray(inputs[0]).view(np.uint8)].view(out_dtype)
    if code == LUT8C:
        x = np.asarray(inputs[0]).view(np.uint8)
        channels = t.size // 256
        return t[np.arange(channels) * 256 + x.astype(np.int64)].view(out_dtype)
    a, b = (np.asarray(x).view(np.uint8).astype(np.int64) for x in inputs)
    return t[a * 256 + b].view(out_dtype)


# --------------------------------------------------------------------------- the invoke functions


@njit(inline="always")
def _row_scalar(table, src, dst, n):
    """``dst[i] = table[src[i]]`` for ``n`` bytes (addresses): one load per byte."""
    t = N.bytes_at(table, 256)
    x = N.bytes_at(src, n)
    y = N.bytes_at(dst, n)
    for i in range(n):
        y[i] = t[x[i]]


@njit(inline="always")
def _row_vbmi(table, src, dst, n):
    """The same, 64 bytes per step with AVX512-VBMI byte permutes (copy bandwidth), the tail scalar."""
    i = 0
    while i + 64 <= n:
        N.lut256_x64(table, src + N.u64(i), dst + N.u64(i))
        i += 64
    if i < n:
        _row_scalar(table, src + N.u64(i), dst + N.u64(i), n - i)


#: the row lookup every table kernel uses (chosen for the host CPU when the kernels compile)
_row = _row_vbmi if N.HAS_VBMI else _row_scalar


@cfunc(N.SIGNATURE, nopython=True, cache=True)
def lut8_invoke(context, node):
    op = N.op_node(node)
    p = N.params_of(op)
    if p == N.u64(0):
        return N.i32(N.ERROR)
    t_in, t_out = N.input_tensor(context, op, 0), N.output_tensor(context, op, 0)
    _row(p, N.data(t_in), N.data(t_out), N.num_elements(t_out))
    return N.i32(N.OK)


@cfunc(N.SIGNATURE, nopython=True, cache=True)
def lut8x8_invoke(context, node):
    op = N.op_node(node)
    p = N.params_of(op)
    if p == N.u64(0):
        return N.i32(N.ERROR)
    ta, tb, to = N.input_tensor(context, op, 0), N.input_tensor(context, op, 1), N.output_tensor(context, op, 0)
    ra, rb, ro = N.rank(ta), N.rank(tb), N.rank(to)
    # dims right-aligned to rank 4 (prepare refused higher ranks)
    a0 = N.dim(ta, ra - 4) if ra >= 4 else 1
    a1 = N.dim(ta, ra - 3) if ra >= 3 else 1
    a2 = N.dim(ta, ra - 2) if ra >= 2 else 1
    a3 = N.dim(ta, ra - 1) if ra >= 1 else 1
    b0 = N.dim(tb, rb - 4) if rb >= 4 else 1
    b1 = N.dim(tb, rb - 3) if rb >= 3 else 1
    b2 = N.dim(tb, rb - 2) if rb >= 2 else 1
    b3 = N.dim(tb, rb - 1) if rb >= 1 else 1
    o0 = N.dim(to, ro - 4) if ro >= 4 else 1
    o1 = N.dim(to, ro - 3) if ro >= 3 else 1
    o2 = N.dim(to, ro - 2) if ro >= 2 else 1
    o3 = N.dim(to, ro - 1) if ro >= 1 else 1
    # element strides, 0 along a broadcast axis
    sa3 = 1 if a3 == o3 else 0
    sa2 = a3 if a2 == o2 else 0
    sa1 = a2 * a3 if a1 == o1 else 0
    sa0 = a1 * a2 * a3 if a0 == o0 else 0
    sb3 = 1 if b3 == o3 else 0
    sb2 = b3 if b2 == o2 else 0
    sb1 = b2 * b3 if b1 == o1 else 0
    sb0 = b1 * b2 * b3 if b0 == o0 else 0
    pa_data, pb_data, po_data = N.data(ta), N.data(tb), N.data(to)
    a = N.bytes_at(pa_data, a0 * a1 * a2 * a3)
    b = N.bytes_at(pb_data, b0 * b1 * b2 * b3)
    y = N.bytes_at(po_data, o0 * o1 * o2 * o3)
    table = N.bytes_at(p, 65536)
    by_b = p + N.u64(65536)             # the table transposed: by_b[b * 256 + a] = table[a * 256 + b]
    for i0 in range(o0):
        for i1 in range(o1):
            for i2 in range(o2):
                pa = i0 * sa0 + i1 * sa1 + i2 * sa2
                pb = i0 * sb0 + i1 * sb1 + i2 * sb2
                po = ((i0 * o1 + i1) * o2 + i2) * o3
                if o3 == 0:
                    continue
                if sa3 == 1 and sb3 == 1:
                    for j in range(o3):
                        y[po + j] = table[(np.int64(a[pa + j]) << 8) | np.int64(b[pb + j])]
                elif sb3 == 0:          # one b value per row: a 256-entry row of the transposed table
                    _row(by_b + N.u64(np.int64(b[pb]) << 8), pa_data + N.u64(pa), po_data + N.u64(po), o3)
                else:                   # one a value per row: a 256-entry row of the table
                    _row(p + N.u64(np.int64(a[pa]) << 8), pb_data + N.u64(pb), po_data + N.u64(po), o3)
    return N.i32(N.OK)


@cfunc(N.SIGNATURE, nopython=True, cache=True)
def lut8c_invoke(context, node):
    op = N.op_node(node)
    p = N.params_of(op)
    if p == N.u64(0):
        return N.i32(N.ERROR)
    channels = N.int64s_at(p, 1)[0]
    t_in, t_out = N.input_tensor(context, op, 0), N.output_tensor(context, op, 0)
    n = N.num_elements(t_out)
    x = N.bytes_at(N.data(t_in), n)
    y = N.bytes_at(N.data(t_out), n)
    table = N.bytes_at(p + N.u64(8), channels * 256)
    for r in range(n // channels):
        base = r * channels
        for c in range(channels):
            y[base + c] = table[c * 256 + np.int64(x[base + c])]
    return N.i32(N.OK)


def _lut8c_block(options: bytes) -> np.ndarray:
    """``init`` of TFLC_LUT8C: the channel count (8 bytes), then the tables, channel-major."""
    raw = flexbuffers.Loads(bytes(options)) if options else {}
    table = decode_table(LUT8C, options)
    head = np.array([int(raw["channels"])], np.int64).view(np.uint8)
    return np.concatenate([head, table])


def _lut8x8_block(options: bytes) -> np.ndarray:
    """``init`` of TFLC_LUT8X8: the table, then the same table transposed (rows by b), so that a
    row with one b value reads 256 contiguous bytes."""
    t = decode_table(LUT8X8, options)
    return np.concatenate([t, t.reshape(256, 256).T.reshape(-1)])


# --------------------------------------------------------------------------- prepare (once per shape)

def _check_lut8(v: N.OpView) -> None:
    if len(v.inputs) != 1 or len(v.outputs) != 1:
        raise N.Refused(f"{LUT8} has 1 input and 1 output, this op {len(v.inputs)} and {len(v.outputs)}")
    for t in (*v.inputs, *v.outputs):
        if v.type_of(t) not in _BYTES:
            raise N.Refused(f"a tensor is {v.type_of(t)}, needs INT8 or UINT8")
    v.resize(v.outputs[0], v.shape_of(v.inputs[0]))


def _check_lut8x8(v: N.OpView) -> None:
    if len(v.inputs) != 2 or len(v.outputs) != 1:
        raise N.Refused(f"{LUT8X8} has 2 inputs and 1 output, this op {len(v.inputs)} and {len(v.outputs)}")
    for t in (*v.inputs, *v.outputs):
        if v.type_of(t) not in _BYTES:
            raise N.Refused(f"a tensor is {v.type_of(t)}, needs INT8 or UINT8")
    a, b = v.shape_of(v.inputs[0]), v.shape_of(v.inputs[1])
    if len(a) > 4 or len(b) > 4:
        raise N.Refused(f"inputs of shapes {list(a)} and {list(b)}: {LUT8X8} broadcasts up to rank 4")
    v.resize(v.outputs[0], N.broadcast_shape(a, b))


def _check_lut8c(v: N.OpView) -> None:
    _check_lut8(v)
    channels = ctypes.c_int64.from_address(v.params).value
    shape = v.shape_of(v.inputs[0])
    if not shape or shape[-1] != channels:
        raise N.Refused(f"its input has shape {list(shape)}, the tables are for {channels} channels on the last axis")


_PREPARES = {LUT8: N.make_prepare(f"{LUT8} (tflc.kernels.lut)", _check_lut8),
             LUT8C: N.make_prepare(f"{LUT8C} (tflc.kernels.lut)", _check_lut8c),
             LUT8X8: N.make_prepare(f"{LUT8X8} (tflc.kernels.lut)", _check_lut8x8)}

KERNELS: dict[str, NativeKernel] = {
    LUT8: NativeKernel(invoke=lut8_invoke.address, prepare=N.address(_PREPARES[LUT8]),
                       init=lambda options: decode_table(LUT8, options)),
    LUT8X8: NativeKernel(invoke=lut8x8_invoke.address, prepare=N.address(_PREPARES[LUT8X8]), init=_lut8x8_block),
    LUT8C: NativeKernel(invoke=lut8c_invoke.address, prepare=N.address(_PREPARES[LUT8C]), init=_lut8c_block),
}
