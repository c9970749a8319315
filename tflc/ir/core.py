"""tflc's IR: a .tflite model as Python objects that reference each other.

Indices of the flatbuffer (tensor, buffer, opcode indices) exist only in the reader and the
writer; inside the IR an operator holds its Tensor objects and a tensor holds its Buffer. The
use-def information (producer, uses) is kept by the Subgraph's mutation methods, so passes never
edit lists by hand: they call ``add_op``, ``remove_op``, ``set_input``, ``replace_all_uses``...
Every mutation bumps ``Subgraph.version``, which invalidates the cached networkx view
(``ir.graph``, a view built on this module: core never imports it) and the pass manager's analyses: so fields (shape, dtype, buffer, quantization, name, options, opcode) are
changed only through the Subgraph's ``set_*`` methods too, never by assignment.

Every tensor and operator gets a ``uid`` when it joins a subgraph: an int unique within its Model,
kept by ``Model.clone()``. What one pass tells a later one (``ctx.facts``) is keyed by uid, so it
survives clones (the -O2 latency guard replays passes on clones); ``id()`` does not.
"""
from __future__ import annotations

import copy
import dataclasses
import itertools
import math
from typing import Any, Iterable, Iterator

import numpy as np

from ..schema import (OP_NAMES, PLACEHOLDER_FOR_GREATER_OP_CODES, TYPE_NAMES, itemsize_bits,
                      numpy_dtype, op_name)


@dataclasses.dataclass(frozen=True)
class OpCode:
    """An entry of the operator-code table. ``builtin_code`` is the effective code."""

    builtin_code: int
    custom_code: str | None = None
    version: int = 1
    deprecated_builtin_code: int | None = None  # as read; None = derive on write
    stored_builtin_code: int | None = None      # the builtin_code field as read (old files: 0)

    @property
    def name(self) -> str:
        if self.custom_code is not None and OP_NAMES.get(self.builtin_code) == "CUSTOM":
            return self.custom_code
        return op_name(self.builtin_code)

    @property
    def is_custom(self) -> bool:
        return OP_NAMES.get(self.builtin_code) == "CUSTOM"

    def deprecated_code(self) -> int:
        if self.deprecated_builtin_code is not None:
            return self.deprecated_builtin_code
        return min(self.builtin_code, PLACEHOLDER_FOR_GREATER_OP_CODES)

    def stored_code(self) -> int:
        return self.builtin_code if self.stored_builtin_code is None else self.stored_builtin_code


#: The fields of a Tensor and of an Operator that change only through Subgraph methods (each
#: bumps the version); use-def lists and uids are private and the Subgraph's own.
TENSOR_FIELDS = frozenset({"name", "dtype", "shape", "shape_signature", "buffer", "quantization", "is_variable",
                           "sparsity", "has_rank", "variant_tensors", "external_buffer"})
OP_FIELDS = frozenset({"opcode", "options", "options_type", "options2", "options2_type", "custom_options",
                       "custom_options_format", "mutating_variable_inputs", "debug_metadata_index"})


class UidCounter:
    """Hands out the uids of one model. A clone starts its own counter where the original's is,
    so that the clone's new tensors and ops do not collide with the uids it copied."""

    __slots__ = ("next",)

    def __init__(self, start: int = 0):
        self.next = start

    def take(self) -> int:
        self.next += 1
        return self.next - 1


class Buffer:
    """Constant bytes, possibly shared by several tensors. ``data`` is a read-only uint8 view."""

    __slots__ = ("data", "__weakref__")

    def __init__(self, data: Any = None):
        if data is not None:
            arr = np.frombuffer(data, dtype=np.uint8) if not isinstance(data, np.ndarray) else data
            if arr.dtype != np.uint8 or arr.ndim != 1:
                arr = np.ascontiguousarray(arr).reshape(-1).view(np.uint8)
            data = arr
        self.data: np.ndarray | None = data

    @property
    def nbytes(self) -> int:
        return 0 if self.data is None else int(self.data.size)

    def __repr__(self) -> str:
        return f"Buffer({self.nbytes} bytes)"


