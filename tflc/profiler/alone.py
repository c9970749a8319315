"""The fallback profiler: time each operator alone, as a one-op model in the stock interpreter.

Used when LiteRT's C API profiler is unusable (another ai-edge-litert, a layout mismatch) or
cannot run a view (a custom op with no builtin kernel). Each op of the main subgraph becomes a
model of its own (its constant inputs kept, the others fed with the values they hold in a run of
the whole model when they can be captured), is run by the stock interpreter, and its median time
less the cost of calling a trivial one-op model (the "baseline") is the op's time. Ops that only
make sense inside their model (resource variables, control flow) are not timed alone.
"""
from __future__ import annotations

import copy
import time
from typing import Any

import numpy as np

from ..errors import TflcError
from ..runtime.interpreter import SWITCH_PAUSE_S, RunOptions, Session, native_stderr

#: ops that cannot be cut out of their model
NOT_ALONE = {"CALL_ONCE", "WHILE", "IF", "CALL", "VAR_HANDLE", "READ_VARIABLE", "ASSIGN_VARIABLE",
             "HASHTABLE", "HASHTABLE_FIND", "HASHTABLE_IMPORT", "HASHTABLE_SIZE", "STABLEHLO_COMPOSITE"}


def _capture(model_bytes: bytes, inputs: list[np.ndarray]) -> dict[int, np.ndarray]:
    """Values of the main subgraph's tensors in one run (builtin kernels keep them all; XNNPACK
    if the builtin kernels cannot run the model)."""
    for xnnpack in (False, True):
        try:
            with native_stderr():
                s = Session(model_bytes, RunOptions(xnnpack=xnnpack, preserve_all_tensors=True), name="the model")
                return s.tensor_values(inputs)
        except Exception:
            continue
    return {}


def one_op_model(op: Any, shapes: dict[int, tuple], tensor_index: dict[int, int]) -> tuple[bytes, list[int]]:
    """A model holding ``op`` alone; returns its bytes and the source indices of its graph inputs."""
    from ..io import serialize
    from ..ir.core import Buffer, Model, Operator, Tensor
    m = Model(description="tflc op-alone")
    sg = m.add_subgraph("main")
    made: dict[int, Tensor] = {}
    graph_inputs: list[Tensor] = []
    src_of_inputs: list[int] = []

    def clone(t: Tensor) -> Tensor:
        if id(t) in made:
            return made[id(t)]
        idx = tensor_index.get(id(t), -1)
        folded = _folded_weight(t)
        if folded is not None:      # float16 weights behind a DEQUANTIZE: constant, as XNNPACK sees them
            nt = Tensor(t.name, t.dtype, folded.shape, buffer=Buffer(folded.reshape(-1).view(np.uint8).copy()))
            sg.add_tensor(nt)
            made[id(t)] = nt
            return nt
        shape = shapes.get(idx, t.shape) if not t.is_constant else t.shape
        nt = Tensor(t.name, t.dtype, shape, buffer=t.buffer if t.is_constant else None,
                    quantization=copy.deepcopy(t.quantization), sparsity=copy.deepcopy(t.sparsity),
                    shape_signature=None)
        sg.add_tensor(nt)
        made[id(t)] = nt
        if not t.is_constant and t.producer is not op:
            graph_inputs.append(nt)
            src_of_inputs.append(idx)
        return nt
    ins = [clone(t) if t is not None else None for t in op.inputs]
    outs = [clone(t) if t is not None else None for t in op.outputs]
    new = Operator(op.opcode, ins, outs, options=op.options, options_type=op.options_type,
                   options2=op.options2, options2_type=op.options2_type, custom_options=op.custom_options,
                   custom_options_format=op.custom_options_format)
    sg.add_op(new)
    sg.set_graph_inputs(graph_inputs)
    sg.set_graph_outputs([t for t in outs if t is not None])
    return serialize(m), src_of_inputs


def _folded_weight(t: Any) -> np.ndarray | None:
    """The float32 value of a tensor made by DEQUANTIZE from a float16 constant, else None."""
    p = t.producer
    if p is None or p.type != "DEQUANTIZE" or not p.inputs or p.inputs[0] is None:
        return None
    src = p.inputs[0]
    data = src.data if src.is_constant else None
    if data is None or data.dtype != np.float16 or t.np_dtype != np.float32:
        return None
    return np.ascontiguousarray(data.astype(np.float32))


def _random_like(shape: tuple, dtype: np.dtype, rng: np.random.Generator) -> np.ndarray:
    dtype = np.dtype(dtype)
    if dtype.kind == "f":
        return rng.uniform(-1, 1, size=shape).astype(dtype)
    if dtype.kind in "iu":
        return rng.integers(0, 2, size=shape).astype(dtype)
    if dtype.kind == "b":
        return rng.integers(0, 2, size=shape).astype(bool)
    return np.zeros(shape, dtype=dtype)


