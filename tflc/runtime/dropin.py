"""``tflc.runtime.Interpreter``: LiteRT's Python ``Interpreter``, running the kernels of ``tflc.kernels``.

Code written for ``ai_edge_litert.interpreter.Interpreter`` changes one import and runs models
whose custom ops have kernels in ``tflc.kernels`` (tflc's own ``TFLC_*`` kernels and users')::

    from tflc.runtime import Interpreter          # was: from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_path="face.tflite", num_threads=2)
    interp.allocate_tensors()
    interp.set_tensor(interp.get_input_details()[0]["index"], x)
    interp.invoke()
    y = interp.get_tensor(interp.get_output_details()[0]["index"])

It *is* LiteRT's class (a subclass: same constructor keywords, same methods, same errors), with
one thing added at construction: when the model's custom codes (read from the flatbuffer,
``custom_ops.kernel_plan``) have registered kernels, tflc's ``KernelDelegate`` goes first in
``experimental_delegates``, ahead of the caller's delegates; XNNPACK (``OpResolverType.AUTO``)
takes what is left as usual. LiteRT keeps the delegate list for the interpreter's lifetime and
drops it only after the native interpreter (its ``__del__``), which is the order the delegate's
callbacks need. A model without custom ops gets no delegate at all: it is LiteRT unchanged.

A custom op with no kernel anywhere (not registered, not known to LiteRT or XNNPACK) shows when
LiteRT prepares the model; ``allocate_tensors`` (and a signature runner's call) then raise
:class:`~tflc.runtime.MissingKernelError` naming every such code. That error is also a
``RuntimeError``, what LiteRT raises there, so code written against LiteRT still catches it.
"""
from __future__ import annotations

import os
from typing import Any, Mapping, Sequence

from ai_edge_litert.interpreter import Interpreter as _LiteRTInterpreter
from ai_edge_litert.interpreter import OpResolverType, SignatureRunner

from . import custom_ops, modelinfo
from .delegate import KernelDelegate

__all__ = ["Interpreter", "OpResolverType"]

#: the resolvers with which LiteRT applies XNNPACK itself (what ``find_missing`` must probe with)
_XNNPACK_RESOLVERS = (OpResolverType.AUTO, OpResolverType.BUILTIN)


class _MissingKernel(custom_ops.MissingKernelError, RuntimeError):
    """MissingKernelError as LiteRT's own failure type, so ``except RuntimeError`` still catches it."""


def tflc_note(codes: Sequence[str]) -> str:
    """What a missing ``TFLC_*`` kernel means: the model was written by tflc for tflc's kernels."""
    ours = [c for c in codes if c.startswith("TFLC_")]
    if not ours:
        return ""
    listed = ", ".join(f"'{c}'" for c in ours)
    return (f"; {listed} {'are tflc kernels' if len(ours) > 1 else 'is a tflc kernel'}: this model needs "
            "tflc.runtime with tflc's kernels (a tflc whose tflc.kernels provides "
            f"{'them' if len(ours) > 1 else 'it'})")


