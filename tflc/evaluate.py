"""Evaluate operators with LiteRT itself, and fold constant sub-graphs into constants.

``run_ops`` copies a list of operators (in execution order) into a fresh one-subgraph model: each
input is either a constant of the source model (copied with its buffer, quantization and
sparsity), a value given by the caller, or the output of an earlier op of the list. Every output
becomes a graph output (so LiteRT keeps it), the model is serialized with ``tflc.io.serialize``
and run once with the builtin kernels and no default delegate (LiteRT's reference semantics),
in a forked child (``tflc.runtime.isolate``) so that a kernel crash cannot take tflc down.

``fold`` is the machinery of the ``fold-constants`` pass, shared with ``specialize-shapes``: it
picks the ops whose inputs are all constant (transitively), evaluates them in one batch (falling
back to one op at a time when the batch fails), and turns the results into constant tensors.
"""
from __future__ import annotations

from typing import Callable, Iterable, Sequence

import numpy as np

from .errors import RuntimeFailure, TflcError
from .ir.core import Buffer, Model, Operator, Subgraph, Tensor
from .ir.opinfo import CLAMP_ACTIVATIONS, DATA_MOVEMENT_OPS, FLOAT_EXACT_OPS, has_side_effects
from .ir.quant import is_quantized, same_quantization
from .ir.verify import subgraph_refs
from .schema import TYPE_NAMES

#: Results larger than this are never computed (memory), whatever ``max_bytes`` says.
HARD_CAP_BYTES = 256 << 20

#: Tensor types a fold never produces or reads through LiteRT's Python API.
_OPAQUE_TYPES = {"STRING", "RESOURCE", "VARIANT"}


class EvaluationError(TflcError):
    """LiteRT could not build or run the evaluation model."""


def _static_nbytes(t: Tensor) -> int | None:
    """Bytes of ``t`` if its shape is fully known (no dynamic dimension), else None."""
    if t.shape is None or (t.shape_signature is not None and any(d < 0 for d in t.shape_signature)):
        return None
    return t.expected_nbytes()


def _copy_tensor(sg: Subgraph, t: Tensor, name: str, *, constant: bool) -> Tensor:
    nt = Tensor(name, t.dtype, t.shape, buffer=t.buffer if constant else None,
                quantization=t.quantization, sparsity=t.sparsity if constant else None,
                shape_signature=t.shape_signature, has_rank=t.has_rank)
    return sg.add_tensor(nt)


def build_model(ops: Sequence[Operator], values: dict[int, np.ndarray] | None = None) -> tuple[Model, list[Tensor]]:
    """A model computing ``ops`` (execution order); returns it and the source tensors of its outputs.

    Inputs must be constants of the source model, arrays in ``values`` (keyed by ``id(tensor)``),
    or outputs of earlier ops in ``ops``.
    """
    from .schema import tensor_type_of
    values = values or {}
    model = Model(description="tflc constant evaluation")
    sg = model.add_subgraph("eval")
    mapped: dict[int, Tensor] = {}
    out_src: list[Tensor] = []
    counter = iter(range(1 << 30))
    for op in ops:
        new_inputs: list[Tensor | None] = []
        for t in op.inputs:
            if t is None:
                new_inputs.append(None)
                continue
            if id(t) not in mapped:
                if id(t) in values:
                    arr = np.ascontiguousarray(values[id(t)])
                    nt = Tensor(f"c{next(counter)}", t.dtype if t.np_dtype == arr.dtype else tensor_type_of(arr.dtype),
                                arr.shape, buffer=Buffer(arr.reshape(-1).view(np.uint8).copy()),
                                quantization=t.quantization)
                    mapped[id(t)] = sg.add_tensor(nt)
                elif t.is_constant:
                    mapped[id(t)] = _copy_tensor(sg, t, f"c{next(counter)}", constant=True)
                else:
                    raise ValueError(f"input {t.name!r} of {op} is neither constant nor computed earlier")
            new_inputs.append(mapped[id(t)])
        new_outputs: list[Tensor | None] = []
        for t in op.outputs:
            if t is None:
                new_outputs.append(None)
                continue
            nt = _copy_tensor(sg, t, f"o{next(counter)}", constant=False)
            mapped[id(t)] = nt
            new_outputs.append(nt)
            out_src.append(t)
        sg.add_op(Operator(op.opcode, new_inputs, new_outputs, options=op.options, options_type=op.options_type,
                           options2=op.options2, options2_type=op.options2_type,
                           custom_options=op.custom_options, custom_options_format=op.custom_options_format))
    sg.set_graph_outputs([mapped[id(t)] for t in out_src])
    return model, out_src