class Tensor:
    """A tensor of one subgraph. Fields mirror the schema; ``buffer`` holds constant data."""

    def __init__(self, name: str, dtype: int, shape: Iterable[int] | None, *,
                 buffer: Buffer | None = None, quantization: Any = None,
                 shape_signature: Iterable[int] | None = None, is_variable: bool = False,
                 sparsity: Any = None, has_rank: bool = False, variant_tensors: Any = None,
                 external_buffer: int = 0):
        self.name = name
        self.dtype = dtype                      # schema TensorType code
        self.shape: tuple[int, ...] | None = tuple(int(d) for d in shape) if shape is not None else None
        self.shape_signature = tuple(int(d) for d in shape_signature) if shape_signature is not None else None
        self.buffer = buffer
        self.quantization = quantization        # fb.QuantizationParametersT or None
        self.is_variable = is_variable
        self.sparsity = sparsity                # fb.SparsityParametersT or None
        self.has_rank = has_rank
        self.variant_tensors = variant_tensors
        self.external_buffer = external_buffer
        self._producer: Operator | None = None
        self._uses: list[tuple[Operator, int]] = []
        self._uid: int | None = None            # set when the tensor joins a subgraph
        self._uid_owner: UidCounter | None = None

    @property
    def uid(self) -> int | None:
        """Stable identity: unique within the model, kept by ``Model.clone()`` (None: in no subgraph)."""
        return self._uid

    # --- use-def (read-only views; the Subgraph maintains them) ---
    @property
    def producer(self) -> "Operator | None":
        return self._producer

    @property
    def uses(self) -> list[tuple["Operator", int]]:
        return list(self._uses)

    @property
    def consumers(self) -> list["Operator"]:
        seen: dict[int, Operator] = {}
        for op, _ in self._uses:
            seen.setdefault(id(op), op)
        return list(seen.values())

    # --- constant data ---
    @property
    def is_constant(self) -> bool:
        return self.buffer is not None and self.buffer.nbytes > 0 and not self.is_variable

    @property
    def type_name(self) -> str:
        return TYPE_NAMES.get(self.dtype, f"TYPE_{self.dtype}")

    @property
    def np_dtype(self) -> np.dtype | None:
        return numpy_dtype(self.dtype)

    @property
    def num_elements(self) -> int | None:
        if self.shape is None:
            return None
        return int(math.prod(self.shape))

    def expected_nbytes(self) -> int | None:
        """Bytes a dense buffer of this shape and type must hold, or None if not fixed."""
        bits = itemsize_bits(self.dtype)
        n = self.num_elements
        if bits is None or n is None or self.sparsity is not None:
            return None
        return (n * bits + 7) // 8

    @property
    def data(self) -> np.ndarray | None:
        """The constant as a read-only numpy array of the tensor's dtype and shape."""
        if not self.is_constant:
            return None
        dt = self.np_dtype
        raw = self.buffer.data
        if dt is None or self.sparsity is not None:
            return raw
        arr = raw.view(dt) if raw.size % dt.itemsize == 0 else raw
        if self.shape is not None and arr.size == self.num_elements:
            arr = arr.reshape(self.shape)
        return arr

    @property
    def nbytes(self) -> int:
        return self.buffer.nbytes if self.buffer is not None else 0

    def __repr__(self) -> str:
        shape = "x".join(map(str, self.shape)) if self.shape is not None else "?"
        return f"Tensor({self.name!r}, {self.type_name}[{shape}])"


