"""A kernel for MediaPipe's ``Convolution2DTransposeBias`` custom op, for LiteRT without XNNPACK.

MediaPipe's segmentation models (``selfie_segmentation.tflite``) end in ``Convolution2DTransposeBias``:
a TRANSPOSE_CONV followed by a bias add, whose reference kernel lives in MediaPipe
(``mediapipe/util/tflite/operations/transpose_conv_bias.cc``). LiteRT's XNNPACK delegate runs it
itself, so a model holding it runs in the stock interpreter; without XNNPACK (LiteRT's builtin
kernels, where tflc calibrates quantization with every intermediate tensor kept) nothing does. This
kernel fills that gap: a :class:`~tflc.kernels.PythonKernel` with ``fallback=True``, used only where
XNNPACK is off, so XNNPACK keeps the op wherever it runs.

Semantics, as MediaPipe's kernel: inputs ``x [N, H, W, Ci]``, filter ``[Co, kh, kw, Ci]`` (OHWI),
bias ``[Co]``; custom options are the raw ``TfLiteTransposeConvParams`` struct (int32 padding: 1 SAME,
2 VALID; int32 stride_width; int32 stride_height). Output ``[N, H*sh, W*sw, Co]`` for SAME,
``[N, (H-1)*sh + kh, (W-1)*sw + kw, Co]`` for VALID; each input pixel scatters ``x @ filter[:, fy, fx]``
to ``(y*sh + fy - pad_h, x*sw + fx - pad_w)``, with TFLite's padding for transposed convolutions
(``pad = max(0, (in - 1) * stride + k - out) // 2``, the output size standing for the input). The
float32 sums run in another order than MediaPipe's, so results agree to float32 rounding
(tests compare with XNNPACK's own kernel: relative error below 1e-5), not bit for bit.
"""
from __future__ import annotations

import struct

import numpy as np

from .kernel import PythonKernel

CODE = "Convolution2DTransposeBias"
SAME, VALID = 1, 2


def _params(options: bytes) -> tuple[int, int, int]:
    if options is None or len(options) < 12:
        raise ValueError(f"{CODE}: custom options of {len(options or b'')} bytes, needs the 12-byte "
                         "TfLiteTransposeConvParams (padding, stride_width, stride_height)")
    padding, sw, sh = struct.unpack("<iii", bytes(options[:12]))
    if padding not in (SAME, VALID) or sw < 1 or sh < 1:
        raise ValueError(f"{CODE}: padding {padding}, strides {sw}x{sh}: needs SAME (1) or VALID (2) and strides >= 1")
    return padding, sw, sh


def output_shape(x_shape, w_shape, options: bytes) -> tuple[int, int, int, int]:
    padding, sw, sh = _params(options)
    n, h, w, _ = x_shape
    co, kh, kw, _ = w_shape
    if padding == SAME:
        return n, h * sh, w * sw, co
    return n, (h - 1) * sh + kh, (w - 1) * sw + kw, co


def transpose_conv_bias(inputs: list, options: bytes) -> np.ndarray:
    """The op on numpy arrays (float32)."""
    x, f, b = (np.asarray(a, np.float32) for a in inputs)
    if x.ndim != 4 or f.ndim != 4 or x.shape[3] != f.shape[3]:
        raise ValueError(f"{CODE}: input {list(x.shape)} and filter {list(f.shape)}: needs NHWC and OHWI with equal "
                         "input channels")
    padding, sw, sh = _params(options)
    n, h, w, _ = x.shape
    co, kh, kw, _ = f.shape
    _, oh, ow, _ = output_shape(x.shape, f.shape, options)
    full_h, full_w = (h - 1) * sh + kh, (w - 1) * sw + kw
    pad_h, pad_w = max(0, full_h - oh) // 2, max(0, full_w - ow) // 2
    canvas = np.zeros((n, full_h + oh, full_w + ow, co), np.float32)
    for fy in range(kh):
        for fx in range(kw):
            canvas[:, fy:fy + (h - 1) * sh + 1:sh, fx:fx + (w - 1) * sw + 1:sw, :] += x @ f[:, fy, fx, :].T
    return canvas[:, pad_h:pad_h + oh, pad_w:pad_w + ow, :] + b.reshape(-1)[:co]


def _shapes(in_shapes, options):
    return [output_shape(in_shapes[0], in_shapes[1], options)]


#: the kernel (registered through tflc's entry points under its custom code)
Convolution2DTransposeBias = PythonKernel(transpose_conv_bias, output_shapes=_shapes, fallback=True)