def _invoke(data: bytes) -> list[np.ndarray]:
    """Run the evaluation model once with the builtin kernels, through the runtime's door
    (``tflc.runtime.Session``: a registered kernel runs a custom op here as everywhere)."""
    from .runtime.interpreter import RunOptions, Session
    try:
        session = Session(data, RunOptions(threads=1, xnnpack=False), name="the constant-evaluation model")
        return [np.array(a) for a in session.run([])]
    except RuntimeFailure as e:    # LiteRT's own first line, as the fold notes quote it
        raise EvaluationError(getattr(e, "reason", str(e))) from None
    except Exception as e:  # noqa: BLE001 - e.g. an output numpy cannot hold
        raise EvaluationError(f"{type(e).__name__}: {e}") from None


def run_ops(ops: Sequence[Operator], values: dict[int, np.ndarray] | None = None) -> dict[int, np.ndarray]:
    """Evaluate ``ops`` in LiteRT (isolated); ``id(output tensor) -> array`` for every output."""
    from .io import serialize
    from .runtime.isolate import run_isolated
    model, out_src = build_model(ops, values)
    try:
        arrays = run_isolated(_invoke, serialize(model), what="LiteRT constant evaluation")
    except RuntimeFailure as e:
        raise EvaluationError(str(e)) from None
    return {id(t): a for t, a in zip(out_src, arrays)}


# --------------------------------------------------------------------------- exactness

# (The op sets -- DATA_MOVEMENT_OPS, FLOAT_EXACT_OPS, CLAMP_ACTIVATIONS -- are facts of ``tflc.ir.opinfo``.)
_INT_TYPES = {"INT8", "UINT8", "INT16", "UINT16", "INT32", "UINT32", "INT64", "UINT64", "BOOL"}


def exactness(op: Operator) -> str:
    """``"exact"``: any kernel gives the same bits; ``"if-normal"``: the same if the float values
    are normal and finite (checked on the values); ``"inexact"``: the value depends on the kernel
    (transcendental functions, reductions and accumulations, quantized arithmetic...)."""
    tensors = [t for t in (*op.inputs, *op.outputs) if t is not None]
    quantized = any(is_quantized(t) for t in tensors)
    activation = getattr(op.options, "fusedActivationFunction", 0)
    if activation not in CLAMP_ACTIVATIONS:
        return "inexact"
    if op.type in DATA_MOVEMENT_OPS:
        outs = [t for t in op.outputs if t is not None]
        out_types = {t.dtype for t in outs}
        for t in op.inputs:             # values are copied only if nothing is (re)quantized
            if t is None:
                continue
            if t.dtype in out_types:
                if any(not same_quantization(t, o) for o in outs if o.dtype == t.dtype):
                    return "inexact"
            elif is_quantized(t):
                return "inexact"        # e.g. a hybrid lookup that dequantizes on the way
        return "exact"
    if not quantized and all(TYPE_NAMES.get(t.dtype) in _INT_TYPES for t in tensors):
        return "exact"                  # plain integer/bool arithmetic
    if op.type == "DEQUANTIZE" and all(TYPE_NAMES.get(t.dtype) in ("FLOAT16", "FLOAT32") for t in tensors):
        return "exact"                  # float16 -> float32 is a lossless conversion
    if op.type in FLOAT_EXACT_OPS and not quantized and all(
            TYPE_NAMES.get(t.dtype) == "FLOAT32" or (op.type == "CAST" and TYPE_NAMES.get(t.dtype) in _INT_TYPES)
            for t in tensors):
        if op.type == "CAST" and any(TYPE_NAMES.get(t.dtype) != "FLOAT32" for t in op.outputs if t is not None):
            return "inexact"            # float -> int: out-of-range values are undefined behaviour
        return "if-normal"
    return "inexact"


