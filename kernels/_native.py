"""What native kernels share: LiteRT's structs read through raw pointers, from Numba and from Python.

A native kernel's ``invoke`` is a Numba ``@cfunc(int32(uint64, uint64))`` that LiteRT calls with
``(TfLiteContext*, TfLiteNode*)``; the node's ``user_data`` points to a ``TfLiteNode`` of the op
as the model holds it (``tflc.runtime``'s kernel delegate makes it), whose own ``user_data`` is
the parameter block the kernel's ``init`` decoded from the op's options. The jitted helpers here
read those structs; the Python ones serve ``prepare`` (once per shape change, not per run): the
tensors' types and shapes, resizing an output, reporting an error through the context.

Layout facts (64-bit LiteRT 2.3, as ``tflc.runtime.tflite_c`` declares them; this package sits
below the runtime and cannot import it, so the offsets are repeated here and a test compares them):
``TfLiteContext.tensors`` @16, ``ResizeTensor`` @32, ``ReportError`` @40; ``TfLiteNode.inputs``
@0, ``outputs`` @8, ``user_data`` @32, ``custom_initial_data`` @48 (+ size @56);
``TfLiteTensor`` is 112 bytes: ``type`` @0, ``data`` @8, ``dims`` @16, ``bytes`` @40;
``TfLiteIntArray``: ``size`` then the ints.
"""
from __future__ import annotations

import ctypes
from typing import Any, Callable

import numpy as np
from numba import carray, njit, types
from numba.extending import intrinsic

CTX_TENSORS, CTX_RESIZE_TENSOR, CTX_REPORT_ERROR = 16, 32, 40
NODE_INPUTS, NODE_OUTPUTS, NODE_USER_DATA, NODE_CUSTOM_DATA, NODE_CUSTOM_SIZE = 0, 8, 32, 48, 56
TENSOR_SIZE, TENSOR_TYPE, TENSOR_DATA, TENSOR_DIMS, TENSOR_BYTES = 112, 0, 8, 16, 40
OK, ERROR = 0, 1
#: TfLiteType codes (not the schema's TensorType codes)
TFLITE_TYPES = {1: "FLOAT32", 2: "INT32", 3: "UINT8", 4: "INT64", 6: "BOOL", 7: "INT16", 9: "INT8", 10: "FLOAT16"}

#: the signature of every native invoke and prepare: ``int32(TfLiteContext*, TfLiteNode*)``
SIGNATURE = types.int32(types.uint64, types.uint64)
u64, i32 = np.uint64, np.int32


class Refused(ValueError):
    """An op outside a kernel's constraints; the message is the reason."""


# --------------------------------------------------------------------------- jitted readers

@intrinsic
def as_ptr(typingctx, addr):
    """An integer address as a ``void*``."""
    if not isinstance(addr, types.Integer):
        return None

    def codegen(context, builder, sig, args):
        return builder.inttoptr(args[0], context.get_value_type(types.voidptr))
    return types.voidptr(addr), codegen


@njit(inline="always")
def load_u64(addr):
    return carray(as_ptr(addr), (1,), np.uint64)[0]


@njit(inline="always")
def load_i32(addr):
    return carray(as_ptr(addr), (1,), np.int32)[0]


@njit(inline="always")
def op_node(node):
    """The ``TfLiteNode*`` of the op as the model holds it."""
    return load_u64(node + u64(NODE_USER_DATA))


@njit(inline="always")
def params_of(op):
    """The op's parameter block (0: none, or init refused it)."""
    return load_u64(op + u64(NODE_USER_DATA))


@njit(inline="always")
def tensor_at(context, node_array, k):
    """The TfLiteTensor* of entry ``k`` of an inputs/outputs TfLiteIntArray."""
    index = load_i32(node_array + u64(4) + u64(4) * u64(k))
    return load_u64(context + u64(CTX_TENSORS)) + u64(index) * u64(TENSOR_SIZE)


