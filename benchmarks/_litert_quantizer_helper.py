"""Run litert-quantizer's ``static_wi8_ai8`` recipe on one model (a child of quantize_compare.py).

Runs in litert-quantizer's own venv, not tflc's (see quantize_compare.py for how it is made)::

    /tmp/lqvenv/bin/python benchmarks/_litert_quantizer_helper.py IN.tflite CAL.npz OUT.tflite

IN must hold float32 weights and a SignatureDef (quantize_compare.py folds float16 weights and
adds a ``serving_default`` signature first). CAL.npz holds one array per input, keyed by the
input *tensor* name, first axis = sample; each sample is fed to the signature under the key
whose tensor has that name. Prints one JSON line: {"ok": true, "seconds": ...} or
{"ok": false, "error": "..."}; OUT is written only on success.
"""
from __future__ import annotations

import json
import sys
import time
import traceback

import numpy as np


def normalize(src: str, dst: str) -> dict:
    """Two rewrites of the float model that change nothing LiteRT runs, for litert-quantizer 0.11.0:

    - operator codes: old converters (MediaPipe's face_detection_short_range, iris_landmark) set only
      ``deprecated_builtin_code`` and leave ``builtin_code`` 0 (ADD); LiteRT reads the larger of the
      two, but litert-quantizer reads ``builtin_code`` alone, sees every op as ADD and quantizes conv
      weights as activations (asymmetric, per-tensor), which LiteRT's CONV_2D then refuses
      ("zero_point != 0"). ``builtin_code`` is set to max(builtin_code, deprecated_builtin_code).
    - shared constant buffers: every constant tensor gets its own buffer (MediaPipe models share one
      zero bias between DEPTHWISE_CONV_2Ds; litert-quantizer caches quantized constants by buffer).
    """
    import copy

    from ai_edge_litert.tools import flatbuffer_utils as fu
    m = fu.read_model(src)
    codes = 0
    for oc in m.operatorCodes:
        if oc.builtinCode < oc.deprecatedBuiltinCode < 127:
            oc.builtinCode = oc.deprecatedBuiltinCode
            codes += 1
    seen, copied = set(), 0
    for sg in m.subgraphs:
        for t in sg.tensors:
            b = t.buffer
            if not b or m.buffers[b].data is None or len(m.buffers[b].data) == 0:
                continue
            if b in seen:
                m.buffers.append(copy.deepcopy(m.buffers[b]))
                t.buffer = len(m.buffers) - 1
                copied += 1
            else:
                seen.add(b)
    fu.write_model(m, dst)
    return {"opcodes_fixed": codes, "buffers_unshared": copied}


def main(src: str, cal: str, dst: str) -> int:
    t0 = time.time()
    try:
        from ai_edge_litert.interpreter import Interpreter
        from litert_quantizer import quantizer, recipe

        data = np.load(cal)
        interp = Interpreter(model_path=src)
        sigs = interp.get_signature_list()
        if not sigs:
            raise ValueError("the model has no SignatureDef")
        key = "serving_default" if "serving_default" in sigs else next(iter(sigs))
        runner = interp.get_signature_runner(key)
        by_tensor = {d["name"]: k for k, d in runner.get_input_details().items()}
        missing = [t for t in by_tensor if t not in data.files]
        if missing:
            raise ValueError(f"calibration data lacks inputs {missing} (has {data.files})")
        n = len(data[data.files[0]])
        samples = [{k: data[t][i] for t, k in by_tensor.items()} for i in range(n)]

        fixed = dst + ".normalized.tflite"
        changes = normalize(src, fixed)
        qt = quantizer.Quantizer(fixed)
        qt.load_quantization_recipe(recipe.static_wi8_ai8())
        cal_result = qt.calibrate({key: samples}, num_threads=1)
        res = qt.quantize(cal_result, enable_progress_report=False)
        res.export_model(dst, overwrite=True)
        print(json.dumps({"ok": True, "seconds": time.time() - t0, "signature": key,
                          **changes}))
        return 0
    except Exception as e:  # one line for the table, the traceback on stderr
        traceback.print_exc()
        msg = f"{type(e).__name__}: {e}".splitlines()[0][:300]
        print(json.dumps({"ok": False, "error": msg, "seconds": time.time() - t0}))
        return 1


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:4]))
