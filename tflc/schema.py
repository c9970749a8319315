"""The TFLite schema as tflc sees it: the flatc-generated module shipped in ai-edge-litert,
plus name/dtype tables derived from it (so tflc follows whatever schema LiteRT ships)."""
from __future__ import annotations

import numpy as np
from ai_edge_litert import schema_py_generated as fb

__all__ = ["fb", "OP_NAMES", "OP_CODES", "TYPE_NAMES", "TYPE_CODES", "numpy_dtype", "itemsize_bits",
           "op_name", "builtin_code_of", "PLACEHOLDER_FOR_GREATER_OP_CODES", "OPTIONS_CLASSES"]


def _enum(cls) -> dict[str, int]:
    return {k: v for k, v in vars(cls).items() if not k.startswith("_") and isinstance(v, int)}


OP_CODES: dict[str, int] = _enum(fb.BuiltinOperator)
OP_NAMES: dict[int, str] = {v: k for k, v in OP_CODES.items()}
TYPE_CODES: dict[str, int] = _enum(fb.TensorType)
TYPE_NAMES: dict[int, str] = {v: k for k, v in TYPE_CODES.items()}
PLACEHOLDER_FOR_GREATER_OP_CODES = 127

_NUMPY = {
    "FLOAT32": np.float32, "FLOAT16": np.float16, "INT32": np.int32, "UINT8": np.uint8,
    "INT64": np.int64, "BOOL": np.bool_, "INT16": np.int16, "COMPLEX64": np.complex64,
    "INT8": np.int8, "FLOAT64": np.float64, "COMPLEX128": np.complex128, "UINT64": np.uint64,
    "UINT32": np.uint32, "UINT16": np.uint16,
}
# Sub-byte and exotic types: bits per element (data is packed; no numpy dtype of its own).
_BITS = {"INT4": 4, "UINT4": 4, "INT2": 2, "BFLOAT16": 16, "FLOAT8_E4M3FN": 8, "FLOAT8_E5M2": 8}


def numpy_dtype(tensor_type: int) -> np.dtype | None:
    """numpy dtype of a TensorType, or None where numpy has none (STRING, RESOURCE, INT4...)."""
    t = _NUMPY.get(TYPE_NAMES.get(tensor_type, ""))
    return np.dtype(t) if t is not None else None


def tensor_type_of(dtype) -> int:
    dt = np.dtype(dtype)
    for name, t in _NUMPY.items():
        if np.dtype(t) == dt:
            return TYPE_CODES[name]
    raise ValueError(f"no TFLite tensor type for numpy dtype {dt}")


def itemsize_bits(tensor_type: int) -> int | None:
    """Bits per element, or None for variable-size types (STRING, RESOURCE, VARIANT)."""
    dt = numpy_dtype(tensor_type)
    if dt is not None:
        return dt.itemsize * 8
    return _BITS.get(TYPE_NAMES.get(tensor_type, ""))


def op_name(builtin_code: int) -> str:
    return OP_NAMES.get(builtin_code, f"UNKNOWN_{builtin_code}")


def builtin_code_of(name: str) -> int:
    try:
        return OP_CODES[name.upper()]
    except KeyError:
        raise ValueError(f"unknown builtin operator {name!r}") from None


def _options_classes() -> dict[str, type]:
    out = {}
    for name in _enum(fb.BuiltinOptions):
        cls = getattr(fb, name + "T", None)
        if cls is not None:
            out[name] = cls
    return out


#: BuiltinOptions union member name -> object-API class (e.g. "Conv2DOptions" -> Conv2DOptionsT)
OPTIONS_CLASSES = _options_classes()
OPTIONS_TYPES: dict[str, int] = _enum(fb.BuiltinOptions)
