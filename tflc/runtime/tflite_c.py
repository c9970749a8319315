"""The C structs of TensorFlow Lite's ``core/c/common.h`` that a delegate touches, as ctypes.

The stock Python ``Interpreter`` accepts any object whose ``_get_native_delegate_pointer()`` gives
the address of a C ``TfLiteDelegate`` (see ``delegate.py``). Inside the delegate's ``Prepare`` the
interpreter hands over a ``TfLiteContext``, ``TfLiteNode`` and ``TfLiteRegistration`` structs. Their
layout is not a stable ABI, so nothing here is trusted blindly: :func:`check_context` compares what
the structs read against the model tflc read itself (tensor count, names, types, the nodes' op
codes) before a single node is claimed, and refuses with :class:`LayoutMismatch` on any difference.

Layouts: LiteRT (ai-edge-litert 2.3), 64-bit, not ``TF_LITE_STATIC_MEMORY``.
"""
from __future__ import annotations

import ctypes
import math
from ctypes import POINTER, c_bool, c_char_p, c_float, c_int, c_int32, c_int64, c_size_t, c_uint64, c_void_p
from typing import Any, Sequence

import numpy as np

from ..errors import RuntimeFailure

kTfLiteOk, kTfLiteError = 0, 1
kTfLiteDelegateFlagsAllowDynamicTensors = 1
kTfLiteBuiltinCustom = 32
kTfLiteBuiltinDelegate = 51
kTfLiteDynamic = 4             # TfLiteAllocationType: allocated during eval
kTfLiteOptionalTensor = -1

#: TfLiteType (c_api_types.h) -> numpy dtype
DTYPES = {1: np.float32, 2: np.int32, 3: np.uint8, 4: np.int64, 6: np.bool_, 7: np.int16, 8: np.complex64,
          9: np.int8, 10: np.float16, 11: np.float64, 12: np.complex128, 13: np.uint64, 16: np.uint32,
          17: np.uint16}
TYPE_NAMES = {0: "NOTYPE", 5: "STRING", 14: "RESOURCE", 15: "VARIANT", 18: "INT4", 19: "BFLOAT16"}


class LayoutMismatch(RuntimeFailure):
    """The interpreter's structs do not read as this module expects (another LiteRT build)."""


class TfLiteIntArray(ctypes.Structure):
    _fields_ = [("size", c_int)]          # followed by `size` ints (a flexible array member)


def int_array(p: int | None) -> list[int]:
    """The values of a ``TfLiteIntArray*`` (an empty list for NULL)."""
    if not p:
        return []
    n = ctypes.cast(p, POINTER(c_int))[0]
    if n < 0 or n > 1 << 24:
        raise LayoutMismatch(f"a TfLiteIntArray of {n} entries: the struct layout is not the expected one")
    return list((c_int * n).from_address(p + ctypes.sizeof(c_int)))


class TfLiteQuantizationParams(ctypes.Structure):
    _fields_ = [("scale", c_float), ("zero_point", c_int32)]


class TfLiteQuantization(ctypes.Structure):
    _fields_ = [("type", c_int), ("params", c_void_p)]


class TfLiteTensor(ctypes.Structure):
    _fields_ = [("type", c_int), ("data", c_void_p), ("dims", c_void_p), ("params", TfLiteQuantizationParams),
                ("allocation_type", c_int), ("bytes", c_size_t), ("allocation", c_void_p), ("name", c_char_p),
                ("delegate", c_void_p), ("buffer_handle", c_int), ("data_is_stale", c_bool),
                ("is_variable", c_bool), ("quantization", TfLiteQuantization), ("sparsity", c_void_p),
                ("dims_signature", c_void_p)]


class TfLiteNode(ctypes.Structure):
    _fields_ = [("inputs", c_void_p), ("outputs", c_void_p), ("intermediates", c_void_p),
                ("temporaries", c_void_p), ("user_data", c_void_p), ("builtin_data", c_void_p),
                ("custom_initial_data", c_void_p), ("custom_initial_data_size", c_int),
                ("delegate", c_void_p), ("might_have_side_effect", c_bool)]


InitFn = ctypes.CFUNCTYPE(c_void_p, c_void_p, c_void_p, c_size_t)   # buffer as void*: it is a pointer
FreeFn = ctypes.CFUNCTYPE(None, c_void_p, c_void_p)
PrepareFn = ctypes.CFUNCTYPE(c_int, c_void_p, c_void_p)
InvokeFn = ctypes.CFUNCTYPE(c_int, c_void_p, c_void_p)


