"""Small-but-real TFLite models built with the TensorFlow converter.

The builders here are used by tests and benchmarks. Every builder returns the
bytes of a ``.tflite`` flatbuffer; :func:`build` caches them on disk.

TensorFlow is imported lazily, so this module imports fine without it; building
a model without TensorFlow raises :class:`RuntimeError`.

Weights are random (no training) but drawn from fixed seeds, and BatchNorm
statistics are randomised so that the converter's folding is meaningful. The
same TensorFlow version produces the same bytes on every build.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

__all__ = [
    "BUILDERS",
    "MOBILENET_VARIANTS",
    "TRANSFORMER_VARIANTS",
    "ZOO_VERSION",
    "mobilenet_v2",
    "mobilenet_v3_small",
    "transformer_encoder_3x192",
    "build",
    "default_cache_dir",
    "mobilenet_tiny",
    "stateful_counter",
    "while_loop",
    "tiny_decoder",
    "tiny_mlp",
    "transformer_encoder",
    "transformer_encoder_tfkeras",
]

#: Bump whenever a builder changes what it produces; part of every cache file name.
ZOO_VERSION = "1"

_TF_MISSING = "building test models needs TensorFlow: pip install 'tflc[tf]'"
_SEED = 0

MOBILENET_VARIANTS = ("float32", "float16", "dynamic_int8", "int8", "int16x8")
TRANSFORMER_VARIANTS = ("float32", "float16")


# --------------------------------------------------------------------------- helpers


def _import_tf() -> Any:
    """Import TensorFlow, or raise a RuntimeError saying how to install it."""
    try:
        import tensorflow as tf
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise RuntimeError(_TF_MISSING) from exc
    return tf


def _seed_everything(tf: Any) -> None:
    """Reset Keras' global state and seed every RNG so builds are reproducible."""
    tf.keras.backend.clear_session()
    tf.keras.utils.set_random_seed(_SEED)


def _randomize_batchnorm(model: Any, calibration: np.ndarray, rng: np.random.Generator) -> None:
    """Give every BatchNormalization layer non-trivial, signal-preserving parameters.

    gamma/beta are drawn at random; the moving statistics are then set from one
    training-mode pass over ``calibration`` (so activations stay roughly
    normalised and the output depends on the input) and perturbed a little.
    Needs the BN layers to be built with ``momentum=0``.
    """
    tf = _import_tf()
    bns = [layer for layer in model.layers if isinstance(layer, tf.keras.layers.BatchNormalization)]
    for bn in bns:
        bn.gamma.assign(rng.uniform(0.5, 1.5, tuple(bn.gamma.shape)).astype(np.float32))
        bn.beta.assign(rng.normal(0.0, 0.1, tuple(bn.beta.shape)).astype(np.float32))
    model(calibration, training=True)  # momentum=0: moving stats := batch stats
    for bn in bns:
        std = np.sqrt(np.asarray(bn.moving_variance.numpy()))
        mean = np.asarray(bn.moving_mean.numpy()) + rng.normal(0.0, 0.1, std.shape) * std
        var = np.square(std) * rng.uniform(0.7, 1.4, std.shape)
        bn.moving_mean.assign(mean.astype(np.float32))
        bn.moving_variance.assign(var.astype(np.float32))


def _keras_concrete_function(model: Any, spec: Any) -> tuple[Any, Any]:
    """Trace ``model`` in inference mode for ``spec``; returns (concrete fn, trackable).

    The trackable is a ``tf.Module`` that tracks the model's underlying
    ``tf.Variable`` objects: Keras 3 variables wrap a ``tf.Variable`` that the
    converter does not see through the Keras model, and would otherwise be left
    as uninitialised VAR_HANDLE/READ_VARIABLE ops instead of frozen constants.
    """
    tf = _import_tf()
    holder = tf.Module(name=f"{model.name}_holder")
    holder.model_variables = [v if isinstance(v, tf.Variable) else v.value for v in model.variables]

    @tf.function(input_signature=[spec], autograph=False)
    def serve(x: Any) -> Any:
        return model(x, training=False)

    holder.serve = serve
    return serve.get_concrete_function(), holder


