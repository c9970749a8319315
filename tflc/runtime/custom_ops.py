"""The kernels a model needs: its custom ops, the kernels registered for them, and the ones missing.

When a ``Session`` opens a model it asks :func:`kernel_plan`: the model's custom codes (from the
flatbuffer's op-code table), and for those with a kernel in ``tflc.kernels`` a
:class:`~tflc.runtime.delegate.KernelDelegate` that makes LiteRT run them. Custom codes without
one are left to LiteRT, which knows a few (``TFLite_Detection_PostProcess``; XNNPACK takes
MediaPipe's ``Convolution2DTransposeBias``...). Which ones it does not know shows only when it
prepares the model ("Encountered unresolved custom op"), one op at a time; ``interpreter.find_missing``
gets the whole list by preparing the model again with a stand-in kernel for each op LiteRT named,
until it prepares (so XNNPACK's own custom ops count as known where XNNPACK takes them).
:class:`MissingKernelError` then names the file, every missing code and how to supply a kernel.
"""
from __future__ import annotations

import importlib
import re
from dataclasses import dataclass
from typing import Any, Callable, Mapping

from ..errors import RuntimeFailure
from . import modelinfo

#: LiteRT's message for a custom op that neither its resolver nor a delegate took
UNRESOLVED = re.compile(r"unresolved custom op: (.+?)\.(?:\s|$)")


class MissingKernelError(RuntimeFailure):
    """LiteRT has no kernel for some custom ops of a model, and none is registered (exit 2)."""

    def __init__(self, message: str, *, codes: Mapping[str, int] | None = None):
        super().__init__(message)
        self.codes = dict(codes or {})


def _kernels_module() -> Any:
    # ``tflc.kernels`` is the top-level ``kernels/`` folder installed under tflc; imported by name at
    # run time, since a static ``from .. import kernels`` reads (to import-linter) as an import of
    # the ``tflc`` package itself and of everything its __init__ pulls in.
    return importlib.import_module("tflc.kernels")


def registered_kernels(codes: Mapping[str, int] | Any, *, xnnpack: bool = True) -> dict[str, Any]:
    """Custom code -> kernel, for the codes in ``codes`` that have one (with ``xnnpack``, not the
    fallback kernels: XNNPACK's delegate runs those custom ops itself)."""
    k = _kernels_module()
    return {c: kern for c in codes if (kern := k.lookup(c)) is not None
            and not (xnnpack and getattr(kern, "fallback", False))}


def missing_message(name: str, codes: Mapping[str, int], *, xnnpack: bool = True) -> str:
    """``face.tflite: LiteRT has no kernel for custom op 'X' (3 ops); register one with ...``."""
    def ops(n: int) -> str:
        return f"{n} op{'s' if n != 1 else ''}"
    listed = ", ".join(f"'{c}' ({ops(n)})" for c, n in codes.items())
    first = next(iter(codes), "CODE")
    many = len(codes) > 1
    where = "" if xnnpack else " without XNNPACK"
    return (f"{name}: LiteRT has no kernel for custom op{'s' if many else ''} {listed}{where}; register "
            f"{'one for each' if many else 'one'} with tflc.kernels.register('{first}', fn) or a package's "
            "'tflc.kernels' entry point")


@dataclass
class KernelPlan:
    """What a Session needs to run a model's custom ops."""
    custom: dict[str, int]            # custom code -> ops with it
    kernels: dict[str, Any]           # the codes with a registered kernel
    delegate: Any | None              # the KernelDelegate for them (None: no registered kernel used)


def unregistered(buf: Any) -> dict[str, int]:
    """The model's custom codes without a registered kernel: code -> ops."""
    custom = modelinfo.custom_op_counts(buf)
    kernels = registered_kernels(custom)
    return {c: n for c, n in custom.items() if c not in kernels}


def kernel_plan(buf: Any, extra: Mapping[str, Any] | None = None, *, xnnpack: bool = True) -> KernelPlan:
    """The model's custom ops and a delegate for those with a kernel (``extra``: more kernels,
    for this model only; ``xnnpack``: the interpreter applies XNNPACK, so fallback kernels stay out)."""
    custom = modelinfo.custom_op_counts(buf)
    if not custom:
        return KernelPlan({}, {}, None)
    kernels = registered_kernels(custom, xnnpack=xnnpack)
    as_kernel = _kernels_module().as_kernel
    kernels.update({c: as_kernel(k) for c, k in (extra or {}).items() if c in custom})
    if not kernels:
        return KernelPlan(custom, {}, None)
    from .delegate import KernelDelegate
    return KernelPlan(custom, kernels, KernelDelegate(kernels, modelinfo.subgraph_layouts(buf)))


def stand_in(inputs: list, options: bytes) -> list:
    """A kernel for a custom op LiteRT named as missing, so that it names the next one (never run)."""
    raise RuntimeFailure("no kernel for this custom op (a stand-in used to list the missing ones)")


def unresolved_code(reason: str) -> str | None:
    """The custom code in LiteRT's "Encountered unresolved custom op: X." message, if it is one."""
    m = UNRESOLVED.search(reason)
    return m.group(1) if m else None


def tflc_delegate_factory(data: bytes) -> tuple[Callable[[], Any] | None, str]:
    """tflc's kernel delegate for a model holding tflc kernels (custom codes ``TFLC_*``):
    ``(factory, "")``, or ``(None, why not)``."""
    custom = modelinfo.custom_op_counts(data)
    tflc_codes = sorted(c for c in custom if c.upper().startswith("TFLC"))
    if not tflc_codes:
        return None, "no tflc kernels in this model"
    kernels = registered_kernels(tflc_codes)
    lacking = [c for c in tflc_codes if c not in kernels]
    if lacking:
        return None, (f"model holds tflc kernels ({', '.join(tflc_codes)}) but tflc.kernels has none registered for "
                      f"{', '.join(lacking)}")

    def make() -> Any:
        return kernel_plan(data).delegate
    return make, ""
