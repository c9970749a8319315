"""Arm's Ethos-U55/U65 NPU as Arm's Vela 5.2 compiler decides it: which ops of an int8/int16 model
Vela puts on the NPU, and for every op it leaves on the CPU the precise reason.

Vela (``ethos-u-vela`` on PyPI) compiles a TFLite model ahead of time; the ops it places on the
NPU become ``ethos-u`` custom ops, the others stay TFLite ops for the CPU (TFLite Micro). Its
decision is made per op, in three steps, mirrored here:

1. the op type: only the types of Vela's "Ethos-U55 and Ethos-U65 TFLite" table (:data:`OPS`);
2. the generic constraints every listed op must meet, with the exceptions the table lists
   (:data:`GENERIC`, :data:`GENERIC_EXCEPTIONS`): integer feature maps, only the batch dynamic,
   quantized 8/16-bit tensors, per-tensor quantization but for the MAC ops, no 64-bit and (for most
   ops) no 32-bit feature maps, non-negative unsigned zero points;
3. the op's own constraints (:data:`OPS`: strides, kernel sizes, weight sums, resize factors,
   transpose shapes, ...).

Some malformed inputs are not placed on the CPU: Vela stops with an error ("Does not have valid
TFLite Semantics", or a crash) and compiles nothing. :data:`SEMANTICS` lists those found; a model
with one is refused as a whole (``Target.model_check``), every op on the CPU with that reason.

Sources: ``vela --supported-ops-report`` (SUPPORTED_OPS.md of Vela 5.2.0, which is generated from
the constraints of Vela's default C++ "regor" compiler core), read with the legacy Python core's
``tflite_supported_operators.py`` and ``tflite_model_semantic.py``; every limit was confirmed, and
a few corrected, by compiling hand-built int8 models with Vela 5.2.0 (see ``notes`` and
tests/test_partition_ethos_u.py, which also compares the zoo's int8 models with Vela when Vela is
installed). The accelerator is Vela's default, ``ethos-u55-256``; the table is the same for every
Ethos-U55 and Ethos-U65 configuration (the Ethos-U85 has another table, not described here).
"""
from __future__ import annotations

from ..capabilities import Predicate
from ..ir.core import Model, Operator
from ..ir.quant import same_quantization
from . import Target, register_target
from . import _ethos_u_ops as e
from ._rules import ACT, I8, U8, act_name, check, is_const, option, rule, type_name

__all__ = ["ETHOS_U", "GENERIC", "OPS", "RULES", "SEMANTICS", "VELA_VERSION", "ACCELERATOR", "model_check"]

VELA_VERSION = "5.2.0"
ACCELERATOR = "ethos-u55-256"
WHO = "Vela"
SOURCE = (f"Vela {VELA_VERSION} (ethos-u-vela): `vela --supported-ops-report` (SUPPORTED_OPS.md, the 'Ethos-U55 and "
          "Ethos-U65 TFLite' generic and per-operator constraints, generated from the regor core), "
          "ethosu/vela/tflite_supported_operators.py and tflite_model_semantic.py; limits confirmed by compiling "
          "hand-built int8 models with Vela 5.2.0 (tests/test_partition_ethos_u.py)")
RUNTIME = (f"Arm Ethos-U55/U65 NPU, ops placed by Vela {VELA_VERSION} (default accelerator {ACCELERATOR}, "
           "default system config); the rest runs on the CPU (TFLite Micro)")

# --------------------------------------------------------------------------- generic constraints

#: name -> (what it requires, its check); applied in this order to every listed op
GENERIC: dict[str, tuple[str, object]] = {
    "dynamic": ("only the first dimension of a feature map may be dynamic", e.dynamic),
    "dtype": ("feature maps are INT8, UINT8, INT16, INT32 or INT64", e.fm_dtype),
    "shape": ("feature maps computed at run time have a shape (no scalars)", e.has_shape),
    "quantized": ("8/16-bit inputs, outputs and weights have quantization parameters", e.quantized),
    "per_tensor": ("feature maps are quantized per tensor", e.per_tensor),
    "no_64bit": ("no 64-bit feature maps", e.no_64bit),
    "zero_points": ("unsigned feature maps have non-negative zero points", e.zero_points),
    "no_32bit": ("no 32-bit feature maps", e.no_32bit),
}

