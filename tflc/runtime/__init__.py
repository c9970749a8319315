"""Running models on the stock LiteRT runtime: the one door to LiteRT in tflc.

Sessions (the interpreter), compiled models (the C API, for the profiler), inputs, isolation,
output checks, and the kernels a model's custom ops need (``tflc.kernels``, supplied through
tflc's kernel delegate; a custom op nothing runs is a ``MissingKernelError`` naming the file).
"""
from .check import Comparison, RunResult, check_kernels, compare_models, compare_results, run_model
from .custom_ops import MissingKernelError, tflc_delegate_factory
from .inputs import generate, load_inputs, parse_shape_overrides
from .interpreter import RunOptions, Session, SessionError, preload
from .isolate import run_isolated
from .shapes import tensor_shapes

__all__ = ["Comparison", "MissingKernelError", "RunResult", "RunOptions", "Session", "SessionError",
           "check_kernels", "compare_models", "compare_results", "generate", "load_inputs",
           "parse_shape_overrides", "preload", "run_isolated", "run_model", "tensor_shapes",
           "tflc_delegate_factory"]
