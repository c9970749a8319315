"""Reading and writing .tflite files."""
from .reader import read_model, read_model_bytes
from .writer import serialize, serialize_to, write_model

__all__ = ["read_model", "read_model_bytes", "serialize", "serialize_to", "write_model"]
