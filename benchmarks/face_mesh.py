"""Benchmark: MediaPipe's face_landmark_with_attention runs in tflc.runtime, and on a real face its
refined eye and iris landmarks fall on the eyes of its own face mesh.

The model (in the mediapipe 0.10.14 wheel, `mediapipe/modules/face_landmark/`) holds three custom
ops stock LiteRT cannot run; tflc ships kernels for them (`tflc.kernels.mediapipe_face`). Input: the
face of scikit-image's `astronaut` photograph, cropped and resized to 192x192, scaled to [0, 1].
Reported: for each eye, the iris centre against the box of the mesh's eye contour, and the median
distance (pixels of the 192x192 crop) from each refined eye-contour landmark to the nearest mesh
landmark of that eye; and the model's latency in tflc.runtime.

    python benchmarks/face_mesh.py path/to/face_landmark_with_attention.tflite [--json out.json]
"""
from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np

#: MediaPipe's face-mesh eye contours (FACEMESH_LEFT_EYE / FACEMESH_RIGHT_EYE vertices)
MESH_EYES = {
    "right": [33, 7, 163, 144, 145, 153, 154, 155, 133, 173, 157, 158, 159, 160, 161, 246],
    "left": [263, 249, 390, 373, 374, 380, 381, 382, 362, 398, 384, 385, 386, 387, 388, 466],
}
CROP = (slice(20, 240), slice(140, 360))        # the astronaut's face in the 512x512 photograph


def face_input() -> np.ndarray:
    from skimage import data, transform
    img = data.astronaut()[CROP].astype(np.float32) / 255.0
    return transform.resize(img, (192, 192), anti_aliasing=True).astype(np.float32)[None]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model", help="face_landmark_with_attention.tflite")
    ap.add_argument("--json", metavar="FILE")
    args = ap.parse_args(argv)
    from tflc.runtime import Interpreter

    interp = Interpreter(model_path=args.model, num_threads=1)
    interp.allocate_tensors()
    x = face_input()
    interp.set_tensor(interp.get_input_details()[0]["index"], x)
    interp.invoke()
    outs = {d["name"]: interp.get_tensor(d["index"]).reshape(-1) for d in interp.get_output_details()}
    by_size = {v.size: [n for n, u in outs.items() if u.size == v.size] for v in outs.values()}
    mesh = outs[by_size[1404][0]].reshape(468, 3)[:, :2]
    eyes = [outs[n].reshape(71, 2) for n in by_size[142]]
    irises = [outs[n].reshape(5, 2) for n in by_size[10]]
    rows = []
    for eye, iris in zip(eyes, irises):
        # which mesh eye this refined eye is: the nearer contour
        side = min(MESH_EYES, key=lambda s: np.linalg.norm(mesh[MESH_EYES[s]].mean(0) - eye.mean(0)))
        contour = mesh[MESH_EYES[side]]
        lo, hi = contour.min(0), contour.max(0)
        centre = iris[0]
        d = np.min(np.linalg.norm(eye[:, None, :] - contour[None, :, :], axis=2), axis=1)
        rows.append({"eye": side, "iris_centre": [round(float(v), 1) for v in centre],
                     "mesh_eye_box": [[round(float(v), 1) for v in lo], [round(float(v), 1) for v in hi]],
                     "iris_inside_mesh_eye": bool(np.all(centre >= lo) and np.all(centre <= hi)),
                     "median_px_to_mesh_eye": round(float(np.median(d)), 2)})
    t = []
    for _ in range(50):
        t0 = time.perf_counter()
        interp.invoke()
        t.append(time.perf_counter() - t0)
    res = {"eyes": rows, "p50_ms": round(1e3 * float(np.median(t)), 3),
           "face_score": float(outs[by_size[1][0]][0]) if 1 in by_size else None}
    for r in rows:
        print(f"{r['eye']} eye: iris centre {r['iris_centre']} inside the mesh's eye box {r['mesh_eye_box']}: "
              f"{r['iris_inside_mesh_eye']}; refined eye contour to the mesh's eye: median {r['median_px_to_mesh_eye']} px")
    print(f"latency in tflc.runtime (XNNPACK + tflc's kernels, 1 thread): p50 {res['p50_ms']} ms")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(res, f, indent=1)
    return 0 if all(r["iris_inside_mesh_eye"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
