"""A tensor as LiteRT 2.3.0's XNNPACK delegate sees it when it decides, and the type classes its
checks accept (private to ``tflc.targets.xnnpack``).

The delegate decides before any op is prepared, so it sees what the file stores: the shape as
written (the converter writes 1 for a dynamic dimension; a tensor stored with shape ``[]`` is a
scalar), the type, and the quantization as the interpreter reads it: affine parameters (scales,
zero points, quantized dimension) and, for one scale, the "legacy" per-tensor scale and zero point
(0 for per-channel tensors). Constant means data in the file. Each check returns "" or the reason
in words, naming the tensor ("input 1 (filter)") and what XNNPACK needs.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..ir.core import Operator, Tensor
from ..schema import TYPE_CODES, TYPE_NAMES, fb

F32, F16, I8, U8 = TYPE_CODES["FLOAT32"], TYPE_CODES["FLOAT16"], TYPE_CODES["INT8"], TYPE_CODES["UINT8"]
I16, I32, I64 = TYPE_CODES["INT16"], TYPE_CODES["INT32"], TYPE_CODES["INT64"]
I4 = TYPE_CODES.get("INT4", -4)
I2 = TYPE_CODES.get("INT2", -2)
FLOATS = (F32, F16)
MAX_RANK = 6                       # XNN_MAX_TENSOR_DIMS
RUNTIME = "LiteRT 2.3.0"
_BLOCKWISE = getattr(fb.QuantizationDetails, "BlockwiseQuantization", None)


def dims(t: Tensor) -> tuple[int, ...]:
    """The shape stored in the file (none stored: rank 0)."""
    return tuple(t.shape) if t.shape is not None else ()


def rank(t: Tensor) -> int:
    return len(dims(t))


def numel(t: Tensor) -> int:
    return int(math.prod(dims(t)))


def type_name(t: Tensor) -> str:
    return TYPE_NAMES.get(t.dtype, f"TYPE_{t.dtype}")


def short(dtype: int) -> str:
    """"int8", "float32"... for reasons."""
    return TYPE_NAMES.get(dtype, f"type {dtype}").lower()


@dataclass(frozen=True)
class Quant:
    """Quantization as the interpreter reads it. ``affine``: scales present; ``legacy_*``: the
    per-tensor scale and zero point (only when there is exactly one of each, else 0)."""

    affine: bool
    scales: tuple[float, ...] = ()
    zero_points: tuple[int, ...] = ()
    dim: int = 0                   # quantized_dimension as stored
    blocksize: int | None = None   # blockwise quantization (int4 weights)

    @property
    def legacy_scale(self) -> float:
        return self.scales[0] if len(self.scales) == 1 and len(self.zero_points) == 1 else 0.0

    @property
    def legacy_zero_point(self) -> int:
        return self.zero_points[0] if len(self.scales) == 1 and len(self.zero_points) == 1 else 0

    @property
    def first_zero_point(self) -> int:
        return self.zero_points[0] if self.zero_points else 0


def quant(t: Tensor) -> Quant:
    q = t.quantization
    if q is None:
        return Quant(False)
    kind = int(getattr(q, "detailsType", 0) or 0)
    if _BLOCKWISE is not None and kind == _BLOCKWISE:
        return Quant(False, blocksize=int(getattr(q.details, "blockSize", 0) or 0))
    if q.scale is None or len(q.scale) == 0:
        return Quant(False)
    scales = tuple(float(s) for s in np.asarray(q.scale, dtype=np.float32).reshape(-1))
    zps = tuple(int(z) for z in np.asarray(q.zeroPoint).reshape(-1)) if q.zeroPoint is not None else ()
    return Quant(True, scales, zps, int(q.quantizedDimension or 0))


def legacy_scale(t: Tensor) -> np.float32:
    return np.float32(quant(t).legacy_scale)


def normal_positive(x: float) -> bool:
    return x > 0 and math.isfinite(x) and x >= np.finfo(np.float32).tiny


def quant_text(t: Tensor) -> str:
    """"INT8 (scale 0.0039, zero point -128)", "INT8 quantized per channel (16 scales on dimension 0)"."""
    q = quant(t)
    name = type_name(t)
    if q.blocksize is not None:
        return f"{name} quantized blockwise (block size {q.blocksize})"
    if not q.affine:
        return f"{name} without quantization parameters" if t.dtype in (I8, U8, I4, I2) else name
    if len(q.scales) == 1:
        extra = f", quantized_dimension {q.dim}" if q.dim else ""
        return f"{name} (scale {q.scales[0]:.3g}, zero point {q.first_zero_point}{extra})"
    return f"{name} quantized per channel ({len(q.scales)} scales on dimension {q.dim})"


# --------------------------------------------------------------------------- op-level phrases

def not_taken(op: Operator, what: str, why: str) -> str:
    """"int8 SOFTMAX is not taken by XNNPACK in LiteRT 2.3.0 (float only)"."""
    return f"{what} {op.type} is not taken by XNNPACK in {RUNTIME} ({why})"


def type_gap(op: Operator, t: Tensor) -> str:
    """The plain reason for the common gaps: int16 anywhere, a float-only op on int8/uint8."""
    if t.dtype == I16:
        return not_taken(op, "int16", "XNNPACK has no int16 kernels")
    return ""


# --------------------------------------------------------------------------- type classes

def _per_tensor_8bit(label: str, t: Tensor) -> str:
    """int8/uint8 with one scale on quantized_dimension 0 (uint8 also one zero point)."""
    q = quant(t)
    if q.blocksize is not None or not q.affine:
        return f"{label} is {quant_text(t)}, XNNPACK needs per-tensor quantized {short(t.dtype)}"
    if len(q.scales) != 1 or q.dim != 0 or (t.dtype == U8 and len(q.zero_points) != 1):
        return f"{label} is {quant_text(t)}, XNNPACK needs per-tensor quantization (one scale, quantized_dimension 0)"
    return ""


def check_float(op: Operator, label: str, t: Tensor) -> str:
    """F: float32 or float16 (CheckTensorFloatType)."""
    if t.dtype in FLOATS:
        return ""
    if t.dtype in (I8, U8):
        return not_taken(op, short(t.dtype), "float only")
    return type_gap(op, t) or f"{label} is {type_name(t)}, XNNPACK needs float32 or float16"


def check_float32(op: Operator, label: str, t: Tensor) -> str:
    """F32: float32 only."""
    if t.dtype == F32:
        return ""
    if t.dtype in (I8, U8):
        return not_taken(op, short(t.dtype), "float32 only")
    return type_gap(op, t) or f"{label} is {type_name(t)}, XNNPACK needs float32"


def check_fq8(op: Operator, label: str, t: Tensor, float16: bool = True, uint8: bool = True) -> str:
    """FQ8: float32, float16, per-tensor int8 or uint8 (CheckTensorFloatOrQUInt8Type); without
    ``float16`` (CheckTensorFloat32OrQUInt8Type) or without ``uint8`` (CheckTensorFloatOrQInt8Type)."""
    if t.dtype == F32 or (t.dtype == F16 and float16):
        return ""
    if t.dtype == F16:
        return f"{label} is FLOAT16, XNNPACK needs float32, int8 or uint8 here (no float16)"
    if t.dtype == I8 or (t.dtype == U8 and uint8):
        return _per_tensor_8bit(label, t)
    if t.dtype == U8:
        return not_taken(op, "uint8", "float and int8 only")
    accepted = "float32" + (", float16" if float16 else "") + (", int8 or uint8" if uint8 else " or int8")
    return type_gap(op, t) or f"{label} is {type_name(t)}, XNNPACK needs {accepted}"


def check_q8(op: Operator, label: str, t: Tensor) -> str:
    """Q8: per-tensor int8 or uint8 (CheckTensorQInt8OrQUInt8Type)."""
    if t.dtype in (I8, U8):
        return _per_tensor_8bit(label, t)
    return type_gap(op, t) or f"{label} is {type_name(t)}, XNNPACK needs per-tensor quantized int8 or uint8"


def _valid_per_tensor(label: str, t: Tensor, lo: int, hi: int) -> str:
    q = quant(t)
    zp = q.first_zero_point
    if not lo <= zp <= hi:
        return f"{label} has zero point {zp}, XNNPACK needs it in [{lo}, {hi}]"
    if not normal_positive(q.scales[0]):
        return f"{label} has scale {q.scales[0]:g}, XNNPACK needs a positive normal scale"
    return ""


def _valid_per_channel(label: str, t: Tensor, dim: int, zero_point: int = 0) -> str:
    q = quant(t)
    d = dims(t)
    if not 0 <= dim < len(d):
        return f"{label} is quantized on dimension {dim} of a rank-{len(d)} tensor"
    if q.first_zero_point != zero_point:
        return (f"{label} is quantized per channel with zero point {q.first_zero_point}, XNNPACK needs "
                f"symmetric per-channel quantization (zero point {zero_point})")
    bad = [s for s in q.scales[:d[dim]] if not normal_positive(s)]
    if bad or len(q.scales) < d[dim]:
        return (f"{label} has an invalid per-channel scale ({bad[0] if bad else 'missing'}), XNNPACK needs "
                "positive normal scales")
    return ""


def check_qc8(op: Operator, label: str, t: Tensor, dim: int) -> str:
    """QC8(dim): float32/float16, int8 per tensor or per channel on ``dim`` (symmetric), or
    per-tensor uint8; the parameters must be valid (CheckTensorFloat32OrQCInt8Type)."""
    if t.dtype in FLOATS:
        return ""
    q = quant(t)
    if t.dtype == I8:
        if not q.affine:
            return f"{label} is {quant_text(t)}, XNNPACK needs quantized int8"
        if len(q.scales) > 1:
            if q.dim != dim:
                return (f"{label} is quantized per channel on dimension {q.dim}, XNNPACK needs "
                        f"dimension {dim} (or per-tensor quantization)")
            return _valid_per_channel(label, t, dim)
        return _valid_per_tensor(label, t, -128, 127)
    if t.dtype == U8:
        return _per_tensor_8bit(label, t) or _valid_per_tensor(label, t, 0, 255)
    return type_gap(op, t) or f"{label} is {type_name(t)}, XNNPACK needs float32, float16, int8 or uint8"


def check_fc_filter(op: Operator, label: str, t: Tensor) -> str:
    """WFC: float32/float16; int8/int4/int2 per tensor or per channel on dimension 0 (int2 per
    channel only), int4 blockwise (block size a multiple of 32); per-tensor uint8
    (CheckTensorFilterType). An int8 filter without quantization passes this check."""
    if t.dtype in FLOATS:
        return ""
    q = quant(t)
    if t.dtype in (I8, I4, I2):
        if q.blocksize is not None:
            return "" if q.blocksize % 32 == 0 else (f"{label} is quantized blockwise with block size "
                                                     f"{q.blocksize}, XNNPACK needs a multiple of 32")
        if not q.affine:
            return ""
        if len(q.scales) > 1 and q.dim != 0:
            return f"{label} is quantized per channel on dimension {q.dim}, XNNPACK needs dimension 0"
        d = dims(t)
        if t.dtype == I2 and (not 0 <= q.dim < len(d) or len(q.scales) != d[q.dim]):
            return f"{label} is int2 quantized per tensor, XNNPACK needs int2 weights quantized per channel"
        return ""
    if t.dtype == U8:
        return _per_tensor_8bit(label, t)
    return type_gap(op, t) or f"{label} is {type_name(t)}, XNNPACK needs float32, float16, int8, int4 or uint8 weights"


def check_bias(op: Operator, label: str, t: Tensor) -> str:
    """BIAS: float32/float16, or int32 quantized per tensor or per channel on dimension 0 with
    zero point 0 (CheckTensorFloat32OrFloat16OrQCInt32Type)."""
    if t.dtype in FLOATS:
        return ""
    if t.dtype == I32:
        q = quant(t)
        if not q.affine or q.dim != 0:
            return f"{label} is {quant_text(t)}, XNNPACK needs an int32 bias quantized on dimension 0"
        if len(q.scales) > 1:
            return _valid_per_channel(label, t, 0)
        return _valid_per_tensor(label, t, 0, 0)
    return type_gap(op, t) or f"{label} is {type_name(t)}, XNNPACK needs a float32, float16 or int32 bias"


# --------------------------------------------------------------------------- XNNPACK datatypes

def xnn_datatype(t: Tensor) -> str:
    """The XNNPACK datatype a tensor maps to ("fp32", "qint8", "qcint8", ... or "invalid")."""
    if t.dtype == F32:
        return "fp32"
    if t.dtype == F16:
        return "fp16"
    q = quant(t)
    if t.dtype in (U8, I8, I4, I2):
        if q.blocksize is not None:
            return "qbint4" if t.dtype == I4 else "invalid"
        if not q.affine or not q.zero_points:
            return "invalid"
        if len(q.zero_points) != len(q.scales) and len(q.zero_points) != 1:
            return "invalid"
        if not all(normal_positive(s) for s in q.scales):
            return "invalid"
        lo, hi, name = {U8: (0, 255, "quint8"), I8: (-128, 127, "qint8"), I4: (-8, 7, "qint4"),
                        I2: (-2, 1, "qint2")}[t.dtype]
        if len(q.scales) == 1:
            return name if lo <= q.zero_points[0] <= hi else "invalid"
        if t.dtype == U8:
            return "invalid"
        d = dims(t)
        if not (d and 0 <= q.dim < len(d) and len(q.scales) == d[q.dim]):
            return "invalid"
        if any(z != 0 and not (t.dtype == I4 and z == 8) for z in q.zero_points):
            return "invalid"
        return "qc" + name[1:]
    return "invalid"


def scale_or_nan(t: Tensor) -> float:
    """GetTensorScaleOrDefault: the per-tensor scale of an int8/uint8 tensor, else NaN."""
    if t.dtype not in (I8, U8):
        return float("nan")
    q = quant(t)
    if not q.affine or q.dim != 0 or len(q.scales) != 1:
        return float("nan")
    return q.scales[0]


def isnormal(x: float) -> bool:
    return math.isfinite(x) and x != 0 and abs(x) >= np.finfo(np.float32).tiny