class Operator:
    """An operator. Inputs/outputs are read-only tuples; change them through the Subgraph."""

    def __init__(self, opcode: OpCode, inputs: Iterable[Tensor | None], outputs: Iterable[Tensor | None], *,
                 options: Any = None, options_type: int = 0, options2: Any = None,
                 options2_type: int = 0, custom_options: bytes | None = None,
                 custom_options_format: int = 0, mutating_variable_inputs: list[bool] | None = None,
                 intermediates: Iterable[Tensor] = (), debug_metadata_index: int = -1):
        self.opcode = opcode
        self._inputs: list[Tensor | None] = list(inputs)
        self._outputs: list[Tensor | None] = list(outputs)
        self._intermediates: list[Tensor] = list(intermediates)
        self.options = options
        self.options_type = options_type
        self.options2 = options2
        self.options2_type = options2_type
        self.custom_options = custom_options
        self.custom_options_format = custom_options_format
        self.mutating_variable_inputs = mutating_variable_inputs
        self.debug_metadata_index = debug_metadata_index
        self.subgraph: Subgraph | None = None
        self._uid: int | None = None            # set when the op joins a subgraph
        self._uid_owner: UidCounter | None = None

    @property
    def uid(self) -> int | None:
        """Stable identity: unique within the model, kept by ``Model.clone()`` (None: in no subgraph)."""
        return self._uid

    @property
    def inputs(self) -> tuple[Tensor | None, ...]:
        return tuple(self._inputs)

    @property
    def outputs(self) -> tuple[Tensor | None, ...]:
        return tuple(self._outputs)

    @property
    def intermediates(self) -> tuple[Tensor, ...]:
        return tuple(self._intermediates)

    @property
    def type(self) -> str:
        """Builtin name (``CONV_2D``) or, for a custom op, its custom code."""
        return self.opcode.name

    @property
    def output_name(self) -> str:
        """The name of its first output, which is how notes and reports name an op ("?" if none)."""
        return next((t.name for t in self._outputs if t is not None), "?")

    @property
    def index(self) -> int:
        assert self.subgraph is not None
        return self.subgraph._index_of(self)

    def __repr__(self) -> str:
        out = self._outputs[0].name if self._outputs and self._outputs[0] is not None else "-"
        return f"Operator({self.type} -> {out!r})"


