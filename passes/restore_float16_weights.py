"""restore-float16-weights: store again as float16 the weights ``fold-float16-weights`` unpacked.

``fold-float16-weights`` turns float16 weights into float32 so that the passes after it can see
through them; left like that, -O1/-O2 would double the size of a float16 model. This pass,
at the end of the pipeline, puts each of those weights back behind a DEQUANTIZE (with the
DEQUANTIZE version the model used) -- but only where every value is exactly representable
in float16, which holds for every weight no pass changed. Weights that a pass rewrote (e.g.
fold-affine scaled them) stay float32. So the pass is lossless by construction: the float32
values LiteRT computes with are the same before and after.

It does nothing unless ``fold-float16-weights`` ran earlier in the same pipeline.
"""
from __future__ import annotations

import numpy as np

from tflc.ir.core import Model, Operator, Subgraph
from tflc.passes_api import Pass, register
from tflc.rewrite import Match, apply_rules

from .fold_float16_weights import FACT
from .store_float16_weights import Options as StoreOptions
from .store_float16_weights import StoreFloat16


class _Restore(StoreFloat16):
    name = "restore-float16-weights"

    def __init__(self, options: StoreOptions, wanted: set[int]):
        super().__init__(options)
        self.wanted = wanted

    def match(self, op: Operator, sg: Subgraph) -> Match | None:
        m = super().match(op, sg)
        while m is not None and m.tensors["c"].uid not in self.wanted:
            self.decided.add(m.tensors["c"].uid)          # not one of ours: skip silently
            m = super().match(op, sg)
        return m

    def check(self, m: Match) -> tuple[bool, str]:
        data = np.asarray(m.tensors["c"].data, dtype=np.float32)
        if not np.array_equal(data.astype(np.float16).astype(np.float32), data):
            self.decided.add(m.tensors["c"].uid)          # changed by a pass: stays float32
            return False, ""
        return super().check(m)


@register
class RestoreFloat16Weights(Pass):
    __doc__ = __doc__
    name = "restore-float16-weights"
    description = "Store the float16 weights that fold-float16-weights unpacked as float16 again, where exact"

    def run(self, model: Model, ctx) -> bool:
        record: dict[int, int] = (ctx.facts.get(FACT) or {}) if ctx is not None else {}
        if not record:
            return False
        op_types = sorted({op.type for op in model.operators()})
        changed = False
        for version in sorted(set(record.values())):
            wanted = {uid for uid, v in record.items() if v == version}
            rule = _Restore(StoreOptions(ops=op_types, dequantize_version=version), wanted)
            while True:
                seen = len(rule.decided)
                changed |= apply_rules(model, [rule], ctx, max_rounds=1000)
                if len(rule.decided) == seen:
                    break
        return changed
