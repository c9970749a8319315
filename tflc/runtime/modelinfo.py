"""What the runtime must know about a model before LiteRT opens it, read from the flatbuffer.

Cheap on purpose (every ``Session`` asks): the operator-code table says whether the model holds
custom ops at all; only then are the operators counted, and only for a model whose custom ops
have registered kernels are the subgraphs described (for the kernel delegate's layout check).
Read with the flatbuffer's table API, not tflc's IR: no constant data is decoded.
"""
from __future__ import annotations

import mmap
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..schema import OP_CODES, TYPE_NAMES, fb

CUSTOM = OP_CODES["CUSTOM"]

#: schema TensorType name -> TfLiteType (c_api_types.h); the two enums number types differently
TFLITE_TYPES = {"FLOAT32": 1, "INT32": 2, "UINT8": 3, "INT64": 4, "STRING": 5, "BOOL": 6, "INT16": 7,
                "COMPLEX64": 8, "INT8": 9, "FLOAT16": 10, "FLOAT64": 11, "COMPLEX128": 12, "UINT64": 13,
                "RESOURCE": 14, "VARIANT": 15, "UINT32": 16, "UINT16": 17, "INT4": 18, "BFLOAT16": 19}


@dataclass(frozen=True)
class SubgraphLayout:
    tensor_names: list[str]
    tensor_types: list[int]          # TfLiteType numbers
    node_codes: list[int]            # effective builtin code of each operator, in order


def model_buffer(model: str | os.PathLike | bytes | bytearray | memoryview) -> Any:
    """The model's bytes (a file is memory-mapped, not read; b"" for one that cannot be opened:
    LiteRT then says why, as for any unreadable model)."""
    if isinstance(model, (bytes, bytearray, memoryview)):
        return bytes(model)
    try:
        with open(Path(model), "rb") as f:
            if os.fstat(f.fileno()).st_size == 0:
                return b""
            return mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    except (OSError, ValueError):
        return b""


def _root(buf: Any) -> Any | None:
    try:
        if len(buf) < 8 or bytes(buf[4:8]) != b"TFL3":
            return None
        return fb.Model.GetRootAs(buf, 0)
    except Exception:  # not a flatbuffer: LiteRT will say so when it opens it
        return None


def _code(oc: Any) -> int:
    return max(int(oc.BuiltinCode()), int(oc.DeprecatedBuiltinCode()))


def custom_op_counts(buf: Any) -> dict[str, int]:
    """Custom code -> number of ops with it, over every subgraph ({} for a model without any, or one
    that cannot be read: LiteRT reports that)."""
    m = _root(buf)
    if m is None:
        return {}
    try:
        customs = {i: (oc.CustomCode() or b"").decode("utf-8", "replace")
                   for i in range(m.OperatorCodesLength()) if _code(oc := m.OperatorCodes(i)) == CUSTOM}
        if not customs:
            return {}
        counts: dict[str, int] = {}
        for s in range(m.SubgraphsLength()):
            sg = m.Subgraphs(s)
            for k in range(sg.OperatorsLength()):
                code = customs.get(int(sg.Operators(k).OpcodeIndex()))
                if code is not None:
                    counts[code] = counts.get(code, 0) + 1
        return counts
    except Exception:
        return {}


def subgraph_layouts(buf: Any) -> list[SubgraphLayout]:
    """Each subgraph's tensors (names, TfLiteTypes) and nodes (builtin codes), in file order."""
    m = _root(buf)
    if m is None:
        return []
    codes = [_code(m.OperatorCodes(i)) for i in range(m.OperatorCodesLength())]
    out = []
    for s in range(m.SubgraphsLength()):
        sg = m.Subgraphs(s)
        tensors = [sg.Tensors(i) for i in range(sg.TensorsLength())]
        out.append(SubgraphLayout([(t.Name() or b"").decode("utf-8", "replace") for t in tensors],
                                  [TFLITE_TYPES.get(TYPE_NAMES.get(int(t.Type()), ""), -1) for t in tensors],
                                  [codes[int(sg.Operators(k).OpcodeIndex())] for k in range(sg.OperatorsLength())]))
    return out