class Subgraph:
    """Tensors and operators (in execution order) of one subgraph, with use-def kept in sync."""

    def __init__(self, name: str = "", model: "Model | None" = None):
        self.name = name
        self.model = model
        self._own_uids = UidCounter()           # used only while the subgraph belongs to no model
        self._tensors: list[Tensor] = []        # order is kept for lossless writing
        self._ops: list[Operator] = []
        self._inputs: list[Tensor] = []
        self._outputs: list[Tensor] = []
        self.debug_metadata_index = -1
        self.version = 0
        self._nx_cache: tuple[int, Any] | None = None  # ir.graph.networkx_view's, per version
        self._pos_cache: tuple[int, dict[int, int]] | None = None

    # --- read access ---
    @property
    def tensors(self) -> list[Tensor]:
        return self._tensors

    @tensors.setter
    def tensors(self, tensors: Iterable[Tensor]) -> None:
        """Replace the tensor list (the reader and ``clone`` fill it at once); each tensor joins."""
        self._tensors = list(tensors)
        for t in self._tensors:
            self._adopt(t)
        self._touch()

    @property
    def operators(self) -> tuple[Operator, ...]:
        return tuple(self._ops)

    @property
    def inputs(self) -> tuple[Tensor, ...]:
        return tuple(self._inputs)

    @property
    def outputs(self) -> tuple[Tensor, ...]:
        return tuple(self._outputs)

    def __iter__(self) -> Iterator[Operator]:
        return iter(list(self._ops))

    def _index_of(self, op: Operator) -> int:
        if self._pos_cache is None or self._pos_cache[0] != self.version:
            self._pos_cache = (self.version, {id(o): i for i, o in enumerate(self._ops)})
        return self._pos_cache[1][id(op)]

    def tensor(self, name: str) -> Tensor:
        for t in self.tensors:
            if t.name == name:
                return t
        raise KeyError(name)

    def ops_of_type(self, *types: str) -> list[Operator]:
        return [op for op in self._ops if op.type in types]

    # --- identity ---
    def _uids(self) -> UidCounter:
        return self.model._uids if self.model is not None else self._own_uids

    def _adopt(self, x: "Tensor | Operator") -> None:
        """Give ``x`` a uid of this model, unless it has one already (a clone's copies do)."""
        counter = self._uids()
        if x._uid_owner is not counter:
            x._uid, x._uid_owner = counter.take(), counter

    # --- mutation: every change goes through these, and each bumps ``version`` ---
    def _touch(self) -> None:
        self.version += 1

    def add_tensor(self, tensor: Tensor) -> Tensor:
        self._tensors.append(tensor)
        self._adopt(tensor)
        self._touch()
        return tensor

    def new_tensor(self, name: str, dtype: int, shape: Iterable[int] | None, **kw) -> Tensor:
        return self.add_tensor(Tensor(self.unique_name(name), dtype, shape, **kw))

    def new_constant(self, name: str, array: np.ndarray, dtype: int | None = None, **kw) -> Tensor:
        from ..schema import tensor_type_of
        arr = np.asarray(array, order="C")  # (ascontiguousarray would make a scalar 1-D)
        t = Tensor(self.unique_name(name), dtype if dtype is not None else tensor_type_of(arr.dtype),
                   arr.shape, buffer=Buffer(arr.reshape(-1).view(np.uint8).copy()), **kw)
        return self.add_tensor(t)

    def set_constant(self, t: Tensor, array: np.ndarray, dtype: int | None = None) -> None:
        """Give ``t`` new constant data (and the array's shape; dtype derived unless given)."""
        from ..schema import tensor_type_of
        arr = np.asarray(array, order="C")  # (ascontiguousarray would make a scalar 1-D)
        t.buffer = Buffer(arr.reshape(-1).view(np.uint8).copy())
        t.dtype = dtype if dtype is not None else tensor_type_of(arr.dtype)
        t.shape = tuple(int(d) for d in arr.shape)
        if t.shape_signature is not None:
            t.shape_signature = t.shape
        self._touch()

    def set_buffer(self, t: Tensor, buffer: Buffer | None, dtype: int | None = None) -> None:
        """Give ``t`` these constant bytes (None: no data), optionally with another dtype; the
        shape stays (the bytes must fit it: the verifier checks)."""
        t.buffer = buffer
        if dtype is not None:
            t.dtype = dtype
        self._touch()

    def set_dtype(self, t: Tensor, dtype: int) -> None:
        t.dtype = dtype
        self._touch()

    def set_quantization(self, t: Tensor, quantization: Any) -> None:
        """``quantization`` is an ``fb.QuantizationParametersT`` (or None); it is not copied."""
        t.quantization = quantization
        self._touch()

    def set_shape(self, t: Tensor, shape: Iterable[int] | None, signature: Iterable[int] | None = None) -> None:
        t.shape = tuple(int(d) for d in shape) if shape is not None else None
        t.shape_signature = tuple(int(d) for d in signature) if signature is not None else None
        self._touch()

    def rename(self, t: Tensor, name: str) -> None:
        """Rename ``t`` as given (not made unique: a graph output's name is part of the interface)."""
        t.name = name
        self._touch()

    def set_options(self, op: Operator, options: Any, options_type: int | None = None) -> None:
        """Give ``op`` an options object (its BuiltinOptions tag too, if given)."""
        op.options = options
        if options_type is not None:
            op.options_type = options_type
        self._touch()

    def update_options(self, op: Operator, **fields: Any) -> None:
        """Set option fields (``fusedActivationFunction=...``) on a copy of ``op``'s options: an
        options object may be shared by several ops (``Operator(..., options=other.options)``)."""
        if op.options is None:
            raise ValueError(f"{op} has no options to update")
        options = copy.copy(op.options)
        for name, value in fields.items():
            if not hasattr(options, name):
                raise AttributeError(f"{type(options).__name__} has no field {name!r}")
            setattr(options, name, value)
        self.set_options(op, options)

    def set_opcode(self, op: Operator, opcode: OpCode) -> None:
        op.opcode = opcode
        self._touch()

    def require_version(self, op: Operator, version: int) -> None:
        """Raise ``op``'s operator version to at least ``version`` (a feature it now uses)."""
        if op.opcode.version < version:
            self.set_opcode(op, dataclasses.replace(op.opcode, version=version))

    def unique_name(self, base: str) -> str:
        names = {t.name for t in self.tensors}
        if base not in names:
            return base
        i = 1
        while f"{base}_{i}" in names:
            i += 1
        return f"{base}_{i}"

    def _link(self, op: Operator) -> None:
        """Enter ``op`` into the use-def lists (and give it a uid: the reader joins ops this way)."""
        self._adopt(op)
        for i, t in enumerate(op._inputs):
            if t is not None:
                t._uses.append((op, i))
        for t in op._outputs:
            if t is not None:
                if t._producer is not None and t._producer is not op:
                    raise ValueError(f"tensor {t.name!r} already produced by {t._producer}")
                t._producer = op

    def _unlink(self, op: Operator) -> None:
        for i, t in enumerate(op._inputs):
            if t is not None:
                t._uses = [(o, j) for o, j in t._uses if not (o is op and j == i)]
        for t in op._outputs:
            if t is not None and t._producer is op:
                t._producer = None

    def add_op(self, op: Operator, *, before: Operator | None = None, after: Operator | None = None,
               index: int | None = None) -> Operator:
        """Insert ``op``; by default at the end. Its tensors must already belong to this subgraph."""
        if op.subgraph is not None:
            raise ValueError(f"{op} already belongs to a subgraph")
        if before is not None:
            index = self._index_of(before)
        elif after is not None:
            index = self._index_of(after) + 1
        self._link(op)
        if index is None:
            self._ops.append(op)
        else:
            self._ops.insert(index, op)
        op.subgraph = self
        self._touch()
        return op

    def still_needed(self, op: Operator) -> list[str]:
        """Why removing ``op`` would leave a reader without a value: one line per needed output."""
        out = []
        for t in op._outputs:
            if t is None:
                continue
            readers = [o for o in t.consumers if o is not op]
            if readers:
                more = f" and {len(readers) - 1} more" if len(readers) > 1 else ""
                out.append(f"its output {t.name!r} is still read by {readers[0]}{more}")
            if self.is_graph_output(t):
                out.append(f"its output {t.name!r} is a graph output")
        return out

    def remove_op(self, op: Operator, *, detach: bool = False) -> None:
        """Remove ``op``. Refused (ValueError) while another op reads one of its outputs or one is a
        graph output: make the readers read something else first (``replace_all_uses``). With
        ``detach=True`` the outputs are left without a producer, for the caller to give them a new
        one at once (``set_output``): the verifier rejects a read of a tensor nothing produces."""
        if not detach:
            needed = self.still_needed(op)
            if needed:
                raise ValueError(f"cannot remove {op}: {'; '.join(needed)} (replace its uses first, or "
                                 "remove it with detach=True and give the output a new producer)")
        self._unlink(op)
        del self._ops[self._index_of(op)]
        op.subgraph = None
        self._touch()

    def replace_op(self, old: Operator, new: Operator) -> Operator:
        """Put ``new`` in ``old``'s place; every output of ``old`` still needed must be one of
        ``new``'s outputs (``new`` writes those tensors from now on)."""
        keep = {id(t) for t in new._outputs if t is not None}
        lost = [t.name for t in old._outputs if t is not None and id(t) not in keep
                and ([o for o in t.consumers if o is not old] or self.is_graph_output(t))]
        if lost:
            raise ValueError(f"cannot replace {old} by {new}: {', '.join(map(repr, lost))} would have no producer")
        index = self._index_of(old)
        self.remove_op(old, detach=True)
        return self.add_op(new, index=index)

    def set_input(self, op: Operator, index: int, tensor: Tensor | None) -> None:
        old = op._inputs[index]
        if old is not None:
            old._uses = [(o, j) for o, j in old._uses if not (o is op and j == index)]
        op._inputs[index] = tensor
        if tensor is not None:
            tensor._uses.append((op, index))
        self._touch()

    def set_inputs(self, op: Operator, tensors: Iterable[Tensor | None]) -> None:
        self._unlink(op)
        op._inputs = list(tensors)
        self._link(op)
        self._touch()

    def set_output(self, op: Operator, index: int, tensor: Tensor | None) -> None:
        old = op._outputs[index]
        if old is not None and old._producer is op:
            old._producer = None
        if tensor is not None:
            if tensor._producer is not None and tensor._producer is not op:
                raise ValueError(f"tensor {tensor.name!r} already produced by {tensor._producer}")
            tensor._producer = op
        op._outputs[index] = tensor
        self._touch()

    def replace_all_uses(self, old: Tensor, new: Tensor) -> int:
        """Make every reader of ``old`` (ops and graph outputs) read ``new``. Returns the count."""
        n = 0
        for op, i in list(old._uses):
            self.set_input(op, i, new)
            n += 1
        for i, t in enumerate(self._outputs):
            if t is old:
                self._outputs[i] = new
                n += 1
        if n:
            self._touch()
        return n

    def set_graph_inputs(self, tensors: Iterable[Tensor]) -> None:
        self._inputs = list(tensors)
        self._touch()

    def set_graph_outputs(self, tensors: Iterable[Tensor]) -> None:
        self._outputs = list(tensors)
        self._touch()

    def reorder(self, ops: list[Operator]) -> None:
        if sorted(map(id, ops)) != sorted(map(id, self._ops)):
            raise ValueError("reorder() needs a permutation of the subgraph's operators")
        self._ops = list(ops)
        self._touch()

    def remove_unused_tensors(self) -> int:
        keep = self.referenced_tensors()
        before = len(self._tensors)
        self._tensors = [t for t in self._tensors if id(t) in keep]
        if len(self._tensors) != before:
            self._touch()
        return before - len(self._tensors)

    def referenced_tensors(self) -> set[int]:
        """ids of the tensors something refers to: ops, graph inputs/outputs, signatures."""
        keep: set[int] = set()
        for op in self._ops:
            for t in (*op._inputs, *op._outputs, *op._intermediates):
                if t is not None:
                    keep.add(id(t))
        for t in (*self._inputs, *self._outputs):
            keep.add(id(t))
        if self.model is not None:
            for sig in self.model.signature_defs:
                if sig.subgraph is self:
                    keep.update(id(t) for _, t in (*sig.inputs, *sig.outputs))
        return keep

    # --- analyses ---
    def is_graph_input(self, t: Tensor) -> bool:
        return any(i is t for i in self._inputs)

    def is_graph_output(self, t: Tensor) -> bool:
        return any(o is t for o in self._outputs)

    def is_pinned(self, t: Tensor) -> bool:
        """Visible from outside: a graph output or a tensor a signature names (keep its name)."""
        if self.is_graph_output(t):
            return True
        return self.model is not None and any(
            sd.subgraph is self and any(x is t for _, x in (*sd.inputs, *sd.outputs))
            for sd in self.model.signature_defs)

    def is_boundary(self, t: Tensor) -> bool:
        """Pinned, or a graph input: the outside world feeds or reads it (it must stay as it is)."""
        return self.is_graph_input(t) or self.is_pinned(t)

    @property
    def index(self) -> int:
        assert self.model is not None
        return next(i for i, s in enumerate(self.model.subgraphs) if s is self)

    def __repr__(self) -> str:
        return f"Subgraph({self.name!r}, {len(self._ops)} ops, {len(self.tensors)} tensors)"