def _representative_images(
    shape: tuple[int, ...], count: int = 20
) -> Callable[[], Iterator[list[np.ndarray]]]:
    """A representative dataset of ``count`` fixed random samples in [-1, 1]."""
    rng = np.random.default_rng(_SEED)
    samples = [rng.uniform(-1.0, 1.0, shape).astype(np.float32) for _ in range(count)]

    def dataset() -> Iterator[list[np.ndarray]]:
        for sample in samples:
            yield [sample]

    return dataset


def _convert(
    traced: tuple[Any, Any],
    variant: str,
    representative: Callable[[], Iterator[list[np.ndarray]]] | None = None,
) -> bytes:
    """Convert a (concrete function, trackable) pair with the quantization ``variant``."""
    tf = _import_tf()
    concrete_fn, trackable = traced
    converter = tf.lite.TFLiteConverter.from_concrete_functions([concrete_fn], trackable)
    if variant == "float32":
        pass
    elif variant == "float16":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    elif variant == "dynamic_int8":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    elif variant in ("int8", "int16x8"):
        if representative is None:
            raise ValueError(f"variant {variant!r} needs a representative dataset")
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = representative
        if variant == "int8":
            converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
            converter.inference_input_type = tf.int8
            converter.inference_output_type = tf.int8
        else:
            converter.target_spec.supported_ops = [
                tf.lite.OpsSet.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8
            ]
            converter.inference_input_type = tf.int16
            converter.inference_output_type = tf.int16
    else:
        raise ValueError(f"unknown variant {variant!r}")
    return bytes(converter.convert())


# --------------------------------------------------------------------------- models


def mobilenet_tiny(variant: str = "float32") -> bytes:
    """MobileNetV2-style CNN on a fixed 1x64x64x3 input, 10-way softmax output.

    Conv2D+BatchNorm+ReLU6 stem, inverted-residual blocks (1x1 expand,
    3x3 depthwise, 1x1 project, residual Add), GlobalAveragePooling and a Dense
    softmax head; ~75k parameters (~300 KB as float32). ``variant`` is one of
    :data:`MOBILENET_VARIANTS`.
    """
    if variant not in MOBILENET_VARIANTS:
        raise ValueError(f"unknown mobilenet_tiny variant {variant!r}; expected one of {MOBILENET_VARIANTS}")
    tf = _import_tf()
    _seed_everything(tf)
    layers = tf.keras.layers

    def conv_bn(x: Any, filters: int, kernel: int, stride: int, name: str, act: bool = True) -> Any:
        x = layers.Conv2D(filters, kernel, strides=stride, padding="same", use_bias=False, name=f"{name}_conv")(x)
        x = layers.BatchNormalization(momentum=0.0, name=f"{name}_bn")(x)
        return layers.ReLU(6.0, name=f"{name}_relu6")(x) if act else x

    def inverted_residual(x: Any, out: int, expand: int, stride: int, name: str) -> Any:
        cin = int(x.shape[-1])
        h = x
        if expand != 1:
            h = conv_bn(h, cin * expand, 1, 1, f"{name}_expand")
        h = layers.DepthwiseConv2D(3, strides=stride, padding="same", use_bias=False, name=f"{name}_dw")(h)
        h = layers.BatchNormalization(momentum=0.0, name=f"{name}_dw_bn")(h)
        h = layers.ReLU(6.0, name=f"{name}_dw_relu6")(h)
        h = conv_bn(h, out, 1, 1, f"{name}_project", act=False)
        if stride == 1 and cin == out:
            h = layers.Add(name=f"{name}_add")([x, h])
        return h

    inputs = tf.keras.Input(shape=(64, 64, 3), name="image")
    x = conv_bn(inputs, 16, 3, 2, "stem")  # 32x32x16
    x = inverted_residual(x, 16, 1, 1, "block1")
    x = inverted_residual(x, 24, 4, 2, "block2")  # 16x16
    x = inverted_residual(x, 24, 4, 1, "block3")
    x = inverted_residual(x, 40, 4, 2, "block4")  # 8x8
    x = inverted_residual(x, 40, 4, 1, "block5")
    x = inverted_residual(x, 48, 4, 2, "block6")  # 4x4
    x = inverted_residual(x, 48, 4, 1, "block7")
    x = conv_bn(x, 128, 1, 1, "head")
    x = layers.GlobalAveragePooling2D(name="pool")(x)
    outputs = layers.Dense(10, activation="softmax", name="logits")(x)
    model = tf.keras.Model(inputs, outputs, name="mobilenet_tiny")
    rng = np.random.default_rng(_SEED)
    _randomize_batchnorm(model, rng.uniform(-1.0, 1.0, (16, 64, 64, 3)).astype(np.float32), rng)

    spec = tf.TensorSpec([1, 64, 64, 3], tf.float32, name="image")
    representative = _representative_images((1, 64, 64, 3))
    return _convert(_keras_concrete_function(model, spec), variant, representative)


