"""Write tflc's IR as a .tflite flatbuffer.

The writer owns the flatbuffer's indices: it rebuilds the operator-code table (in order of first
use), drops tensors nothing refers to and buffers no tensor uses, stores identical constants once
(and every other identical vector: shapes, scales, zero points), and aligns every constant to
``ALIGN`` bytes. Models whose constants would not fit in a 2 GB
flatbuffer get their buffers appended after it (``Buffer.offset``/``size``), as the converter does.
Files are written atomically (a temporary file renamed over the target).
"""
from __future__ import annotations

import copy
import hashlib
import os
from pathlib import Path
from typing import Any, BinaryIO

import flatbuffers
import numpy as np

from ..errors import UsageError, VerificationError
from ..ir.core import Buffer, Model, OpCode, Subgraph, Tensor
from ..paths import atomic_writer
from ..schema import fb

ALIGN = 16                      # what the converter guarantees for Buffer.data
EXTERNAL_ALIGN = 64             # buffers after the flatbuffer: enough for any SIMD load
FLATBUFFER_LIMIT = (1 << 31) - 1
_HEADROOM = 64 << 20            # room kept for tensors/ops/options when deciding to go external
_PLACEHOLDER = 1 << 62


class _DataBufferT(fb.BufferT):
    """BufferT whose data vector is aligned and copied without an intermediate bytes object."""

    def Pack(self, builder: flatbuffers.Builder) -> int:
        data = self.data
        vec = None
        if data is not None:
            n = int(data.size)
            builder.StartVector(1, n, ALIGN)
            builder.head -= n
            builder.Bytes[builder.head:builder.head + n] = memoryview(np.ascontiguousarray(data)).cast("B")
            builder.vectorNumElems = n
            vec = builder.EndVector()
        fb.BufferStart(builder)
        if vec is not None:
            fb.BufferAddData(builder, vec)
        fb.BufferAddOffset(builder, self.offset)
        fb.BufferAddSize(builder, self.size)
        return fb.BufferEnd(builder)


class _SharingBuilder(flatbuffers.Builder):
    """A builder that stores each distinct numeric vector once and points every table that holds
    the same values at it. Flatbuffer vectors are read-only, so sharing is invisible to readers
    (LiteRT and flatc's verifier included). It matters for quantized models: every per-channel
    tensor carries an int64 zero point per channel (LiteRT wants as many as scales), almost always
    all zeros, and these otherwise cost 8 bytes a channel, twice per layer (weights and bias)."""

    def __init__(self, size: int):
        super().__init__(size)
        self._vectors: dict[tuple[str, bytes], int] = {}

    def CreateNumpyVector(self, x: np.ndarray) -> int:  # noqa: N802  (flatbuffers' name)
        key = (x.dtype.str, x.tobytes())
        off = self._vectors.get(key)
        if off is None:
            off = self._vectors[key] = super().CreateNumpyVector(x)
        return off


class _Layout:
    """Index assignment for one write: opcodes, buffers, per-subgraph tensor indices."""

    def __init__(self, model: Model):
        self.opcodes: list[OpCode] = []
        self._opcode_idx: dict[OpCode, int] = {}
        self.buffers: list[Buffer | None] = [None]      # buffer 0: the empty sentinel
        self._buf_idx: dict[int, int] = {}
        self._by_size: dict[int, list[int]] = {}
        self._digests: dict[int, bytes] = {}
        self.tensor_idx: list[dict[int, int]] = []
        self.tensors: list[list[Tensor]] = []
        for sg in model.subgraphs:
            refs = sg.referenced_tensors()
            kept = [t for t in sg.tensors if id(t) in refs]
            known = {id(t) for t in kept}
            for t in _all_refs(sg):                       # referenced but never added: keep too
                if id(t) not in known:
                    kept.append(t)
                    known.add(id(t))
            self.tensors.append(kept)
            self.tensor_idx.append({id(t): i for i, t in enumerate(kept)})
            for op in sg.operators:
                self.opcode(op.opcode)
            for t in kept:
                self.buffer(t.buffer)

    def opcode(self, oc: OpCode) -> int:
        if oc not in self._opcode_idx:
            self._opcode_idx[oc] = len(self.opcodes)
            self.opcodes.append(oc)
        return self._opcode_idx[oc]

    def buffer(self, b: Buffer | None) -> int:
        if b is None or b.data is None or b.nbytes == 0:
            return 0
        if id(b) in self._buf_idx:
            return self._buf_idx[id(b)]
        # Identical constants are stored once. Hash only when a size is seen twice: a single
        # large buffer (the common case for big models) is never read just to be deduplicated.
        same_size = self._by_size.setdefault(b.nbytes, [])
        idx = None
        if same_size:
            digest = self._digest(b)
            for j in same_size:
                if self._digest(self.buffers[j]) == digest and np.array_equal(self.buffers[j].data, b.data):
                    idx = j
                    break
        if idx is None:
            idx = len(self.buffers)
            self.buffers.append(b)
            same_size.append(idx)
        self._buf_idx[id(b)] = idx
        return idx

    def _digest(self, b: Buffer) -> bytes:
        d = self._digests.get(id(b))
        if d is None:
            d = self._digests[id(b)] = hashlib.blake2b(memoryview(b.data), digest_size=20).digest()
        return d

    @property
    def data_bytes(self) -> int:
        return sum(b.nbytes for b in self.buffers if b is not None)