@dataclasses.dataclass
class SignatureDef:
    key: str
    subgraph: Subgraph
    inputs: list[tuple[str, Tensor]]
    outputs: list[tuple[str, Tensor]]


_MODEL_SERIALS = itertools.count()


class Model:
    """A whole .tflite model."""

    def __init__(self, version: int = 3, description: str | None = None):
        self.version = version
        self.description = description
        self.subgraphs: list[Subgraph] = []
        self.metadata: list[tuple[str, Buffer]] = []       # (name, buffer), in file order
        self.signature_defs: list[SignatureDef] = []
        self.metadata_buffer: list[Buffer] | None = None  # deprecated field, kept as read
        self.external_buffer_groups: Any = None            # schema extension, passed through
        self.external_buffers: Any = None
        self.extra_buffers: list[Buffer] = []              # buffers nothing refers to (dropped on write)
        self.source_path: str | None = None
        self._uids = UidCounter()                          # uids of its tensors and operators
        self._serial = next(_MODEL_SERIALS)                # unlike id(), never reused by another model

    @property
    def main(self) -> Subgraph:
        return self.subgraphs[0]

    def add_subgraph(self, name: str = "") -> Subgraph:
        sg = Subgraph(name, self)
        self.subgraphs.append(sg)
        return sg

    def operators(self) -> Iterator[Operator]:
        for sg in self.subgraphs:
            yield from sg._ops

    def set_metadata(self, name: str, data: bytes | None) -> None:
        """Set (or, with None, remove) the metadata entry ``name`` (the first of that name)."""
        kept = [(n, b) for n, b in self.metadata if n != name]
        at = next((i for i, (n, _) in enumerate(self.metadata) if n == name), len(kept))
        if data is not None:
            kept.insert(min(at, len(kept)), (name, Buffer(bytes(data))))
        self.metadata = kept

    def clone(self) -> "Model":
        return clone_model(self)

    @property
    def version_stamp(self) -> tuple[int, ...]:
        """Changes whenever any subgraph is mutated: a cheap key for cached analyses."""
        return tuple(sg.version for sg in self.subgraphs) + (len(self.subgraphs), self._serial)

    def stats(self) -> dict[str, int]:
        """Ops, tensors and constant bytes (each distinct buffer counted once)."""
        bufs: dict[int, int] = {}
        tensors = 0
        for sg in self.subgraphs:
            refs = sg.referenced_tensors()
            for t in sg.tensors:
                if id(t) in refs:
                    tensors += 1
                    if t.buffer is not None:
                        bufs[id(t.buffer)] = t.buffer.nbytes
        return {"ops": sum(len(sg._ops) for sg in self.subgraphs), "tensors": tensors,
                "constant_bytes": sum(bufs.values())}


