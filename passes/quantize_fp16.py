"""quantize-fp16: float16 weights (``--quantize fp16``), judged by SQNR against the float model.

The rewrite is ``store-float16-weights``' (the TF converter's ``supported_types=[tf.float16]``):
float32 constant weights become float16 behind a DEQUANTIZE, halving their bytes. LiteRT unpacks
them once, when the model is prepared (XNNPACK packs the float16 data directly), so the model
computes in float32 as before: latency is the float model's, only the file and the weights'
memory shrink. ``store-float16-weights``' options apply (``ops``, ``min-elements``, ...).

Unlike ``store-float16-weights`` (a relative tolerance, for ``--passes``), the result is judged
like the other ``--quantize`` modes: each output's SQNR against the float model must reach
``min_sqnr_db`` (default 40 dB; float16 rounding usually costs far less), reported per output.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from tflc.ir.core import Model
from tflc.passes_api import Pass, register

from .store_float16_weights import Options as StoreOptions
from .store_float16_weights import StoreFloat16Weights


@dataclass
class QuantizeFp16Options(StoreOptions):
    min_sqnr_db: float = field(default=40.0, metadata={
        "help": "the least SQNR (dB) each output must keep against the float model in tflc optimize's check"})


@register
class QuantizeFp16(Pass):
    __doc__ = __doc__
    name = "quantize-fp16"
    quantizes = True
    description = "float16 weights behind DEQUANTIZE (store-float16-weights), judged by SQNR against float"
    Options = QuantizeFp16Options
    #: judged by SQNR (``min_sqnr_db``), not by a relative tolerance: see tflc.optimize
    tolerance = 0.0

    @property
    def min_sqnr_db(self) -> float:
        return self.options.min_sqnr_db

    def run(self, model: Model, ctx) -> bool:
        store = StoreFloat16Weights(self.options)
        changed = store.run(model, ctx)
        n = sum(1 for op in model.main.operators if op.type == "DEQUANTIZE" and op.inputs[0].type_name == "FLOAT16")
        ctx.note(f"{self.name}: {n} weight(s) stored as float16" if changed else f"{self.name}: nothing to store")
        return changed
