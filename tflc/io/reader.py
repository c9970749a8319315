"""Read a .tflite flatbuffer into tflc's IR.

The flatc object API (``fb.ModelT``) does the decoding; this module checks what it cannot
(file identifier, indices in range, buffers past the flatbuffer) and turns indices into object
references. Large files are memory-mapped, and constant data stays a view into the file: reading
a model costs little more memory than its tensors' metadata.
"""
from __future__ import annotations

import mmap
import os
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ModelFormatError
from ..ir.core import Buffer, Model, OpCode, Operator, SignatureDef, Subgraph, Tensor
from ..schema import fb

MMAP_THRESHOLD = 64 << 20
_SIGNATURES = {
    b"\x89PNG": "a PNG image", b"\xff\xd8\xff": "a JPEG image", b"PK\x03\x04": "a zip archive",
    b"\x7fELF": "an ELF binary", b"GIF8": "a GIF image", b"%PDF": "a PDF document",
    b"\x93NUMPY": "a .npy array", b"\x08": "possibly a protobuf (e.g. a SavedModel .pb)",
}


def read_model(path: str | os.PathLike) -> Model:
    """Read a .tflite file. Raises ModelFormatError (one clear line) on anything unreadable."""
    p = Path(path)
    if not p.exists():
        raise ModelFormatError(f"{p}: no such file")
    if p.is_dir():
        raise ModelFormatError(f"{p}: is a directory, not a .tflite file")
    try:
        size = p.stat().st_size
        if size >= MMAP_THRESHOLD:
            with open(p, "rb") as f:
                data: Any = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        else:
            data = p.read_bytes()
    except OSError as e:
        raise ModelFormatError(f"{p}: cannot read: {e.strerror or e}") from None
    model = read_model_bytes(data, name=str(p))
    model.source_path = str(p)
    return model


def read_model_bytes(data: bytes | bytearray | memoryview | mmap.mmap, name: str = "the in-memory model") -> Model:
    buf = data if isinstance(data, (bytes, mmap.mmap)) else bytes(data)
    _check_header(buf, name)
    try:
        mt = fb.ModelT.InitFromPackedBuf(buf, 0)
    except ModelFormatError:
        raise
    except RecursionError:
        raise ModelFormatError(f"{name}: corrupt flatbuffer (nesting too deep)") from None
    except Exception as e:  # the generated decoder raises whatever struct/numpy raise
        raise ModelFormatError(f"{name}: corrupt or truncated flatbuffer ({_explain(e, len(buf))})") from None
    try:
        return _Builder(mt, buf, name).build()
    except ModelFormatError:
        raise
    except Exception as e:
        raise ModelFormatError(f"{name}: malformed model ({type(e).__name__}: {e})") from None


def _check_header(buf: Any, name: str) -> None:
    n = len(buf)
    if n == 0:
        raise ModelFormatError(f"{name}: empty file, not a .tflite model")
    head = bytes(buf[:8])
    for sig, what in _SIGNATURES.items():
        if head.startswith(sig) and head[4:8] != b"TFL3":
            raise ModelFormatError(f"{name}: this is {what}, not a .tflite model")
    if n < 8:
        raise ModelFormatError(f"{name}: truncated ({n} bytes), not a .tflite model")
    if head[4:8] != b"TFL3":
        raise ModelFormatError(
            f"{name}: not a .tflite model (file identifier is {head[4:8]!r}, expected b'TFL3')")
    root = int.from_bytes(head[:4], "little")
    if root < 8 or root + 4 > n:
        raise ModelFormatError(f"{name}: corrupt flatbuffer (root table offset {root} outside a "
                               f"{n}-byte file; truncated?)")