def normal_values(*arrays: np.ndarray) -> bool:
    """True if every float value is zero or a finite normal number below FLT_MAX in magnitude."""
    for a in arrays:
        if a.dtype.kind != "f":
            continue
        info = np.finfo(a.dtype)
        mag = np.abs(a.astype(np.float64))
        if not np.all(np.isfinite(mag)) or np.any(mag >= float(info.max)):
            return False
        if np.any((mag != 0) & (mag < float(info.tiny))):
            return False
    return True


# --------------------------------------------------------------------------- folding

def fold_refusal(op: Operator, sg: Subgraph, *, fold_dequantize: bool = False) -> str | None:
    """Why ``op`` may not be evaluated at compile time (None: it may, if its inputs are constant)."""
    if op.opcode.is_custom:
        return "custom op"
    if has_side_effects(op):
        return "has side effects"
    if subgraph_refs(op.options) or subgraph_refs(op.options2):
        return "control flow"
    if op.intermediates:
        return "has intermediate tensors"
    if op.type == "DEQUANTIZE" and not fold_dequantize:
        return "DEQUANTIZE of weights is left alone (fold-dequantize=false)"
    if not any(t is not None for t in op.inputs):
        return "no inputs"
    for t in (*op.inputs, *op.outputs):
        if t is None:
            continue
        if t.is_variable:
            return "variable tensor"
        if TYPE_NAMES.get(t.dtype) in _OPAQUE_TYPES:
            return f"{TYPE_NAMES.get(t.dtype)} tensor"
    for t in op.outputs:
        if t is None:
            continue
        if t.np_dtype is None:
            return f"{t.type_name} output"
        if sg.is_pinned(t):
            return "its output is a graph output"
        n = _static_nbytes(t)
        if n is not None and n > HARD_CAP_BYTES:
            return f"result of {n} bytes is too large to evaluate"
    return None


def constant_closure(sg: Subgraph, *, fold_dequantize: bool = False, inexact: bool = True,
                     select: Callable[[Operator], bool] | None = None,
                     skipped: list[Operator] | None = None) -> list[Operator]:
    """Ops (execution order) whose inputs are constants or outputs of earlier ops of the list.

    With ``inexact=False``, ops whose value depends on the kernels are left out (and so are their
    consumers); they are appended to ``skipped`` if given.
    """
    fed = {id(t) for t in sg.inputs}             # fed by the caller, whatever the file holds
    known: set[int] = set()
    out: list[Operator] = []
    for op in sg.operators:
        if select is not None and not select(op):
            continue
        if fold_refusal(op, sg, fold_dequantize=fold_dequantize) is not None:
            continue
        if all(t is None or id(t) in known or (t.is_constant and id(t) not in fed) for t in op.inputs):
            if not inexact and exactness(op) == "inexact":
                if skipped is not None:
                    skipped.append(op)
                continue
            out.append(op)
            known.update(id(t) for t in op.outputs if t is not None)
    return out


def _evaluate_batch(ops: list[Operator], ctx) -> dict[int, np.ndarray]:
    """All outputs of ``ops``; if the batch fails, one op at a time (skipping the failures)."""
    if not ops:
        return {}
    try:
        return run_ops(ops)
    except (EvaluationError, ValueError) as batch_error:
        first = str(batch_error)
    results: dict[int, np.ndarray] = {}
    for op in ops:
        if not all(t is None or t.is_constant or id(t) in results for t in op.inputs):
            continue  # an input could not be computed
        try:
            results.update(run_ops([op], {k: v for k, v in results.items()
                                          if any(t is not None and id(t) == k for t in op.inputs)}))
        except (EvaluationError, ValueError) as e:
            if ctx is not None:
                ctx.note(f"fold: kept {op.type} '{op.output_name}': LiteRT cannot evaluate it ({e})")
    if ctx is not None and not results:
        ctx.note(f"fold: LiteRT evaluation failed ({first})")
    return results



def _nbytes(arr: np.ndarray) -> int:
    return int(arr.nbytes)


