"""Cross-layer equalization (Nagel et al. 2019, "Data-Free Quantization Through Weight Equalization
and Bias Correction") for quantize-int8's ``equalize=true``.

For two consecutive weighted ops, op1 (CONV_2D or DEPTHWISE_CONV_2D) whose only reader is op2
(CONV_2D, or DEPTHWISE_CONV_2D with depth multiplier 1) at its data input (possibly through a
RELU op or a zero PAD, each the sole reader of the one before), output channel i of
op1 (its weights and bias) is divided by s_i and the matching input channel of op2's weights is
multiplied by s_i, with

    s_i = sqrt(r1_i / r2_i)      (r: the channel's max |w|)

so that both channels end with the range sqrt(r1_i * r2_i): per-channel weight ranges even out,
which per-tensor activation grids (and per-channel weight grids of the next layer) quantize better.

A weight or bias constant another op also reads is copied for the pair first. Exact in float
when op1's fused activation commutes with a positive scale: NONE and RELU
(relu(x / s) = relu(x) / s for s > 0). Not for RELU6 / RELU_N1_TO_1 (s_i * relu6(x / s_i) clips at
6 s_i, not 6), nor through any op between the two other than RELU and a zero PAD (HARD_SWISH, ...):
such pairs are left alone and counted in the result. The sweep over all pairs is repeated
``SWEEPS`` times (a middle op of a chain is in two pairs).

The model changes only through the IR's methods (``Subgraph.set_constant``).
"""
from __future__ import annotations

import numpy as np

from tflc.schema import TYPE_CODES, fb

_F32 = TYPE_CODES["FLOAT32"]
SWEEPS = 8
#: fused activations that commute with a positive per-channel scale
EXACT = {fb.ActivationFunctionType.NONE, fb.ActivationFunctionType.RELU}
#: output-channel axis of op1's weights; input-channel axis of op2's
OUT_AXIS = {"CONV_2D": 0, "DEPTHWISE_CONV_2D": 3}
IN_AXIS = {"CONV_2D": 3, "DEPTHWISE_CONV_2D": 3}
#: single-input ops that may sit between op1 and op2 (they commute with a positive per-channel scale)
BETWEEN = ("RELU", "PAD")
#: scales kept within this factor of 1 (a channel of all-zero weights gets 1)
LIMIT = 1e4


def _const(t) -> bool:
    return t is not None and t.is_constant and t.dtype == _F32 and t.data is not None


def _sole_reader(t, op) -> bool:
    return len(t.uses) == 1 and t.uses[0][0] is op


def pairs(sg, keep: set[str] = frozenset()) -> tuple[list[tuple], dict[str, int]]:
    """The (op1, op2) pairs CLE may rescale, and why others were skipped (reason -> count)."""
    out, skipped = [], {}

    def skip(why: str) -> None:
        skipped[why] = skipped.get(why, 0) + 1

    for op1 in sg.operators:
        if op1.type not in OUT_AXIS or len(op1.outputs) != 1 or op1.outputs[0] is None:
            continue
        y = op1.outputs[0]
        if len(y.uses) != 1 or sg.is_pinned(y) or y.dtype != _F32:
            continue
        op2, idx = y.uses[0]
        act_op = False
        while op2.type in BETWEEN and idx == 0 and len(op2.outputs) == 1:   # RELU / zero PAD: exact too
            z = op2.outputs[0]
            if z is None or len(z.uses) != 1 or sg.is_pinned(z) or z.dtype != _F32:
                break
            act_op = True
            op2, idx = z.uses[0]
        if op2.type not in IN_AXIS or idx != 0:
            if op2.type in ("RELU6", "RELU_N1_TO_1"):
                skip("a clipping activation (RELU6, ...) between: not exact")
            continue
        if op1.type in keep or op2.type in keep or op1.output_name in keep or op2.output_name in keep:
            skip("keep-float")
            continue
        act = getattr(op1.options, "fusedActivationFunction", fb.ActivationFunctionType.NONE)
        if act not in EXACT:
            skip("op1's fused activation clips (RELU6, ...): not exact")
            continue
        w1, w2 = op1.inputs[1], op2.inputs[1] if len(op2.inputs) > 1 else None
        b1 = op1.inputs[2] if len(op1.inputs) > 2 else None
        if not (_const(w1) and _const(w2)) or (b1 is not None and not _const(b1)):
            skip("weights not float32 constants")
            continue
        if w1.data.ndim != 4 or w2.data.ndim != 4:
            continue
        c = w1.data.shape[OUT_AXIS[op1.type]]
        if w2.data.shape[IN_AXIS[op2.type]] != c or (b1 is not None and b1.data.size != c):
            skip("channels do not match (grouped conv or depth multiplier)")
            continue
        out.append((op1, op2))
    return out, skipped


