"""Running a model in the stock LiteRT interpreter, for tflc's needs.

``Session`` is the one door to LiteRT's interpreter: it loads a model (path or bytes), supplies
the kernels of its custom ops (``custom_ops``: tflc's and registered ones, through tflc's kernel
delegate), fixes dynamic input shapes to the inputs it is given, and runs one or several steps
(stateful models keep their variables between steps). Options choose XNNPACK or the builtin
kernels only, threads, extra delegates, and keeping every intermediate tensor (calibration, the
profiler's op-alone fallback). LiteRT's native log lines are captured, so a failure becomes one
readable error naming the file, not a wall of C++ text.
"""
from __future__ import annotations

import contextlib
import os
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

import numpy as np

from ..errors import RuntimeFailure
from . import custom_ops, modelinfo
from .delegate import KernelDelegate

#: pause when switching between two runtimes of one process that use several threads: one
#: runtime's idle worker threads spin for a while after their last job
SWITCH_PAUSE_S = 0.05


@dataclass(frozen=True)
class RunOptions:
    threads: int = 1
    xnnpack: bool = True          # False: builtin kernels only (LiteRT's reference path)
    delegates: tuple = ()         # extra delegate objects (tflc's kernel delegate is added by itself)
    preserve_all_tensors: bool = False   # keep every intermediate tensor's value (``Session.tensor_values``)
    #: False: each node a delegate takes becomes a delegate kernel of its own, which makes the
    #: delegate's decision visible node by node (``tflc.runtime.delegation``)
    delegate_node_fusion: bool = True


class SessionError(RuntimeFailure):
    """LiteRT refused or failed a model; ``reason`` is LiteRT's own first line, without the file."""

    def __init__(self, message: str, *, reason: str = ""):
        super().__init__(message)
        self.reason = reason or message


@contextlib.contextmanager
def native_stderr() -> Iterator[list[str]]:
    """Capture what native code writes to fd 2; the lines are appended to the yielded list."""
    lines: list[str] = []
    try:
        saved = os.dup(2)
    except OSError:  # no fd 2 (embedded): nothing to capture
        yield lines
        return
    with tempfile.TemporaryFile() as tmp:
        os.dup2(tmp.fileno(), 2)
        try:
            yield lines
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            text = tmp.read().decode("utf-8", "replace")
            lines.extend(ln for ln in text.splitlines()
                         if ln.strip() and "Created TensorFlow Lite XNNPACK delegate" not in ln)


def failure_reason(exc: BaseException, log: list[str]) -> str:
    """The first useful line of a LiteRT failure: its logged ERROR, else the exception text."""
    msg = str(exc).strip().splitlines()
    detail = [ln for ln in log if "ERROR" in ln or "rror" in ln] or log
    first = detail[0] if detail else (msg[0] if msg else type(exc).__name__)
    return first.replace("ERROR: ", "").replace("Node number", "; node number").strip()


def preload() -> None:
    """Load LiteRT's libraries now (e.g. before measuring memory: they are not the model's)."""
    import ai_edge_litert.interpreter  # noqa: F401


