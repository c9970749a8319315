"""The IR: Model, Subgraph, Operator, Tensor, Buffer, OpCode; graph views and the verifier."""
from .core import Buffer, Model, OpCode, Operator, SignatureDef, Subgraph, Tensor
from .verify import verify

__all__ = ["Buffer", "Model", "OpCode", "Operator", "SignatureDef", "Subgraph", "Tensor", "verify"]