def _all_refs(sg: Subgraph):
    for op in sg.operators:
        for t in (*op.inputs, *op.outputs, *op.intermediates):
            if t is not None:
                yield t
    yield from sg.inputs
    yield from sg.outputs


def _b(s: str | None) -> bytes | None:
    """Names go back as the bytes they were read from (undecodable bytes survive)."""
    return None if s is None else s.encode("utf-8", "surrogateescape")


def _i32(values) -> np.ndarray:
    return np.asarray(list(values), dtype=np.int32)


def _to_modelt(model: Model, lay: _Layout, external: dict[int, tuple[int, int]] | None) -> Any:
    mt = fb.ModelT()
    mt.version = model.version
    mt.description = _b(model.description)
    # metadata buffers get indices after the tensors' ones
    md_idx = [lay.buffer(b) if b.nbytes else _force_index(lay, b) for _, b in model.metadata]
    mdb_idx = ([lay.buffer(b) if b.nbytes else _force_index(lay, b) for b in model.metadata_buffer]
               if model.metadata_buffer is not None else None)
    mt.operatorCodes = []
    for oc in lay.opcodes:
        c = fb.OperatorCodeT()
        c.builtinCode = oc.stored_code()
        c.deprecatedBuiltinCode = oc.deprecated_code()
        c.customCode = _b(oc.custom_code)
        c.version = oc.version
        mt.operatorCodes.append(c)
    mt.subgraphs = [_subgraph_t(sg, lay, si) for si, sg in enumerate(model.subgraphs)]
    mt.buffers = []
    for i, b in enumerate(lay.buffers):
        bt = _DataBufferT()
        if b is not None and external is not None and i in external:
            bt.offset, bt.size = external[i]
        elif b is not None:
            bt.data = b.data
        mt.buffers.append(bt)
    if model.metadata:
        mt.metadata = []
        for (name, _), idx in zip(model.metadata, md_idx):
            md = fb.MetadataT()
            md.name, md.buffer = _b(name), idx
            mt.metadata.append(md)
    if mdb_idx is not None:
        mt.metadataBuffer = _i32(mdb_idx)
    if model.signature_defs:
        mt.signatureDefs = []
        for sd in model.signature_defs:
            si = next(i for i, s in enumerate(model.subgraphs) if s is sd.subgraph)
            st = fb.SignatureDefT()
            st.signatureKey, st.subgraphIndex = _b(sd.key), si
            st.inputs = [_tmap(n, lay.tensor_idx[si][id(t)]) for n, t in sd.inputs]
            st.outputs = [_tmap(n, lay.tensor_idx[si][id(t)]) for n, t in sd.outputs]
            mt.signatureDefs.append(st)
    mt.externalBufferGroups = model.external_buffer_groups
    mt.externalBuffers = model.external_buffers
    return mt


def _force_index(lay: _Layout, b: Buffer) -> int:
    """An empty buffer that metadata refers to still needs an entry of its own."""
    if id(b) not in lay._buf_idx:
        lay._buf_idx[id(b)] = len(lay.buffers)
        lay.buffers.append(b)
    return lay._buf_idx[id(b)]


def _tmap(name: str, idx: int) -> Any:
    tm = fb.TensorMapT()
    tm.name, tm.tensorIndex = _b(name), idx
    return tm


_QUANT_VECTORS = (("min", np.float32), ("max", np.float32), ("scale", np.float32), ("zeroPoint", np.int64))


def _quantization_t(q: Any) -> Any:
    """``q``, or a copy whose vectors are 1-D numpy arrays of the schema's types: flatc's object API
    packs lists element by element (only arrays reach ``_SharingBuilder``'s deduplication), and an
    array of another type would be packed with its own item size."""
    def ready(v: Any, dt: type) -> bool:
        return v is None or (isinstance(v, np.ndarray) and v.dtype == dt and v.ndim == 1)
    if q is None or all(ready(getattr(q, f), dt) for f, dt in _QUANT_VECTORS):
        return q
    c = copy.copy(q)
    for f, dt in _QUANT_VECTORS:
        v = getattr(q, f)
        if v is not None:
            setattr(c, f, np.asarray(v, dtype=dt).reshape(-1))
    return c


