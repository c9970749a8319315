"""The building blocks of the XNNPACK rules (private to ``tflc.targets.xnnpack``): predicates
for the checks LiteRT 2.3.0's XNNPACK delegate makes, each with its condition in words and a
reason that says what is wrong and what XNNPACK needs.

Everything is read as the delegate reads it (``_xnnpack_tensors``): stored shapes, the
interpreter's view of quantization, constants = data in the file, plus the "quasi-static"
tensors: the outputs of a DEQUANTIZE or DENSIFY of a constant, which XNNPACK expands once when
it builds its graph ("static unpacking") and then treats as weights.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from .. import capabilities as cap
from ..capabilities import OK, Predicate, Result
from ..ir.core import Operator, Tensor
from ..schema import fb
from ._xnnpack_tensors import (F16, F32, FLOATS, I8, check_bias, check_fc_filter, check_float,
                               check_float32, check_fq8, check_q8, check_qc8, dims, quant)

Check = Callable[[Operator], str]          # "" when the op passes, else the reason

_ACT = fb.ActivationFunctionType
CLAMPS = (_ACT.NONE, _ACT.RELU, _ACT.RELU_N1_TO_1, _ACT.RELU6)
_PAD = fb.Padding


def check(text: str, fn: Check) -> Predicate:
    """A predicate from ``fn(op) -> reason`` ("" = passes), described by ``text``."""
    def test(op: Operator) -> Result:
        why = fn(op)
        return (False, why) if why else OK
    return cap.predicate(text, test)


def rule(*parts: Predicate) -> Predicate:
    """One op type's rule: every part holds. A reason names the op and says that XNNPACK needs
    what is missing ("ADD: input 1's scale / output 0's scale = 3e-05, XNNPACK needs it in ...")."""
    whole = cap.all_of(*parts)

    def test(op: Operator) -> Result:
        try:
            ok, why = whole(op)
        except (IndexError, AttributeError, TypeError, ValueError) as e:   # a malformed op: LiteRT would fail too
            return False, (f"{op.type}: its inputs or outputs are not what XNNPACK expects ({type(e).__name__}: "
                           f"{e}); tflc cannot predict XNNPACK's decision")
        if ok:
            return OK
        return False, phrase(op, why)
    return cap.predicate(whole.describe(), test)


def phrase(op: Operator, why: str) -> str:
    why = why.replace(", needs ", ", XNNPACK needs ")
    head = why.split(":", 1)[0] if ":" in why[:60] else " ".join(why.split()[:3])
    return why if op.type in head.split() else f"{op.type}: {why}"


def only_if(condition: Callable[[Operator], bool], text: str, pred: Predicate) -> Predicate:
    """``pred`` where ``condition`` holds (elsewhere nothing is required)."""
    def test(op: Operator) -> Result:
        return pred(op) if condition(op) else OK
    return cap.predicate(f"if {text}: {pred.describe()}", test)


# --------------------------------------------------------------------------- tensors

def _tensor(op: Operator, where: int | str) -> Tensor | None:
    if where == "out":
        return op.outputs[0] if op.outputs else None
    ts = op.inputs
    return ts[where] if isinstance(where, int) and -len(ts) <= where < len(ts) else None


def _label(where: int | str, op: Operator) -> str:
    if where == "out":
        return "output 0"
    sel = cap.input_tensor(int(where)).pick(op)
    return sel[0][0] if isinstance(sel, list) and sel else f"input {where}"


def _picked(op: Operator, where: int | str) -> list[tuple[str, Tensor]]:
    """(label, tensor) for ``where``: an input index, "out", "outs" (every output), "ins"."""
    if where == "outs":
        return [(f"output {i}", t) for i, t in enumerate(op.outputs) if t is not None]
    if where == "ins":
        return [(_label(i, op), t) for i, t in enumerate(op.inputs) if t is not None]
    t = _tensor(op, where)
    return [(_label(where, op), t)] if t is not None else []


def _where_text(where: int | str) -> str:
    return {"out": "output 0", "outs": "every output", "ins": "every input"}.get(str(where), f"input {where}")


CLASSES: dict[str, tuple[str, Callable[..., str]]] = {
    "F": ("float32 or float16", check_float),
    "F32": ("float32", check_float32),
    "FQ8": ("float32, float16, or int8/uint8 quantized per tensor", check_fq8),
    "F32Q8": ("float32, or int8/uint8 quantized per tensor (no float16)",
              lambda op, label, t: check_fq8(op, label, t, float16=False)),
    "FQI8": ("float32, float16, or int8 quantized per tensor (no uint8)",
             lambda op, label, t: check_fq8(op, label, t, uint8=False)),
    "Q8": ("int8/uint8 quantized per tensor", check_q8),
    "WFC": ("float32/float16, int8/int4/int2 quantized per tensor or per channel on dimension 0, or uint8",
            check_fc_filter),
    "BIAS": ("float32/float16, or int32 quantized with zero point 0", check_bias),
}


def is_(where: int | str, cls: str) -> Predicate:
    """Every picked tensor is of the type class ``cls`` (see CLASSES); an absent tensor passes."""
    text, fn = CLASSES[cls]

    def run(op: Operator) -> str:
        for label, t in _picked(op, where):
            why = fn(op, label, t)
            if why:
                return why
        return ""
    return check(f"{_where_text(where)} is {text}", run)


def is_qc8(where: int, dim: int | Callable[[Operator], int]) -> Predicate:
    """Weights: float, int8 per tensor or symmetric per channel on ``dim``, or uint8 per tensor."""
    def run(op: Operator) -> str:
        t = _tensor(op, where)
        d = dim(op) if callable(dim) else dim
        return check_qc8(op, _label(where, op), t, d) if t is not None else ""
    d_text = "the channel dimension" if callable(dim) else f"dimension {dim}"
    return check(f"{_where_text(where)} is float, int8 quantized per tensor or symmetrically per channel on "
                 f"{d_text}, or uint8 quantized per tensor", run)


def shape(where: int | str, low: int, high: int | None = None) -> Predicate:
    """CheckTensorShape: the stored rank is in [low, high] and every dimension is at least 1."""
    high = low if high is None else high
    needs = f"rank {low}" if low == high else f"rank {low} to {high}" if low else f"rank <= {high}"

    def run(op: Operator) -> str:
        for label, t in _picked(op, where):
            d = dims(t)
            if not low <= len(d) <= high:
                stored = " (it reads the shape stored in the file)" if low == high else ""
                return f"{label} has rank {len(d)} (shape {list(d)}), XNNPACK needs {needs}{stored}"
            if any(x <= 0 for x in d):
                return f"{label} has shape {list(d)}, XNNPACK needs every dimension to be at least 1"
        return ""
    return check(f"{_where_text(where)} has {needs} and no dimension below 1 (as stored)", run)


def io(n_in: int | tuple[int, int], n_out: int | tuple[int, int] = 1) -> Predicate:
    """The number of inputs (absent optional ones counted) and outputs."""
    lo, hi = n_in if isinstance(n_in, tuple) else (n_in, n_in)
    olo, ohi = n_out if isinstance(n_out, tuple) else (n_out, n_out)
    both = cap.all_of(cap.num_inputs(lo, hi), cap.num_outputs(olo, ohi))

    def count(a: int, b: int, what: str) -> str:
        return f"{a if a == b else f'{a} to {b}'} {what}{'' if a == b == 1 else 's'}"
    return cap.predicate(f"{count(lo, hi, 'input')} and {count(olo, ohi, 'output')}", both.test)


def same_types(*wheres: int | str) -> Predicate:
    def run(op: Operator) -> str:
        ts = [(w, _tensor(op, w)) for w in wheres]
        names = {t.type_name for _, t in ts if t is not None}
        if len(names) <= 1:
            return ""
        listed = ", ".join(f"{_label(w, op)} is {t.type_name}" for w, t in ts if t is not None)
        return f"{listed}: XNNPACK needs one type for all of them"
    return check(f"{', '.join(_where_text(w) for w in wheres)} have the same type", run)


# --------------------------------------------------------------------------- constants

def static_unpack(op: Operator) -> bool:
    """XNNPACK expands this op's output once, as a weight: a DEQUANTIZE of a constant (float16,
    or int8 with quantization parameters) to float32, or a DENSIFY of a constant sparse tensor."""
    if len(op.inputs) != 1 or len(op.outputs) != 1 or op.inputs[0] is None or op.outputs[0] is None:
        return False
    i, o = op.inputs[0], op.outputs[0]
    if op.type == "DEQUANTIZE":
        int8 = i.dtype == I8 and (quant(i).affine or quant(i).blocksize is not None)
        return i.sparsity is None and (i.is_constant or quasi_static(i)) and (i.dtype == F16 or int8) and o.dtype == F32
    if op.type == "DENSIFY":
        return i.is_constant and i.sparsity is not None and i.dtype in (F16, I8, F32) and o.dtype == i.dtype
    return False


def quasi_static(t: Tensor) -> bool:
    return t.producer is not None and static_unpack(t.producer)


STATIC_UNPACK = cap.predicate("a DEQUANTIZE or DENSIFY of a constant (expanded once by XNNPACK)",
                              lambda op: OK if static_unpack(op) else (False, "not a constant unpacking"))


def weight(index: int) -> Predicate:
    """Input ``index`` is constant, or a constant XNNPACK unpacks (quasi-static)."""
    return cap.constant_or_from(index, STATIC_UNPACK)


def elided_f16(t: Tensor) -> bool:
    """A float32 weight from a DEQUANTIZE of a float16 constant that XNNPACK skips (every reader
    uses it as the filter or bias of a FULLY_CONNECTED, CONV_2D or DEPTHWISE_CONV_2D): XNNPACK
    then sees it as float16."""
    p = t.producer
    if p is None or p.type != "DEQUANTIZE" or p.inputs[0] is None or p.inputs[0].dtype != F16 or not static_unpack(p):
        return False
    for op, _ in t.uses:
        if op.type not in ("FULLY_CONNECTED", "CONV_2D", "DEPTHWISE_CONV_2D") or op.inputs[0] is t:
            return False
    return True


def seen_type(t: Tensor) -> int:
    return F16 if elided_f16(t) else t.dtype


def filter_bias_types(filter_index: int, bias_index: int) -> Predicate:
    """CheckFilterAndBiasTypes: a float filter needs a bias of its own float type (a float16
    filter may have a float32 bias); weights from a float16 DEQUANTIZE that XNNPACK folds count as float16."""
    def run(op: Operator) -> str:
        f, b = _tensor(op, filter_index), _tensor(op, bias_index)
        if f is None or b is None:
            return ""
        ft, bt = seen_type(f), seen_type(b)
        if ft not in FLOATS or bt == ft or (ft == F16 and bt == F32):
            return ""
        how = {True: " (from a float16 DEQUANTIZE that XNNPACK folds)", False: ""}
        return (f"the filter is {_tn(ft)}{how[elided_f16(f)]} but the bias is {_tn(bt)}{how[elided_f16(b)]}, "
                "XNNPACK needs the bias in the filter's float type (or a float16 filter with a float32 bias)")
    return check("a float filter and its bias have the same float type (or float16 filter, float32 bias)", run)


def _tn(code: int) -> str:
    from ..schema import TYPE_NAMES
    return TYPE_NAMES.get(code, str(code))


# --------------------------------------------------------------------------- options

def opt(op: Operator, field: str, absent=0):
    """An option as the interpreter reads it: missing options are zeros."""
    if op.options is None or not hasattr(op.options, field):
        return absent
    return getattr(op.options, field)


def activation() -> Predicate:
    """The fused activation is a clamp: NONE, RELU, RELU_N1_TO_1 or RELU6."""
    return cap.option_where("fusedActivationFunction", lambda v: v in CLAMPS,
                            "NONE, RELU, RELU_N1_TO_1 or RELU6 (XNNPACK fuses clamps only)")


def padding() -> Predicate:
    return cap.option_where("padding", lambda v: v in (_PAD.SAME, _PAD.VALID), "SAME or VALID", absent=None)


def positive(*fields: str) -> Predicate:
    return cap.all_of(*(cap.option_where(f, lambda v: v > 0, "a value > 0") for f in fields))


def int_values(t: Tensor) -> list[int] | None:
    data = t.data
    if data is None:
        return None
    return [int(v) for v in np.asarray(data).reshape(-1)]


def f32(x: float) -> np.float32:
    return np.float32(x)
