"""``qat``: quantization-aware training of a Keras model, then the tflc pipeline on its int8 model.

Use it when post-training int8 quantization (``tflc optimize --quantize int8``) loses too much
accuracy: the model is fine-tuned with fake quantization in the loop (tensorflow-model-optimization,
Keras 2 through ``tf_keras``), so its weights learn to live on the int8 grid, then converted by
the TensorFlow Lite converter with the ranges it learned, and run through tflc's pipeline (checked
in LiteRT, written atomically, never over an input).

Without labels (``y=None``) the model is distilled: the quantized model learns to reproduce the float
model's own outputs on ``x``, so any representative inputs will do. The activation ranges start
from the float model's min/max on ``x`` (tfmot starts them at [-6, 6] and moves them slowly), so
even a short fine-tuning gets tight ranges, and ``epochs=0`` is post-training quantization
through the same path.

Keras ``PReLU`` has no entry in tfmot's default registry (``quantize_model`` refuses it); here it is
annotated with :class:`PReLUQuantizeConfig`: its output is fake-quantized (per tensor, as the
other activations) and its alpha is rounded per tensor onto the symmetric int8 grid the converter
gives PRELU's alpha, written as plain ops with a straight-through gradient. (A tfmot FakeQuant on
alpha would stop the converter from fusing the layer's ops into PRELU; it would stay float between
a DEQUANTIZE and a QUANTIZE.)

TensorFlow is an optional extra (``pip install 'tflc[tf]'``): it is imported only when ``qat`` runs.
"""
from __future__ import annotations

import contextlib
import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np

from .errors import ModelFormatError, TflcError, UnsupportedModelError, UsageError
from .metrics import diff_output
from .paths import atomic_writer, check_output_path

IO_TYPES = ("float", "int8")
#: held-out samples used for the SQNR (and the pipeline's check) at most
MAX_HELD_OUT = 256


class QatUnavailable(TflcError):
    """TensorFlow, tf-keras or tensorflow-model-optimization is not installed."""


@dataclass
class QatResult:
    output: str | None                 # the written model (None: ``model`` holds its bytes)
    io: str                            # "int8" or "float" inputs and outputs
    epochs: int
    loss: list[float]                  # training loss per epoch
    distilled: bool                    # trained on the float model's outputs (no labels given)
    train_samples: int
    held_out_samples: int
    size_converted: int                # bytes, as the TensorFlow Lite converter wrote it
    size_output: int                   # bytes, after tflc's pipeline
    #: per output: SQNR (dB) of the written model against the float Keras model on held-out samples
    sqnr_db: dict[str, float]
    prelu_layers: list[str]            # Keras PReLU layers quantized with PReLUQuantizeConfig
    #: ops of the written model that compute in float (e.g. {"LOGISTIC": 1}); empty: all integer
    float_ops: dict[str, int]
    optimize: dict | None              # tflc's pipeline result (OptimizeResult.to_json()); None: not run
    seconds: float
    notes: list[str] = field(default_factory=list)
    model: bytes | None = field(default=None, repr=False)

    def to_json(self) -> dict:
        d = {k: getattr(self, k) for k in self.__dataclass_fields__ if k != "model"}
        d["sqnr_db"] = {k: (None if not np.isfinite(v) else round(float(v), 2)) for k, v in self.sqnr_db.items()}
        d["loss"] = [float(v) for v in self.loss]
        d["seconds"] = round(self.seconds, 3)
        return d


def _import_tf() -> tuple[Any, Any, Any]:
    """tensorflow, tf_keras and tfmot, or one clear error line."""
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")   # tf.keras is Keras 2, which tfmot needs
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        import tensorflow as tf
        import tf_keras
        import tensorflow_model_optimization as tfmot
    except ImportError as e:
        missing = getattr(e, "name", None) or str(e)
        raise QatUnavailable(f"quantization-aware training needs TensorFlow, tf-keras and "
                             f"tensorflow-model-optimization (missing: {missing}); pip install 'tflc[tf]'") from None
    return tf, tf_keras, tfmot


