"""Building blocks shared by the gpu, nnapi and ethos-u targets: predicates made from a function
that returns the reason an op is refused ("" when it passes), one op type's rule phrased for its
target ("TRANSPOSE: input 0 has rank 5, the GPU delegate takes rank <= 4"), and the few facts about
tensors every delegate reads the same way (stored shape, constant = data in the file, float16
weights behind a DEQUANTIZE).
"""
from __future__ import annotations

from typing import Callable, Iterable

from .. import capabilities as cap
from ..capabilities import OK, Predicate, Result
from ..ir.core import Operator, Tensor
from ..schema import TYPE_CODES, fb

Check = Callable[[Operator], str]          # "" when the op passes, else the reason

F32, F16, I8, U8, I16, I32, I64, BOOL = (TYPE_CODES[n] for n in
                                         ("FLOAT32", "FLOAT16", "INT8", "UINT8", "INT16", "INT32", "INT64", "BOOL"))
ACT = fb.ActivationFunctionType
ACT_NAMES = {v: k for k, v in vars(ACT).items() if not k.startswith("_")}


def check(text: str, fn: Check) -> Predicate:
    """A predicate from ``fn(op) -> reason`` ("" = passes), described by ``text``."""
    def test(op: Operator) -> Result:
        why = fn(op)
        return (False, why) if why else OK
    return cap.predicate(text, test)


def rule(who: str, *parts: Predicate) -> Predicate:
    """One op type's rule: every part holds, checked in order (the first failure is the reason).
    The reason names the op and says what ``who`` takes: "CONV_2D: input 1 (filter) is computed at
    run time, the GPU delegate takes a constant"."""
    whole = cap.all_of(*parts)

    def test(op: Operator) -> Result:
        ok, why = whole(op)
        return OK if ok else (False, phrase(op, why, who))
    return cap.predicate(whole.describe(), test)


def phrase(op: Operator, why: str, who: str) -> str:
    why = why.replace(", needs ", f", {who} takes ").replace(", need ", f", {who} takes ")
    return why if why.startswith(op.type + ":") else f"{op.type}: {why}"


def never(text: str) -> Predicate:
    """Refused whatever the op looks like (``text`` says why)."""
    return cap.predicate(f"never ({text})", lambda op: (False, text))


def always() -> Predicate:
    return cap.predicate("always", lambda op: OK)


# --------------------------------------------------------------------------- tensors as delegates see them

def dims(t: Tensor | None) -> tuple[int, ...] | None:
    """The stored shape (what the interpreter has before any resize), None when unknown."""
    if t is None or t.shape is None:
        return None
    return tuple(t.shape)


def rank(t: Tensor | None) -> int:
    d = dims(t)
    return len(d) if d is not None else 0


def type_name(code: int) -> str:
    return next((k for k, v in TYPE_CODES.items() if v == code), f"TYPE_{code}")


def fp16_weight_of(t: Tensor | None) -> Tensor | None:
    """The constant float16 tensor behind ``t`` when ``t`` is the output of a DEQUANTIZE of one
    (LiteRT's FP16GraphPartitionHelper hands the delegate the float16 constant instead), else None."""
    p = t.producer if t is not None else None
    if p is None or p.type != "DEQUANTIZE" or not p.inputs or p.inputs[0] is None:
        return None
    src = p.inputs[0]
    return src if src.dtype == F16 and src.is_constant else None


def is_fp16_weight_dequantize(op: Operator) -> bool:
    """A DEQUANTIZE of a constant float16 tensor (float16 weights)."""
    return op.type == "DEQUANTIZE" and bool(op.inputs) and op.inputs[0] is not None \
        and op.inputs[0].dtype == F16 and op.inputs[0].is_constant