class TfLiteRegistration(ctypes.Structure):
    _fields_ = [("init", c_void_p), ("free", c_void_p), ("prepare", c_void_p), ("invoke", c_void_p),
                ("profiling_string", c_void_p), ("builtin_code", c_int32), ("custom_name", c_char_p),
                ("version", c_int), ("registration_external", c_void_p), ("async_kernel", c_void_p),
                ("inplace_operator", c_uint64)]


class TfLiteDelegateParams(ctypes.Structure):
    _fields_ = [("delegate", c_void_p), ("nodes_to_replace", c_void_p), ("input_tensors", c_void_p),
                ("output_tensors", c_void_p)]


DelegatePrepareFn = ctypes.CFUNCTYPE(c_int, c_void_p, c_void_p)


class TfLiteDelegate(ctypes.Structure):
    _fields_ = [("data_", c_void_p), ("Prepare", c_void_p), ("CopyFromBufferHandle", c_void_p),
                ("CopyToBufferHandle", c_void_p), ("FreeBufferHandle", c_void_p), ("flags", c_int64),
                ("opaque_delegate_builder", c_void_p)]


GetExecutionPlanFn = ctypes.CFUNCTYPE(c_int, c_void_p, POINTER(c_void_p))
ResizeTensorFn = ctypes.CFUNCTYPE(c_int, c_void_p, c_void_p, c_void_p)
ReportErrorFn = ctypes.CFUNCTYPE(None, c_void_p, c_char_p, c_char_p)   # variadic in C: called as ("%s", msg)
GetNodeAndRegistrationFn = ctypes.CFUNCTYPE(c_int, c_void_p, c_int, POINTER(c_void_p), POINTER(c_void_p))
ReplaceNodeSubsetsFn = ctypes.CFUNCTYPE(c_int, c_void_p, TfLiteRegistration, c_void_p, c_void_p)


class TfLiteContext(ctypes.Structure):
    _fields_ = [("tensors_size", c_size_t), ("GetExecutionPlan", c_void_p), ("tensors", c_void_p),
                ("impl_", c_void_p), ("ResizeTensor", c_void_p), ("ReportError", c_void_p),
                ("AddTensors", c_void_p), ("GetNodeAndRegistration", c_void_p),
                ("ReplaceNodeSubsetsWithDelegateKernels", c_void_p), ("recommended_num_threads", c_int),
                ("GetExternalContext", c_void_p), ("SetExternalContext", c_void_p),
                ("allow_fp32_relax_to_fp16", c_bool), ("profiler", c_void_p),
                ("AllocatePersistentBuffer", c_void_p), ("AllocateBufferForEval", c_void_p),
                ("RequestScratchBufferInArena", c_void_p), ("GetScratchBuffer", c_void_p),
                ("ResizeTensorExplicit", c_void_p), ("PreviewDelegatePartitioning", c_void_p),
                ("GetTensor", c_void_p)]


class Context:
    """The functions of one ``TfLiteContext*``, called from Python."""

    def __init__(self, address: int):
        self.address = address
        self.c = TfLiteContext.from_address(address)

    def _fn(self, proto, name: str):
        p = getattr(self.c, name)
        if not p:
            raise LayoutMismatch(f"TfLiteContext.{name} is NULL: the struct layout is not the expected one")
        return proto(p)

    def execution_plan(self) -> list[int]:
        plan = c_void_p()
        if self._fn(GetExecutionPlanFn, "GetExecutionPlan")(self.address, ctypes.byref(plan)) != kTfLiteOk:
            raise RuntimeFailure("LiteRT refused GetExecutionPlan")
        return int_array(plan.value)

    def node(self, index: int) -> tuple[TfLiteNode, TfLiteRegistration]:
        node, reg = c_void_p(), c_void_p()
        st = self._fn(GetNodeAndRegistrationFn, "GetNodeAndRegistration")(self.address, index, ctypes.byref(node),
                                                                           ctypes.byref(reg))
        if st != kTfLiteOk or not node.value or not reg.value:
            raise RuntimeFailure(f"LiteRT refused GetNodeAndRegistration for node {index}")
        return TfLiteNode.from_address(node.value), TfLiteRegistration.from_address(reg.value)

    def tensor(self, index: int) -> TfLiteTensor:
        if not 0 <= index < self.c.tensors_size:
            raise LayoutMismatch(f"tensor index {index} out of range ({self.c.tensors_size} tensors)")
        return TfLiteTensor.from_address(self.c.tensors + index * ctypes.sizeof(TfLiteTensor))

    def replace_nodes(self, registration: TfLiteRegistration, nodes: list[int], delegate: int) -> int:
        arr = (c_int * (len(nodes) + 1))(len(nodes), *nodes)
        return self._fn(ReplaceNodeSubsetsFn, "ReplaceNodeSubsetsWithDelegateKernels")(
            self.address, registration, ctypes.addressof(arr), delegate)

    def resize(self, tensor: TfLiteTensor, shape: tuple[int, ...]) -> int:
        """Give ``tensor`` a new shape. ResizeTensor takes ownership of the dims it is given, which it
        frees with ``free``: they are allocated with ``malloc``, as TfLiteIntArrayCreate does."""
        n = len(shape)
        block = _libc().malloc(ctypes.sizeof(c_int) * (n + 1))
        if not block:
            return kTfLiteError
        (c_int * (n + 1)).from_address(block)[:] = [n, *shape]
        return self._fn(ResizeTensorFn, "ResizeTensor")(self.address, ctypes.addressof(tensor), block)

    def report(self, message: str) -> None:
        try:
            self._fn(ReportErrorFn, "ReportError")(self.address, b"%s", message.encode("utf-8", "replace"))
        except Exception:   # reporting is a courtesy: the caller keeps the message itself
            pass