def _prelu_config_classes(tf: Any, tfmot: Any) -> tuple[type, type]:
    """PReLUQuantizeConfig and its alpha quantizer (built on first use: they subclass tfmot's)."""
    global PReLUQuantizeConfig, PReLUAlphaQuantizer
    if PReLUQuantizeConfig is not None:
        return PReLUQuantizeConfig, PReLUAlphaQuantizer
    q = tfmot.quantization.keras

    class _Alpha(q.quantizers.Quantizer):
        """alpha rounded per tensor to the symmetric int8 grid (scale max|alpha|/127, what the
        converter gives PRELU's alpha), straight-through gradient; plain ops, so the converter folds
        them into the constant and still fuses PRELU."""

        def build(self, tensor_shape, name, layer):
            return {}

        def __call__(self, inputs, training, weights, **kwargs):
            scale = tf.maximum(tf.reduce_max(tf.abs(inputs)), 1e-12) / 127.0
            return inputs + tf.stop_gradient(tf.round(inputs / scale) * scale - inputs)

        def get_config(self):
            return {}

    class _Config(q.QuantizeConfig):
        """Keras PReLU: alpha per tensor (int8, symmetric) and the output activation (int8, per tensor)."""

        def get_weights_and_quantizers(self, layer):
            return [(layer.alpha, _Alpha())]

        def get_activations_and_quantizers(self, layer):
            return []

        def set_quantize_weights(self, layer, quantize_weights):
            layer.alpha = quantize_weights[0]

        def set_quantize_activations(self, layer, quantize_activations):
            pass

        def get_output_quantizers(self, layer):
            return [q.quantizers.MovingAverageQuantizer(num_bits=8, per_axis=False, symmetric=False,
                                                        narrow_range=False)]

        def get_config(self):
            return {}

    _Alpha.__name__ = _Alpha.__qualname__ = "PReLUAlphaQuantizer"
    _Config.__name__ = _Config.__qualname__ = "PReLUQuantizeConfig"
    PReLUQuantizeConfig, PReLUAlphaQuantizer = _Config, _Alpha
    return _Config, _Alpha


PReLUQuantizeConfig: Any = None   # set by _prelu_config_classes (needs tfmot)
PReLUAlphaQuantizer: Any = None


def quantize_model(model: Any, x: Any = None) -> tuple[Any, list[str]]:
    """tfmot's ``quantize_model`` for ``model`` (a tf_keras Sequential or functional model), with
    Keras PReLU layers annotated with PReLUQuantizeConfig. Returns the QAT model and the names of
    the PReLU layers.

    ``x`` (samples, as for ``qat``; at most 256 are used): the activation ranges start from the
    float model's min and max on them instead of tfmot's [-6, 6], which its moving averages (decay
    0.999) leave only slowly: a short fine-tuning would keep ranges far too wide."""
    tf, keras, tfmot = _import_tf()
    q = tfmot.quantization.keras
    config, alpha = _prelu_config_classes(tf, tfmot)
    prelus: list[str] = []

    def annotate(layer):
        if isinstance(layer, keras.layers.PReLU):
            prelus.append(layer.name)
            return q.quantize_annotate_layer(layer, config())
        return layer

    annotated = keras.models.clone_model(model, clone_function=annotate) if any(
        isinstance(layer, keras.layers.PReLU) for layer in model.layers) else model
    with q.quantize_scope({"PReLUQuantizeConfig": config, "PReLUAlphaQuantizer": alpha}):
        try:
            qat_model = q.quantize_model(annotated)
        except (RuntimeError, ValueError) as e:          # a layer tfmot cannot quantize, a nested model...
            raise UsageError(f"tensorflow-model-optimization cannot quantize this model: "
                             f"{str(e).splitlines()[0] if str(e) else type(e).__name__}") from None
    if x is not None:
        _init_ranges(qat_model, model, _as_list(x), keras)
    return qat_model, prelus


#: the range variables of tfmot's activation quantizers (QuantizeWrapperV2) and input quantizers (QuantizeLayer)
_RANGE_VARS = (("post_activation_min", "post_activation_max"), ("output_min", "output_max"))