#: generic constraint -> the ops exempt from it (the report's "Exceptions" lists, and, for no_32bit,
#: the ops whose constraint list in the report does not include "32-bit feature-maps are not supported")
GENERIC_EXCEPTIONS: dict[str, frozenset[str]] = {
    "quantized": frozenset({"ARG_MAX", "EXPAND_DIMS", "MIRROR_PAD", "PAD", "PADV2", "QUANTIZE", "TRANSPOSE"}),
    "per_tensor": frozenset({"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "TRANSPOSE_CONV"}),
    "no_64bit": frozenset({"ARG_MAX"}),
    "zero_points": frozenset({"AVERAGE_POOL_2D", "RESIZE_BILINEAR", "RESIZE_NEAREST_NEIGHBOR",
                              "UNIDIRECTIONAL_SEQUENCE_LSTM"}),
    "no_32bit": frozenset({"ADD", "ARG_MAX", "BATCH_MATMUL", "EXPAND_DIMS", "FULLY_CONNECTED", "MIRROR_PAD", "MUL",
                           "NEG", "RESHAPE", "SQUEEZE", "SUB", "SUM", "TRANSPOSE"}),
}

# --------------------------------------------------------------------------- the operators

MAC_CHECKS = (("8-bit weights", e.weights_8bit), ("absolute weight sum per output channel <= 8323072", e.weight_sum),
              ("a constant INT32/INT64 bias along the channel axis, INT64 values < 2^40", e.bias))
POOL_STRIDE = ("stride > 3 only with dilation 1 and no padding", e.big_stride)
PARAMS = {"MEAN": (1,), "MIRROR_PAD": (1,), "PAD": (1,), "PADV2": (1,), "SLICE": (1, 2), "STRIDED_SLICE": (1, 2, 3),
          "TRANSPOSE": (1,)}

#: op -> its own constraints, (what it requires, check) in order; an op type not here runs on the CPU
OPS: dict[str, tuple[tuple[str, object], ...]] = {
    "ABS": (), "ADD": (), "EXP": (), "EXPAND_DIMS": (), "HARD_SWISH": (), "LEAKY_RELU": (), "LOGISTIC": (),
    "MUL": (), "NEG": (), "PACK": (), "PRELU": (), "QUANTIZE": (), "RELU": (), "RELU6": (), "RELU_0_TO_1": (),
    "RELU_N1_TO_1": (), "RESHAPE": (), "SQUARED_DIFFERENCE": (), "SQUEEZE": (), "SUB": (), "SUM": (), "TANH": (),
    "TILE": (), "UNPACK": (), "CONCATENATION": (), "REDUCE_MAX": (), "REDUCE_MIN": (),
    "ARG_MAX": (("the depth axis, IFM depth <= 127", e.argmax),),
    "AVERAGE_POOL_2D": (POOL_STRIDE, ("kernel product <= 65536 and height <= 256 (VALID), else width and height "
                                      "<= 8", e.avg_pool_kernel)),
    "MAX_POOL_2D": (POOL_STRIDE, ("kernel product <= 65536 and height <= 256", e.max_pool_kernel)),
    "BATCH_MATMUL": (("an INT8 IFM, OFM depth and reduced axis <= 65536", e.matmul),),
    "CONV_2D": (*MAC_CHECKS, POOL_STRIDE),
    "DEPTHWISE_CONV_2D": (*MAC_CHECKS, ("stride in 1..3", e.stride_1_3)),
    "FULLY_CONNECTED": (*MAC_CHECKS, ("weights shaped O,1,..,1,I", e.fc_weights_shape),
                        ("with weights computed at run time: an INT8 IFM, OFM depth and reduced axis <= 65536",
                         e.matmul)),
    "TRANSPOSE_CONV": (*MAC_CHECKS, ("OFM = IFM x stride (SAME) or IFM x stride + kernel - stride (VALID)",
                                     e.tconv_shape),
                       ("stride 1x1 or 2x2 (2x1 / 1x2 for a height / width of 1)", e.tconv_stride)),
    "ELU": (("IFM and OFM INT8", e.same_io_types(I8)), ("IFM and OFM shapes equal", e.same_io_shapes)),
    "GELU": (("IFM and OFM INT8 or UINT8", e.same_io_types(I8, U8)), ("IFM and OFM shapes equal", e.same_io_shapes)),
    "LOG": (("IFM and OFM INT8 or INT16", e.same_io_types(I8, e.I16)), ("IFM and OFM shapes equal", e.same_io_shapes)),
    "RSQRT": (("an INT8 or INT16 IFM", e.ifm_int8_or_int16),),
    "MAXIMUM": (("both inputs quantized as the output", e.minmax_quant),),
    "MINIMUM": (("both inputs quantized as the output", e.minmax_quant),),
    "MEAN": (("constant parameters", e.params_const(1)),
             ("batch 1; reduced elements <= 2^24 (INT8), 2^23 (UINT8), 2^16 (INT16); reduced axes <= 4096; depth "
              "reduced only if one of h, w, c is 1", e.mean)),
    "MIRROR_PAD": (("constant parameters", e.params_const(1)), ("INT32/INT64 paddings", e.pad_params_int)),
    "PAD": (("constant parameters", e.params_const(1)), ("INT32/INT64 paddings", e.pad_params_int)),
    "PADV2": (("constant parameters", e.params_const(1)), ("INT32/INT64 paddings", e.pad_params_int)),
    "RESIZE_BILINEAR": (("scale factor 2, 4 or 8 (2 with half_pixel_centers), equal in H and W unless a "
                         "dimension of 1 is not scaled", e.resize),),
    "RESIZE_NEAREST_NEIGHBOR": (("scale factor 2, 4 or 8, equal in H and W unless a dimension of 1 is not scaled",
                                 e.resize),),
    "REVERSE_V2": (("no axis to reverse (none supported)", e.reverse),),
    "SLICE": (("constant parameters", e.params_const(1, 2)),),
    "SOFTMAX": (("IFM width x height <= 65536", e.softmax),),
    "SPLIT": (("num_splits equal to the number of outputs", e.num_splits),),
    "SPLIT_V": (("num_splits equal to the number of outputs", e.num_splits),),
    "STRIDED_SLICE": (("constant parameters", e.params_const(1, 2, 3)),
                      ("non-negative strides, other than 1 only over H or W", e.strided_slice)),
    "TRANSPOSE": (("constant parameters", e.params_const(1)),
                  ("rank <= 8; INT32: rank <= 4 and NHWC/NWHC/NHCW within limits; INT8/INT16: H, W, C or the "
                   "product of any rank-2 axes <= 65536", e.transpose)),
    "UNIDIRECTIONAL_SEQUENCE_LSTM": (("no CIFG, peephole, projection or layer normalization", e.lstm),),
}


def _generic(op_type: str) -> list[Predicate]:
    return [check(text, fn) for name, (text, fn) in GENERIC.items()
            if op_type not in GENERIC_EXCEPTIONS.get(name, ())]


def _rule(op_type: str) -> Predicate:
    return rule(WHO, *_generic(op_type), *(check(text, fn) for text, fn in OPS[op_type]))


RULES: dict[str, Predicate] = {op: _rule(op) for op in OPS}

# --------------------------------------------------------------------------- whole-model refusals

def _hard_swish_8bit(op: Operator) -> str:
    t = op.inputs[0].dtype
    return "" if t in (I8, U8) else f"input 0 is {type_name(t)}, HARD_SWISH needs an 8-bit IFM"


def _reshape_quant(op: Operator) -> str:
    return "" if same_quantization(op.inputs[0], op.outputs[0]) else "input and output quantization differ"


def _reshape_elements(op: Operator) -> str:
    a, b = op.inputs[0].num_elements, op.outputs[0].num_elements
    return "" if a is None or b is None or a == b else \
        f"input and output numbers of elements differ ({a} vs {b}, as stored)"


def _binary_types(op: Operator) -> str:
    a, b = op.inputs[0].dtype, op.inputs[1].dtype
    return "" if a == b else f"inputs of types {type_name(a)} and {type_name(b)}, both input types must match"


def _const_weights(op: Operator) -> str:
    w = op.inputs[e.WEIGHTS[op.type]]
    return "" if is_const(w) else "weights computed at run time (Vela: 'could not run on NPU')"


def _const_param(i: int):
    def run(op: Operator) -> str:
        return "" if i < len(op.inputs) and is_const(op.inputs[i]) else f"input {i} computed at run time"
    return run


def _reverse_axes(op: Operator) -> str:
    a = op.inputs[1] if len(op.inputs) > 1 else None
    return "an empty axis tensor (Vela crashes: segmentation fault)" if a is not None and a.num_elements == 0 else ""


def _sign_bit(op: Operator) -> str:
    a = option(op, "fusedActivationFunction", ACT.NONE)
    return f"fused activation {act_name(a)}" if a == ACT.SIGN_BIT else ""


#: (op types, check, when) whose failure makes Vela 5.2 stop without compiling anything, all found by
#: compiling hand-built models: "parse" failures stop Vela whatever the op's placement would be (its
#: TFLite semantic checks, and inputs it crashes on); a "placed" failure only when the op would
#: otherwise go to the NPU ("Non-passthrough operation ... could not run on NPU")
SEMANTICS: tuple[tuple[tuple[str, ...], object, str], ...] = (
    (("HARD_SWISH",), _hard_swish_8bit, "parse"),
    (("RESHAPE", "SQUEEZE", "EXPAND_DIMS"), _reshape_quant, "parse"),
    (("RESHAPE", "SQUEEZE", "EXPAND_DIMS"), _reshape_elements, "parse"),
    (("ADD", "SUB", "MUL"), _binary_types, "parse"),
    (("PAD", "PADV2", "MIRROR_PAD", "MEAN"), _const_param(1), "parse"),
    (("REVERSE_V2",), _reverse_axes, "parse"),
    (("ADD", "SUB", "MUL", "CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "AVERAGE_POOL_2D", "MAX_POOL_2D",
      "CONCATENATION"), _sign_bit, "parse"),
    (("CONV_2D", "DEPTHWISE_CONV_2D", "TRANSPOSE_CONV"), _const_weights, "placed"),
)


def model_check(model: Model) -> str:
    """The first op on which Vela 5.2 stops compiling, said as the reason nothing runs on the NPU."""
    for si, sg in enumerate(model.subgraphs):
        for i, op in enumerate(sg.operators):
            for types, fn, when in SEMANTICS:
                if op.type not in types or (when == "placed" and not RULES[op.type](op)[0]):
                    continue
                if why := fn(op):
                    where = f"subgraph {si} " if si else ""
                    return f"Vela {VELA_VERSION} rejects the model: {op.type} ({where}op {i}): {why}"
    return ""


ETHOS_U = register_target(Target(
    name="ethos-u",
    title=f"the Ethos-U55/U65 NPU (Vela {VELA_VERSION})",
    runtime=RUNTIME,
    source=SOURCE,
    rules=RULES,
    unlisted="{op} is not supported on the Ethos-U55/U65 NPU by Vela " + VELA_VERSION + " (Unsupported opType)",
    model_check=model_check,
    notes=(
        f"accelerator {ACCELERATOR} (Vela's default); one table covers every Ethos-U55 and Ethos-U65 configuration",
        "a SAME-padded op that needs no padding counts as VALID (stride > 3 and the pooling kernel limits)",
        "SOFTMAX takes W x H = 65536 (the report says '< 65536'); MEAN takes a reduced axis of 4096 "
        "(the report: '< 4096'); both measured with Vela 5.2.0",
        "not enforced by Vela 5.2.0 although listed: positive quantization scales, zero point 0 for INT32 "
        "(both measured); INT32 tensors need no quantization parameters",
        "UNIDIRECTIONAL_SEQUENCE_LSTM follows the report only (not compiled with Vela here)",
    ),
))
