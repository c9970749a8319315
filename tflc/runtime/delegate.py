"""tflc's kernel delegate: runs the kernels of ``tflc.kernels`` inside the stock LiteRT interpreter.

LiteRT exports no way to add a custom op to its op resolver from Python, but it accepts delegates,
and a delegate can be built with ctypes (``tflite_c``). When the interpreter applies it (before
XNNPACK, which then takes what is left), its ``Prepare`` checks the structs against the model
(``tflite_c.check_context``), then hands every op whose custom code has a kernel to a delegate
kernel of its own, one op per delegate node, so that every tensor keeps its memory (a run with
``preserve_all_tensors`` sees them all) and a native kernel sees exactly one op:

* a :class:`~tflc.kernels.PythonKernel` runs through ctypes callbacks (``_invoke``): the op's
  inputs as numpy views, its outputs written back into LiteRT's tensors;
* a :class:`~tflc.kernels.NativeKernel`'s function addresses go straight into the delegate
  kernel's ``TfLiteRegistration``: LiteRT calls them with no Python in between; the node's
  ``user_data`` points to a ``TfLiteNode`` of the op as the model holds it (inputs, outputs,
  custom options).

The delegate is built with ``kTfLiteDelegateFlagsAllowDynamicTensors``: without it the interpreter
prepares every node before delegating, and fails on the custom ops no resolver knows. A failure in
a callback never escapes into C: it is kept in :attr:`KernelDelegate.error` (and reported through
the context), and the callback returns ``kTfLiteError``.
"""
from __future__ import annotations

import ctypes
import itertools
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from ..errors import RuntimeFailure
from . import tflite_c as C

_DELEGATE_NAME = b"TflcKernels"


@dataclass
class _Op:
    """One custom op claimed by the delegate."""
    code: str
    kernel: Any
    subgraph: int
    index: int
    inputs: list[int]
    outputs: list[int]
    options: bytes
    keep: list = field(default_factory=list)     # ctypes objects a native kernel's node points into
    tensors: dict = field(default_factory=dict)  # tensor index -> TfLiteTensor (set at each prepare)
    views: dict = field(default_factory=dict)    # tensor index -> ((data, bytes), numpy view)

    def view(self, index: int, *, writable: bool) -> np.ndarray:
        """A numpy view of a tensor's memory, made again only when LiteRT moved or resized it."""
        t = self.tensors[index]
        key = (t.data, t.bytes)
        hit = self.views.get(index)
        if hit is not None and hit[0] == key:
            return hit[1]
        v = C.tensor_view(t)
        if v is None:
            raise RuntimeFailure(f"tensor {C.tensor_name(t)!r} has no memory")
        v.flags.writeable = writable        # a kernel must not write into its inputs
        self.views[index] = (key, v)
        return v

    def label(self) -> str:
        where = f"node {self.index}" + (f" of subgraph {self.subgraph}" if self.subgraph else "")
        return f"custom op {self.code!r} ({where})"