def _init_ranges(qat_model: Any, float_model: Any, xs: list[np.ndarray], keras: Any) -> None:
    """Set the QAT model's activation ranges to the float model's min/max on ``xs`` (see
    ``quantize_model``): wrapper ``quant_<name>`` quantizes the output of float layer ``<name>``;
    a QuantizeLayer, a model input."""
    xs = [a[:MAX_HELD_OUT] for a in xs]
    by_name = {layer.name: layer for layer in float_model.layers}
    pairs: list[tuple[Any, Any, Any]] = []           # (float tensor, min variable, max variable)
    inputs: list[tuple[int, Any, Any]] = []          # (input index, min variable, max variable)
    for layer in qat_model.layers:
        found = {w.name.split("/")[-1].split(":")[0]: w for w in layer.weights}
        if type(layer).__name__ == "QuantizeLayer":
            mins = [w for k, w in found.items() if k.endswith("_min")]
            maxs = [w for k, w in found.items() if k.endswith("_max")]
            idx = [i for i, t in enumerate(qat_model.inputs) if t is layer.input]
            if len(mins) == 1 and len(maxs) == 1 and (idx or len(xs) == 1):
                inputs.append((idx[0] if idx else 0, mins[0], maxs[0]))
            continue
        src = by_name.get(layer.name.removeprefix("quant_"))
        if src is None:
            continue
        try:
            out = src.get_output_at(0)      # node 0: the float model's (tfmot's clones reuse the layer)
        except (AttributeError, ValueError, RuntimeError):
            continue
        for lo, hi in _RANGE_VARS:
            if lo in found and hi in found and not isinstance(out, (list, tuple)):
                pairs.append((out, found[lo], found[hi]))
    if pairs:
        probe = keras.Model(float_model.inputs, [t for t, _, _ in pairs])
        outs = probe.predict(_unlist(xs), batch_size=32, verbose=0)
        outs = outs if isinstance(outs, list) else [outs]
        for (_, vmin, vmax), o in zip(pairs, outs):
            vmin.assign(min(0.0, float(np.min(o))))
            vmax.assign(max(0.0, float(np.max(o))))
    for i, vmin, vmax in inputs:
        if xs[i].dtype.kind == "f":
            vmin.assign(min(0.0, float(xs[i].min())))
            vmax.assign(max(0.0, float(xs[i].max())))


def _keras_version(path: Path) -> str | None:
    """The Keras version a .keras archive was saved by (its metadata.json), or None."""
    import json
    import zipfile
    try:
        with zipfile.ZipFile(path) as z:
            return str(json.loads(z.read("metadata.json")).get("keras_version") or "") or None
    except (OSError, KeyError, ValueError, zipfile.BadZipFile):
        return None


def _load_keras(model: Any, keras: Any) -> Any:
    if isinstance(model, (str, os.PathLike)):
        p = Path(model)
        if not p.exists():
            raise UsageError(f"{p}: no such file")
        saved_by = _keras_version(p)
        if saved_by and not saved_by.startswith("2."):
            raise UsageError(f"{p}: saved by Keras {saved_by}; tensorflow-model-optimization needs a Keras 2 "
                             "model: build and save it with tf_keras (import tf_keras as keras)")
        try:
            model = keras.models.load_model(p)
        except Exception as e:
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise ModelFormatError(f"{p}: cannot load it as a Keras 2 (tf_keras) model, .keras or .h5 "
                                   f"({first[:200]})") from None
    if not isinstance(model, keras.Model):
        raise UsageError(f"expected a tf_keras model (tfmot needs Keras 2: build or load it with tf_keras), "
                         f"got {type(model).__module__}.{type(model).__name__}")
    if not (isinstance(model, keras.Sequential) or getattr(model, "_is_graph_network", False)):
        raise UsageError("quantization-aware training needs a Sequential or functional Keras model, "
                         "not a subclassed one")
    return model


def _as_list(a: Any) -> list[np.ndarray]:
    return [np.asarray(v) for v in a] if isinstance(a, (list, tuple)) else [np.asarray(a)]


def _take(arrays: list[np.ndarray], sl: slice) -> list[np.ndarray]:
    return [a[sl] for a in arrays]


def _unlist(arrays: list[np.ndarray]) -> Any:
    return arrays[0] if len(arrays) == 1 else arrays


def _quantize_input(x: np.ndarray, d: dict) -> np.ndarray:
    scale, zero = d["quantization"]
    if d["dtype"] == np.float32 or not scale:
        return x.astype(d["dtype"])
    info = np.iinfo(d["dtype"])
    return np.clip(np.round(x / scale + zero), info.min, info.max).astype(d["dtype"])