class Session:
    """One LiteRT interpreter over one model.

    ``name`` names the model in errors (default: its path); give it for bytes read from a file.
    ``extra_kernels`` adds kernels for this session only (custom code -> kernel).
    """

    def __init__(self, model: str | os.PathLike | bytes, options: RunOptions = RunOptions(), name: str = "", *,
                 extra_kernels: Mapping[str, Any] | None = None, _probe: bool = False):
        from ai_edge_litert.interpreter import Interpreter, OpResolverType
        in_memory = isinstance(model, (bytes, bytearray, memoryview))
        self.name = name or (str(model) if not in_memory else "the in-memory model")
        self.options = options
        self._model, self._probe = (bytes(model) if in_memory else str(Path(model))), _probe
        buf = modelinfo.model_buffer(self._model)
        given = [d for d in options.delegates if isinstance(d, KernelDelegate)]       # one made by the caller
        plan = (custom_ops.kernel_plan(buf, extra_kernels, xnnpack=options.xnnpack) if not given else
                custom_ops.KernelPlan(modelinfo.custom_op_counts(buf), dict(given[0].kernels), given[0]))
        self.custom_ops: dict[str, int] = plan.custom        # custom code -> ops, as the file holds them
        self.kernel_delegate = plan.delegate                   # claims the ops with a registered kernel
        # tflc's kernel delegate goes first: the others (and XNNPACK, applied last) take what is left
        delegates = [plan.delegate] if plan.delegate else []
        delegates += [d for d in options.delegates if d is not plan.delegate]
        kw: dict[str, Any] = dict(num_threads=options.threads, experimental_delegates=delegates or None,
                                  experimental_preserve_all_tensors=options.preserve_all_tensors,
                                  experimental_disable_delegate_node_fusion=not options.delegate_node_fusion,
                                  experimental_op_resolver_type=(
                                      OpResolverType.AUTO if options.xnnpack
                                      else OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES))
        kw["model_content" if in_memory else "model_path"] = self._model
        with native_stderr() as log, warnings.catch_warnings():
            warnings.simplefilter("ignore")          # preserve_all_tensors with XNNPACK: asked for on purpose
            try:
                self.interp = Interpreter(**kw)
            except Exception as e:  # LiteRT raises ValueError/RuntimeError with multi-line text
                err = e
            else:
                err = None
        if err is not None:
            raise self._failure("cannot load", err, log)
        self.input_details = self.interp.get_input_details()
        self.output_details = self.interp.get_output_details()
        self._allocated_shapes: list[tuple[int, ...]] | None = None

    def _failure(self, doing: str, exc: BaseException, log: list[str]) -> RuntimeFailure:
        """One error for a LiteRT failure: a kernel's own error first, and a custom op no kernel
        runs as the list of every such op (MissingKernelError)."""
        d = self.kernel_delegate
        reason = (d.error if d is not None and d.error else None) or failure_reason(exc, log)
        code = custom_ops.unresolved_code(reason)
        if code is not None and not self._probe:
            missing = find_missing(self._model, self.options, first=code) or {code: 1}
            return custom_ops.MissingKernelError(
                custom_ops.missing_message(self.name, missing, xnnpack=self.options.xnnpack), codes=missing)
        return SessionError(f"LiteRT {doing} {self.name}: {reason}", reason=reason)

    def _clear_kernel_error(self) -> None:
        if self.kernel_delegate is not None:
            self.kernel_delegate.error = None

    @property
    def input_names(self) -> list[str]:
        return [d["name"] for d in self.input_details]

    @property
    def output_names(self) -> list[str]:
        return [d["name"] for d in self.output_details]

    def _prepare(self, arrays: Sequence[np.ndarray]) -> None:
        shapes = [tuple(a.shape) for a in arrays]
        if shapes == self._allocated_shapes:
            return
        self._clear_kernel_error()
        with native_stderr() as log:
            try:
                for d, shape in zip(self.input_details, shapes):
                    if tuple(d["shape"]) != shape:
                        self.interp.resize_tensor_input(d["index"], list(shape), strict=False)
                self.interp.allocate_tensors()
            except Exception as e:
                err = e
            else:
                err = None
        if err is not None:
            raise self._failure("cannot prepare", err, log)
        self._allocated_shapes = shapes

    def allocate(self, shapes: Sequence[Sequence[int]] | None = None) -> None:
        """Prepare the model for inputs of ``shapes`` (default: the model's own input shapes)."""
        shapes = shapes if shapes is not None else [d["shape"] for d in self.input_details]
        self._prepare([np.empty(tuple(int(x) for x in s), d["dtype"]) for s, d in zip(shapes, self.input_details)])

    def run(self, inputs: Sequence[np.ndarray], *, copy: bool = True) -> list[np.ndarray]:
        """One invocation; inputs in the model's input order.

        Returns copies of the outputs, or with ``copy=False`` zero-copy views into LiteRT's output
        buffers: valid until the next invocation, and to be dropped before it (LiteRT refuses to
        run while views into its buffers are alive).
        """
        if len(inputs) != len(self.input_details):
            raise RuntimeFailure(f"{self.name}: {len(self.input_details)} inputs expected, got {len(inputs)}")
        arrays = [np.asarray(a, dtype=d["dtype"]) for a, d in zip(inputs, self.input_details)]
        self._prepare(arrays)
        self._clear_kernel_error()
        with native_stderr() as log:
            try:
                for d, a in zip(self.input_details, arrays):
                    self.interp.set_tensor(d["index"], a)
                self.interp.invoke()
            except Exception as e:
                err = e
            else:
                err = None
        if err is not None:
            raise self._failure("failed running", err, log)
        if not copy:
            return [self.interp.tensor(d["index"])() for d in self.output_details]
        return [self.interp.get_tensor(d["index"]) for d in self.output_details]

    def tensor_values(self, inputs: Sequence[np.ndarray] | None = None, subgraph: int = 0,
                      dtypes: tuple[type, ...] | None = None) -> dict[int, np.ndarray]:
        """Every readable tensor of ``subgraph`` (default the main one) after a run (on ``inputs``,
        else the last one), by tensor index; ``dtypes``: only tensors of those types. Intermediate
        tensors hold their values only with ``RunOptions(preserve_all_tensors=True)``; a control-flow
        body's hold its last iteration's. Resource and variant tensors are never read: LiteRT 2.3.0's
        get_tensor crashes on some of them (SIGSEGV on a stateful model's variables once its
        initializer subgraph has run, measured on hey_jarvis and the zoo's stateful_counter)."""
        if inputs is not None:
            self.run(inputs)
        values = {}
        for td in self.interp.get_tensor_details(subgraph_index=subgraph):
            if td["dtype"] is np.object_ or (dtypes is not None and td["dtype"] not in dtypes):
                continue
            try:
                values[int(td["index"])] = np.array(self.interp.get_tensor(td["index"], subgraph_index=subgraph))
            except (ValueError, RuntimeError):   # no data (a delegate's internal tensor, a resource)
                pass
        return values

    @property
    def num_subgraphs(self) -> int:
        return int(self.interp.num_subgraphs())

    def input_views(self, shapes: Sequence[Sequence[int]] | None = None) -> list[np.ndarray]:
        """Writable zero-copy views of the input buffers (after sizing them to ``shapes``): fill
        them in place, drop them, then ``invoke()``."""
        if shapes is not None or self._allocated_shapes is None:
            self.allocate(shapes)
        return [self.interp.tensor(d["index"])() for d in self.input_details]

    def tensor_details(self, subgraph: int = 0) -> list[dict]:
        """LiteRT's description of every tensor of ``subgraph`` (name, index, shape, dtype, quantization)."""
        return self.interp.get_tensor_details(subgraph_index=subgraph)

    def invoke(self) -> None:
        """Invoke again on the inputs already set (for timing loops)."""
        self.interp.invoke()

    def run_steps(self, steps: Sequence[Sequence[np.ndarray]]) -> list[list[np.ndarray]]:
        """Several invocations in a row on the same interpreter (state carries over)."""
        return [self.run(s) for s in steps]


def find_missing(model: str | os.PathLike | bytes, options: RunOptions, first: str | None = None) -> dict[str, int]:
    """The custom codes of ``model`` that LiteRT cannot run with ``options`` and no kernel is
    registered for: code -> ops, in the file's order. ``first``: one LiteRT already named.

    LiteRT names one unresolved op per attempt; each named code gets a stand-in kernel (claiming
    its ops) and the model is prepared again, until it prepares or fails otherwise."""
    custom = modelinfo.custom_op_counts(modelinfo.model_buffer(model))
    candidates = custom_ops.unregistered(modelinfo.model_buffer(model))
    missing: list[str] = [first] if first in candidates else []
    for _ in range(len(candidates) + 1):
        try:
            Session(model, options, name="probe", extra_kernels=dict.fromkeys(missing, custom_ops.stand_in),
                    _probe=True).allocate()
            break
        except RuntimeFailure as e:
            code = custom_ops.unresolved_code(getattr(e, "reason", str(e)))
            if code is None or code in missing or code not in candidates:
                break                       # another failure: not a missing kernel
            missing.append(code)
    return {c: custom[c] for c in custom if c in missing}