def _subgraph_t(sg: Subgraph, lay: _Layout, si: int) -> Any:
    idx = lay.tensor_idx[si]
    st = fb.SubGraphT()
    st.name = _b(sg.name) or None
    st.debugMetadataIndex = sg.debug_metadata_index
    st.tensors = []
    for t in lay.tensors[si]:
        tt = fb.TensorT()
        tt.name = _b(t.name)
        tt.type = t.dtype
        tt.shape = _i32(t.shape) if t.shape is not None else None
        tt.shapeSignature = _i32(t.shape_signature) if t.shape_signature is not None else None
        tt.buffer = lay.buffer(t.buffer)
        tt.quantization = _quantization_t(t.quantization)
        tt.isVariable = t.is_variable
        tt.sparsity = t.sparsity
        tt.hasRank = t.has_rank
        tt.variantTensors = t.variant_tensors
        tt.externalBuffer = t.external_buffer
        st.tensors.append(tt)
    st.operators = []
    for op in sg.operators:
        ot = fb.OperatorT()
        ot.opcodeIndex = lay.opcode(op.opcode)
        ot.inputs = _i32(-1 if t is None else idx[id(t)] for t in op.inputs)
        ot.outputs = _i32(-1 if t is None else idx[id(t)] for t in op.outputs)
        if op.intermediates:
            ot.intermediates = _i32(idx[id(t)] for t in op.intermediates)
        ot.builtinOptionsType, ot.builtinOptions = op.options_type, op.options
        ot.builtinOptions2Type, ot.builtinOptions2 = op.options2_type, op.options2
        if op.custom_options is not None:
            ot.customOptions = np.frombuffer(op.custom_options, dtype=np.uint8)
        ot.customOptionsFormat = op.custom_options_format
        if op.mutating_variable_inputs is not None:
            ot.mutatingVariableInputs = np.asarray(op.mutating_variable_inputs, dtype=np.bool_)
        ot.debugMetadataIndex = op.debug_metadata_index
        st.operators.append(ot)
    st.inputs = _i32(idx[id(t)] for t in sg.inputs)
    st.outputs = _i32(idx[id(t)] for t in sg.outputs)
    return st


def _pack(mt: Any, size_hint: int) -> tuple[flatbuffers.Builder, int]:
    builder = _SharingBuilder(max(1024, min(size_hint, FLATBUFFER_LIMIT)))
    root = mt.Pack(builder)
    builder.Finish(root, file_identifier=b"TFL3")
    return builder, builder.Head()


def _align(n: int, a: int) -> int:
    return (n + a - 1) // a * a


def serialize_to(model: Model, out: BinaryIO, *, force_external: bool = False) -> int:
    """Serialize ``model`` into the open binary file ``out``. Returns the number of bytes."""
    lay = _Layout(model)
    for _, b in model.metadata:
        lay.buffer(b)
    external = force_external or lay.data_bytes + _HEADROOM > FLATBUFFER_LIMIT
    if not external:
        builder, head = _pack(_to_modelt(model, lay, None), lay.data_bytes + (1 << 20))
        view = memoryview(builder.Bytes)[head:]
        if len(view) > FLATBUFFER_LIMIT:
            raise VerificationError("model flatbuffer exceeds 2 GB; write with force_external")
        out.write(view)
        return len(view)
    # Buffers after the flatbuffer: pack once with placeholders to learn its size (fixed-width
    # fields, so the layout does not depend on the values), then again with the real offsets.
    data_idx = [i for i, b in enumerate(lay.buffers) if b is not None and b.nbytes]
    placeholder = {i: (_PLACEHOLDER, _PLACEHOLDER) for i in data_idx}
    _, head = builder_head = _pack(_to_modelt(model, lay, placeholder), 1 << 20)
    fb_size = len(builder_head[0].Bytes) - head
    offsets, pos = {}, _align(fb_size, EXTERNAL_ALIGN)
    for i in data_idx:
        offsets[i] = (pos, lay.buffers[i].nbytes)
        pos = _align(pos + lay.buffers[i].nbytes, EXTERNAL_ALIGN)
    builder, head = _pack(_to_modelt(model, lay, offsets), 1 << 20)
    view = memoryview(builder.Bytes)[head:]
    if len(view) != fb_size:
        raise VerificationError(f"internal: flatbuffer size changed between passes ({fb_size} -> {len(view)})")
    out.write(view)
    written = fb_size
    for i in data_idx:
        start, n = offsets[i]
        out.write(b"\0" * (start - written))
        data = lay.buffers[i].data
        for s in range(0, n, 256 << 20):                   # stream: never one big copy
            out.write(memoryview(data[s:s + (256 << 20)]))
        written = start + n
    return written


def serialize(model: Model) -> bytes:
    import io
    bio = io.BytesIO()
    serialize_to(model, bio)
    return bio.getvalue()


def write_model(model: Model, path: str | os.PathLike, *, force_external: bool = False) -> int:
    """Atomically write ``model`` to ``path`` (a temporary file renamed into place)."""
    p = Path(path)
    if p.is_dir():
        raise UsageError(f"{p}: is a directory")
    if not p.parent.exists():
        raise UsageError(f"{p.parent}: no such directory")
    with atomic_writer(p) as f:
        return serialize_to(model, f, force_external=force_external)
