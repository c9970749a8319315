"""Capabilities: small predicates over an operator that answer ``(ok, reason)``, and combine.

Kernel constraints, delegate partitioning (which ops XNNPACK or a GPU delegate takes) and the
generated support tables ask an op the same questions -- are its inputs float32? is the filter
constant? is the rank at most 4? -- so each question is written once, here, and composed:

    conv = all_of(op_type("CONV_2D"), dtype_in("all", "FLOAT32"), const_input(1), rank_le(4, 0))
    conv(op)          # (False, "input 0 is INT8, needs FLOAT32")
    conv.describe()   # "op is CONV_2D and every tensor is FLOAT32 and input 1 is constant and ..."

A reason is a short phrase for users (it ends up in notes and reports) naming the tensor, what it
is and what is needed; ``describe()`` states the condition itself, for documentation tables.
Inputs are named with their role where ``tflc.ir.opinfo`` knows it ("input 1 (filter)").

Layered just above ``tflc.ir``: this module imports only ``tflc.ir`` and ``tflc.schema``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Iterable, Union

import numpy as np

from .ir.core import Operator, Tensor
from .ir.opinfo import WEIGHT_INPUTS
from .ir.quant import QuantParams, quant_params, same_quantization
from .schema import TYPE_CODES, fb

Result = tuple[bool, str]
OK: Result = (True, "")


@dataclass(frozen=True)
class Predicate:
    """``pred(op) -> (ok, reason)``; ``reason`` is empty when ``ok``. ``describe()``: the condition."""

    test: Callable[[Operator], Result]
    text: str

    def __call__(self, op: Operator) -> Result:
        return self.test(op)

    def describe(self) -> str:
        return self.text


def predicate(text: str, test: Callable[[Operator], Result]) -> Predicate:
    """A predicate of your own: ``test(op) -> (ok, reason)``, described by ``text``."""
    return Predicate(test, text)


# --------------------------------------------------------------------------- which tensors

@dataclass(frozen=True)
class Tensors:
    """Which tensors of an op a predicate looks at: one input or output, or all of a kind.

    ``pick(op)`` returns ``[(label, tensor), ...]`` or, when a required tensor is absent, the
    reason. Where a selector is expected, an int ``i`` means ``input_tensor(i)``, ``"inputs"``
    every input, ``"outputs"`` every output and ``"all"`` every input and output (absent optional
    inputs are skipped by the three groups)."""

    kind: str                    # "input", "output", "inputs", "outputs", "all"
    index: int = 0
    optional: bool = False       # an absent input/output is then nothing to check

    @property
    def label(self) -> str:
        return {"inputs": "every input", "outputs": "every output", "all": "every tensor"}.get(
            self.kind, f"{self.kind} {self.index}")

    def pick(self, op: Operator) -> list[tuple[str, Tensor]] | str:
        if self.kind in ("input", "output"):
            ts = op.inputs if self.kind == "input" else op.outputs
            t = ts[self.index] if -len(ts) <= self.index < len(ts) else None
            if t is None:
                return [] if self.optional else f"{op.type} has no {self.kind} {self.index}"
            return [(_label(op, self.kind, self.index), t)]
        picked = []
        if self.kind in ("inputs", "all"):
            picked += [(_label(op, "input", i), t) for i, t in enumerate(op.inputs) if t is not None]
        if self.kind in ("outputs", "all"):
            picked += [(_label(op, "output", i), t) for i, t in enumerate(op.outputs) if t is not None]
        return picked


def input_tensor(index: int, optional: bool = False) -> Tensors:
    """Input ``index``; with ``optional=True`` an absent input (an optional bias) passes."""
    return Tensors("input", index, optional)


def output_tensor(index: int = 0) -> Tensors:
    """Output ``index``."""
    return Tensors("output", index)


Which = Union[int, str, Tensors]
_GROUPS = {"inputs": "inputs", "outputs": "outputs", "all": "all"}


def _which(which: Which) -> Tensors:
    if isinstance(which, Tensors):
        return which
    if isinstance(which, int):
        return input_tensor(which)
    if which in _GROUPS:
        return Tensors(_GROUPS[which])
    raise ValueError(f"tensor selector {which!r}: give an input index, input_tensor(i), output_tensor(i), "
                     "'inputs', 'outputs' or 'all'")


def _label(op: Operator, kind: str, i: int) -> str:
    role = WEIGHT_INPUTS.get(op.type, {}).get(i) if kind == "input" else None
    return f"{kind} {i}" + (f" ({role})" if role else "")


def _each(which: Which, text: str, check: Callable[[str, Tensor], str]) -> Predicate:
    """A predicate that holds when ``check(label, tensor)`` returns no reason for every picked tensor."""
    sel = _which(which)

    def test(op: Operator) -> Result:
        picked = sel.pick(op)
        if isinstance(picked, str):
            return False, picked
        for label, t in picked:
            why = check(label, t)
            if why:
                return False, why
        return OK
    return Predicate(test, f"{sel.label} {text}")


# --------------------------------------------------------------------------- constructors

def op_type(*names: str) -> Predicate:
    """The op is one of ``names`` (builtin names, or a custom op's code)."""
    wanted = frozenset(names)
    needs = _alternatives(names)

    def test(op: Operator) -> Result:
        return OK if op.type in wanted else (False, f"op is {op.type}, needs {needs}")
    return Predicate(test, f"op is {needs}")


def dtype_in(which: Which, *dtypes: str) -> Predicate:
    """Every picked tensor has one of ``dtypes`` (type names: ``"FLOAT32"``, ``"INT8"``...)."""
    unknown = [d for d in dtypes if d not in TYPE_CODES]
    if unknown or not dtypes:
        raise ValueError(f"dtype_in needs tensor type names, got {unknown or 'none'}")
    codes = frozenset(TYPE_CODES[d] for d in dtypes)
    needs = _alternatives(dtypes)
    return _each(which, f"is {needs}",
                 lambda label, t: "" if t.dtype in codes else f"{label} is {t.type_name}, needs {needs}")


def rank_le(n: int, which: Which = 0) -> Predicate:
    """Every picked tensor has a known rank of at most ``n``."""
    def check(label: str, t: Tensor) -> str:
        if t.shape is None:
            return f"{label} has an unknown rank, needs rank <= {n}"
        return "" if len(t.shape) <= n else f"{label} has rank {len(t.shape)}, needs rank <= {n}"
    return _each(which, f"has rank <= {n}", check)


def rank_in(which: Which, *ranks: int) -> Predicate:
    """Every picked tensor has one of the given ranks."""
    needs = _alternatives([str(r) for r in ranks])

    def check(label: str, t: Tensor) -> str:
        if t.shape is None:
            return f"{label} has an unknown rank, needs rank {needs}"
        return "" if len(t.shape) in ranks else f"{label} has rank {len(t.shape)}, needs rank {needs}"
    return _each(which, f"has rank {needs}", check)


def static_shape(which: Which = "all") -> Predicate:
    """Every picked tensor's shape is known and has no dynamic (-1) dimension."""
    def check(label: str, t: Tensor) -> str:
        dims = _dims(t)
        if dims is None:
            return f"{label} has an unknown shape, needs a static shape"
        return "" if all(d >= 0 for d in dims) else f"{label} has the dynamic shape {list(dims)}, needs a static shape"
    return _each(which, "has a static shape", check)


def shape_where(which: Which, condition: Callable[[tuple[int, ...]], bool], text: str) -> Predicate:
    """Every picked tensor's shape satisfies ``condition`` (given the dimensions, -1 where dynamic);
    ``text`` says what is needed ("the last dimension a multiple of 4")."""
    def check(label: str, t: Tensor) -> str:
        dims = _dims(t)
        if dims is None:
            return f"{label} has an unknown shape, needs {text}"
        return "" if condition(dims) else f"{label} has shape {list(dims)}, needs {text}"
    return _each(which, f"has {text}", check)


def const_input(index: int) -> Predicate:
    """Input ``index`` holds constant data (a weight), not a value computed at run time."""
    return _each(index, "is constant", lambda label, t: "" if t.is_constant else
                 f"{label} is computed at run time, needs a constant")


def quantized(which: Which) -> Predicate:
    """Every picked tensor carries quantization parameters."""
    return _each(which, "is quantized", lambda label, t: "" if quant_params(t) is not None else
                 f"{label} is not quantized, needs quantization")


def unquantized(which: Which) -> Predicate:
    """No picked tensor carries quantization parameters."""
    return _each(which, "is not quantized", lambda label, t: "" if (p := quant_params(t)) is None else
                 f"{label} is quantized ({_quant_text(p)}), needs no quantization")


def per_channel_quant(which: Which) -> Predicate:
    """Every picked tensor is quantized with one scale per channel."""
    def check(label: str, t: Tensor) -> str:
        p = quant_params(t)
        if p is None:
            return f"{label} is not quantized, needs per-channel quantization"
        return "" if p.per_channel else f"{label} is quantized per tensor, needs per-channel quantization"
    return _each(which, "is quantized per channel", check)


def per_tensor_quant(which: Which) -> Predicate:
    """Every picked tensor is quantized with a single scale and zero point."""
    def check(label: str, t: Tensor) -> str:
        p = quant_params(t)
        if p is None:
            return f"{label} is not quantized, needs per-tensor quantization"
        return "" if not p.per_channel else (f"{label} is quantized per channel (axis {p.axis}), "
                                             "needs per-tensor quantization")
    return _each(which, "is quantized per tensor", check)


def same_quant(in_index: int = 0, out_index: int = 0) -> Predicate:
    """Input ``in_index`` and output ``out_index`` have the same quantization (or none)."""
    a_sel, b_sel = input_tensor(in_index), output_tensor(out_index)

    def test(op: Operator) -> Result:
        a, b = a_sel.pick(op), b_sel.pick(op)
        for picked in (a, b):
            if isinstance(picked, str):
                return False, picked
        (la, ta), (lb, tb) = a[0], b[0]
        if same_quantization(ta, tb):
            return OK
        qa, qb = quant_params(ta), quant_params(tb)
        return False, (f"{la} and {lb} are quantized differently ({_quant_text(qa)} vs {_quant_text(qb)}), "
                       "need the same quantization")
    return Predicate(test, f"{a_sel.label} and {b_sel.label} have the same quantization")


def option_in(field: str, *values: int | str) -> Predicate:
    """The op's option ``field`` has one of ``values`` (enum values may be given by name)."""
    codes = tuple(_option_code(field, v) for v in values)
    needs = _alternatives([_option_name(field, c) for c in codes])

    def test(op: Operator) -> Result:
        if op.options is None or not hasattr(op.options, field):
            return False, f"{op.type} has no option {field}"
        v = getattr(op.options, field)
        return OK if v in codes else (False, f"{field} is {_option_name(field, v)}, needs {needs}")
    return Predicate(test, f"{field} is {needs}")


def option_eq(field: str, value: int | str) -> Predicate:
    """The op's option ``field`` equals ``value`` (``option_eq("fusedActivationFunction", "NONE")``)."""
    return option_in(field, value)


def num_inputs(low: int, high: int | None = None) -> Predicate:
    """The op has ``low`` to ``high`` inputs (``high`` defaults to ``low``), absent optional inputs
    counted as the file stores them (a runtime sees the same count)."""
    return _count("input", low, low if high is None else high)


def num_outputs(low: int, high: int | None = None) -> Predicate:
    """The op has ``low`` to ``high`` outputs (``high`` defaults to ``low``)."""
    return _count("output", low, low if high is None else high)


def _count(kind: str, low: int, high: int) -> Predicate:
    needs = str(low) if low == high else f"{low} to {high}"

    def test(op: Operator) -> Result:
        n = len(op.inputs if kind == "input" else op.outputs)
        return OK if low <= n <= high else (False, f"{op.type} has {n} {kind}{'s' if n != 1 else ''}, "
                                                   f"needs {needs}")
    return Predicate(test, f"the op has {needs} {kind}{'' if needs == '1' else 's'}")


def positive_dims(which: Which = "all") -> Predicate:
    """Every dimension of every picked tensor, as stored in the file, is at least 1 (no empty
    tensor; a dynamic dimension stored as -1 fails too)."""
    def check(label: str, t: Tensor) -> str:
        dims = tuple(t.shape) if t.shape is not None else ()
        return "" if all(d > 0 for d in dims) else (f"{label} has shape {list(dims)}, needs every dimension "
                                                     "to be at least 1")
    return _each(which, "has no dimension below 1", check)


def constant_or_from(index: int, producer: Predicate) -> Predicate:
    """Input ``index`` is constant, or is the output of an op that ``producer`` accepts (e.g. a
    DEQUANTIZE of a constant, which a delegate may expand once and treat as a weight)."""
    sel = input_tensor(index)

    def test(op: Operator) -> Result:
        picked = sel.pick(op)
        if isinstance(picked, str):
            return False, picked
        label, t = picked[0]
        if t.is_constant:
            return OK
        if t.producer is not None and producer(t.producer)[0]:
            return OK
        made = f" (made by {t.producer.type})" if t.producer is not None else ""
        return False, f"{label} is computed at run time{made}, needs a constant or {producer.describe()}"
    return Predicate(test, f"{sel.label} is constant or made by {producer.describe()}")


def scale_ratio(numerators: Which | Iterable[Which], denominator: Which, low: float, high: float, *,
                high_inclusive: bool = False, bounds: str | None = None) -> Predicate:
    """The product of the numerators' scales over the denominator's scale lies in ``[low, high)``
    (``[low, high]`` with ``high_inclusive``), computed in float32 as kernels do. It constrains
    quantized tensors only: where a picked tensor has no quantization, it holds. ``bounds`` writes
    the interval for people ("[1/1024, 256)")."""
    nums = [_which(w) for w in (numerators if isinstance(numerators, (list, tuple)) else [numerators])]
    den = _which(denominator)
    interval = bounds or f"[{low:g}, {high:g}{']' if high_inclusive else ')'}"
    def test(op: Operator) -> Result:
        labels, value = [], np.float32(1.0)
        for sel in nums:
            picked = sel.pick(op)
            if isinstance(picked, str):
                return False, picked
            for label, t in picked:
                p = quant_params(t)
                if p is None:
                    return OK
                labels.append(f"{label}'s scale")
                value = np.float32(value * np.float32(p.scale[0]))
        picked = den.pick(op)
        if isinstance(picked, str):
            return False, picked
        dlabel, dt = picked[0]
        p = quant_params(dt)
        if p is None:
            return OK
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.float32(value / np.float32(p.scale[0]))
        ok = bool(low <= ratio and (ratio <= high if high_inclusive else ratio < high))
        if ok:
            return OK
        return False, f"{' x '.join(labels)} / {dlabel}'s scale = {float(ratio):.3g}, needs it in {interval}"
    names = " x ".join(f"{s.label}'s scale" for s in nums)
    return Predicate(test, f"{names} / {den.label}'s scale is in {interval}")


def option_where(field: str, condition: Callable[[Any], bool], text: str, absent: Any = 0) -> Predicate:
    """The op's option ``field`` satisfies ``condition``; ``text`` says what is needed ("beta == 1").
    An op without options reads ``absent`` (runtimes fill missing options with zeros)."""
    def test(op: Operator) -> Result:
        present = op.options is not None and hasattr(op.options, field)
        v = getattr(op.options, field) if present else absent
        if condition(v):
            return OK
        if not present:
            return False, f"{op.type} has no options ({field} reads as {_option_name(field, v)}), needs {text}"
        return False, f"{field} is {_option_name(field, v)}, needs {text}"
    return Predicate(test, f"{field}: {text}")


def const_values(which: Which, condition: Callable[[Any], bool], text: str) -> Predicate:
    """Every picked tensor is a constant whose values (a numpy array) satisfy ``condition``;
    ``text`` says what is needed ("every stride 1")."""
    def check(label: str, t: Tensor) -> str:
        data = t.data
        if data is None:
            return f"{label} is computed at run time, needs a constant with {text}"
        return "" if condition(data) else f"{label} is {_values_text(data)}, needs {text}"
    return _each(which, f"is a constant with {text}", check)


def _values_text(data: Any) -> str:
    flat = list(getattr(data, "ravel", lambda: data)())
    return str([v.item() if hasattr(v, "item") else v for v in flat[:8]])[:-1] + (", ...]" if len(flat) > 8 else "]")


# --------------------------------------------------------------------------- combinators

def all_of(*preds: Predicate) -> Predicate:
    """Every predicate holds; the reason is the first failing one's."""
    def test(op: Operator) -> Result:
        for p in preds:
            ok, why = p(op)
            if not ok:
                return False, why
        return OK
    return Predicate(test, " and ".join(_grouped(p, "or") for p in preds) or "always")


def any_of(*preds: Predicate) -> Predicate:
    """At least one predicate holds; the reason lists why each alternative fails."""
    def test(op: Operator) -> Result:
        reasons: list[str] = []
        for p in preds:
            ok, why = p(op)
            if ok:
                return OK
            if why not in reasons:
                reasons.append(why)
        return False, "; or ".join(reasons) or "no alternative applies"
    return Predicate(test, " or ".join(_grouped(p, "and") for p in preds) or "never")


def implies(condition: Predicate, then: Predicate) -> Predicate:
    """Where ``condition`` holds, ``then`` must too (elsewhere: no constraint)."""
    def test(op: Operator) -> Result:
        if not condition(op)[0]:
            return OK
        ok, why = then(op)
        return OK if ok else (False, f"{why} (as {condition.describe()})")
    return Predicate(test, f"if {condition.describe()}: {then.describe()}")


def not_(pred: Predicate, reason: str | None = None) -> Predicate:
    """``pred`` does not hold; ``reason`` (default: the condition) says why that is refused."""
    def test(op: Operator) -> Result:
        return (False, reason or f"{pred.describe()}, which is not supported") if pred(op)[0] else OK
    return Predicate(test, f"not ({pred.describe()})")


# --------------------------------------------------------------------------- text helpers

def _alternatives(items: Iterable[str]) -> str:
    items = list(items)
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " or " + items[-1]


def _grouped(p: Predicate, joiner: str) -> str:
    """``p``'s description, in parentheses when it joins its parts with ``joiner``."""
    text = p.describe()
    return f"({text})" if f" {joiner} " in text else text


def _dims(t: Tensor) -> tuple[int, ...] | None:
    if t.shape_signature is not None:
        return tuple(t.shape_signature)
    return tuple(t.shape) if t.shape is not None else None


def _quant_text(p: QuantParams | None) -> str:
    if p is None:
        return "not quantized"
    if p.per_channel:
        return f"{len(p.scale)} scales along axis {p.axis}"
    return f"scale {p.scale[0]:.6g}, zero point {p.zero_point[0]}"


#: option fields whose values are schema enums: named in reasons and accepted by name
_OPTION_ENUMS: dict[str, Any] = {
    "fusedActivationFunction": fb.ActivationFunctionType,
    "padding": fb.Padding,
    "weightsFormat": fb.FullyConnectedOptionsWeightsFormat,
}


def _enum_names(field: str) -> dict[int, str]:
    enum = _OPTION_ENUMS.get(field)
    return {} if enum is None else {v: k for k, v in vars(enum).items() if not k.startswith("_")}


def _option_code(field: str, value: int | str) -> Any:
    if isinstance(value, str) and field in _OPTION_ENUMS:
        names = {n: c for c, n in _enum_names(field).items()}
        if value not in names:
            raise ValueError(f"{field} has no value {value!r} (known: {', '.join(sorted(names))})")
        return names[value]
    return value


def _option_name(field: str, value: Any) -> str:
    name = _enum_names(field).get(value) if isinstance(value, int) else None
    return name if name is not None else repr(value) if isinstance(value, str) else str(value)


__all__ = ["OK", "Predicate", "Result", "Tensors", "Which", "all_of", "any_of", "const_input", "const_values",
           "constant_or_from", "dtype_in", "implies", "input_tensor", "not_", "num_inputs", "num_outputs", "op_type",
           "option_eq", "option_in", "option_where", "output_tensor", "per_channel_quant", "per_tensor_quant",
           "positive_dims", "predicate", "quantized", "rank_in", "rank_le", "same_quant", "scale_ratio",
           "shape_where", "static_shape", "unquantized", "TYPE_NAMES"]