def _run_tflite(model: str | bytes, xs: list[np.ndarray]) -> tuple[list[str], list[np.ndarray], list[Any]]:
    """The model on each held-out sample (batch 1), in LiteRT: output names, stacked outputs, their quantization."""
    from .runtime import Session
    s = Session(model, name="the QAT model")
    if len(s.input_details) != len(xs):
        raise UsageError(f"the converted model has {len(s.input_details)} inputs, the data {len(xs)}")
    outs: list[list[np.ndarray]] = [[] for _ in s.output_details]
    for i in range(len(xs[0])):
        got = s.run([_quantize_input(x[i:i + 1], d) for x, d in zip(xs, s.input_details)])
        for k, g in enumerate(got):
            outs[k].append(g)
    qs = [d["quantization"] for d in s.output_details]
    return s.output_names, [np.concatenate(o) for o in outs], qs


def _inspect(path: str | os.PathLike) -> tuple[dict[str, int], dict[str, str]]:
    """The ops that compute in float (a float32 activation input; QUANTIZE/DEQUANTIZE at float I/O
    aside), and the signature's name of each output tensor (tensor name -> signature key)."""
    from .io import read_model
    m = read_model(path)
    found: dict[str, int] = {}
    for sg in m.subgraphs:
        for op in sg.operators:
            if op.type in ("QUANTIZE", "DEQUANTIZE"):
                continue
            if any(t is not None and t.type_name == "FLOAT32" and not t.is_constant for t in op.inputs):
                found[op.type] = found.get(op.type, 0) + 1
    keys = {t.name: k for sd in m.signature_defs[:1] for k, t in sd.outputs}
    return found, keys


def _match_outputs(tensor_names: list[str], sig_keys: dict[str, str], keras_names: list[str],
                   got_shapes: list[tuple], ref_shapes: list[tuple]) -> list[int | None]:
    """For each output of the converted model, the index of the Keras output it is (the converter
    orders them its own way): by the signature's key or the tensor's name (tfmot names the layers
    ``quant_<name>``), else by a unique shape, else in order; None where the shapes differ."""
    def keras_index(tname: str) -> int | None:
        key = sig_keys.get(tname)
        if key is not None:
            for cand in (key, key.removeprefix("quant_")):
                if cand in keras_names:
                    return keras_names.index(cand)
        hits = [k for k, n in enumerate(keras_names) if f"/quant_{n}/" in f"/{tname}/" or f"/{n}/" in f"/{tname}/"]
        return hits[0] if len(hits) == 1 else None

    if len(tensor_names) == 1 and len(keras_names) == 1:
        order: list[int | None] = [0]
    else:
        order = [keras_index(t) for t in tensor_names]
        if None in order or len(set(order)) != len(order):
            shapes = [tuple(s) for s in ref_shapes]
            order = [shapes.index(tuple(g)) if shapes.count(tuple(g)) == 1 else None for g in got_shapes]
            if None in order or len(set(order)) != len(order):
                order = list(range(len(tensor_names)))
    return [k if k is not None and k < len(ref_shapes) and tuple(ref_shapes[k]) == tuple(got_shapes[i]) else None
            for i, k in enumerate(order)]


def qat(model: str | os.PathLike | Any, x: np.ndarray | Sequence[np.ndarray], y: Any = None, *,
        output: str | os.PathLike | None = None, epochs: int = 1, batch_size: int = 32,
        loss: Any = None, optimizer: Any = "adam", learning_rate: float = 1e-4,
        validation: float = 0.1, io: str = "int8", level: str | None = "O2", seed: int = 0,
        verbose: int = 0, inputs: Sequence[str | os.PathLike] = ()) -> QatResult:
    """Fine-tune ``model`` (a tf_keras model or a path to one) with quantization in the loop for
    ``epochs`` on ``x`` (an array, or a list of arrays for several inputs; leading axis = samples)
    and ``y`` (labels; None: distill the float model's own outputs on ``x``), convert it to int8
    TensorFlow Lite (``io``: int8 or float inputs and outputs), run tflc's pipeline at ``level``
    (None: write the converter's model as is) and write it to ``output`` (None: return the bytes in
    ``result.model``).

    ``validation``: the fraction of samples (the last ones) held out of training; the SQNR of each
    output against the float Keras model is measured on them (at most 256). ``loss``: a Keras loss;
    default: the model's compiled loss with labels, mean squared error when distilling.
    ``optimizer``: a Keras optimizer or its name (given ``learning_rate``). ``inputs``: paths the
    output must not overwrite (the model's path is always one)."""
    t0 = time.perf_counter()
    if io not in IO_TYPES:
        raise UsageError(f"io: expected one of {', '.join(IO_TYPES)}, got {io!r}")
    if epochs < 0 or batch_size < 1:
        raise UsageError("epochs must be >= 0 and batch_size >= 1")
    if not 0 <= validation < 1:
        raise UsageError(f"validation: expected a fraction in [0, 1), got {validation!r}")
    not_same = [p for p in [model, *inputs] if isinstance(p, (str, os.PathLike))]
    dst = check_output_path(output, not_same_as=not_same) if output is not None else None

    if isinstance(model, (str, os.PathLike)) and not Path(model).is_file():
        raise UsageError(f"{model}: no such file")
    with _quiet(verbose == 0):        # TensorFlow's native log lines (CUDA probing, oneDNN, the converter)
        return _qat(model, x, y, dst=dst, epochs=epochs, batch_size=batch_size, loss=loss, optimizer=optimizer,
                    learning_rate=learning_rate, validation=validation, io=io, level=level, seed=seed,
                    verbose=verbose, t0=t0)