def transformer_encoder(variant: str = "float32", dynamic_batch: bool = True) -> bytes:
    """Two-layer Keras transformer encoder over int32 token ids ``[batch, 32]``.

    Token + learned position embeddings (vocab 500, dim 64), then two blocks of
    4-head MultiHeadAttention + residual LayerNorm + GELU FFN (64->128->64);
    output is the mean-pooled float32 embedding ``[batch, 64]``. With
    ``dynamic_batch`` the input's shape_signature is ``[-1, 32]`` and the graph
    carries the SHAPE/STRIDED_SLICE/PACK/... ops that implies. ``variant`` is one
    of :data:`TRANSFORMER_VARIANTS`.
    """
    if variant not in TRANSFORMER_VARIANTS:
        raise ValueError(
            f"unknown transformer_encoder variant {variant!r}; expected one of {TRANSFORMER_VARIANTS}"
        )
    tf = _import_tf()
    _seed_everything(tf)
    layers = tf.keras.layers
    seq_len, vocab, dim, heads, ffn = 32, 500, 64, 4, 128

    class PositionEmbedding(layers.Layer):  # type: ignore[misc, name-defined]
        """Adds a learned ``[seq_len, dim]`` position table to its input."""

        def build(self, input_shape: Any) -> None:
            self.table = self.add_weight(
                name="table", shape=(int(input_shape[-2]), int(input_shape[-1])), initializer="random_normal"
            )

        def call(self, x: Any) -> Any:
            return x + self.table

    batch = None if dynamic_batch else 1
    ids = tf.keras.Input(shape=(seq_len,), batch_size=batch, dtype="int32", name="token_ids")
    x = layers.Embedding(vocab, dim, name="token_embedding")(ids)
    x = PositionEmbedding(name="position_embedding")(x)
    for i in range(2):
        attn = layers.MultiHeadAttention(heads, dim // heads, name=f"layer{i}_mha")(x, x)
        x = layers.LayerNormalization(epsilon=1e-6, name=f"layer{i}_ln1")(layers.Add(name=f"layer{i}_add1")([x, attn]))
        h = layers.Dense(ffn, activation="gelu", name=f"layer{i}_ffn1")(x)
        h = layers.Dense(dim, name=f"layer{i}_ffn2")(h)
        x = layers.LayerNormalization(epsilon=1e-6, name=f"layer{i}_ln2")(layers.Add(name=f"layer{i}_add2")([x, h]))
    outputs = layers.GlobalAveragePooling1D(name="pool")(x)
    model = tf.keras.Model(ids, outputs, name="transformer_encoder")

    spec = tf.TensorSpec([batch, seq_len], tf.int32, name="token_ids")
    return _convert(_keras_concrete_function(model, spec), variant)


def transformer_encoder_tfkeras(variant: str = "float32") -> bytes:
    """The two-layer encoder of :func:`transformer_encoder`, built with legacy Keras 2 (``tf_keras``).

    Token embedding (vocab 500, dim 64) plus a position ``Embedding(32, 64)`` of ``range(32)``,
    then two blocks of 4-head MultiHeadAttention + residual LayerNormalization + GELU FFN
    (64->128->64) + residual LayerNormalization; mean-pooled float32 output ``[batch, 64]``. The
    input ``token_ids`` is int32 ``[batch, 32]`` with a dynamic batch. Converted with
    ``TFLiteConverter.from_keras_model``, which lowers Keras 2's LayerNormalization (default
    epsilon 1e-3: Keras 2 takes its fused path only for epsilon > 1.001e-5) through a fused batch
    norm (RESHAPE, TRANSPOSE, mean/variance, TRANSPOSE back, RESHAPE back) and its
    attention einsums to BATCH_MATMUL with TRANSPOSEs: the layout-heavy graph real Keras 2
    models have. Needs ``tf_keras`` (``pip install tf_keras``). ``variant`` is one of
    :data:`TRANSFORMER_VARIANTS`.
    """
    if variant not in TRANSFORMER_VARIANTS:
        raise ValueError(
            f"unknown transformer_encoder_tfkeras variant {variant!r}; expected one of {TRANSFORMER_VARIANTS}"
        )
    tf = _import_tf()
    try:
        import tf_keras as keras
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise RuntimeError("building the Keras 2 transformer needs tf_keras: pip install tf_keras") from exc
    keras.backend.clear_session()
    keras.utils.set_random_seed(_SEED)
    layers = keras.layers
    seq_len, vocab, dim, heads, ffn = 32, 500, 64, 4, 128

    ids = keras.Input(shape=(seq_len,), dtype="int32", name="token_ids")
    x = layers.Embedding(vocab, dim, name="token_embedding")(ids)
    x = x + layers.Embedding(seq_len, dim, name="position_embedding")(tf.range(seq_len))
    for i in range(2):
        attn = layers.MultiHeadAttention(heads, dim // heads, name=f"layer{i}_mha")(x, x)
        x = layers.LayerNormalization(name=f"layer{i}_ln1")(x + attn)
        h = layers.Dense(ffn, activation="gelu", name=f"layer{i}_ffn1")(x)
        h = layers.Dense(dim, name=f"layer{i}_ffn2")(h)
        x = layers.LayerNormalization(name=f"layer{i}_ln2")(x + h)
    outputs = layers.GlobalAveragePooling1D(name="pool")(x)
    model = keras.Model(ids, outputs, name="transformer_encoder_tfkeras")

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    if variant == "float16":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    return bytes(converter.convert())


MOBILENETV3_VARIANTS = ("float32", "float16", "dynamic_int8", "int8")
ENCODER_VARIANTS = ("float32", "float16", "dynamic_int8", "int8")


def mobilenet_v3_small(variant: str = "float32") -> bytes:
    """Keras' MobileNetV3-Small (random weights, BatchNorm statistics randomised) on a fixed
    1x160x160x3 input: HARD_SWISH and squeeze-excite everywhere, the model whose converter int8
    runs slower than float because XNNPACK leaves int8 HARD_SWISH out. ``variant`` is one of
    :data:`MOBILENETV3_VARIANTS`."""
    if variant not in MOBILENETV3_VARIANTS:
        raise ValueError(f"unknown mobilenet_v3_small variant {variant!r}; expected one of {MOBILENETV3_VARIANTS}")
    tf = _import_tf()
    _seed_everything(tf)
    model = tf.keras.applications.MobileNetV3Small(input_shape=(160, 160, 3), weights=None, classes=1000,
                                                   include_preprocessing=False)
    bns = [layer for layer in model.layers if isinstance(layer, tf.keras.layers.BatchNormalization)]
    for bn in bns:
        bn.momentum = 0.0
    rng = np.random.default_rng(_SEED)
    _randomize_batchnorm(model, rng.uniform(-1.0, 1.0, (8, 160, 160, 3)).astype(np.float32), rng)
    spec = tf.TensorSpec([1, 160, 160, 3], tf.float32, name="image")
    return _convert(_keras_concrete_function(model, spec), variant, _representative_images((1, 160, 160, 3), 16))


MOBILENETV2_VARIANTS = ("float32", "int8")


def mobilenet_v2(variant: str = "float32", size: int = 224, alpha: float = 1.0) -> bytes:
    """Keras' MobileNetV2 (random weights, BatchNorm statistics randomised) on a fixed
    ``1 x size x size x 3`` input in [-1, 1], 1000-way softmax head: the model the Ethos-U
    int8 flow is judged on (Vela must put every op on the NPU). ``variant`` is one of
    :data:`MOBILENETV2_VARIANTS` (``int8``: the converter's full-integer model, int8 in and out).
    :data:`BUILDERS` has the small one (alpha 0.35, 96x96: ``mobilenet_v2_035_96``); the full-size one
    (``mobilenet_v2()``: alpha 1.0, 224x224, 13 MB float) builds in about 15 s."""
    if variant not in MOBILENETV2_VARIANTS:
        raise ValueError(f"unknown mobilenet_v2 variant {variant!r}; expected one of {MOBILENETV2_VARIANTS}")
    tf = _import_tf()
    _seed_everything(tf)
    model = tf.keras.applications.MobileNetV2(input_shape=(size, size, 3), alpha=alpha, weights=None, classes=1000,
                                               name=f"mobilenet_v2_{int(alpha * 100):03d}_{size}")
    for layer in model.layers:
        if isinstance(layer, tf.keras.layers.BatchNormalization):
            layer.momentum = 0.0
    rng = np.random.default_rng(_SEED)
    _randomize_batchnorm(model, rng.uniform(-1.0, 1.0, (8, size, size, 3)).astype(np.float32), rng)
    spec = tf.TensorSpec([1, size, size, 3], tf.float32, name="image")
    return _convert(_keras_concrete_function(model, spec), variant, _representative_images((1, size, size, 3), 16))


def transformer_encoder_3x192(variant: str = "float32") -> bytes:
    """Three Keras transformer blocks of width 192 (3 heads of 64, GELU FFN 192->768->192) over a
    static ``[1, 64, 192]`` float32 input: the encoder whose converter int8 runs 1.81x slower than
    float (XNNPACK leaves the int8 BATCH_MATMULs, SOFTMAX, GELU and layer-norm arithmetic out).
    ``variant`` is one of :data:`ENCODER_VARIANTS`."""
    if variant not in ENCODER_VARIANTS:
        raise ValueError(f"unknown transformer_encoder_3x192 variant {variant!r}; expected one of {ENCODER_VARIANTS}")
    tf = _import_tf()
    _seed_everything(tf)
    layers = tf.keras.layers
    seq_len, dim, heads, ffn = 64, 192, 3, 768
    inputs = tf.keras.Input(shape=(seq_len, dim), batch_size=1, name="embeddings")
    x = inputs
    for i in range(3):
        attn = layers.MultiHeadAttention(heads, dim // heads, name=f"layer{i}_mha")(x, x)
        x = layers.LayerNormalization(epsilon=1e-6, name=f"layer{i}_ln1")(layers.Add(name=f"layer{i}_add1")([x, attn]))
        h = layers.Dense(ffn, activation="gelu", name=f"layer{i}_ffn1")(x)
        h = layers.Dense(dim, name=f"layer{i}_ffn2")(h)
        x = layers.LayerNormalization(epsilon=1e-6, name=f"layer{i}_ln2")(layers.Add(name=f"layer{i}_add2")([x, h]))
    model = tf.keras.Model(inputs, x, name="transformer_encoder_3x192")
    spec = tf.TensorSpec([1, seq_len, dim], tf.float32, name="embeddings")
    return _convert(_keras_concrete_function(model, spec), variant, _representative_images((1, seq_len, dim), 16))


def tiny_mlp() -> bytes:
    """Three Dense layers (16->32->32->4, ReLU, softmax) on a 1x16 input; ~6 KB."""
    tf = _import_tf()
    _seed_everything(tf)
    layers = tf.keras.layers
    inputs = tf.keras.Input(shape=(16,), batch_size=1, name="features")
    x = layers.Dense(32, activation="relu", name="dense1")(inputs)
    x = layers.Dense(32, activation="relu", name="dense2")(x)
    outputs = layers.Dense(4, activation="softmax", name="probs")(x)
    model = tf.keras.Model(inputs, outputs, name="tiny_mlp")
    spec = tf.TensorSpec([1, 16], tf.float32, name="features")
    return _convert(_keras_concrete_function(model, spec), "float32")


def stateful_counter() -> bytes:
    """A stateful model with resource variables: 2 subgraphs, CALL_ONCE init.

    Input ``x`` float32 ``[1, 8]``. Each invocation does
    ``state = 0.5 * state + relu(x @ W + b)`` and ``count += 1`` on two
    variables, and returns ``{"state": state, "count": count}``; the outputs
    therefore depend on how many times the model has been invoked. The
    converted model has VAR_HANDLE / READ_VARIABLE / ASSIGN_VARIABLE ops in the
    main subgraph and a CALL_ONCE of a second, initializer subgraph.
    """
    tf = _import_tf()
    _seed_everything(tf)
    rng = np.random.default_rng(_SEED)
    weight = rng.normal(0.0, 0.5, (8, 8)).astype(np.float32)
    bias = rng.normal(0.0, 0.1, (8,)).astype(np.float32)

    class Counter(tf.Module):  # type: ignore[misc, name-defined]
        """Leaky accumulator plus an invocation counter."""

        def __init__(self) -> None:
            super().__init__(name="stateful_counter")
            self.state = tf.Variable(tf.zeros([1, 8], tf.float32), name="state")
            self.count = tf.Variable(tf.zeros([1], tf.float32), name="count")
            self.weight = tf.constant(weight)
            self.bias = tf.constant(bias)

        @tf.function(input_signature=[tf.TensorSpec([1, 8], tf.float32, name="x")], autograph=False)
        def __call__(self, x: Any) -> dict[str, Any]:
            state = 0.5 * self.state + tf.nn.relu(tf.matmul(x, self.weight) + self.bias)
            self.state.assign(state)
            count = self.count + 1.0
            self.count.assign(count)
            return {"state": state, "count": count}

    module = Counter()
    return _convert((module.__call__.get_concrete_function(), module), "float32")


def tiny_decoder() -> bytes:
    """An encoder-decoder on a 1x16x16x3 image: Conv2D (stride 2) -> ReLU -> Conv2DTranspose (the
    converter's TRANSPOSE_CONV, stride 2, SAME, with bias) -> ReLU -> Conv2D 1x1 -> 1x16x16x2."""
    tf = _import_tf()
    _seed_everything(tf)
    layers = tf.keras.layers
    inputs = tf.keras.Input(shape=(16, 16, 3), batch_size=1, name="image")
    x = layers.Conv2D(8, 3, strides=2, padding="same", activation="relu", name="down")(inputs)
    x = layers.Conv2DTranspose(6, 3, strides=2, padding="same", activation="relu", name="up")(x)
    outputs = layers.Conv2D(2, 1, name="head")(x)
    model = tf.keras.Model(inputs, outputs, name="tiny_decoder")
    rng = np.random.default_rng(_SEED)
    for name in ("down", "up", "head"):      # zero biases would be dropped by the converter
        bias = model.get_layer(name).bias
        bias.assign(rng.normal(0.0, 0.1, tuple(bias.shape)).astype(np.float32))
    spec = tf.TensorSpec([1, 16, 16, 3], tf.float32, name="image")
    return _convert(_keras_concrete_function(model, spec), "float32")


def while_loop() -> bytes:
    """Control flow: ``y = 0.5 * body^3(x)`` with ``body(x) = relu(2x - 1)`` run by a WHILE op, so
    the model has three subgraphs (main, the loop's condition and its body) with float activations
    in the body. Input ``x`` float32 ``[1, 4]``."""
    tf = _import_tf()
    _seed_everything(tf)

    @tf.function(input_signature=[tf.TensorSpec([1, 4], tf.float32, name="x")], autograph=False)
    def fn(x: Any) -> Any:
        _, y = tf.while_loop(lambda i, v: i < 3, lambda i, v: (i + 1, tf.nn.relu(v * 2.0 - 1.0)),
                             [tf.constant(0), x])
        return y * 0.5
    return _convert((fn.get_concrete_function(), fn), "float32")


# --------------------------------------------------------------------------- registry and cache


def _mobilenet(variant: str) -> Callable[[], bytes]:
    return lambda: mobilenet_tiny(variant)


def _transformer(variant: str, dynamic_batch: bool = True) -> Callable[[], bytes]:
    return lambda: transformer_encoder(variant, dynamic_batch=dynamic_batch)


def _transformer_tfkeras(variant: str) -> Callable[[], bytes]:
    return lambda: transformer_encoder_tfkeras(variant)


#: Every model + variant, name -> zero-argument builder returning .tflite bytes.
BUILDERS: dict[str, Callable[[], bytes]] = {
    "mobilenet_tiny": _mobilenet("float32"),
    "mobilenet_tiny_fp16": _mobilenet("float16"),
    "mobilenet_tiny_dynamic_int8": _mobilenet("dynamic_int8"),
    "mobilenet_tiny_int8": _mobilenet("int8"),
    "mobilenet_tiny_int16x8": _mobilenet("int16x8"),
    "transformer_encoder": _transformer("float32"),
    "transformer_encoder_fp16": _transformer("float16"),
    "transformer_encoder_static": _transformer("float32", dynamic_batch=False),
    "transformer_encoder_tfkeras": _transformer_tfkeras("float32"),
    "transformer_encoder_tfkeras_fp16": _transformer_tfkeras("float16"),
    "tiny_mlp": tiny_mlp,
    "stateful_counter": stateful_counter,
    "while_loop": while_loop,
    "tiny_decoder": tiny_decoder,
    **{f"mobilenet_v3_small{'' if v == 'float32' else '_' + v.replace('float16', 'fp16')}":
       (lambda v=v: mobilenet_v3_small(v)) for v in MOBILENETV3_VARIANTS},
    "mobilenet_v2_035_96": lambda: mobilenet_v2("float32", size=96, alpha=0.35),
    "mobilenet_v2_035_96_int8": lambda: mobilenet_v2("int8", size=96, alpha=0.35),
    **{f"transformer_encoder_3x192{'' if v == 'float32' else '_' + v.replace('float16', 'fp16')}":
       (lambda v=v: transformer_encoder_3x192(v)) for v in ENCODER_VARIANTS},
}


def default_cache_dir() -> Path:
    """``$TFLC_MODEL_CACHE`` if set, else ``~/.cache/tflc/models``."""
    env = os.environ.get("TFLC_MODEL_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "tflc" / "models"


def _tf_version() -> str | None:
    """The installed TensorFlow version without importing it, or None if absent."""
    if importlib.util.find_spec("tensorflow") is None:
        return None
    for dist in ("tensorflow", "tensorflow-cpu", "tf-nightly", "tensorflow-macos", "tensorflow-intel"):
        try:
            return importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            continue
    return str(_import_tf().__version__)


def _cache_name(name: str, tf_version: str) -> str:
    return f"{name}-zoo{ZOO_VERSION}-tf{tf_version}.tflite"


def build(name: str, cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """Build model ``name`` (a :data:`BUILDERS` key) once and return its cached path.

    The file name carries :data:`ZOO_VERSION` and the TensorFlow version, so a
    change of either rebuilds. Files are written atomically (temp file +
    ``os.replace``), so concurrent builders never see a partial file. Without
    TensorFlow, an existing cache entry of the same ZOO_VERSION (any TF version)
    is returned; if there is none, RuntimeError is raised.
    """
    if name not in BUILDERS:
        raise KeyError(f"unknown model {name!r}; known: {', '.join(sorted(BUILDERS))}")
    directory = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    tf_version = _tf_version()
    if tf_version is None:
        cached = sorted(directory.glob(_cache_name(name, "*")), key=lambda p: p.stat().st_mtime)
        if cached:
            return cached[-1]
        raise RuntimeError(_TF_MISSING)
    path = directory / _cache_name(name, tf_version)
    if path.is_file():
        return path
    data = BUILDERS[name]()
    _write_atomic(path, data)
    return path


def _write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (creating the folder)."""
    from ..paths import atomic_writer
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_writer(path) as f:
        f.write(data)