class KernelDelegate:
    """A ``TfLiteDelegate`` for one interpreter, claiming the ops of ``kernels``' custom codes.

    ``layouts`` (``modelinfo.subgraph_layouts``) describe the model, for the layout check.
    After the interpreter is built, :attr:`claimed` maps a subgraph to the nodes taken.
    """

    def __init__(self, kernels: Mapping[str, Any], layouts: Sequence[Any]):
        self.kernels = dict(kernels)
        self.layouts = list(layouts)
        self.error: str | None = None
        self.claimed: dict[int, list[int]] = {}
        self._pending: dict[tuple[int, int], _Op] = {}
        self._ops: dict[int, _Op] = {}
        self._handles = itertools.count(1)
        self._registrations: dict[Any, C.TfLiteRegistration] = {}
        # the C function objects must live as long as the interpreter: they are attributes
        self._c_delegate_prepare = C.DelegatePrepareFn(self._guard(self._delegate_prepare, on_node=False))
        self._c_init = C.InitFn(self._kernel_init)
        self._c_free = C.FreeFn(self._kernel_free)
        self._c_prepare = C.PrepareFn(self._guard(self._kernel_prepare, on_node=True))
        self._c_invoke = C.InvokeFn(self._guard(self._kernel_invoke, on_node=True))
        self._struct = C.TfLiteDelegate()
        self._struct.Prepare = _address(self._c_delegate_prepare)
        self._struct.flags = C.kTfLiteDelegateFlagsAllowDynamicTensors

    def _get_native_delegate_pointer(self) -> int:
        """What LiteRT's ``Interpreter(experimental_delegates=[...])`` asks a delegate for."""
        return ctypes.addressof(self._struct)

    @property
    def claimed_count(self) -> int:
        return sum(len(v) for v in self.claimed.values())

    # --- error handling: nothing raises into C ---
    def _guard(self, fn: Callable[[int, int], int], *, on_node: bool) -> Callable[[int, int], int]:
        """``fn(context, node_or_delegate)`` as a C callback: an exception becomes :attr:`error`, a
        report through the context and ``kTfLiteError``."""
        def call(context: int, arg: int) -> int:
            try:
                return fn(context, arg)
            except BaseException as e:   # noqa: BLE001 - an exception must not unwind through LiteRT
                op = self._op_of(arg) if on_node else None
                subject = f"the kernel for {op.label()}" if op is not None else "tflc's kernel delegate"
                detail = str(e) if isinstance(e, RuntimeFailure) else f"{type(e).__name__}: {e}"
                self.error = self.error or f"{subject}: {detail}"
                C.Context(context).report(self.error)
                return C.kTfLiteError
        return call

    def _op_of(self, node: int) -> _Op | None:
        try:
            return self._ops.get(C.TfLiteNode.from_address(node).user_data or 0)
        except Exception:
            return None

    # --- the delegate's Prepare: claim the ops ---
    def _delegate_prepare(self, context: int, delegate: int) -> int:
        ctx = C.Context(context)
        sg = C.check_context(ctx, self.layouts)
        mine = []
        for i in ctx.execution_plan():
            node, reg = ctx.node(i)
            if reg.builtin_code != C.kTfLiteBuiltinCustom or not reg.custom_name:
                continue
            code = reg.custom_name.decode("utf-8", "replace")
            kernel = self.kernels.get(code)
            if kernel is None:
                continue
            size = int(node.custom_initial_data_size)
            options = ctypes.string_at(node.custom_initial_data, size) if node.custom_initial_data and size > 0 else b""
            mine.append(_Op(code, kernel, sg, i, C.int_array(node.inputs), C.int_array(node.outputs), options))
        for op in mine:
            for t in op.inputs + op.outputs:      # tensors a kernel cannot read are refused up front
                if t >= 0 and ctx.tensor(t).type not in C.DTYPES:
                    tt = ctx.tensor(t)
                    raise RuntimeFailure(f"{op.label()}: tensor {C.tensor_name(tt)!r} is "
                                         f"{C.TYPE_NAMES.get(tt.type, tt.type)}, which tflc kernels cannot read")
            self._pending[(context, op.index)] = op
            if ctx.replace_nodes(self._registration(op.kernel), [op.index], delegate) != C.kTfLiteOk:
                raise RuntimeFailure(f"LiteRT refused to hand {op.label()} to tflc's kernel delegate")
            self.claimed.setdefault(sg, []).append(op.index)
        return C.kTfLiteOk

    def _registration(self, kernel: Any) -> C.TfLiteRegistration:
        """One registration for every Python kernel, one per native kernel (its own functions)."""
        key = ("native", kernel.invoke, kernel.prepare) if kernel.kind == "native" else "python"
        reg = self._registrations.get(key)
        if reg is None:
            reg = C.TfLiteRegistration()
            reg.init, reg.free = _address(self._c_init), _address(self._c_free)
            if kernel.kind == "native":
                reg.prepare, reg.invoke = kernel.prepare or None, kernel.invoke
            else:
                reg.prepare, reg.invoke = _address(self._c_prepare), _address(self._c_invoke)
            reg.builtin_code, reg.custom_name, reg.version = C.kTfLiteBuiltinDelegate, _DELEGATE_NAME, 1
            self._registrations[key] = reg
        return reg

    # --- the delegate kernel: one per claimed op ---
    def _kernel_init(self, context: int, buffer: int, length: int) -> int:
        try:
            params = C.TfLiteDelegateParams.from_address(buffer)
            nodes = C.int_array(params.nodes_to_replace)
            op = self._pending.pop((context, nodes[0])) if len(nodes) == 1 else None
        except Exception as e:  # noqa: BLE001
            self.error = self.error or f"tflc's kernel delegate failed initializing a kernel: {e}"
            return 0
        if op is None:
            self.error = self.error or f"tflc's kernel delegate got a partition of {len(nodes)} nodes, not one"
            return 0
        if op.kernel.kind == "native":     # user_data: a TfLiteNode of the op as the model holds it
            handle = _native_node(op, self._native_params(op))
        else:
            handle = next(self._handles)
        self._ops[handle] = op
        return handle

    def _native_params(self, op: _Op) -> int:
        """The address of the parameter block a native kernel's ``init`` decodes from the op's
        options (kept with the op), or 0: none, or ``init`` refused the op (its invoke then fails)."""
        init = getattr(op.kernel, "init", None)
        if init is None:
            return 0
        try:
            block = np.ascontiguousarray(init(op.options))
        except Exception as e:  # noqa: BLE001 - a refusal is a reason, reported at the first run
            self.error = self.error or f"the kernel for {op.label()}: {e}"
            return 0
        op.keep.append(block)
        return int(block.ctypes.data)

    def _kernel_free(self, context: int, buffer: int) -> None:
        self._ops.pop(buffer or 0, None)

    def _kernel_prepare(self, context: int, node: int) -> int:
        op = self._ops.get(C.TfLiteNode.from_address(node).user_data or 0)
        if op is None:
            raise RuntimeFailure(self.error or "a delegate node without its op")
        op.views.clear()        # called whenever shapes change: memory is about to be planned again
        ctx = C.Context(context)
        op.tensors = {i: ctx.tensor(i) for i in op.inputs + op.outputs if i >= 0}
        shapes_fn = getattr(op.kernel, "output_shapes", None)
        if shapes_fn is not None:
            in_shapes = [C.tensor_shape(op.tensors[i]) if i >= 0 else None for i in op.inputs]
            shapes = [tuple(int(d) for d in s) for s in shapes_fn(in_shapes, op.options)]
            if len(shapes) != len(op.outputs):
                raise RuntimeFailure(f"output_shapes gave {len(shapes)} shapes for {len(op.outputs)} outputs")
            for i, shape in zip(op.outputs, shapes):
                t = op.tensors.get(i)
                if t is not None and C.tensor_shape(t) != shape and ctx.resize(t, shape) != C.kTfLiteOk:
                    raise RuntimeFailure(f"LiteRT refused to resize output {C.tensor_name(t)!r} to {shape}")
        return C.kTfLiteOk

    def _kernel_invoke(self, context: int, node: int) -> int:
        op = self._ops.get(C.TfLiteNode.from_address(node).user_data or 0)
        if op is None:
            raise RuntimeFailure(self.error or "a delegate node without its op")
        inputs = [op.view(i, writable=False) if i >= 0 else None for i in op.inputs]
        result = op.kernel.fn(inputs, op.options)
        outputs = [result] if isinstance(result, np.ndarray) else list(result)
        if len(outputs) != len(op.outputs):
            raise RuntimeFailure(f"it returned {len(outputs)} output(s), the op has {len(op.outputs)}")
        for k, (i, value) in enumerate(zip(op.outputs, outputs)):
            if i >= 0:
                _write_output(C.Context(context), op, i, k, np.asarray(value))
        return C.kTfLiteOk


