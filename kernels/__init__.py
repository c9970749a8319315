"""Kernels for custom ops, installed as ``tflc.kernels``: the registry and what a kernel is.

A model may hold custom ops (an op code ``CUSTOM`` with a custom code string) that LiteRT has no
kernel for. Register one and every tflc command runs the model (``tflc.runtime`` supplies the
kernels to LiteRT through its kernel delegate when it opens a model)::

    import tflc.kernels

    def my_op(inputs, options):          # numpy arrays in, numpy arrays out
        x, y = inputs
        return [x * 2 + y]

    tflc.kernels.register("MyOp", my_op)

Packages add kernels with an entry point in the ``tflc.kernels`` group (name: the custom code).
A kernel that must not run Python per call is a Numba ``@cfunc`` given to ``NativeKernel``:
``tflc.kernels.mediapipe_face`` (MediaPipe's face-landmark ops, ``register_all()``) is the worked
example, with declared constraints as ``(ok, reason)`` predicates; docs/kernels.md walks through
it. tflc's own kernels (custom codes ``TFLC_*``: ``lut``, ``softmax_i8``, ``batch_matmul_i8``,
gathered in ``library``) are looked up the same way; the ``use-kernels`` pass writes them.

This package sits below ``tflc.runtime``: it never imports the runtime or LiteRT.
"""
from .kernel import Kernel, NativeKernel, PythonKernel, as_kernel
from .registry import ENTRY_POINT_GROUP, lookup, register, registered, unregister

__all__ = ["ENTRY_POINT_GROUP", "Kernel", "NativeKernel", "PythonKernel", "as_kernel", "lookup", "register",
           "registered", "unregister"]
