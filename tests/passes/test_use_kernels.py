"""use-kernels: ops XNNPACK leaves on LiteRT's builtin kernels become exact tflc kernels, decided by
measuring the whole model against the builtin op and against a float island."""
from __future__ import annotations

import numpy as np

from tflc.io import read_model, read_model_bytes, serialize
from tflc.kernels import lut
from tflc.passes.use_kernels import FACTS_KEY
from tflc.passes_api import parse_pipeline
from tflc.passmanager import KERNEL_PASS, PassContext, plan_pipeline, run_pipeline
from tflc.runtime import RunOptions, Session

from kernel_graphs import layer_norm_piece


def test_use_kernels_measures_kernel_island_and_builtin_and_reports_the_choice():
    m = layer_norm_piece()
    ctx = PassContext(target="xnnpack")
    out = m.clone()
    run_pipeline(out, parse_pipeline("use-kernels{max-seconds=1}"), ctx)
    (d,) = ctx.facts[FACTS_KEY]
    assert d["pattern"] == "SQUARED_DIFFERENCE => TFLC_LUT8X8"
    for key in ("kernel", "island"):
        r = d[key]
        assert r["ci"][0] <= r["ratio"] <= r["ci"][1] and r["verdict"]
    assert d["builtin_us"] > 0 and d["kernel_us"] > 0
    assert d["chosen"] in ("kernel", "builtin", "float island (left to float-islands)")
    types = [op.type for op in out.main.operators]
    assert (lut.LUT8X8 in types) == (d["chosen"] == "kernel")
    assert any("use-kernels: SQUARED_DIFFERENCE => TFLC_LUT8X8" in n for n in ctx.messages)


def test_without_measuring_every_exact_match_is_replaced_and_outputs_stay_bit_identical():
    m = layer_norm_piece(4, 8)
    out = m.clone()
    run_pipeline(out, parse_pipeline("use-kernels{measure=false}"), PassContext(target="xnnpack"))
    assert [op.type for op in out.main.operators] == ["ADD", lut.LUT8X8, "ADD"]
    # the file says what runs it (stock LiteRT only reports an unresolved custom op)
    meta = dict(read_model_bytes(serialize(out)).metadata)
    assert b"this model needs tflc.runtime" in meta["tflc_kernels"].data.tobytes()
    a, b = Session(serialize(m), RunOptions()), Session(serialize(out), RunOptions())
    rng = np.random.default_rng(0)
    for _ in range(5):
        x = [rng.integers(-128, 128, (1, 4, 8)).astype(np.int8), rng.integers(-128, 128, (1, 4, 1)).astype(np.int8)]
        assert a.run(x)[0].tobytes() == b.run(x)[0].tobytes()


def test_kernels_places_the_pass_between_the_exact_rewrites_and_float_islands():
    names = [p.name for p in plan_pipeline(level="O2", kernels=True, target="xnnpack").passes]
    assert names.index("exact-islands") < names.index(KERNEL_PASS) < names.index("float-islands")
    # without a target, --kernels adds the kernels alone (no islands), before the clean-up
    names = [p.name for p in plan_pipeline(level="O2", kernels=True).passes]
    assert KERNEL_PASS in names and "float-islands" not in names
    assert names.index(KERNEL_PASS) < names.index("remove-dead-code")
    plan = plan_pipeline(level="O2", kernels=True, tolerance=0.0, target="xnnpack")
    names = [p.name for p in plan.passes]
    assert KERNEL_PASS in names and "float-islands" not in names
    # with no float-islands after it, the pass must not leave an op to islands
    assert next(p for p in plan.passes if p.name == KERNEL_PASS).options.islands is False
    assert KERNEL_PASS not in [p.name for p in plan_pipeline(level="O2").passes]


def test_the_converters_int8_transformer_stays_bit_identical_with_kernels(zoo):
    path = zoo("transformer_encoder_3x192_int8")
    m = read_model(path)
    out = m.clone()
    ctx = PassContext(target="xnnpack")
    run_pipeline(out, parse_pipeline("use-kernels{measure=false}"), ctx)
    types = [op.type for op in out.main.operators]
    assert types.count(lut.LUT8X8) == 6            # every SQUARED_DIFFERENCE of the layer norms
    assert types.count("RSQRT") == 0 and types.count("GELU") == 0   # ADD -> RSQRT fused into one table
    assert types.count(lut.LUT8) == 6 + 3
    a, b = Session(path.read_bytes(), RunOptions()), Session(serialize(out), RunOptions())
    rng = np.random.default_rng(0)
    for _ in range(3):
        x = [rng.integers(-128, 128, d["shape"]).astype(np.int8) for d in a.interp.get_input_details()]
        assert all(u.tobytes() == v.tobytes() for u, v in zip(a.run(x), b.run(x)))