def fp16_weights_follow(sg, decisions: list) -> list:
    """Float16 weights (LiteRT's FP16GraphPartitionHelper, used by the GPU and NNAPI delegates): when
    every op but the float16 DEQUANTIZEs is taken, the delegate takes them too (full delegation);
    otherwise they stay on the CPU. A ``Target.finalize``."""
    fp16 = {i for i, op in enumerate(sg.operators) if is_fp16_weight_dequantize(op)}
    if fp16 and all(d.delegated for i, d in enumerate(decisions) if i not in fp16):
        for i in fp16:
            decisions[i].delegated, decisions[i].reason = True, ""
    return decisions


def seen_inputs(op: Operator, fp16_remap: bool = True) -> list[Tensor | None]:
    """``op``'s inputs as the delegate is shown them: float16 weights remapped (see fp16_weight_of)."""
    if not fp16_remap:
        return list(op.inputs)
    return [fp16_weight_of(t) or t for t in op.inputs]


def is_const(t: Tensor | None) -> bool:
    """Constant: data in the file (LiteRT's kTfLiteMmapRo)."""
    return t is not None and t.is_constant


def runtime_inputs(op: Operator, fp16_remap: bool = True) -> int:
    """Inputs that are neither absent nor constant (LiteRT's GetNumberOfRuntimeInputs)."""
    return sum(1 for t in seen_inputs(op, fp16_remap) if t is not None and not is_const(t))


def const_inputs(op: Operator, fp16_remap: bool = True) -> int:
    return sum(1 for t in seen_inputs(op, fp16_remap) if is_const(t))


def const_values(t: Tensor | None):
    """The constant's values (numpy array) or None."""
    if not is_const(t):
        return None
    try:
        return t.data
    except Exception:                                   # noqa: BLE001 (a type numpy cannot hold)
        return None


def option(op: Operator, field: str, default=None):
    o = op.options
    return getattr(o, field, default) if o is not None else default


def act_name(code: int) -> str:
    return ACT_NAMES.get(code, str(code))


def label(op: Operator, kind: str, i: int) -> str:
    """"input 1 (filter)" as capabilities names it."""
    from ..ir.opinfo import WEIGHT_INPUTS
    role = WEIGHT_INPUTS.get(op.type, {}).get(i) if kind == "input" else None
    return f"{kind} {i}" + (f" ({role})" if role else "")


def alternatives(items: Iterable[str]) -> str:
    items = list(items)
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " or " + items[-1]


def max_version(n: int) -> Predicate:
    """The op's version (its opcode's, as the interpreter registers it) is at most ``n``."""
    def run(op: Operator) -> str:
        v = op.opcode.version
        return "" if v <= n else f"version {v}, needs version <= {n}"
    return check(f"version <= {n}", run)


def io_count(runtime: int | None = None, consts: int | None = None, outputs: int | None = None,
             fp16_remap: bool = True) -> Predicate:
    """Exactly ``runtime`` inputs computed at run time, ``consts`` constant inputs, ``outputs`` outputs
    (None: not checked), as LiteRT's CheckInputsConstsOutputs counts them."""
    parts = []
    if runtime is not None:
        parts.append(f"{runtime} runtime input(s)")
    if consts is not None:
        parts.append(f"{consts} constant input(s)")
    if outputs is not None:
        parts.append(f"{outputs} output(s)")
    text = ", ".join(parts)

    def run(op: Operator) -> str:
        if consts is not None and (n := const_inputs(op, fp16_remap)) != consts:
            return f"{n} constant input(s), needs {consts}"
        if runtime is not None and (n := runtime_inputs(op, fp16_remap)) != runtime:
            return f"{n} input(s) computed at run time, needs {runtime}"
        if outputs is not None and (n := sum(t is not None for t in op.outputs)) != outputs:
            return f"{n} output(s), needs {outputs}"
        return ""
    return check(text, run)


def any_check(text: str, *alts: Check) -> Predicate:
    """Passes when one of ``alts`` passes; the reason is the first alternative's."""
    def run(op: Operator) -> str:
        reasons = [f(op) for f in alts]
        return "" if any(not r for r in reasons) else reasons[0]
    return check(text, run)
