"""Which kernel runs which custom code: registered in-process, or by installed packages.

``register(code, kernel)`` puts a kernel in the registry of this process (a forked child, where
tflc runs LiteRT, inherits it). Packages add kernels through the ``tflc.kernels`` entry-point
group: the entry point's name is the custom code, its object the kernel (a callable or a kernel
object), e.g. ``Landmarks2TransformMatrix = "my_pkg.kernels:landmarks_to_matrix"``. Entry points are
read on the first lookup; a kernel registered in code takes precedence over an entry point's.
tflc's own kernels (custom codes ``TFLC_*``, :mod:`tflc.kernels.library`) are loaded on the first
lookup of such a code (compiling them takes a moment, so models without them never pay it).
"""
from __future__ import annotations

import warnings
from importlib import metadata
from typing import Any

from .kernel import Kernel, as_kernel

ENTRY_POINT_GROUP = "tflc.kernels"

_REGISTRY: dict[str, Kernel] = {}
_ORIGIN: dict[str, str] = {}
_loaded = False
_own_loaded = False
TFLC_PREFIX = "TFLC_"


def _check_code(code: Any) -> str:
    if not isinstance(code, str) or not code or code != code.strip():
        raise ValueError(f"a custom code is a non-empty string without surrounding spaces, not {code!r}")
    return code


def register(custom_code: str, kernel: Any, *, replace: bool = False) -> Kernel:
    """Run ``kernel`` for every op with ``custom_code``; returns it as a kernel object. Registering a
    code twice is an error unless ``replace``."""
    code = _check_code(custom_code)
    k = as_kernel(kernel)
    _load_entry_points()
    if code in _REGISTRY and not replace and _ORIGIN.get(code) == "tflc.kernels.register":
        raise ValueError(f"a kernel is already registered for custom code {code!r} (replace=True replaces it)")
    _REGISTRY[code] = k
    _ORIGIN[code] = "tflc.kernels.register"
    return k


def unregister(custom_code: str) -> None:
    """Forget the kernel of ``custom_code`` (no error if there is none)."""
    _REGISTRY.pop(custom_code, None)
    _ORIGIN.pop(custom_code, None)


def lookup(custom_code: str) -> Kernel | None:
    _load_entry_points()
    if isinstance(custom_code, str) and custom_code.startswith(TFLC_PREFIX):
        _load_own()
    return _REGISTRY.get(custom_code)


def registered() -> dict[str, str]:
    """Every registered custom code and where its kernel comes from."""
    _load_entry_points()
    _load_own()
    return dict(sorted(_ORIGIN.items()))


def _load_entry_points() -> None:
    global _loaded
    if _loaded:
        return
    _loaded = True
    for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
        try:
            code = _check_code(ep.name)
            k = as_kernel(ep.load())
        except Exception as e:  # a broken plug-in must not break tflc
            warnings.warn(f"tflc: skipping kernel plug-in {ep.name!r} ({ep.value}): {e}", stacklevel=3)
            continue
        if code in _REGISTRY:
            warnings.warn(f"tflc: kernel plug-in {ep.value} for {code!r} clashes with another; skipped", stacklevel=3)
            continue
        _REGISTRY[code] = k
        _ORIGIN[code] = ep.dist.name if getattr(ep, "dist", None) else ep.value


def _load_own() -> None:
    """tflc's own kernels, under their ``TFLC_*`` codes (a kernel registered in code for one of
    those codes keeps precedence)."""
    global _own_loaded
    if _own_loaded:
        return
    _own_loaded = True
    from .library import KERNELS
    for code, k in KERNELS.items():
        if code not in _REGISTRY:
            _REGISTRY[code] = k
            _ORIGIN[code] = "tflc"
