"""Running models on the stock LiteRT runtime: sessions, inputs, isolation, output checks."""
from .check import Comparison, RunResult, compare_models, compare_results, run_model
from .inputs import generate, load_inputs, parse_shape_overrides
from .interpreter import RunOptions, Session
from .isolate import run_isolated
from .shapes import tensor_shapes

__all__ = ["Comparison", "RunResult", "RunOptions", "Session", "compare_models", "compare_results",
           "generate", "load_inputs", "parse_shape_overrides", "run_isolated", "run_model", "tensor_shapes"]