_LIBC: ctypes.CDLL | None = None


def _libc() -> ctypes.CDLL:
    global _LIBC
    if _LIBC is None:
        _LIBC = ctypes.CDLL(None)
        _LIBC.malloc.restype, _LIBC.malloc.argtypes = c_void_p, [c_size_t]
    return _LIBC


def tensor_shape(t: TfLiteTensor) -> tuple[int, ...]:
    return tuple(int_array(t.dims))


def tensor_view(t: TfLiteTensor) -> np.ndarray | None:
    """A numpy view of a tensor's memory (None where it has none: a delegate's internal tensor)."""
    dt = DTYPES.get(t.type)
    if dt is None:
        raise RuntimeFailure(f"tensor {tensor_name(t)!r} has type {TYPE_NAMES.get(t.type, t.type)}, which tflc "
                             "kernels cannot read")
    if not t.data:
        return None
    shape = tensor_shape(t)
    n = math.prod(shape)
    itemsize = np.dtype(dt).itemsize
    if t.bytes < n * itemsize:
        raise LayoutMismatch(f"tensor {tensor_name(t)!r}: {t.bytes} bytes for shape {shape}: the struct layout is not "
                             "the expected one")
    buf = (ctypes.c_char * (n * itemsize)).from_address(t.data)
    return np.frombuffer(buf, dtype=dt).reshape(shape)


def tensor_name(t: TfLiteTensor) -> str:
    try:
        return (t.name or b"").decode("utf-8", "replace")
    except Exception:
        return "?"


def check_context(ctx: Context, subgraphs: Sequence[Any]) -> int:
    """Check that ``ctx`` reads as one of the model's subgraphs (``modelinfo.SubgraphLayout``: tensor
    names and TfLiteTypes, node builtin codes); returns that subgraph's index. Raises LayoutMismatch.

    The tensor count, every node's builtin code and a few tensors' names, types and byte sizes must
    agree: a field read at a wrong offset does not survive all of that."""
    n = ctx.c.tensors_size
    plan = ctx.execution_plan()
    candidates = [k for k, sg in enumerate(subgraphs) if len(sg.tensor_names) == n and len(sg.node_codes) == len(plan)]
    if not candidates:
        raise LayoutMismatch(f"LiteRT's context has {n} tensors and {len(plan)} nodes, which matches no subgraph "
                             "of the model: the TfLiteContext layout is not the expected one")
    codes = [int(ctx.node(i)[1].builtin_code) for i in plan]
    probe = sorted({0, n // 2, n - 1}) if n else []
    for k in candidates:
        sg = subgraphs[k]
        if codes != list(sg.node_codes):
            continue
        if all(_tensor_reads_as(ctx.tensor(i), sg.tensor_names[i], sg.tensor_types[i]) for i in probe):
            return k
    raise LayoutMismatch("the nodes and tensors LiteRT shows the delegate do not read as the model's (op codes, "
                         "tensor names and types differ): the TfLiteContext/TfLiteNode/TfLiteTensor layouts are not "
                         "the expected ones")


def _tensor_reads_as(t: TfLiteTensor, name: str, tflite_type: int) -> bool:
    if tensor_name(t) != name or t.type != tflite_type:
        return False
    dt = DTYPES.get(t.type)
    shape = tensor_shape(t)
    if dt is None or not shape or not t.bytes:      # no shape yet, or nothing allocated to size
        return True
    return t.bytes == (int(np.prod(shape)) if shape else 1) * np.dtype(dt).itemsize