def _time_session(s: Session, arrays: list[np.ndarray], runs: int, pause: float = 0.0,
                  warmup: int = 2) -> list[float]:
    if pause:
        time.sleep(pause)      # let another runtime's idle worker threads stop spinning
    s.run(arrays)
    interp = s.interp
    for _ in range(warmup):
        interp.invoke()
    out = []
    for _ in range(runs):
        t0 = time.perf_counter()
        interp.invoke()
        out.append((time.perf_counter() - t0) * 1e6)
    return out


def _baseline(xnnpack: bool, threads: int, runs: int) -> float:
    """Median cost of invoking a trivial one-op model (ADD of two 1-element tensors)."""
    from ..io import serialize
    from ..ir.core import Model, Operator
    from ..ir.build import builtin_opcode
    from ..schema import TYPE_CODES
    m = Model(description="tflc baseline")
    sg = m.add_subgraph("main")
    a = sg.new_tensor("a", TYPE_CODES["FLOAT32"], (1,))
    b = sg.new_tensor("b", TYPE_CODES["FLOAT32"], (1,))
    c = sg.new_tensor("c", TYPE_CODES["FLOAT32"], (1,))
    sg.add_op(Operator(builtin_opcode("ADD"), [a, b], [c]))
    sg.set_graph_inputs([a, b])
    sg.set_graph_outputs([c])
    with native_stderr():
        s = Session(serialize(m), RunOptions(threads=threads, xnnpack=xnnpack), name="baseline")
    one = np.ones((1,), np.float32)
    return float(np.median(_time_session(s, [one, one], max(runs, 50))))


def time_ops_alone(model: Any, model_bytes: bytes, inputs: list[np.ndarray], *, view: str, threads: int,
                   rv: Any, session: Session | None, max_seconds: float = 20.0, runs: int = 20,
                   warmup: int = 10) -> None:
    xnnpack = view == "xnnpack"
    sg = model.main
    tensor_index = {id(t): k for k, t in enumerate(sg.tensors)}
    values = _capture(model_bytes, inputs)
    shapes = {k: tuple(v.shape) for k, v in values.items()}
    rng = np.random.default_rng(0)
    pause = SWITCH_PAUSE_S if threads > 1 else 0.0
    rv.method = "op-alone"
    rv.baseline_us = _baseline(xnnpack, threads, runs)
    # the whole model, as tflc bench measures it: two rounds (before and after the ops) of warm-up
    # then timed runs
    rv.warmup = max(0, warmup)
    if session is not None:
        rv.measured_us.extend(_time_session(session, inputs, -(-runs // 2), pause, rv.warmup))
        rv.rounds = 1
    deadline = time.perf_counter() + max_seconds
    per_op_runs = runs
    for oi, op in enumerate(sg.operators):
        key = f"0/{oi}"
        if op.type in NOT_ALONE:
            rv.alone_notes[key] = "not timed alone (needs its model)"
            continue
        if time.perf_counter() > deadline and per_op_runs > 5:
            per_op_runs = 5                                  # keep going, with fewer runs
        try:
            data, srcs = one_op_model(op, shapes, tensor_index)
            times = None
            errors = []
            for mode in ((xnnpack,) if xnnpack else (False, True)):
                try:
                    with native_stderr():
                        sess = Session(data, RunOptions(threads=threads, xnnpack=mode), name=op.type)
                        arrays = []
                        for d, src in zip(sess.input_details, srcs):
                            v = values.get(src)
                            if v is None or np.dtype(v.dtype) != np.dtype(d["dtype"]):
                                v = _random_like(tuple(int(x) for x in d["shape"]), d["dtype"], rng)
                            arrays.append(v)
                        times = _time_session(sess, arrays, per_op_runs, pause)
                    if mode != xnnpack:
                        rv.alone_notes[key] = "no builtin kernel: timed with XNNPACK"
                    break
                except TflcError as e:
                    errors.append(str(e))
            if times is None:
                rv.alone_notes[key] = f"could not run alone: {errors[-1] if errors else '?'}"
                continue
            rv.alone_us[key] = [max(0.0, t - rv.baseline_us) for t in times]
        except TflcError as e:
            rv.alone_notes[key] = f"could not run alone: {e}"
        except Exception as e:  # a model tflc could not build: skip the op, say why
            rv.alone_notes[key] = f"could not build alone: {type(e).__name__}: {e}"
    if session is not None:
        rv.measured_us.extend(_time_session(session, inputs, runs // 2, pause, rv.warmup))
        rv.rounds = 2
