"""tflc's custom kernels (Numba-JIT), one kernel family per module. Installed as ``tflc.kernels``.

Empty for now: kernels arrive with the custom-kernel issue. Each will declare the constraints
(shapes, dtypes, options) under which it is valid as predicates returning ``(ok, reason)``.
"""
