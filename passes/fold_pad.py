"""fold-pad: fold an explicit zero PAD in front of a VALID convolution into SAME padding.

Rewrites ``CONV_2D(PAD(x, p), padding=VALID)`` (and DEPTHWISE_CONV_2D) into
``CONV_2D(x, padding=SAME)`` when ``p`` pads only the two spatial dimensions, with exactly the
amounts TFLite's SAME rule adds for this kernel, stride and dilation: along each spatial axis of
size ``n``, ``out = ceil(n / stride)``, ``total = max((out - 1) * stride + (k - 1) * dilation + 1
- n, 0)``, ``before = total // 2``, ``after = total - before``. The PAD is removed once nothing
else reads it.

Safe (bit-identical, verified in LiteRT with and without XNNPACK): a SAME convolution reads
zeros outside the input, at the same positions the PAD wrote them, and the output size is
the same. The padding value must be zero: PAD (zero / the zero point for quantized tensors),
or PADV2 with a constant value of +0.0 (float) or the zero point (quantized); PAD's input and
output must have the same quantization. Anything else (other amounts, batch/channel padding,
unknown spatial sizes, a conv that is already SAME) is refused with a note saying why.
"""
from __future__ import annotations

import numpy as np

from tflc.ir.core import Model, Operator, Subgraph, Tensor
from tflc.ir.quant import is_per_channel, quant_params, same_quantization
from tflc.passes_api import Pass, register
from tflc.rewrite import Match, Rule, apply_rules
from tflc.schema import TYPE_NAMES, fb

SAME, VALID = fb.Padding.SAME, fb.Padding.VALID
CONVS = ("CONV_2D", "DEPTHWISE_CONV_2D")


def same_padding(n: int, k: int, stride: int, dilation: int) -> tuple[int, int]:
    """(before, after) that TFLite's SAME padding adds along an axis of size ``n``."""
    eff = (k - 1) * dilation + 1
    out = -(-n // stride)
    total = max((out - 1) * stride + eff - n, 0)
    return total // 2, total - total // 2


class FoldPadIntoConv(Rule):
    name = "fold-pad"
    roots = CONVS

    def match(self, op: Operator, sg: Subgraph) -> Match | None:
        if not op.inputs or op.inputs[0] is None:
            return None
        pad = op.inputs[0].producer
        if pad is None or pad.type not in ("PAD", "PADV2") or pad.subgraph is not sg:
            return None
        return Match(op, sg, ops={"conv": op, "pad": pad}, tensors={"x": pad.inputs[0], "padded": op.inputs[0]})

    def check(self, m: Match) -> tuple[bool, str]:
        conv, pad, x, padded = m.ops["conv"], m.ops["pad"], m.tensors["x"], m.tensors["padded"]
        o = conv.options
        if o is None or len(conv.inputs) < 2 or conv.inputs[1] is None:
            return False, "the convolution has no options or weights"
        if o.padding != VALID:
            return False, "the convolution already uses SAME padding (the PAD would add to it)"
        if x is None or len(pad.inputs) < 2 or pad.inputs[1] is None or not pad.inputs[1].is_constant:
            return False, "the PAD amounts are not constant"
        amounts = np.asarray(pad.inputs[1].data).astype(np.int64)
        if amounts.shape != (4, 2):
            return False, f"PAD amounts of shape {list(amounts.shape)}, not a 4-D NHWC padding"
        if amounts[0].any() or amounts[3].any():
            return False, "the PAD also pads the batch or channel dimension"
        ok, why = self._zero_value(pad, x, padded)
        if not ok:
            return False, why
        if x.dtype != padded.dtype:
            return False, "PAD changes the tensor type"
        if x.shape is None or len(x.shape) != 4 or (
                x.shape_signature is not None and any(d < 0 for d in x.shape_signature[1:3])):
            return False, "the spatial size of the PAD input is not known"
        w = conv.inputs[1]
        if w.shape is None or len(w.shape) != 4:
            return False, "the weights' shape is unknown"
        kh, kw = int(w.shape[1]), int(w.shape[2])
        want_h = same_padding(x.shape[1], kh, o.strideH, max(o.dilationHFactor, 1))
        want_w = same_padding(x.shape[2], kw, o.strideW, max(o.dilationWFactor, 1))
        got_h, got_w = tuple(int(v) for v in amounts[1]), tuple(int(v) for v in amounts[2])
        if (got_h, got_w) != (want_h, want_w):
            return False, (f"PAD adds {got_h}x{got_w} (top,bottom)x(left,right) but SAME adds {want_h}x{want_w} "
                           f"for a {kh}x{kw} kernel with stride {o.strideH}x{o.strideW} on {x.shape[1]}x{x.shape[2]}")
        return True, ""

    @staticmethod
    def _zero_value(pad: Operator, x: Tensor, padded: Tensor) -> tuple[bool, str]:
        if not same_quantization(x, padded):
            return False, "PAD's input and output have different quantization"
        if is_per_channel(x):
            return False, "per-channel quantized activations"
        if pad.type == "PAD":
            return True, ""
        value = pad.inputs[2] if len(pad.inputs) > 2 else None
        if value is None:
            return True, ""
        if not value.is_constant or value.num_elements != 1:
            return False, "the PADV2 value is not a constant scalar"
        raw = np.asarray(value.data).reshape(-1)[:1]
        v = raw[0]
        qx = quant_params(x)
        if qx is not None:
            zp = qx.zero_point[0]
            return (int(v) == zp, f"the PADV2 value {int(v)} is not the zero point {zp}")
        if TYPE_NAMES.get(x.dtype, "").startswith("FLOAT") or TYPE_NAMES.get(x.dtype) == "BFLOAT16":
            return (not raw.view(np.uint8).any(), f"the PADV2 value {float(v)!r} is not +0.0")
        return (v == 0, f"the PADV2 value {v!r} is not zero")

    def apply(self, m: Match) -> None:
        sg, conv, pad, x, padded = m.sg, m.ops["conv"], m.ops["pad"], m.tensors["x"], m.tensors["padded"]
        sg.update_options(conv, padding=SAME)
        sg.set_input(conv, 0, x)
        if not padded.uses and not sg.is_pinned(padded):
            sg.remove_op(pad)


@register
class FoldPad(Pass):
    __doc__ = __doc__
    name = "fold-pad"
    description = "Fold a zero PAD before a VALID CONV_2D/DEPTHWISE_CONV_2D into SAME padding (exact)"

    def run(self, model: Model, ctx) -> bool:
        return apply_rules(model, [FoldPadIntoConv()], ctx)
