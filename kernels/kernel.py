"""What a kernel is: the code that runs one custom op (one custom code) of a model.

Two kinds, both handed to LiteRT by ``tflc.runtime`` (its kernel delegate) for every op of a
model whose custom code has a registered kernel:

* :class:`PythonKernel`: a Python callable ``fn(inputs, options) -> outputs``, with ``inputs`` a
  list of numpy arrays (read-only views of LiteRT's tensors, valid during the call only; None for
  an omitted optional input), ``options`` the op's custom options (bytes, as in the file; often a
  flexbuffer), and ``outputs`` one array per op output (or one array for a single output), of the
  outputs' dtypes and shapes. Called through a ctypes callback: ~10 µs per call, for a first
  version of a kernel or for ops that are rare in a model.
* :class:`NativeKernel`: machine code called by LiteRT directly, with no Python per invocation
  (e.g. a Numba ``@cfunc``; its ``.address``). Its ``invoke(TfLiteContext*, TfLiteNode*)`` gets
  a node whose ``user_data`` points to a ``TfLiteNode`` describing the op as the model holds it:
  its inputs and outputs in order and its custom options (``custom_initial_data``), the view a
  kernel registered with LiteRT's op resolver would have. ``init`` (optional, Python, called once
  per op when the interpreter is built, as a LiteRT kernel's ``init``) turns the op's custom options
  into a block of parameters (a numpy array) that the delegate keeps alive with the op; its address
  is then that ``TfLiteNode``'s ``user_data``. ``prepare`` (optional) is called at every shape
  change, ``invoke`` at every run.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Optional, Sequence

#: ``fn(input_shapes, options) -> output shapes``: for ops whose output shapes the model leaves
#: open or gets wrong once inputs are resized (None: the shapes written in the model)
ShapeFn = Callable[[Sequence[Optional[tuple]], bytes], Sequence[tuple]]


@dataclass(frozen=True)
class PythonKernel:
    fn: Callable[[list, bytes], Any]
    output_shapes: ShapeFn | None = None
    #: only where LiteRT runs without XNNPACK (whose delegate runs this custom op itself, faster):
    #: e.g. MediaPipe's Convolution2DTransposeBias, which tflc's calibration needs on the builtin path
    fallback: bool = False
    kind = "python"

    def __post_init__(self) -> None:
        if not callable(self.fn):
            raise TypeError(f"a kernel must be callable (inputs, options) -> outputs, not {type(self.fn).__name__}")
        if self.output_shapes is not None and not callable(self.output_shapes):
            raise TypeError("output_shapes must be callable (input_shapes, options) -> shapes")


@dataclass(frozen=True)
class NativeKernel:
    """Addresses of C functions with the ``TfLiteRegistration`` signatures (0: none)."""

    invoke: int
    prepare: int = 0
    #: ``init(custom_options) -> numpy array``: the op's parameters, decoded once (None: none)
    init: Callable[[bytes], Any] | None = None
    fallback: bool = False        # as PythonKernel.fallback
    kind = "native"

    def __post_init__(self) -> None:
        for name in ("invoke", "prepare"):
            v = getattr(self, name)
            if not isinstance(v, int) or v < 0 or (name == "invoke" and v == 0):
                raise TypeError(f"NativeKernel.{name} must be a function address (int), got {v!r}")
        if self.init is not None and not callable(self.init):
            raise TypeError("NativeKernel.init must be callable (custom_options) -> numpy array")


Kernel = PythonKernel | NativeKernel


def as_kernel(obj: Any) -> Kernel:
    """A kernel from what a user registers: a kernel object, or a plain callable (a PythonKernel)."""
    if isinstance(obj, (PythonKernel, NativeKernel)):
        return obj
    if callable(obj):
        return PythonKernel(obj)
    raise TypeError(f"a kernel is a callable (inputs, options) -> outputs, a PythonKernel or a NativeKernel, "
                    f"not {type(obj).__name__}")
