"""float-islands: an int8 op the delegate leaves on the CPU runs in float inside its partition.

XNNPACK in LiteRT 2.3.0 takes many ops in float32 but not in int8 (SOFTMAX, HARD_SWISH, GELU,
BATCH_MATMUL with a non-zero right zero point, SQUARED_DIFFERENCE, RSQRT, an ADD whose scales are
too far apart, ...). Each such op runs on a slow builtin kernel and splits the delegate's
partition in two. This pass rewrites

    y_q = OP(x_q, ...)                      (int8, refused by the target)
into
    x_f = DEQUANTIZE(x_q); y_f = OP(x_f, ...); y_q = QUANTIZE(y_f)

with ``y_q`` keeping its quantization, so everything after it is unchanged. The target takes
DEQUANTIZE, QUANTIZE and the float op, so the partition is no longer split. Quantized constant
inputs (an epsilon, a PRELU slope) become float constants (up to ``max-const-bytes``).

When it is safe: the float op computes the same function on the dequantized values, without the
int8 kernel's fixed-point approximations, and its result is rounded to the same int8 grid: each
island's output is within one step of the int8 kernel's, and closer to exact arithmetic (the int8
kernels are not exact: LiteRT's int8 BATCH_MATMUL is one step off the exactly rounded product on
0.4% of the outputs of the converter's transformer attention). Those one-step differences do
compound through the layers after an island, as any change of arithmetic in an int8 network does:
measured on the converter's 3-layer int8 transformer, the output moves by up to 6 steps while its
SQNR against the float model stays as high (27.7 dB against the original's 27.4 dB); ADD, RSQRT,
SOFTMAX and GELU islands change nothing at all there. The pass declares 8 steps for integer
outputs (8/127 relative for float outputs behind them), and ``tflc optimize`` checks it in LiteRT.
Each island keeps its own QUANTIZE/DEQUANTIZE pair, so the int8 values between islands keep their
grid.

It is applied only where the target refuses the int8 op and accepts the float one: both answers
come from the target's rules (``tflc.targets``), and the refusal of an op it cannot help says why.
"""
from __future__ import annotations

from dataclasses import dataclass, field


from tflc.ir.core import Model, Operator
from tflc.ir.quant import quant_params
from tflc.passes_api import Pass, register

from ._islands import float_probe, is_activation, make_island

_CONVERSIONS = frozenset({"QUANTIZE", "DEQUANTIZE", "CAST"})


@dataclass
class FloatIslandsOptions:
    ops: list[str] = field(default_factory=list, metadata={
        "help": "op types to consider (':'-separated; default: every op the target refuses in int8)"})
    max_const_bytes: int = field(default=1 << 16, metadata={
        "help": "largest quantized constant input turned into a float constant (bytes of float32)"})

    def __post_init__(self) -> None:
        if self.max_const_bytes < 0:
            raise ValueError("max-const-bytes must be 0 or more")


@dataclass
class _Plan:
    inputs: dict[int, str]             # input index -> "dequantize" | "constant"
    outputs: list[int]                 # output indices to quantize back


def plan_island(op: Operator, target, max_const_bytes: int = 1 << 16) -> tuple[_Plan | None, str]:
    """What the island of ``op`` would be, or why there is none. The float op is tried on the
    target before anything changes."""
    ok, why = target.check(op)
    if ok:
        return None, ""
    if op.opcode.is_custom:
        return None, "a custom op has no float version to run"
    if op.type in _CONVERSIONS:
        return None, ""                 # a (re)quantization is no computation to run in float
    q_in = [i for i, t in enumerate(op.inputs) if is_activation(t)]
    q_out = [i for i, t in enumerate(op.outputs) if is_activation(t)]
    if not q_in and not q_out:
        return None, ""                                 # not an int8 op: nothing this pass can do
    if any(quant_params(t) is not None and not is_activation(t) and not t.is_constant
           for t in (*op.inputs, *op.outputs) if t is not None):
        return None, "it holds int16 or per-channel activations; islands are made for int8 activations"
    plan = _Plan({}, q_out)
    for i in q_in:
        t = op.inputs[i]
        if t.is_constant and (t.num_elements or 0) * 4 > max_const_bytes:
            return None, f"input {i} is a quantized constant of {t.num_elements} values, over max-const-bytes"
        plan.inputs[i] = "constant" if t.is_constant else "dequantize"
    ok, float_why = target.check(float_probe(op, q_in, q_out))
    if not ok:
        return None, f"its float version is not taken either ({float_why})"
    return plan, why


@register
class FloatIslands(Pass):
    name = "float-islands"
    description = "run int8 ops the delegate leaves on the CPU in float inside its partition (DEQUANTIZE-op-QUANTIZE)"
    Options = FloatIslandsOptions
    #: one step per island, compounded through the layers after it (measured: 6 on a 3-layer int8
    #: transformer); see the module's docstring
    quant_steps = 8
    tolerance = 8 / 127            # the same for float outputs behind int8 ops (8 steps of a full-range output)

    def run(self, model: Model, ctx) -> bool:
        from tflc.targets import get_target
        target = get_target(getattr(ctx, "target", None) or "xnnpack")
        wanted = set(self.options.ops)
        changed = False
        for sg in model.subgraphs:
            for op in list(sg.operators):
                if wanted and op.type not in wanted:
                    continue
                plan, why = plan_island(op, target, self.options.max_const_bytes)
                if plan is None:
                    if why:
                        ctx.note(f"{self.name}: kept {op.type} '{op.output_name}': {why}")
                    continue
                make_island(sg, op, plan.inputs, plan.outputs)
                ctx.note(f"{self.name}: {op.type} '{op.output_name}' runs in float inside the partition ({why})")
                changed = True
        return changed

    @classmethod
    def covers(cls, op: Operator, target) -> bool:
        """Would this pass move ``op`` into the partition? (``tflc partition`` lists it as a rewrite.)"""
        return plan_island(op, target)[0] is not None