def _address(fn: Any) -> int:
    return ctypes.cast(fn, ctypes.c_void_p).value or 0


def _write_output(ctx: C.Context, op: _Op, index: int, k: int, value: np.ndarray) -> None:
    view = op.view(index, writable=True)
    if value.shape != view.shape:
        t = op.tensors[index]
        if t.allocation_type != C.kTfLiteDynamic or ctx.resize(t, tuple(value.shape)) != C.kTfLiteOk:
            raise RuntimeFailure(f"output {k} ({C.tensor_name(t)!r}) has shape {tuple(value.shape)}, the model's "
                                 f"tensor is {view.shape} (a kernel whose output shapes follow its inputs needs output_shapes: "
                                 "tflc.kernels.PythonKernel(fn, output_shapes=...))")
        view = op.view(index, writable=True)       # a dynamic tensor: new memory
    if not np.can_cast(value.dtype, view.dtype, "same_kind"):
        raise RuntimeFailure(f"output {k} ({C.tensor_name(op.tensors[index])!r}) is {view.dtype}, the kernel returned "
                             f"{value.dtype}")
    view[...] = value


def _native_node(op: _Op, user_data: int = 0) -> int:
    """A TfLiteNode describing ``op`` (kept alive by it), with ``user_data``; its address."""
    ins = (ctypes.c_int * (len(op.inputs) + 1))(len(op.inputs), *op.inputs)
    outs = (ctypes.c_int * (len(op.outputs) + 1))(len(op.outputs), *op.outputs)
    opts = ctypes.create_string_buffer(op.options, max(1, len(op.options)))
    node = C.TfLiteNode()
    node.inputs, node.outputs = ctypes.addressof(ins), ctypes.addressof(outs)
    node.custom_initial_data, node.custom_initial_data_size = ctypes.addressof(opts), len(op.options)
    node.user_data = user_data or None
    op.keep += [ins, outs, opts, node]
    return ctypes.addressof(node)
