"""tflc qat: quantization-aware training of a Keras model, then the tflc pipeline on its int8 model."""
from __future__ import annotations

import argparse
import math

from ..passmanager import LEVELS
from .common import add_json_flag, non_negative_int, positive_int, print_json

EPILOG = """\
when to use it:
  when post-training int8 quantization (tflc optimize --quantize int8) loses too much accuracy.
  QAT fine-tunes the Keras model with int8 rounding simulated in the loop, so its weights adapt,
  then converts it with the ranges it learned. The ranges start from the float model's on x;
  --epochs 0 converts with those alone (no fine-tuning). It needs TensorFlow: pip install 'tflc[tf]'.

the data (DATA.npz):
  x: input samples, leading axis = samples, each sample shaped like the model's input
     (e.g. 500x32x32x3 for an input of (None, 32, 32, 3)); real inputs, as the Keras model takes them
  y: labels for the model's loss (optional). Without y the float model's own outputs on x are the
     targets (distillation): any representative inputs will do, no labels needed.
  (arr_0 and arr_1, as np.savez(path, x, y) names them, work too.)
  The last --validation fraction of samples is held out of training; the SQNR of each output
  against the float Keras model is measured on them.

Keras PReLU layers (which tensorflow-model-optimization refuses by default) are quantized too:
alpha per tensor onto PRELU's int8 grid, the output per tensor.

example:
  python -c "import numpy as np; np.savez('data.npz', x=np.random.rand(512, 32, 32, 3).astype('f4'))"
  tflc qat model.keras data.npz -o model.int8.tflite --epochs 2
"""


def _fraction(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a fraction, got {text!r}") from None
    if not (math.isfinite(v) and 0 <= v < 1):
        raise argparse.ArgumentTypeError(f"expected a fraction in [0, 1), got {text!r}")
    return v


def _positive_float(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not (math.isfinite(v) and v > 0):
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return v


def add_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "qat", help="quantization-aware training of a Keras model, then an int8 .tflite, optimized and checked",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Fine-tune MODEL (a Keras 2 / tf_keras .keras or .h5 file) with quantization in the loop\n"
        "(tensorflow-model-optimization) on DATA for --epochs, convert it to int8 TensorFlow Lite, run\n"
        "tflc's pipeline on it (-O2 by default, checked in LiteRT) and write OUT atomically; the inputs\n"
        "are never overwritten.", epilog=EPILOG)
    p.add_argument("model", metavar="MODEL", help="the float Keras model (.keras or .h5, saved with tf_keras)")
    p.add_argument("data", metavar="DATA", help="an .npz with 'x' (samples) and optionally 'y' (labels)")
    p.add_argument("-o", "--output", metavar="OUT", required=True, help="where to write the int8 .tflite model")
    p.add_argument("--epochs", type=non_negative_int, default=1, metavar="N",
                   help="fine-tuning epochs (default 1; 0: none, ranges from the float model only)")
    p.add_argument("--batch-size", type=positive_int, default=32, metavar="B", help="batch size (default 32)")
    p.add_argument("--io", choices=["int8", "float"], default="int8",
                   help="the written model's input and output type (default int8; float: it quantizes its "
                        "inputs and dequantizes its outputs itself)")
    p.add_argument("--loss", metavar="NAME", help="a Keras loss name, with y (default: the model's compiled loss; "
                   "without y: mean squared error to the float model's outputs)")
    p.add_argument("--learning-rate", type=_positive_float, default=1e-4, metavar="LR",
                   help="Adam's learning rate (default 1e-4: fine-tuning, not training)")
    p.add_argument("--validation", type=_fraction, default=0.1, metavar="FRAC",
                   help="fraction of the samples (the last ones) held out for the SQNR (default 0.1)")
    lv = p.add_mutually_exclusive_group()
    for lvl in LEVELS.values():
        lv.add_argument(f"-{lvl.name}", dest="level", action="store_const", const=lvl.name,
                        help=f"tflc's pipeline at -{lvl.name}" + (" (default)" if lvl.name == "O2" else ""))
    lv.add_argument("--no-optimize", dest="level", action="store_const", const="none",
                    help="write the converter's model as it is")
    add_json_flag(p)
    return p


def _db(v: float) -> str:
    return "identical" if v == float("inf") else ("n/a" if v != v else f"{v:.1f} dB")


def run(args: argparse.Namespace) -> int:
    from ..qat import load_data, qat
    x, y = load_data(args.data)                     # a bad data file fails before TensorFlow is loaded
    level = None if args.level == "none" else (args.level or "O2")
    res = qat(args.model, x, y, output=args.output, epochs=args.epochs, batch_size=args.batch_size, io=args.io,
              loss=args.loss, learning_rate=args.learning_rate, validation=args.validation, level=level,
              inputs=[args.data])
    if args.json:
        data = res.to_json()
        data.update(model=args.model, data=args.data)
        print_json(data)
        return 0
    how = "distilled from the float model (no y)" if res.distilled else "on the labels y"
    print(f"{args.model} -> {res.output}: {res.epochs} epoch(s) of QAT on {res.train_samples} samples, {how}; "
          f"{res.io} inputs and outputs")
    if res.loss:
        print("  loss per epoch: " + ", ".join(f"{v:.4g}" for v in res.loss))
    if res.prelu_layers:
        print(f"  PReLU quantized with tflc's config: {', '.join(res.prelu_layers)}")
    after = f"after tflc -{level}" if level else "written as converted"
    print(f"  size: {res.size_converted} bytes converted, {res.size_output} bytes {after}")
    print(f"  SQNR against the float Keras model on {res.held_out_samples} held-out sample(s): "
          + ", ".join(f"{k} {_db(v)}" for k, v in res.sqnr_db.items()))
    for n in res.notes:
        print(f"  note: {n}")
    return 0
