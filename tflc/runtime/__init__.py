"""Running models on the stock LiteRT runtime: the one door to LiteRT in tflc.

Sessions (the interpreter), compiled models (the C API, for the profiler), inputs, isolation,
output checks, and the kernels a model's custom ops need (``tflc.kernels``, supplied through
tflc's kernel delegate; a custom op nothing runs is a ``MissingKernelError`` naming the file).

``Interpreter`` is the public face of that for users' code: a drop-in for
``ai_edge_litert.interpreter.Interpreter`` (a subclass, same arguments and methods) that adds
tflc's kernel delegate for the model's custom ops with registered kernels (``dropin``).
"""
from .check import Comparison, RunResult, check_kernels, compare_models, compare_pooled, compare_results, run_model
from .custom_ops import MissingKernelError, tflc_delegate_factory
from .dropin import Interpreter
from .inputs import generate, load_inputs, parse_shape_overrides
from .interpreter import RunOptions, Session, SessionError, preload
from .isolate import run_isolated
from .shapes import tensor_shapes

__all__ = ["Comparison", "Interpreter", "MissingKernelError", "RunResult", "RunOptions", "Session", "SessionError",
           "check_kernels", "compare_models", "compare_pooled", "compare_results", "generate", "load_inputs",
           "parse_shape_overrides", "preload", "run_isolated", "run_model", "tensor_shapes",
           "tflc_delegate_factory"]