def _result_fits(t: Tensor, arr: np.ndarray) -> str | None:
    if t.np_dtype is None or arr.dtype != t.np_dtype:
        return f"LiteRT returned {arr.dtype}, the tensor is {t.type_name}"
    if arr.size == 0:
        return "empty result"
    static = t.shape is not None and (t.shape_signature is None or all(d >= 0 for d in t.shape_signature))
    if static and tuple(arr.shape) != tuple(t.shape):
        return f"LiteRT computed shape {list(arr.shape)}, the model says {list(t.shape)}"
    return None


def make_constant(sg: Subgraph, t: Tensor, arr: np.ndarray) -> None:
    """Give the (producer-less) tensor ``t`` of ``sg`` the value ``arr`` (and its shape); name,
    dtype and quantization stay."""
    sg.set_constant(t, np.ascontiguousarray(arr, dtype=t.np_dtype), t.dtype)


def fold(model: Model, ctx, *, max_bytes: int = 1 << 20, fold_dequantize: bool = False,
         inexact: bool = False, select: Callable[[Operator], bool] | None = None,
         subgraphs: Iterable[Subgraph] | None = None) -> int:
    """Replace constant-input ops by constants computed by LiteRT. Returns the number of ops folded.

    An op is folded when its result is at most ``max(max_bytes, bytes of its constant inputs)``
    (``max_bytes == 0``: no limit). Chains are evaluated in one LiteRT run, in execution order;
    an op whose result is too large stays, and a consumer of it is folded only if its own result
    fits in ``max_bytes`` (then the large op becomes dead code). Unless ``inexact``, only ops whose
    value does not depend on the kernels that compute it are folded (see ``exactness``): the
    folded model then gives bit-identical outputs with the builtin kernels and with XNNPACK.
    """
    folded = 0
    for sg in (subgraphs if subgraphs is not None else model.subgraphs):
        skipped: list[Operator] = []
        ops = constant_closure(sg, fold_dequantize=fold_dequantize, inexact=inexact, select=select,
                               skipped=skipped)
        if skipped and ctx is not None:
            kinds = sorted({op.type for op in skipped})
            ctx.note(f"fold: kept {len(skipped)} constant op(s) whose value depends on the kernels computing it "
                     f"({', '.join(kinds)}); fold-inexact=true folds them")
        if not ops:
            continue
        results = _evaluate_batch(ops, ctx)
        to_fold: list[tuple[Operator, list[tuple[Tensor, np.ndarray]]]] = []
        now_constant: set[int] = set()
        untrusted: set[int] = set()     # values computed here that the runtime might compute otherwise
        for op in ops:
            outs = [(t, results.get(id(t))) for t in op.outputs if t is not None]
            if any(a is None for _, a in outs):
                continue
            if any(t is not None and id(t) in untrusted for t in op.inputs):
                untrusted.update(id(t) for t, _ in outs)
                continue
            problem = next((p for t, a in outs if (p := _result_fits(t, a)) is not None), None)
            if problem is None and not inexact and exactness(op) == "if-normal":
                ins = [t.data if t.is_constant else results[id(t)] for t in op.inputs if t is not None]
                if not normal_values(*ins, *(a for _, a in outs)):
                    untrusted.update(id(t) for t, _ in outs)
                    problem = ("subnormal, infinite or overflowing float values make its value depend on "
                               "the kernels; fold-inexact=true folds it")
            if problem is not None:
                untrusted.update(id(t) for t, _ in outs)
                if ctx is not None:
                    ctx.note(f"fold: kept {op.type} '{op.output_name}': {problem}")
                continue
            result_bytes = sum(_nbytes(a) for _, a in outs)
            const_in = sum(t.nbytes if t.is_constant else _nbytes(results[id(t)])
                           for t in op.inputs if t is not None and (t.is_constant or id(t) in now_constant))
            if max_bytes and result_bytes > max(max_bytes, const_in):
                if ctx is not None:
                    ctx.note(f"fold: kept {op.type} '{op.output_name}': its result ({result_bytes} bytes) is larger "
                             f"than its constant inputs ({const_in} bytes) and max-bytes ({max_bytes})")
                continue
            to_fold.append((op, outs))
            now_constant.update(id(t) for t, _ in outs)
        for op, outs in to_fold:
            sg.remove_op(op, detach=True)           # its outputs stay, as constants
            for t, a in outs:
                make_constant(sg, t, a)
            folded += 1
        if to_fold:
            sg.remove_unused_tensors()
    return folded