@njit(inline="always")
def input_tensor(context, op, k):
    return tensor_at(context, load_u64(op + u64(NODE_INPUTS)), k)


@njit(inline="always")
def output_tensor(context, op, k):
    return tensor_at(context, load_u64(op + u64(NODE_OUTPUTS)), k)


@njit(inline="always")
def rank(t):
    return load_i32(load_u64(t + u64(TENSOR_DIMS)))


@njit(inline="always")
def dim(t, k):
    return load_i32(load_u64(t + u64(TENSOR_DIMS)) + u64(4) + u64(4) * u64(k))


@njit(inline="always")
def num_elements(t):
    n = 1
    for k in range(rank(t)):
        n *= dim(t, k)
    return n


@njit(inline="always")
def data(t):
    """The tensor's data pointer (an integer)."""
    return load_u64(t + u64(TENSOR_DATA))


@njit(inline="always")
def bytes_at(addr, n):
    """``n`` bytes at ``addr`` as a uint8 array (int8 values read as their bit patterns)."""
    return carray(as_ptr(addr), (n,), np.uint8)


@njit(inline="always")
def int8s_at(addr, n):
    return carray(as_ptr(addr), (n,), np.int8)


@njit(inline="always")
def int64s_at(addr, n):
    return carray(as_ptr(addr), (n,), np.int64)


@njit(inline="always")
def floats_at(addr, n):
    return carray(as_ptr(addr), (n,), np.float32)


# --------------------------------------------------------------------------- Python side (prepare)

_PrepareFn = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p)
_ReportFn = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_char_p, ctypes.c_char_p)
_ResizeFn = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p)
_LIBC: Any = None


def read_u64(addr: int) -> int:
    return ctypes.c_uint64.from_address(addr).value


def int_array(addr: int) -> list[int]:
    if not addr:
        return []
    n = ctypes.c_int.from_address(addr).value
    if not 0 <= n < 1 << 16:
        raise Refused(f"a TfLiteIntArray of {n} entries (not the expected struct layout)")
    return list((ctypes.c_int * n).from_address(addr + 4))


class OpView:
    """What ``prepare`` sees of one op: its tensors' types and shapes, its options, its block."""

    def __init__(self, context: int, node: int):
        self.context = context
        self.op = read_u64(node + NODE_USER_DATA)
        tensors = read_u64(context + CTX_TENSORS)
        ins, outs = int_array(read_u64(self.op + NODE_INPUTS)), int_array(read_u64(self.op + NODE_OUTPUTS))
        if any(i < 0 for i in ins + outs):
            raise Refused("an input or output is omitted")
        self.inputs = [tensors + i * TENSOR_SIZE for i in ins]
        self.outputs = [tensors + i * TENSOR_SIZE for i in outs]
        self.params = read_u64(self.op + NODE_USER_DATA)
        size = ctypes.c_int.from_address(self.op + NODE_CUSTOM_SIZE).value
        self.options = ctypes.string_at(read_u64(self.op + NODE_CUSTOM_DATA), size) if size > 0 else b""

    @staticmethod
    def type_of(t: int) -> str:
        code = ctypes.c_int.from_address(t + TENSOR_TYPE).value
        return TFLITE_TYPES.get(code, f"TfLiteType {code}")

    @staticmethod
    def shape_of(t: int) -> tuple[int, ...]:
        return tuple(int_array(read_u64(t + TENSOR_DIMS)))

    def resize(self, t: int, shape: tuple[int, ...]) -> None:
        if self.shape_of(t) != tuple(shape):
            resize_tensor(self.context, t, shape)


