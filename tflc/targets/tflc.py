"""``tflc``: LiteRT's XNNPACK delegate and tflc's kernels splitting one model between them.

The delegate's part is XNNPACK's, decided by the same rules (``tflc.targets.xnnpack``); what it
leaves out runs either on LiteRT's builtin kernels or, where a kernel of ``tflc.kernels.library``
stands for the op (its ``REPLACES`` predicate), on that kernel inside ``tflc.runtime``. This
module only names the target: the kernels sit above the targets in tflc's layers, so which op a
kernel takes is added where both are at hand (``tflc partition --target tflc``, the use-kernels
pass), and the split that is kept is chosen by measuring (``tflc.splits``).
"""
from __future__ import annotations

from . import Target, register_target
from .xnnpack import XNNPACK

TFLC = register_target(Target(
    name="tflc",
    title="XNNPACK with tflc's kernels",
    runtime=f"{XNNPACK.runtime}, with tflc.runtime",
    source=f"{XNNPACK.source}; for the ops it leaves out, the REPLACES predicates of tflc.kernels.library",
    rules=XNNPACK.rules,
    unlisted=XNNPACK.unlisted,
    finalize=XNNPACK.finalize,
    notes=XNNPACK.notes + (
        "An op XNNPACK leaves out runs on a tflc kernel where one stands for it (bit-identical to LiteRT's "
        "builtin kernel); each such op still splits XNNPACK's partition, so tflc optimize --kernels keeps a "
        "kernel only where the whole model gets faster, measured against the builtin op and a float island.",
    ),
))