def clone_model(model: Model) -> Model:
    """A deep copy of the IR that shares the (read-only) constant buffers and keeps every uid.

    Built op by op (not with ``copy.deepcopy``, which would recurse along the use-def links
    and overflow the stack on real graphs).
    """
    new = Model(model.version, model.description)
    new.metadata = list(model.metadata)
    new.metadata_buffer = list(model.metadata_buffer) if model.metadata_buffer is not None else None
    new.external_buffer_groups = copy.deepcopy(model.external_buffer_groups)
    new.external_buffers = copy.deepcopy(model.external_buffers)
    new.extra_buffers = list(model.extra_buffers)
    new.source_path = model.source_path
    new._uids = UidCounter(model._uids.next)
    tmaps: dict[int, dict[int, Tensor]] = {}
    for sg in model.subgraphs:
        nsg = new.add_subgraph(sg.name)
        nsg.debug_metadata_index = sg.debug_metadata_index
        tmap: dict[int, Tensor] = {}
        for t in sg.tensors:
            nt = copy.copy(t)                  # (uid included: the copy is the same tensor)
            nt._producer, nt._uses = None, []
            nt._uid_owner = new._uids if t._uid is not None else None
            nt.quantization = copy.deepcopy(t.quantization)
            nt.sparsity = copy.deepcopy(t.sparsity)
            nt.variant_tensors = copy.deepcopy(t.variant_tensors)
            tmap[id(t)] = nt
        nsg.tensors = [tmap[id(t)] for t in sg.tensors]
        get = lambda t: None if t is None else tmap[id(t)]  # noqa: E731
        for op in sg.operators:
            nop = copy.copy(op)
            nop.subgraph = None
            nop._uid_owner = new._uids if op._uid is not None else None
            nop._inputs = [get(t) for t in op._inputs]
            nop._outputs = [get(t) for t in op._outputs]
            nop._intermediates = [get(t) for t in op._intermediates]
            nop.options = copy.deepcopy(op.options)
            nop.options2 = copy.deepcopy(op.options2)
            nop.mutating_variable_inputs = (list(op.mutating_variable_inputs)
                                            if op.mutating_variable_inputs is not None else None)
            nsg.add_op(nop)
        nsg._inputs = [tmap[id(t)] for t in sg._inputs]
        nsg._outputs = [tmap[id(t)] for t in sg._outputs]
        tmaps[id(sg)] = tmap
    for sd in model.signature_defs:
        si = next(i for i, s in enumerate(model.subgraphs) if s is sd.subgraph)
        tmap = tmaps[id(sd.subgraph)]
        new.signature_defs.append(SignatureDef(sd.key, new.subgraphs[si],
                                               [(n, tmap[id(t)]) for n, t in sd.inputs],
                                               [(n, tmap[id(t)]) for n, t in sd.outputs]))
    return new
