"""Parameter kernels: a native kernel whose numbers come from its custom options and its shapes.

The custom options are a flexbuffer map ``{"version": 1, "ip": [int64...], "fp": blob (float32)}``:
the integer and float parameters a family's ``params(...)`` computed from the op's quantization
and options when the pass wrote it. ``init`` (once per op) lays them out in one int64 block with
room for the shape facts that ``prepare`` (once per shape change) writes into it:

    block[0] = len(ip), block[1] = len(fp), block[2] = DIMS (slots), then ip, then DIMS int64 dims
    slots, then fp (float32, packed two per int64 word)

``invoke`` (a Numba cfunc) reads the three views with :func:`views` and calls the family's
``compute``. No Python runs per invocation.
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np
from flatbuffers import flexbuffers
from numba import njit

from . import _native as N

VERSION = 1
DIMS = 16          # shape-fact slots; a family's dims() must fit
HEADER = 3


def encode_options(ip: np.ndarray, fp: np.ndarray) -> bytes:
    ip = np.asarray(ip, np.int64).reshape(-1)
    fp = np.asarray(fp, np.float32).reshape(-1)
    return bytes(flexbuffers.Dumps({"version": VERSION, "ip": [int(v) for v in ip], "fp": fp.tobytes()}))


def decode_options(options: bytes) -> tuple[np.ndarray, np.ndarray]:
    try:
        raw = flexbuffers.Loads(bytes(options)) if options else None
    except Exception as e:  # noqa: BLE001
        raise N.Refused(f"its custom options are not a flexbuffer ({type(e).__name__})") from None
    if not isinstance(raw, dict) or raw.get("version") != VERSION:
        raise N.Refused(f"its custom options are not a version-{VERSION} parameter map")
    ip, fp = raw.get("ip"), raw.get("fp")
    if not isinstance(ip, list) or not all(isinstance(v, int) for v in ip) or not isinstance(fp, (bytes, bytearray)) \
            or len(fp) % 4:
        raise N.Refused("its custom options lack integer parameters 'ip' or float parameters 'fp'")
    return np.array(ip, np.int64), np.frombuffer(bytes(fp), np.float32).copy()


def block_from_options(options: bytes) -> np.ndarray:
    """``init``: the op's parameter block (see the module docstring)."""
    ip, fp = decode_options(options)
    words = HEADER + ip.size + DIMS + (fp.size + 1) // 2
    block = np.zeros(words, np.int64)
    block[:HEADER] = [ip.size, fp.size, DIMS]
    block[HEADER:HEADER + ip.size] = ip
    f = block[HEADER + ip.size + DIMS:].view(np.float32)
    f[:fp.size] = fp
    return block


def block_parts(block: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(ip, dims, fp) views of a block (Python side, for prepare and tests)."""
    n_ip, n_fp = int(block[0]), int(block[1])
    ip = block[HEADER:HEADER + n_ip]
    dims = block[HEADER + n_ip:HEADER + n_ip + DIMS]
    fp = block[HEADER + n_ip + DIMS:].view(np.float32)[:n_fp]
    return ip, dims, fp


def block_at(address: int) -> np.ndarray:
    """The block at ``address`` (as ``init`` made it) as a writable numpy array."""
    import ctypes
    head = (ctypes.c_int64 * HEADER).from_address(address)
    n_ip, n_fp = head[0], head[1]
    words = HEADER + n_ip + DIMS + (n_fp + 1) // 2
    return np.ctypeslib.as_array((ctypes.c_int64 * words).from_address(address))


@njit(inline="always")
def views(block_address):
    """(ip, dims, fp) of the block at ``block_address``, in a cfunc."""
    head = N.int64s_at(block_address, HEADER)
    n_ip, n_fp = head[0], head[1]
    ip = N.int64s_at(block_address + N.u64(8 * HEADER), n_ip)
    dims = N.int64s_at(block_address + N.u64(8 * (HEADER + n_ip)), DIMS)
    fp = N.floats_at(block_address + N.u64(8 * (HEADER + n_ip + DIMS)), n_fp)
    return ip, dims, fp


def make_prepare(label: str, plan: Callable[[N.OpView], np.ndarray]) -> Any:
    """A prepare that runs ``plan(view) -> dims`` (it checks the tensors, resizes outputs and returns
    the shape facts) and stores the dims in the op's block."""
    def check(view: N.OpView) -> None:
        d = np.asarray(plan(view), np.int64).reshape(-1)
        if d.size > DIMS:
            raise N.Refused(f"{d.size} shape facts, the block holds {DIMS}")
        _, dims, _ = block_parts(block_at(view.params))
        dims[:] = 0
        dims[:d.size] = d
    return N.make_prepare(label, check)


def family(code: str, op_params: Callable[[Any], tuple[np.ndarray, np.ndarray]], replaces: str,
           constraints: str) -> tuple[Callable[[Any], bytes], Any, Any]:
    """What a parameter kernel declares, from ``op_params(op) -> (ip, fp)`` (ValueError: the op is not
    one it takes): ``options(op)`` (the custom options standing for ``op``), ``REPLACES`` and
    ``CONSTRAINTS`` as ``tflc.capabilities`` predicates (the texts say them in words)."""
    from tflc.capabilities import Predicate

    def options(op: Any) -> bytes:
        return encode_options(*op_params(op))

    def takes(op: Any) -> tuple[bool, str]:
        try:
            op_params(op)
        except ValueError as e:
            return False, str(e)
        return True, ""

    def is_it(op: Any) -> tuple[bool, str]:
        return (True, "") if op.type == code else (False, f"op is {op.type}, needs {code}")
    return options, Predicate(takes, replaces), Predicate(is_it, constraints)

