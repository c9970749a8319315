"""Running a model in the stock LiteRT interpreter, for tflc's needs.

``Session`` loads a model (path or bytes), fixes dynamic input shapes to the inputs it is given,
and runs one or several steps (stateful models keep their variables between steps). LiteRT's
native log lines are captured, so a failure becomes one readable error, not a wall of C++ text.
"""
from __future__ import annotations

import contextlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from ..errors import RuntimeFailure


@dataclass(frozen=True)
class RunOptions:
    threads: int = 1
    xnnpack: bool = True          # False: builtin kernels only (LiteRT's reference path)
    delegates: tuple = ()         # extra delegate objects (e.g. tflc's kernel delegate)


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


class Session:
    """One LiteRT interpreter over one model."""

    def __init__(self, model: str | os.PathLike | bytes, options: RunOptions = RunOptions(), name: str = ""):
        from ai_edge_litert.interpreter import Interpreter, OpResolverType
        self.name = name or (str(model) if not isinstance(model, (bytes, bytearray)) else "<model>")
        kw = dict(num_threads=options.threads,
                  experimental_delegates=list(options.delegates) or None,
                  experimental_op_resolver_type=(OpResolverType.AUTO if options.xnnpack
                                                 else OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES))
        if isinstance(model, (bytes, bytearray)):
            kw["model_content"] = bytes(model)
        else:
            kw["model_path"] = str(Path(model))
        with native_stderr() as log:
            try:
                self.interp = Interpreter(**kw)
            except Exception as e:  # LiteRT raises ValueError/RuntimeError with multi-line text
                raise RuntimeFailure(f"LiteRT cannot load {self.name}: {failure_reason(e, log)}") from None
        self.input_details = self.interp.get_input_details()
        self.output_details = self.interp.get_output_details()
        self._allocated_shapes: list[tuple[int, ...]] | None = None

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
        with native_stderr() as log:
            try:
                for d, shape in zip(self.input_details, shapes):
                    if tuple(d["shape"]) != shape:
                        self.interp.resize_tensor_input(d["index"], list(shape), strict=False)
                self.interp.allocate_tensors()
            except Exception as e:
                raise RuntimeFailure(f"LiteRT cannot prepare {self.name}: {failure_reason(e, log)}") from None
        self._allocated_shapes = shapes

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
        with native_stderr() as log:
            try:
                for d, a in zip(self.input_details, arrays):
                    self.interp.set_tensor(d["index"], a)
                self.interp.invoke()
            except Exception as e:
                raise RuntimeFailure(f"LiteRT failed running {self.name}: {failure_reason(e, log)}") from None
        if not copy:
            return [self.interp.tensor(d["index"])() for d in self.output_details]
        return [self.interp.get_tensor(d["index"]) for d in self.output_details]

    def input_views(self, shapes: Sequence[Sequence[int]] | None = None) -> list[np.ndarray]:
        """Writable zero-copy views of the input buffers (after sizing them to ``shapes``): fill
        them in place, drop them, then ``invoke()``."""
        if shapes is not None:
            self._prepare([np.empty(tuple(s), d["dtype"]) for s, d in zip(shapes, self.input_details)])
        elif self._allocated_shapes is None:
            self._prepare([np.empty(tuple(d["shape"]), d["dtype"]) for d in self.input_details])
        return [self.interp.tensor(d["index"])() for d in self.input_details]

    def tensor_details(self) -> list[dict]:
        """LiteRT's description of every tensor (name, index, shape, dtype, quantization)."""
        return self.interp.get_tensor_details()

    def invoke(self) -> None:
        """Invoke again on the inputs already set (for timing loops)."""
        self.interp.invoke()

    def run_steps(self, steps: Sequence[Sequence[np.ndarray]]) -> list[list[np.ndarray]]:
        """Several invocations in a row on the same interpreter (state carries over)."""
        return [self.run(s) for s in steps]