class _Builder:
    """Turns a ModelT (indices) into a Model (references), validating every index."""

    def __init__(self, mt: Any, buf: Any, name: str):
        self.mt, self.buf, self.name = mt, buf, name
        self.file_size = len(buf)

    def fail(self, where: str, what: str) -> ModelFormatError:
        return ModelFormatError(f"{self.name}: {where}: {what}")

    def build(self) -> Model:
        mt = self.mt
        m = Model(version=mt.version, description=_str(mt.description))
        if m.version != 3:
            raise self.fail("model", f"schema version {m.version}, tflc reads version 3")
        if not mt.subgraphs:
            raise self.fail("model", "has no subgraphs")
        self.buffers = [self._buffer(i, b) for i, b in enumerate(mt.buffers or [])]
        self.opcodes = [self._opcode(i, oc) for i, oc in enumerate(mt.operatorCodes or [])]
        used_bufs: set[int] = set()
        for si, st in enumerate(mt.subgraphs):
            m.subgraphs.append(self._subgraph(m, si, st, used_bufs))
        for md in mt.metadata or []:
            m.metadata.append((_str(md.name) or "", self._buf_ref(f"metadata {_str(md.name)!r}", md.buffer)))
            used_bufs.add(md.buffer)
        if mt.metadataBuffer is not None:
            m.metadata_buffer = [self._buf_ref("metadata_buffer", int(i)) for i in mt.metadataBuffer]
            used_bufs.update(int(i) for i in mt.metadataBuffer)
        for sd in mt.signatureDefs or []:
            m.signature_defs.append(self._signature(m, sd))
        m.external_buffer_groups = mt.externalBufferGroups
        m.external_buffers = mt.externalBuffers
        m.extra_buffers = [b for i, b in enumerate(self.buffers) if i not in used_bufs and b.nbytes]
        return m

    def _buffer(self, i: int, bt: Any) -> Buffer:
        if bt.offset > 1:  # stored after the flatbuffer (models over 2 GB)
            end = bt.offset + bt.size
            if end > self.file_size:
                raise self.fail(f"buffer {i}", f"points past the end of the file (offset {bt.offset}, "
                                f"size {bt.size}, file {self.file_size} bytes; truncated?)")
            return Buffer(np.frombuffer(self.buf, dtype=np.uint8, count=bt.size, offset=bt.offset))
        data = bt.data
        if data is None or (isinstance(data, np.ndarray) and data.size == 0):
            return Buffer(None) if data is None else Buffer(np.zeros(0, np.uint8))
        return Buffer(data if isinstance(data, np.ndarray) else np.asarray(data, np.uint8))

    def _opcode(self, i: int, oc: Any) -> OpCode:
        code = max(int(oc.builtinCode), int(oc.deprecatedBuiltinCode))
        custom = oc.customCode.decode("utf-8", "surrogateescape") if isinstance(oc.customCode, bytes) else oc.customCode
        return OpCode(code, custom, int(oc.version), int(oc.deprecatedBuiltinCode), int(oc.builtinCode))

    def _buf_ref(self, where: str, idx: int) -> Buffer:
        if not 0 <= idx < len(self.buffers):
            raise self.fail(where, f"refers to buffer {idx}, but the model has {len(self.buffers)}")
        return self.buffers[idx]

    def _subgraph(self, m: Model, si: int, st: Any, used_bufs: set[int]) -> Subgraph:
        sg = Subgraph(_str(st.name) or "", m)
        sg.debug_metadata_index = st.debugMetadataIndex
        tensors: list[Tensor] = []
        for ti, tt in enumerate(st.tensors or []):
            where = f"subgraph {si} tensor {ti} ({_str(tt.name)!r})"
            buf = None
            if tt.buffer != 0 or (self.buffers and self.buffers[0].nbytes):
                buf = self._buf_ref(where, int(tt.buffer))
                used_bufs.add(int(tt.buffer))
                if buf.data is None or buf.nbytes == 0:
                    buf = None
            tensors.append(Tensor(
                _str(tt.name) or "", int(tt.type), _ints(tt.shape), buffer=buf,
                quantization=tt.quantization, shape_signature=_ints(tt.shapeSignature),
                is_variable=bool(tt.isVariable), sparsity=tt.sparsity, has_rank=bool(tt.hasRank),
                variant_tensors=tt.variantTensors, external_buffer=int(tt.externalBuffer)))
        sg.tensors = tensors

        def tensor(where: str, idx: int, optional: bool = False) -> Tensor | None:
            if idx == -1 and optional:
                return None
            if not 0 <= idx < len(tensors):
                raise self.fail(f"subgraph {si} {where}",
                                f"refers to tensor {idx}, but the subgraph has {len(tensors)}")
            return tensors[idx]

        for oi, ot in enumerate(st.operators or []):
            if not 0 <= ot.opcodeIndex < len(self.opcodes):
                raise self.fail(f"subgraph {si} operator {oi}",
                                f"opcode index {ot.opcodeIndex} out of range ({len(self.opcodes)} codes)")
            where = f"operator {oi} ({self.opcodes[ot.opcodeIndex].name})"
            custom = ot.customOptions
            if ot.largeCustomOptionsOffset > 1:
                end = ot.largeCustomOptionsOffset + ot.largeCustomOptionsSize
                if end > self.file_size:
                    raise self.fail(f"subgraph {si} {where}", "custom options point past the end of the file")
                custom = bytes(self.buf[ot.largeCustomOptionsOffset:end])
            elif custom is not None:
                custom = bytes(np.asarray(custom, dtype=np.uint8))
            op = Operator(
                self.opcodes[ot.opcodeIndex],
                [tensor(f"{where} input {k}", int(i), True) for k, i in enumerate(_ints(ot.inputs) or ())],
                [tensor(f"{where} output {k}", int(i), True) for k, i in enumerate(_ints(ot.outputs) or ())],
                options=ot.builtinOptions, options_type=int(ot.builtinOptionsType),
                options2=ot.builtinOptions2, options2_type=int(ot.builtinOptions2Type),
                custom_options=custom, custom_options_format=int(ot.customOptionsFormat),
                mutating_variable_inputs=(None if ot.mutatingVariableInputs is None
                                          else [bool(b) for b in ot.mutatingVariableInputs]),
                intermediates=[tensor(f"{where} intermediate", int(i)) for i in (_ints(ot.intermediates) or ())],
                debug_metadata_index=int(ot.debugMetadataIndex))
            sg._link(op)
            op.subgraph = sg
            sg._ops.append(op)
        sg._inputs = [tensor(f"input {k}", int(i)) for k, i in enumerate(_ints(st.inputs) or ())]
        sg._outputs = [tensor(f"output {k}", int(i)) for k, i in enumerate(_ints(st.outputs) or ())]
        return sg

    def _signature(self, m: Model, sd: Any) -> SignatureDef:
        key = _str(sd.signatureKey) or ""
        if not 0 <= sd.subgraphIndex < len(m.subgraphs):
            raise self.fail(f"signature {key!r}", f"refers to subgraph {sd.subgraphIndex}")
        sg = m.subgraphs[sd.subgraphIndex]

        def tmap(lst: Any) -> list[tuple[str, Tensor]]:
            out = []
            for tm in lst or []:
                if not 0 <= tm.tensorIndex < len(sg.tensors):
                    raise self.fail(f"signature {key!r}", f"refers to tensor {tm.tensorIndex}")
                out.append((_str(tm.name) or "", sg.tensors[tm.tensorIndex]))
            return out

        return SignatureDef(key, sg, tmap(sd.inputs), tmap(sd.outputs))


def _explain(e: Exception, size: int) -> str:
    import struct
    if isinstance(e, (struct.error, IndexError)) or "buffer is smaller" in str(e):
        return f"an offset points past the end of the {size}-byte file; truncated?"
    return f"{type(e).__name__}: {e}"


def _str(s: Any) -> str | None:
    if s is None:
        return None
    return s.decode("utf-8", "surrogateescape") if isinstance(s, bytes) else str(s)


def _ints(v: Any) -> list[int] | None:
    if v is None or (isinstance(v, int) and v == 0 and not isinstance(v, bool)):
        return None if v is None else []
    return [int(x) for x in v]
