"""Hand-built graphs for the partition tests (gpu, nnapi, ethos-u): a small builder over tflc.ir.build.

    g = Graph()
    x = g.input("x", (1, 8, 8, 4))                      # int8, scale 0.05 (dtype="FLOAT32": no quantization)
    w = g.weights("w", (8, 3, 3, 4))                    # constant int8, per-channel scales along axis 0
    y = g.op("CONV_2D", [x, w, g.bias("b", 8)], (1, 8, 8, 8), "Conv2D", padding="SAME", strideW=1, strideH=1)
    model = g.done([y])                                 # inputs: the tensors made by input()
"""
from __future__ import annotations

from typing import Any, Iterable

import numpy as np

from tflc.ir.build import builtin_opcode, new_model
from tflc.ir.core import Model, OpCode, Operator, Tensor
from tflc.schema import OP_CODES, OPTIONS_CLASSES, OPTIONS_TYPES, TYPE_CODES, fb

_NP = {"INT8": np.int8, "UINT8": np.uint8, "INT16": np.int16, "INT32": np.int32, "INT64": np.int64,
       "FLOAT32": np.float32, "FLOAT16": np.float16, "BOOL": np.bool_}
_QUANTIZED = ("INT8", "UINT8", "INT16")


def quant(scale: float | Iterable[float], zero_point: int | Iterable[int] = 0, axis: int = 0):
    q = fb.QuantizationParametersT()
    q.scale = [float(s) for s in np.atleast_1d(scale)]
    zp = np.atleast_1d(zero_point)
    q.zeroPoint = [int(z) for z in (zp if zp.size == len(q.scale) else np.full(len(q.scale), zp[0]))]
    q.quantizedDimension = axis
    return q


def options(kind: str, **fields: Any) -> tuple[Any, int]:
    """``options("Conv2D", padding="SAME", strideW=1)`` -> (Conv2DOptionsT, its BuiltinOptions tag);
    enum fields (padding, fusedActivationFunction) may be given by name."""
    name = kind if kind.endswith("Options") else kind + "Options"
    obj = OPTIONS_CLASSES[name]()
    enums = {"padding": fb.Padding, "fusedActivationFunction": fb.ActivationFunctionType}
    for k, v in fields.items():
        if not hasattr(obj, k):
            raise AttributeError(f"{name} has no field {k}")
        if isinstance(v, str) and k in enums:
            v = getattr(enums[k], v)
        setattr(obj, k, v)
    return obj, OPTIONS_TYPES[name]


class Graph:
    def __init__(self, description: str = "tflc partition test"):
        self.model, self.sg = new_model(description)
        self.inputs: list[Tensor] = []

    # --- tensors
    def tensor(self, name: str, shape, dtype: str = "INT8", scale: float | None = 0.05, zero_point: int = 0,
               signature=None) -> Tensor:
        q = quant(scale, zero_point) if dtype in _QUANTIZED and scale is not None else None
        return self.sg.new_tensor(name, TYPE_CODES[dtype], shape, quantization=q, shape_signature=signature)

    def input(self, name: str, shape, dtype: str = "INT8", **kw) -> Tensor:
        t = self.tensor(name, shape, dtype, **kw)
        self.inputs.append(t)
        return t

    def const(self, name: str, array, dtype: str | None = None, scale=None, zero_point=0, axis: int = 0) -> Tensor:
        arr = np.asarray(array)
        if dtype is not None:
            arr = arr.astype(_NP[dtype])
        q = quant(scale, zero_point, axis) if scale is not None else None
        return self.sg.new_constant(name, arr, quantization=q)

    def weights(self, name: str, shape, dtype: str = "INT8", per_channel_axis: int | None = 0, value: int = 1,
                scale: float = 0.01) -> Tensor:
        """A constant weight tensor of ``value`` everywhere (small sums stay inside every weight limit)."""
        arr = np.full(shape, value, dtype=_NP[dtype])
        if dtype not in _QUANTIZED:
            return self.sg.new_constant(name, arr)
        n = shape[per_channel_axis] if per_channel_axis is not None else 1
        return self.const(name, arr, scale=[scale] * n, axis=per_channel_axis or 0)

    def bias(self, name: str, n: int, dtype: str = "INT32", scale: float = 0.0005) -> Tensor:
        arr = np.zeros((n,), dtype=_NP[dtype])
        return self.const(name, arr, scale=[scale] * n if dtype in ("INT32", "INT64") else None)

    def ints(self, name: str, values, dtype: str = "INT32") -> Tensor:
        return self.sg.new_constant(name, np.asarray(values, dtype=_NP[dtype]))

    # --- ops
    def op(self, op_type: str, ins: Iterable[Tensor | None], out, opts: str | None = None, version: int = 1,
           dtype: str = "INT8", scale: float | None = 0.05, zero_point: int = 0, **fields) -> Tensor | list[Tensor]:
        """Append ``op_type``; ``out`` is a Tensor, a shape (a new output tensor of ``dtype``) or a list of
        them. Returns the output tensor(s)."""
        outs = out if isinstance(out, list) else [out]
        made = [o if isinstance(o, Tensor) else
                self.tensor(f"{op_type.lower()}_{len(self.sg.operators)}_{i}", o, dtype, scale, zero_point)
                for i, o in enumerate(outs)]
        o, tag = options(opts, **fields) if opts else (None, 0)
        self.sg.add_op(Operator(builtin_opcode(op_type, version), list(ins), made, options=o, options_type=tag))
        return made if isinstance(out, list) else made[0]

    def custom(self, code: str, ins, out, dtype: str = "INT8") -> Tensor:
        t = out if isinstance(out, Tensor) else self.tensor(f"{code}_{len(self.sg.operators)}", out, dtype)
        self.sg.add_op(Operator(OpCode(OP_CODES["CUSTOM"], code, 1), list(ins), [t]))
        return t

    def done(self, outputs: Iterable[Tensor]) -> Model:
        self.sg.set_graph_inputs(self.inputs)
        self.sg.set_graph_outputs(list(outputs))
        return self.model

    @property
    def ops(self) -> tuple[Operator, ...]:
        return self.sg.operators


def side_by_side(models: Iterable[Model]) -> tuple[Model, list[int]]:
    """One model holding the (single-subgraph) ``models`` next to each other, each op reading only
    its own model's tensors: ``(model, first op index of each)``. Per-op decisions are the same, and
    one compile (Vela) answers for all of them."""
    g = Graph("tflc partition tests, side by side")
    starts, outputs = [], []
    for k, m in enumerate(models):
        (sg,) = m.subgraphs
        starts.append(len(g.sg.operators))
        tmap: dict[int, Tensor] = {}
        for t in sg.tensors:
            nt = Tensor(f"m{k}/{t.name}", t.dtype, t.shape, buffer=t.buffer, quantization=t.quantization,
                        shape_signature=t.shape_signature, is_variable=t.is_variable)
            tmap[id(t)] = g.sg.add_tensor(nt)
        for op in sg.operators:
            g.sg.add_op(Operator(op.opcode, [tmap[id(t)] if t is not None else None for t in op.inputs],
                                 [tmap[id(t)] if t is not None else None for t in op.outputs],
                                 options=op.options, options_type=op.options_type,
                                 custom_options=op.custom_options))
        g.inputs += [tmap[id(t)] for t in sg.inputs]
        outputs += [tmap[id(t)] for t in sg.outputs]
    return g.done(outputs), starts
