"""tflc: a compiler-style, profiling-guided optimizer for TensorFlow Lite / LiteRT models.

Follow one model through the package:
  tflc.io.read_model -> tflc.ir (Model, verify) -> tflc.passmanager (passes from tflc.passes)
  -> tflc.io.write_model -> tflc.runtime (LiteRT checks the result).
"""
from ._version import __version__  # noqa: E402

from .errors import ModelFormatError, TflcError, UsageError, VerificationError  # noqa: E402
from .io import read_model, read_model_bytes, serialize, write_model  # noqa: E402
from .ir import Model, verify  # noqa: E402
from .passes_api import Pass, function_pass, register  # noqa: E402

__all__ = ["Model", "ModelFormatError", "Pass", "TflcError", "UsageError", "VerificationError",
           "function_pass", "read_model", "read_model_bytes", "register", "serialize", "verify",
           "write_model", "__version__"]