def _channel_max(w: np.ndarray, axis: int) -> np.ndarray:
    return np.abs(np.moveaxis(np.asarray(w, np.float64), axis, 0).reshape(w.shape[axis], -1)).max(axis=1)


def _scale_along(w: np.ndarray, axis: int, s: np.ndarray) -> np.ndarray:
    shape = [1] * w.ndim
    shape[axis] = -1
    return (np.asarray(w, np.float64) * s.reshape(shape)).astype(np.float32)


def spread(sg, ps) -> float:
    """The mean over the pairs' weights of max/min per-channel range (how uneven the channels are)."""
    vals = []
    for op1, op2 in ps:
        for w, ax in ((op1.inputs[1].data, OUT_AXIS[op1.type]), (op2.inputs[1].data, IN_AXIS[op2.type])):
            r = _channel_max(w, ax)
            r = r[r > 0]
            if r.size:
                vals.append(float(r.max() / r.min()))
    return float(np.mean(vals)) if vals else 1.0


def equalize(model, keep: set[str] = frozenset(), sweeps: int = SWEEPS) -> dict:
    """Equalize the main subgraph in place; returns {pairs, skipped, spread_before, spread_after, text}."""
    sg = model.main
    ps, skipped = pairs(sg, keep)
    copies = 0
    for op1, op2 in ps:                # a constant another op also reads: this pair gets its own copy
        for op, i in ((op1, 1), (op1, 2), (op2, 1)):
            t = op.inputs[i] if len(op.inputs) > i else None
            if t is not None and not _sole_reader(t, op):
                sg.set_input(op, i, sg.new_constant(sg.unique_name(f"{t.name}/equalized"), np.array(t.data)))
                copies += 1
    before = spread(sg, ps)
    for _ in range(sweeps if ps else 0):
        for op1, op2 in ps:
            w1, w2, b1 = op1.inputs[1], op2.inputs[1], op1.inputs[2] if len(op1.inputs) > 2 else None
            a1, a2 = OUT_AXIS[op1.type], IN_AXIS[op2.type]
            r1, r2 = _channel_max(w1.data, a1), _channel_max(w2.data, a2)
            s = np.where((r1 > 0) & (r2 > 0), np.sqrt(r1 / np.where(r2 > 0, r2, 1.0)), 1.0)
            s = np.clip(s, 1.0 / LIMIT, LIMIT)
            sg.set_constant(w1, _scale_along(w1.data, a1, 1.0 / s))
            if b1 is not None:
                sg.set_constant(b1, (np.asarray(b1.data, np.float64).reshape(-1) / s).astype(np.float32)
                                .reshape(b1.data.shape))
            sg.set_constant(w2, _scale_along(w2.data, a2, s))
    after = spread(sg, ps)
    why = "; ".join(f"{n} skipped: {k}" for k, n in sorted(skipped.items()))
    text = (f"{len(ps)} conv pair(s) rescaled (mean per-channel weight range spread max/min {before:.3g} -> "
            f"{after:.3g})" + (f"; {why}" if why else ""))
    if copies:
        text += f"; {copies} shared constant(s) copied"
    return {"pairs": len(ps), "skipped": skipped, "copies": copies, "spread_before": round(before, 3),
            "spread_after": round(after, 3),
            "text": text}