def resize_tensor(context: int, tensor: int, shape: tuple[int, ...]) -> None:
    """``context->ResizeTensor(tensor, shape)``; it takes the dims and frees them with ``free``, so
    they are ``malloc``ed."""
    global _LIBC
    if _LIBC is None:
        _LIBC = ctypes.CDLL(None)
        _LIBC.malloc.restype, _LIBC.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
    block = _LIBC.malloc(4 * (len(shape) + 1))
    if not block:
        raise Refused("out of memory resizing an output")
    (ctypes.c_int * (len(shape) + 1)).from_address(block)[:] = [len(shape), *shape]
    if _ResizeFn(read_u64(context + CTX_RESIZE_TENSOR))(context, tensor, block) != OK:
        raise Refused(f"LiteRT refused to resize an output to {list(shape)}")


def make_prepare(label: str, check: Callable[[OpView], None]) -> Any:
    """A ``prepare`` C callback running ``check(view)``: it validates the op's tensors and resizes
    its outputs; a :class:`Refused` (or any error) is reported through the context as
    ``label: reason`` and fails the interpreter's allocation. Keep the returned object alive."""
    def prepare(context: int, node: int) -> int:
        try:
            view = OpView(context, node)
            if not view.params:
                raise Refused("its options were refused when the interpreter was built (see the first error)")
            check(view)
            return OK
        except BaseException as e:       # noqa: BLE001 - nothing may unwind into LiteRT
            msg = str(e) if isinstance(e, Refused) else f"{type(e).__name__}: {e}"
            try:
                _ReportFn(read_u64(context + CTX_REPORT_ERROR))(context, b"%s", f"{label}: {msg}".encode())
            except Exception:            # noqa: BLE001
                pass
            return ERROR
    return _PrepareFn(prepare)


def address(fn: Any) -> int:
    return ctypes.cast(fn, ctypes.c_void_p).value or 0


def broadcast_shape(a: tuple[int, ...], b: tuple[int, ...]) -> tuple[int, ...]:
    """numpy's broadcast of two shapes, or :class:`Refused`."""
    try:
        return tuple(int(d) for d in np.broadcast_shapes(a, b))
    except ValueError:
        raise Refused(f"inputs of shapes {list(a)} and {list(b)} do not broadcast") from None


# --------------------------------------------------------------------------- 256-entry table lookups in SIMD

def _host_has_vbmi() -> bool:
    try:
        import llvmlite.binding as ll
        f = ll.get_host_cpu_features()
        return bool(f.get("avx512vbmi", False) and f.get("avx512bw", False))
    except Exception:  # noqa: BLE001 - no feature list: the portable loop
        return False


#: the CPU has AVX512-VBMI (``vpermi2b``): a 256-byte table looks up 64 bytes in four instructions.
#: Numba compiles for the host CPU (its cache is keyed by it), so code using it is built only here.
HAS_VBMI = _host_has_vbmi()


@intrinsic
def lut256_x64(typingctx, table, src, dst):
    """``dst[0:64] = table[src[0:64]]`` for a 256-byte ``table`` (integer addresses; unaligned):
    two ``vpermi2b`` look up the low and high halves of the table by the index's low 7 bits, and
    its top bit selects between them. Only for CPUs with AVX512-VBMI (:data:`HAS_VBMI`)."""
    from llvmlite import ir

    def codegen(context, builder, sig, args):
        v64 = ir.VectorType(ir.IntType(8), 64)
        ptr = v64.as_pointer()
        t, s, d = args

        def load(addr, offset):
            v = builder.load(builder.inttoptr(builder.add(addr, ir.Constant(addr.type, offset)), ptr))
            v.align = 1
            return v
        name = "llvm.x86.avx512.vpermi2var.qi.512"
        fn = builder.module.globals.get(name) or ir.Function(builder.module, ir.FunctionType(v64, [v64, v64, v64]), name)
        t0, t1, t2, t3 = (load(t, 64 * k) for k in range(4))
        x = load(s, 0)
        low, high = builder.call(fn, [t0, x, t1]), builder.call(fn, [t2, x, t3])
        out = builder.select(builder.icmp_signed("<", x, ir.Constant(v64, None)), high, low)
        builder.store(out, builder.inttoptr(d, ptr)).align = 1
        return context.get_dummy_value()
    return types.void(table, src, dst), codegen