@contextlib.contextmanager
def _quiet(on: bool) -> Iterator[None]:
    """Native stderr swallowed while ``on`` (what Python raises still comes through as exceptions)."""
    if not on:
        yield
        return
    from .runtime.interpreter import native_stderr
    with native_stderr():
        yield


def _qat(model: Any, x: Any, y: Any, *, dst: Path | None, epochs: int, batch_size: int, loss: Any, optimizer: Any,
         learning_rate: float, validation: float, io: str, level: str | None, seed: int, verbose: int,
         t0: float) -> QatResult:
    tf, keras, tfmot = _import_tf()
    float_model = _load_keras(model, keras)
    xs = _as_list(x)
    n = len(xs[0]) if xs and xs[0].ndim else 0
    if n == 0 or any(len(a) != n for a in xs):
        raise UsageError("x: expected at least one sample, the same number in every input array")
    if len(xs) != len(float_model.inputs):
        raise UsageError(f"x: the model has {len(float_model.inputs)} input(s), got {len(xs)} array(s)")
    for a, t in zip(xs, float_model.inputs):
        want = tuple(t.shape[1:])
        if a.ndim != len(want) + 1 or any(w is not None and w != g for w, g in zip(want, a.shape[1:])):
            raise UsageError(f"x: samples of shape {tuple(a.shape[1:])} do not fit the model's input "
                             f"{t.name} {tuple('?' if w is None else w for w in want)}")
    xs = [a.astype(np.float32) if a.dtype.kind == "f" else a for a in xs]
    notes: list[str] = []
    held = min(MAX_HELD_OUT, max(1, int(round(n * validation)))) if validation > 0 and n >= 2 else 0
    train_x, held_x = _take(xs, slice(0, n - held)), _take(xs, slice(n - held, n))
    if not held:
        held_x = _take(xs, slice(0, min(n, MAX_HELD_OUT)))
        notes.append("SQNR measured on training samples (nothing held out)")

    keras.utils.set_random_seed(seed)
    distilled = y is None
    if distilled:
        train_y = _unlist(_as_list(float_model.predict(_unlist(train_x), batch_size=batch_size, verbose=0)))
        loss = loss or "mse"
    else:
        ys = _as_list(y)
        if any(len(a) != n for a in ys):
            raise UsageError(f"y: expected {n} samples, like x")
        train_y = _unlist(_take(ys, slice(0, n - held)))
        loss = loss or getattr(float_model, "loss", None)
        if not loss:
            raise UsageError("labels y given but the model has no compiled loss: "
                             "name a Keras loss (--loss, or loss=...)")

    qat_model, prelus = quantize_model(float_model, train_x)
    if isinstance(optimizer, str):
        try:
            optimizer = keras.optimizers.get({"class_name": optimizer, "config": {"learning_rate": learning_rate}})
        except ValueError as e:
            raise UsageError(f"optimizer {optimizer!r}: {str(e).splitlines()[0]}") from None
    try:
        qat_model.compile(optimizer=optimizer, loss=loss)
    except ValueError as e:
        raise UsageError(f"loss {loss!r}: {str(e).splitlines()[0]}") from None
    history: list[float] = []
    if epochs:
        h = qat_model.fit(_unlist(train_x), train_y, epochs=epochs, batch_size=batch_size, verbose=verbose,
                          shuffle=True)
        history = [float(v) for v in h.history.get("loss", [])]
    else:       # no fine-tuning: one forward pass in training mode sets the weights' ranges (tfmot's LastValue)
        qat_model(_unlist([tf.constant(a[:batch_size]) for a in train_x]), training=True)

    converter = tf.lite.TFLiteConverter.from_keras_model(qat_model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if io == "int8":
        converter.inference_input_type = tf.int8
        converter.inference_output_type = tf.int8
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")                    # "Statistics for quantized inputs were expected"
        try:
            converted = bytes(converter.convert())
        except Exception as e:
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise UnsupportedModelError(f"the TensorFlow Lite converter failed on the QAT model: "
                                        f"{first[:300]}") from None

    ref = _as_list(float_model.predict(_unlist(held_x), batch_size=batch_size, verbose=0))
    with tempfile.TemporaryDirectory(prefix="tflc-qat-") as tmpdir:
        target = dst if dst is not None else Path(tmpdir) / "qat.tflite"
        opt = None
        if level is None:
            with atomic_writer(target) as f:
                f.write(converted)
        else:
            from .optimize import optimize_file
            src = Path(tmpdir) / "converted.tflite"
            src.write_bytes(converted)
            check_inputs = Path(tmpdir) / "held_out.npz"   # the pipeline's check runs on held-out samples
            np.savez(check_inputs, **{f"arr_{i}": a[:8, None] for i, a in enumerate(held_x)})
            res = optimize_file(src, target, level=level, input_source=str(check_inputs))
            opt = res.to_json()
            opt["input"] = "(the converted QAT model)"
        size = target.stat().st_size
        names, got, qs = _run_tflite(str(target), held_x)
        data = target.read_bytes() if dst is None else None
        float_ops, sig_keys = _inspect(target)
    if len(got) != len(ref):
        raise TflcError(f"the converted model has {len(got)} outputs, the Keras model {len(ref)}")
    keras_names = list(getattr(float_model, "output_names", None) or [f"output_{i}" for i in range(len(ref))])
    order = _match_outputs(names, sig_keys, keras_names, [g.shape for g in got], [r.shape for r in ref])
    sqnr = {}
    for i, (tname, g, q) in enumerate(zip(names, got, qs)):
        k = order[i]
        if k is None:
            notes.append(f"output {tname}: no Keras output of its shape {tuple(g.shape)} to compare with")
            sqnr[tname] = float("nan")
            continue
        sqnr[keras_names[k]] = float(diff_output(keras_names[k], ref[k].astype(np.float32), g, None,
                                                 q if q and q[0] else None).sqnr_db)
    if float_ops:
        notes.append("ops left in float: " + ", ".join(f"{k} ({v})" for k, v in float_ops.items()))
    return QatResult(str(dst) if dst is not None else None, io, epochs, history, distilled, n - held, held
                     or len(held_x[0]), len(converted), size, sqnr, prelus, float_ops, opt,
                     time.perf_counter() - t0, notes, data)


def load_data(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray | None]:
    """An .npz of training data: ``x`` and optionally ``y``, or ``arr_0`` and optionally ``arr_1``."""
    p = Path(path)
    if not p.exists():
        raise UsageError(f"{p}: no such file")
    try:
        with np.load(p, allow_pickle=False) as npz:
            arrays = {k: np.asarray(npz[k]) for k in npz.keys()}
    except Exception as e:                              # BadZipFile, ValueError, OSError...
        why = str(e).splitlines()[0][:200] if str(e) else ""
        raise UsageError(f"{p}: not a readable .npz file ({type(e).__name__}: {why})") from None
    for xk, yk in (("x", "y"), ("arr_0", "arr_1")):
        if xk in arrays:
            extra = sorted(set(arrays) - {xk, yk})
            if extra:
                raise UsageError(f"{p}: unexpected arrays {', '.join(extra)} (expected {xk} and optionally {yk})")
            return arrays[xk], arrays.get(yk)
    raise UsageError(f"{p}: expected arrays 'x' (and optionally 'y') or arr_0 (and arr_1), "
                     f"has {', '.join(arrays) or 'nothing'}")