class Interpreter(_LiteRTInterpreter):
    """LiteRT's ``Interpreter`` with the custom-op kernels of ``tflc.kernels`` supplied.

    Arguments are LiteRT's, in its order (see ``ai_edge_litert.interpreter.Interpreter``; keywords
    of a later LiteRT pass through). ``kernels`` (tflc's only addition, keyword-only) adds kernels
    for this interpreter only: custom code -> kernel (a callable, ``PythonKernel`` or
    ``NativeKernel``). A ``KernelDelegate`` among ``experimental_delegates`` is used instead of
    making one.

    :attr:`kernel_delegate` is tflc's delegate (None when no custom op has a kernel), and
    :attr:`custom_ops` the model's custom codes with their op counts.
    """

    def __init__(self, model_path: str | os.PathLike | None = None, model_content: bytes | None = None,
                 experimental_delegates: Sequence[Any] | None = None, num_threads: int | None = None,
                 experimental_op_resolver_type: OpResolverType = OpResolverType.AUTO,
                 experimental_preserve_all_tensors: bool = False,
                 experimental_disable_delegate_clustering: bool = False,
                 experimental_default_delegate_latest_features: bool = False,
                 experimental_compress_quantization_zero_points: bool = False,
                 experimental_disable_delegate_node_fusion: bool = False,
                 experimental_force_delegate_node_profiling: bool = False, *,
                 kernels: Mapping[str, Any] | None = None, **litert_options: Any):
        self._tflc_source: Any = model_content if model_content is not None else model_path
        self._tflc_threads = num_threads
        self._tflc_xnnpack = experimental_op_resolver_type in _XNNPACK_RESOLVERS
        self._tflc_kernels = dict(kernels or {})
        user = list(experimental_delegates or [])
        given = next((d for d in user if isinstance(d, KernelDelegate)), None)
        plan, plan_error = self._plan(given), None
        if isinstance(plan, Exception):        # e.g. an unreadable file: LiteRT says why, as it would
            plan, plan_error = custom_ops.KernelPlan({}, {}, None), plan
        self.custom_ops: dict[str, int] = plan.custom
        self.kernel_delegate: KernelDelegate | None = plan.delegate
        # tflc's delegate first: the caller's delegates, then XNNPACK, take what is left. LiteRT keeps
        # this list (self._delegates) alive as long as the native interpreter.
        delegates = ([plan.delegate] if plan.delegate is not None and given is None else []) + user
        try:
            super().__init__(model_path=model_path, model_content=model_content,
                             experimental_delegates=delegates or None, num_threads=num_threads,
                             experimental_op_resolver_type=experimental_op_resolver_type,
                             experimental_preserve_all_tensors=experimental_preserve_all_tensors,
                             experimental_disable_delegate_clustering=experimental_disable_delegate_clustering,
                             experimental_default_delegate_latest_features=experimental_default_delegate_latest_features,
                             experimental_compress_quantization_zero_points=(
                                 experimental_compress_quantization_zero_points),
                             experimental_disable_delegate_node_fusion=experimental_disable_delegate_node_fusion,
                             experimental_force_delegate_node_profiling=experimental_force_delegate_node_profiling,
                             **litert_options)      # keywords of a later LiteRT
        except RuntimeError as e:        # a caller's delegate without dynamic tensors prepares every node
            self._reraise(e)
        if plan_error is not None:       # LiteRT read a model tflc could not: its kernels were not supplied
            raise plan_error

    def _plan(self, given: KernelDelegate | None) -> custom_ops.KernelPlan | Exception:
        """The model's custom codes and tflc's delegate for those with kernels (or why not)."""
        source = self._tflc_source
        if source is None:
            return custom_ops.KernelPlan({}, {}, None)        # LiteRT raises its own ValueError
        try:
            buf = modelinfo.model_buffer(source)
            if given is not None:
                return custom_ops.KernelPlan(modelinfo.custom_op_counts(buf), dict(given.kernels), given)
            return custom_ops.kernel_plan(buf, self._tflc_kernels, xnnpack=self._tflc_xnnpack)
        except Exception as e:  # noqa: BLE001 - reported after LiteRT had its say
            return e

    @property
    def _model_name(self) -> str:
        src = self._tflc_source
        return str(src) if isinstance(src, (str, os.PathLike)) else "the in-memory model"

    def _missing(self, first: str) -> custom_ops.MissingKernelError:
        """Every custom code no kernel runs (LiteRT names one at a time), as one error."""
        from .interpreter import RunOptions, find_missing
        kernels = self.kernel_delegate.kernels if self.kernel_delegate is not None else {}
        try:
            found = find_missing(self._tflc_source, RunOptions(threads=self._tflc_threads or 1,
                                                               xnnpack=self._tflc_xnnpack), first=first)
        except Exception:  # noqa: BLE001 - the probe is a courtesy: the code LiteRT named is enough
            found = {}
        missing = {c: n for c, n in found.items() if c not in kernels} or {first: self.custom_ops.get(first, 1)}
        message = custom_ops.missing_message(self._model_name, missing, xnnpack=self._tflc_xnnpack)
        return _MissingKernel(message + tflc_note(list(missing)), codes=missing)

    def _reraise(self, e: RuntimeError) -> None:
        """LiteRT's failure, as MissingKernelError where it is an unresolved custom op."""
        code = custom_ops.unresolved_code(str(e))
        if code is None:
            raise e
        raise self._missing(code) from e

    def allocate_tensors(self) -> None:
        """LiteRT's ``allocate_tensors``; a custom op without kernel raises MissingKernelError."""
        try:
            return super().allocate_tensors()
        except RuntimeError as e:
            self._reraise(e)

    def get_signature_runner(self, signature_key: str | None = None) -> SignatureRunner:
        """LiteRT's signature runner, whose calls raise MissingKernelError as ``allocate_tensors`` does."""
        if signature_key is None:
            if len(self._signature_defs) != 1:
                return super().get_signature_runner(None)      # LiteRT's ValueError
            signature_key = next(iter(self._signature_defs))
        return _SignatureRunner(interpreter=self, signature_key=signature_key)


class _SignatureRunner(SignatureRunner):
    """LiteRT's SignatureRunner (it allocates on every call) with tflc's missing-kernel error."""

    def __call__(self, **kwargs: Any) -> dict:
        try:
            return super().__call__(**kwargs)
        except RuntimeError as e:
            self._interpreter._reraise(e)
            raise   # not reached: _reraise always raises
