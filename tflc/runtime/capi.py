"""A ctypes binding of the LiteRT C API in ``ai_edge_litert/libLiteRt.so``: just enough to compile a
model on the CPU, run it, and read the per-operator events of LiteRT's profiler.

The Python ``CompiledModel`` of ai-edge-litert exposes no profiler, so this module drives the C
API directly. The structs are the public C ones of ``litert/c/`` (``ProfiledEventData``,
``LiteRtLayout``, ``LiteRtRankedTensorType``). Nothing in the library states their layout, so
:func:`load` checks what it can before anything runs (the library's symbols, the package version,
our own struct sizes against the sizes the headers assert) and :meth:`CompiledModel.profile_run`
checks the first events it reads (known event types and sources, readable tags, plausible times);
any mismatch raises :class:`CApiUnavailable` with a clear message, and the profiler then falls
back to timing each operator alone (see ``profile.py``).

Everything here runs inside an isolated child (``tflc.runtime.run_isolated``) when called from
the profiler: a crash in native code must not take tflc down.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import importlib.metadata
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from ..errors import TflcError

# ai-edge-litert versions whose C structs were checked against the headers (ProfiledEventData is
# 104 bytes from 2.3; older wheels had 88 bytes and no memory-usage fields).
CHECKED_VERSIONS = ("2.3",)

# --- event types and sources (litert/c/litert_profiler_event.h) ---
EV_DEFAULT = 1
EV_OPERATOR = 2
EV_DELEGATE_OPERATOR = 4
EV_DELEGATE_PROFILED_OPERATOR = 8
EV_RUNTIME = 16
EV_TELEMETRY = 32
_KNOWN_EVENT_TYPES = {1 << k for k in range(9)}
_KNOWN_SOURCES = {0, 1, 2}

KERNEL_MODES = ("delegate", "reference", "builtin")

# numpy dtype -> LiteRtElementType (equal to TfLiteType numbers)
_ELEMENT_TYPES = {
    np.dtype(np.float32): 1, np.dtype(np.int32): 2, np.dtype(np.uint8): 3, np.dtype(np.int64): 4,
    np.dtype(np.bool_): 6, np.dtype(np.int16): 7, np.dtype(np.complex64): 8, np.dtype(np.int8): 9,
    np.dtype(np.float16): 10, np.dtype(np.float64): 11, np.dtype(np.complex128): 12,
    np.dtype(np.uint64): 13, np.dtype(np.uint32): 16, np.dtype(np.uint16): 17,
}
_DTYPES = {v: k for k, v in _ELEMENT_TYPES.items()}


class CApiUnavailable(TflcError):
    """The LiteRT C API cannot be used here (library missing, version or layout mismatch, refusal)."""


class _MemoryUsage(ctypes.Structure):
    _fields_ = [("total_allocated_bytes", ctypes.c_size_t), ("in_use_allocated_bytes", ctypes.c_size_t),
                ("private_footprint_bytes", ctypes.c_size_t)]


class ProfiledEventData(ctypes.Structure):
    _fields_ = [("tag", ctypes.c_void_p), ("event_type", ctypes.c_int), ("start_timestamp_us", ctypes.c_uint64),
                ("elapsed_time_us", ctypes.c_uint64), ("begin_mem_usage", _MemoryUsage),
                ("end_mem_usage", _MemoryUsage), ("event_metadata1", ctypes.c_uint64),
                ("event_metadata2", ctypes.c_uint64), ("event_source", ctypes.c_int)]


class LiteRtLayout(ctypes.Structure):
    _fields_ = [("rank", ctypes.c_uint32, 7), ("has_strides", ctypes.c_uint32, 1),
                ("dimensions", ctypes.c_int32 * 8), ("strides", ctypes.c_uint32 * 8)]


class LiteRtRankedTensorType(ctypes.Structure):
    _fields_ = [("element_type", ctypes.c_int), ("layout", LiteRtLayout)]


# sizes and offsets the C headers assert (64-bit), checked at load
_EXPECTED_LAYOUT = [
    ("ProfiledEventData", ProfiledEventData, 104,
     {"event_type": 8, "start_timestamp_us": 16, "elapsed_time_us": 24, "event_metadata1": 80,
      "event_metadata2": 88, "event_source": 96}),
    ("LiteRtLayout", LiteRtLayout, 68, {"dimensions": 4, "strides": 36}),
    ("LiteRtRankedTensorType", LiteRtRankedTensorType, 72, {"layout": 4}),
]


@dataclass
class Event:
    """One profiler event, copied out of the C struct."""
    tag: str
    type: int
    start_us: int
    elapsed_us: int
    meta1: int
    meta2: int
    source: int


_vp = ctypes.c_void_p
_P = ctypes.POINTER
_SIGNATURES: dict[str, tuple] = {
    # name: (restype, argtypes)
    "LiteRtCreateEnvironment": (ctypes.c_int, [ctypes.c_int, _vp, _P(_vp)]),
    "LiteRtDestroyEnvironment": (None, [_vp]),
    "LiteRtCreateModelFromFile": (ctypes.c_int, [_vp, ctypes.c_char_p, _P(_vp)]),
    "LiteRtCreateModelFromBuffer": (ctypes.c_int, [_vp, _vp, ctypes.c_size_t, _P(_vp)]),
    "LiteRtDestroyModel": (None, [_vp]),
    "LiteRtGetNumModelSignatures": (ctypes.c_int, [_vp, _P(ctypes.c_size_t)]),
    "LiteRtGetModelSignature": (ctypes.c_int, [_vp, ctypes.c_size_t, _P(_vp)]),
    "LiteRtGetNumSignatureInputs": (ctypes.c_int, [_vp, _P(ctypes.c_size_t)]),
    "LiteRtGetNumSignatureOutputs": (ctypes.c_int, [_vp, _P(ctypes.c_size_t)]),
    "LiteRtGetSignatureInputName": (ctypes.c_int, [_vp, ctypes.c_size_t, _P(ctypes.c_char_p)]),
    "LiteRtGetSignatureOutputName": (ctypes.c_int, [_vp, ctypes.c_size_t, _P(ctypes.c_char_p)]),
    "LiteRtGetSignatureInputTensorByIndex": (ctypes.c_int, [_vp, ctypes.c_size_t, _P(_vp)]),
    "LiteRtGetSignatureOutputTensorByIndex": (ctypes.c_int, [_vp, ctypes.c_size_t, _P(_vp)]),
    "LiteRtGetRankedTensorType": (ctypes.c_int, [_vp, _P(LiteRtRankedTensorType)]),
    "LiteRtCreateOptions": (ctypes.c_int, [_P(_vp)]),
    "LiteRtDestroyOptions": (None, [_vp]),
    "LiteRtSetOptionsHardwareAccelerators": (ctypes.c_int, [_vp, ctypes.c_int]),
    "LiteRtCreateOpaqueOptions": (ctypes.c_int, [ctypes.c_char_p, _vp, _vp, _P(_vp)]),
    "LiteRtAddOpaqueOptions": (ctypes.c_int, [_vp, _vp]),
    "LiteRtCreateCompiledModel": (ctypes.c_int, [_vp, _vp, _vp, _P(_vp)]),
    "LiteRtDestroyCompiledModel": (None, [_vp]),
    "LiteRtCompiledModelResizeInputTensor": (ctypes.c_int, [_vp, ctypes.c_size_t, ctypes.c_size_t,
                                                            _P(ctypes.c_int), ctypes.c_size_t]),
    "LiteRtGetCompiledModelOutputTensorLayouts": (ctypes.c_int, [_vp, ctypes.c_size_t, ctypes.c_size_t,
                                                                 _P(LiteRtLayout), ctypes.c_bool]),
    "LiteRtGetCompiledModelInputBufferRequirements": (ctypes.c_int, [_vp, ctypes.c_size_t, ctypes.c_size_t,
                                                                     _P(_vp)]),
    "LiteRtGetCompiledModelOutputBufferRequirements": (ctypes.c_int, [_vp, ctypes.c_size_t, ctypes.c_size_t,
                                                                      _P(_vp)]),
    "LiteRtCreateManagedTensorBufferFromRequirements": (ctypes.c_int, [_vp, _P(LiteRtRankedTensorType), _vp,
                                                                       _P(_vp)]),
    "LiteRtDestroyTensorBuffer": (None, [_vp]),
    "LiteRtLockTensorBuffer": (ctypes.c_int, [_vp, _P(_vp), ctypes.c_int]),
    "LiteRtUnlockTensorBuffer": (ctypes.c_int, [_vp]),
    "LiteRtGetTensorBufferSize": (ctypes.c_int, [_vp, _P(ctypes.c_size_t)]),
    "LiteRtRunCompiledModel": (ctypes.c_int, [_vp, ctypes.c_size_t, ctypes.c_size_t, _P(_vp),
                                              ctypes.c_size_t, _P(_vp)]),
    "LiteRtCompiledModelGetProfiler": (ctypes.c_int, [_vp, _P(_vp)]),
    "LiteRtStartProfiler": (ctypes.c_int, [_vp]),
    "LiteRtStopProfiler": (ctypes.c_int, [_vp]),
    "LiteRtResetProfiler": (ctypes.c_int, [_vp]),
    "LiteRtGetNumProfilerEvents": (ctypes.c_int, [_vp, _P(ctypes.c_int)]),
    "LiteRtGetProfilerEvents": (ctypes.c_int, [_vp, ctypes.c_int, _P(ProfiledEventData)]),
    "LiteRtCompiledModelGetErrorMessages": (ctypes.c_int, [_vp, _P(ctypes.c_char_p)]),
}


def litert_version() -> str | None:
    try:
        return importlib.metadata.version("ai-edge-litert")
    except importlib.metadata.PackageNotFoundError:
        return None


def library_path() -> Path | None:
    """``libLiteRt.so`` inside the installed ai_edge_litert package (``TFLC_LITERT_LIB`` overrides)."""
    env = os.environ.get("TFLC_LITERT_LIB")
    if env:
        return Path(env)
    try:
        import ai_edge_litert
    except ImportError:
        return None
    p = Path(ai_edge_litert.__file__).parent / "libLiteRt.so"
    return p if p.is_file() else None


def check_struct_layout() -> None:
    """Our ctypes structs against the sizes and offsets that the C headers assert."""
    if ctypes.sizeof(ctypes.c_void_p) != 8:
        raise CApiUnavailable("the LiteRT C API binding supports 64-bit platforms only")
    for name, cls, size, offsets in _EXPECTED_LAYOUT:
        if ctypes.sizeof(cls) != size:
            raise CApiUnavailable(f"struct {name} is {ctypes.sizeof(cls)} bytes here, the LiteRT headers "
                                  f"say {size}")
        for field, off in offsets.items():
            got = getattr(cls, field).offset
            if got != off:
                raise CApiUnavailable(f"struct {name}.{field} at offset {got}, the LiteRT headers say {off}")


class Lib:
    """The loaded library with typed functions; :func:`load` returns a shared instance."""

    def __init__(self, path: Path):
        check_struct_layout()
        version = litert_version()
        if version is None:
            raise CApiUnavailable("ai-edge-litert is not installed")
        if not any(version == v or version.startswith(v + ".") for v in CHECKED_VERSIONS):
            if os.environ.get("TFLC_CAPI_ANY_VERSION") != "1":
                raise CApiUnavailable(
                    f"ai-edge-litert {version}: the C API binding was checked against "
                    f"{', '.join(CHECKED_VERSIONS)}.x only (its ProfiledEventData layout changed between "
                    "releases); set TFLC_CAPI_ANY_VERSION=1 to try anyway")
        try:
            self.dll = ctypes.CDLL(str(path), mode=getattr(os, "RTLD_LOCAL", 0) | getattr(os, "RTLD_NOW", 2))
        except OSError as e:
            raise CApiUnavailable(f"cannot load {path}: {e}") from None
        missing = [n for n in _SIGNATURES if not hasattr(self.dll, n)]
        if missing:
            raise CApiUnavailable(f"{path.name} lacks {', '.join(missing[:4])}"
                                  f"{' ...' if len(missing) > 4 else ''} (ai-edge-litert {version})")
        for name, (res, args) in _SIGNATURES.items():
            fn = getattr(self.dll, name)
            fn.restype, fn.argtypes = res, args
            setattr(self, name, fn)
        self.path, self.version = path, version
        libc_name = ctypes.util.find_library("c") or "libc.so.6"
        self.libc = ctypes.CDLL(libc_name)
        self.libc.strdup.restype = ctypes.c_void_p
        self.libc.strdup.argtypes = [ctypes.c_char_p]
        self.free = ctypes.cast(self.libc.free, ctypes.c_void_p).value

    def check(self, status: int, what: str, cm: int | None = None) -> None:
        if status != 0:
            detail = ""
            if cm:
                msg = ctypes.c_char_p()
                try:
                    if self.LiteRtCompiledModelGetErrorMessages(cm, ctypes.byref(msg)) == 0 and msg.value:
                        detail = ": " + msg.value.decode("utf-8", "replace").strip().splitlines()[0]
                except Exception:  # pragma: no cover - best effort
                    pass
            raise CApiError(f"LiteRT C API: {what} failed (status {status}){detail}")


class CApiError(TflcError):
    """A C API call returned an error status (the model or the options were refused)."""


_GENERIC = ("failed to invoke", "failed to run", "invoke failed")


def log_reason(lines: Sequence[str]) -> str:
    """The reason LiteRT logged for a failure (its C API returns only a status): its ERROR lines,
    without file:line prefixes and generic "Failed to invoke" lines, with a stub explained."""
    import re
    out: list[str] = []
    for ln in lines:
        m = re.match(r"\s*(?:E\d{4}|ERROR:?)\s*(.*)", ln)
        if not m:
            continue
        text = re.sub(r"^\[[^\]]*\.(?:cc|h|cpp):\d+\]\s*", "", m.group(1)).strip()
        if text and text.lower().rstrip(".") not in _GENERIC and text not in out:
            out.append(text)
    stub = [t for t in out if t.startswith("Stub operation invoked")]
    if stub:
        out = [t for t in out if t not in stub]
        node = next((t for t in out if t.startswith("Node number")), None)
        hint = "the op has no kernel in this mode (LiteRT ran a stub: a custom op with no builtin kernel)"
        out = [f"{node.rstrip('.')}: {hint}"] + [t for t in out if t is not node] if node else [hint] + out
    return "; ".join(t.rstrip(".") for t in out)


_LIB: Lib | None = None
_LIB_ERROR: CApiUnavailable | None = None


def load() -> Lib:
    """The library, loaded and checked once per process; raises CApiUnavailable with the reason."""
    global _LIB, _LIB_ERROR
    if os.environ.get("TFLC_NO_CAPI") == "1":
        raise CApiUnavailable("disabled by TFLC_NO_CAPI=1")
    if _LIB is not None:
        return _LIB
    if _LIB_ERROR is not None:
        raise _LIB_ERROR
    path = library_path()
    if path is None:
        _LIB_ERROR = CApiUnavailable("libLiteRt.so not found in the ai_edge_litert package")
        raise _LIB_ERROR
    try:
        _LIB = Lib(path)
    except CApiUnavailable as e:
        _LIB_ERROR = e
        raise
    return _LIB


def available() -> tuple[bool, str]:
    try:
        load()
        return True, ""
    except CApiUnavailable as e:
        return False, str(e)


def _toml_options(**kv: object) -> str:
    lines = []
    for k, v in kv.items():
        if v is None:
            continue
        if isinstance(v, bool):
            lines.append(f"{k} = {'true' if v else 'false'}")
        elif isinstance(v, int):
            lines.append(f"{k} = {v}")
        else:
            lines.append(f'{k} = "{v}"')
    return "\n".join(lines) + "\n"


def _aligned(nbytes: int, align: int = 64) -> tuple[np.ndarray, int]:
    raw = np.empty(nbytes + align, dtype=np.uint8)
    off = (-raw.ctypes.data) % align
    return raw, off


class CompiledModel:
    """One model compiled for the CPU through the C API, with inputs set once and run many times.

    ``kernel_mode``: "delegate" (XNNPACK, LiteRT's default), "builtin" (TFLite's builtin kernels, one
    profiler event per TFLite node) or "reference".
    """

    def __init__(self, model: str | os.PathLike | bytes, *, threads: int = 1, kernel_mode: str = "delegate",
                 profiling: bool = True):
        if kernel_mode not in KERNEL_MODES:
            raise ValueError(f"kernel_mode must be one of {KERNEL_MODES}")
        self.lib = load()
        self._handles: list[tuple[str, int]] = []   # (destroy function, handle), destroyed in reverse
        self.env = self.model = self.cm = self.profiler = None
        self._in_bufs: list[int] = []
        self._out_bufs: list[int] = []
        self.kernel_mode, self.threads = kernel_mode, threads
        try:
            self._open(model, threads, kernel_mode, profiling)
        except BaseException:
            self.close()
            raise

    # --- set-up ---
    def _new(self, fn: str, *args: object, destroy: str | None = None, what: str = "") -> int:
        h = ctypes.c_void_p()
        self.lib.check(getattr(self.lib, fn)(*args, ctypes.byref(h)), what or fn, self.cm)
        if not h.value:
            raise CApiError(f"LiteRT C API: {what or fn} returned NULL")
        if destroy:
            self._handles.append((destroy, h.value))
        return h.value

    def _open(self, model, threads: int, kernel_mode: str, profiling: bool) -> None:
        lib = self.lib
        self.env = self._new("LiteRtCreateEnvironment", 0, None, destroy="LiteRtDestroyEnvironment",
                             what="creating the environment")
        if isinstance(model, (bytes, bytearray, memoryview)):
            data = bytes(model)
            raw, off = _aligned(len(data))
            raw[off:off + len(data)] = np.frombuffer(data, dtype=np.uint8)
            self._model_bytes = raw       # must outlive the model
            self.model = self._new("LiteRtCreateModelFromBuffer", self.env, ctypes.c_void_p(raw.ctypes.data + off),
                                   len(data), destroy="LiteRtDestroyModel", what="reading the model")
        else:
            self.model = self._new("LiteRtCreateModelFromFile", self.env, os.fsencode(str(model)),
                                   destroy="LiteRtDestroyModel", what=f"reading {model}")
        opts = self._new("LiteRtCreateOptions")
        try:
            lib.check(lib.LiteRtSetOptionsHardwareAccelerators(opts, 1), "selecting the CPU")
            self._add_opaque(opts, "xnnpack", _toml_options(num_threads=int(threads), kernel_mode=kernel_mode))
            if kernel_mode != "delegate":    # the builtin kernels take their threads from here
                self._add_opaque(opts, "cpu_delegate", _toml_options(num_threads=int(threads)))
            if profiling:
                self._add_opaque(opts, "runtime_options_string", _toml_options(enable_profiling=True))
            self.cm = self._new("LiteRtCreateCompiledModel", self.env, self.model, opts,
                                destroy="LiteRtDestroyCompiledModel", what="compiling the model")
        finally:
            lib.LiteRtDestroyOptions(opts)
        if profiling:
            p = ctypes.c_void_p()
            lib.check(lib.LiteRtCompiledModelGetProfiler(self.cm, ctypes.byref(p)), "getting the profiler")
            if not p.value:
                raise CApiUnavailable("LiteRT compiled the model without a profiler (enable_profiling ignored)")
            self.profiler = p.value
        nsig = ctypes.c_size_t()
        lib.check(lib.LiteRtGetNumModelSignatures(self.model, ctypes.byref(nsig)), "counting signatures")
        if nsig.value < 1:
            raise CApiError("LiteRT C API: the model has no signature")
        sig = ctypes.c_void_p()
        lib.check(lib.LiteRtGetModelSignature(self.model, 0, ctypes.byref(sig)), "reading the signature")
        self.sig = sig.value
        self.input_names, self.input_types = self._sig_tensors("Input")
        self.output_names, self.output_types = self._sig_tensors("Output")
        self._shapes: list[tuple[int, ...]] | None = None

    def _add_opaque(self, opts: int, ident: str, payload: str) -> None:
        lib = self.lib
        p = lib.libc.strdup(payload.encode())
        o = ctypes.c_void_p()
        st = lib.LiteRtCreateOpaqueOptions(ident.encode(), ctypes.c_void_p(p), ctypes.c_void_p(lib.free),
                                           ctypes.byref(o))
        if st != 0:
            lib.libc.free(ctypes.c_void_p(p))
            lib.check(st, f"creating {ident} options")
        lib.check(lib.LiteRtAddOpaqueOptions(opts, o), f"adding {ident} options")  # options now own it

    def _sig_tensors(self, kind: str) -> tuple[list[str], list[tuple[np.dtype, tuple[int, ...]]]]:
        lib = self.lib
        n = ctypes.c_size_t()
        lib.check(getattr(lib, f"LiteRtGetNumSignature{kind}s")(self.sig, ctypes.byref(n)), f"counting {kind}s")
        names, types = [], []
        for i in range(n.value):
            name = ctypes.c_char_p()
            lib.check(getattr(lib, f"LiteRtGetSignature{kind}Name")(self.sig, i, ctypes.byref(name)), "name")
            t = ctypes.c_void_p()
            lib.check(getattr(lib, f"LiteRtGetSignature{kind}TensorByIndex")(self.sig, i, ctypes.byref(t)), "tensor")
            rt = LiteRtRankedTensorType()
            lib.check(lib.LiteRtGetRankedTensorType(t, ctypes.byref(rt)), f"{kind.lower()} type")
            dt = _DTYPES.get(rt.element_type)
            rank = rt.layout.rank
            if dt is None or rank > 8:
                raise CApiError(f"LiteRT C API: unsupported {kind.lower()} type (element type {rt.element_type}, "
                                f"rank {rank})")
            names.append((name.value or b"").decode())
            types.append((dt, tuple(int(rt.layout.dimensions[k]) for k in range(rank))))
        return names, types

    def _ranked(self, dtype: np.dtype, shape: Sequence[int]) -> LiteRtRankedTensorType:
        rt = LiteRtRankedTensorType()
        rt.element_type = _ELEMENT_TYPES[np.dtype(dtype)]
        rt.layout.rank = len(shape)
        rt.layout.has_strides = 0
        for k, d in enumerate(shape):
            rt.layout.dimensions[k] = int(d)
        return rt

    def _buffer(self, kind: str, i: int, dtype: np.dtype, shape: Sequence[int]) -> int:
        lib = self.lib
        req = ctypes.c_void_p()
        lib.check(getattr(lib, f"LiteRtGetCompiledModel{kind}BufferRequirements")(self.cm, 0, i, ctypes.byref(req)),
                  f"{kind.lower()} {i} buffer requirements", self.cm)
        rt = self._ranked(dtype, shape)
        b = ctypes.c_void_p()
        lib.check(lib.LiteRtCreateManagedTensorBufferFromRequirements(self.env, ctypes.byref(rt), req,
                                                                      ctypes.byref(b)),
                  f"creating the {kind.lower()} {i} buffer")
        return b.value

    def _free_buffers(self) -> None:
        for b in self._in_bufs + self._out_bufs:
            self.lib.LiteRtDestroyTensorBuffer(b)
        self._in_bufs, self._out_bufs = [], []

    def set_inputs(self, arrays: Sequence[np.ndarray]) -> None:
        """Inputs in signature order (see ``input_names``); resizes dynamic inputs as needed."""
        lib = self.lib
        if len(arrays) != len(self.input_types):
            raise CApiError(f"LiteRT C API: {len(self.input_types)} inputs expected, got {len(arrays)}")
        arrays = [np.ascontiguousarray(a, dtype=t[0]) for a, t in zip(arrays, self.input_types)]
        shapes = [tuple(a.shape) for a in arrays]
        if shapes != self._shapes:
            self._free_buffers()
            out_shapes = [s for _, s in self.output_types]
            if any(tuple(s) != tuple(t[1]) for s, t in zip(shapes, self.input_types)):
                for i, s in enumerate(shapes):
                    dims = (ctypes.c_int * max(1, len(s)))(*s)
                    lib.check(lib.LiteRtCompiledModelResizeInputTensor(self.cm, 0, i, dims, len(s)),
                              f"resizing input {i} to {s}", self.cm)
                layouts = (LiteRtLayout * max(1, len(self.output_types)))()
                lib.check(lib.LiteRtGetCompiledModelOutputTensorLayouts(self.cm, 0, len(self.output_types),
                                                                        layouts, True),
                          "output layouts after resizing", self.cm)
                out_shapes = [tuple(int(layouts[k].dimensions[j]) for j in range(layouts[k].rank))
                              for k in range(len(self.output_types))]
            for i, (a, (dt, _)) in enumerate(zip(arrays, self.input_types)):
                self._in_bufs.append(self._buffer("Input", i, dt, a.shape))
            for i, ((dt, _), s) in enumerate(zip(self.output_types, out_shapes)):
                self._out_bufs.append(self._buffer("Output", i, dt, [max(1, d) for d in s]))
            self._shapes = shapes
            self._out_shapes = out_shapes
        for b, a in zip(self._in_bufs, arrays):
            host = ctypes.c_void_p()
            lib.check(lib.LiteRtLockTensorBuffer(b, ctypes.byref(host), 1), "locking an input buffer")
            try:
                size = ctypes.c_size_t()
                lib.check(lib.LiteRtGetTensorBufferSize(b, ctypes.byref(size)), "input buffer size")
                if size.value < a.nbytes:
                    raise CApiError(f"LiteRT C API: input buffer of {size.value} bytes for {a.nbytes} bytes")
                ctypes.memmove(host.value, a.ctypes.data, a.nbytes)
            finally:
                lib.LiteRtUnlockTensorBuffer(b)

    def outputs(self) -> list[np.ndarray]:
        lib, outs = self.lib, []
        for b, (dt, _), s in zip(self._out_bufs, self.output_types, self._out_shapes):
            host = ctypes.c_void_p()
            lib.check(lib.LiteRtLockTensorBuffer(b, ctypes.byref(host), 0), "locking an output buffer")
            try:
                n = int(np.prod(s)) if len(s) else 1
                arr = np.empty(s, dtype=dt)
                ctypes.memmove(arr.ctypes.data, host.value, n * np.dtype(dt).itemsize)
            finally:
                lib.LiteRtUnlockTensorBuffer(b)
            outs.append(arr)
        return outs

    # --- running ---
    def run(self) -> None:
        nin, nout = len(self._in_bufs), len(self._out_bufs)
        ins = (ctypes.c_void_p * max(1, nin))(*self._in_bufs)
        outs = (ctypes.c_void_p * max(1, nout))(*self._out_bufs)
        self.lib.check(self.lib.LiteRtRunCompiledModel(self.cm, 0, nin, ins, nout, outs), "running the model", self.cm)

    def start_profiler(self) -> None:
        self.lib.check(self.lib.LiteRtStartProfiler(self.profiler), "starting the profiler")

    def stop_profiler(self) -> list[Event]:
        lib = self.lib
        lib.check(lib.LiteRtStopProfiler(self.profiler), "stopping the profiler")
        n = ctypes.c_int()
        lib.check(lib.LiteRtGetNumProfilerEvents(self.profiler, ctypes.byref(n)), "counting profiler events")
        if n.value <= 0:
            return []
        arr = (ProfiledEventData * n.value)()
        lib.check(lib.LiteRtGetProfilerEvents(self.profiler, n.value, arr), "reading profiler events")
        events = []
        for e in arr:
            tag = ctypes.string_at(e.tag).decode("utf-8", "replace") if e.tag else ""
            events.append(Event(tag, int(e.event_type), int(e.start_timestamp_us), int(e.elapsed_time_us),
                                int(e.event_metadata1), int(e.event_metadata2), int(e.event_source)))
        validate_events(events)
        return events

    def profile_run(self) -> list[Event]:
        """One invocation with the profiler on; its events."""
        if self.profiler is None:
            raise CApiError("LiteRT C API: the model was compiled without profiling")
        self.start_profiler()
        self.run()
        return self.stop_profiler()

    def close(self) -> None:
        if self.lib is None:
            return
        self._free_buffers()
        for fn, h in reversed(self._handles):
            getattr(self.lib, fn)(h)
        self._handles = []
        self.cm = self.model = self.env = self.profiler = None

    def __enter__(self) -> "CompiledModel":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def compiled_model(model: str | os.PathLike | bytes, *, threads: int = 1, kernel_mode: str = "delegate",
                   profiling: bool = True, name: str = "") -> CompiledModel:
    """The one way to open a model through the C API (the profiler uses it; see CompiledModel).

    A model whose custom ops run on kernels from ``tflc.kernels`` is refused (CApiError): those
    kernels reach LiteRT through the interpreter's kernel delegate (``tflc.runtime.Session``); the
    C API's own custom-op kernel option is a route for later. The profiler then times each op alone,
    in sessions, where the kernels run."""
    from .custom_ops import registered_kernels
    from .modelinfo import custom_op_counts, model_buffer
    with_kernels = sorted(registered_kernels(custom_op_counts(model_buffer(model))))
    if with_kernels:
        label = name or (str(model) if not isinstance(model, (bytes, bytearray, memoryview)) else "the model")
        raise CApiError(f"{label}: the LiteRT C API does not run custom ops on tflc.kernels kernels "
                        f"({', '.join(with_kernels)}); the interpreter does")
    return CompiledModel(model, threads=threads, kernel_mode=kernel_mode, profiling=profiling)


def validate_events(events: Sequence[Event]) -> None:
    """Refuse events that a mismatched struct layout would produce (garbage types, sources, tags)."""
    for e in events[:256]:
        if e.type not in _KNOWN_EVENT_TYPES or e.source not in _KNOWN_SOURCES:
            raise CApiUnavailable(
                f"LiteRT profiler events do not match the expected ProfiledEventData layout (event type "
                f"{e.type}, source {e.source}; ai-edge-litert {litert_version()}): the C structs changed")
        if e.type in (EV_OPERATOR, EV_DELEGATE_OPERATOR, EV_DELEGATE_PROFILED_OPERATOR) and \
                e.elapsed_us > 3_600_000_000:
            raise CApiUnavailable(f"LiteRT profiler event {e.tag!r} has an implausible time ({e.elapsed_us} µs): "
                                  "the C structs changed")
