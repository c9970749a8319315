"""specialize-shapes: fix dynamic input shapes, make every shape static, fold shape computations.

What it rewrites: given ``--input-shape NAME:DxD...`` for the dynamic inputs of the main
subgraph (NAME as LiteRT reports it, e.g. ``serving_default_input_1:0``), it sets those inputs'
shape and shape_signature, asks LiteRT for the shape of every tensor (the model is written,
resized, allocated and invoked once in an isolated child), records the shapes as static in the
IR (no -1 left in shape_signature), turns SHAPE/RANK ops into constants, and folds what was
computed from them (GATHER, STRIDED_SLICE, REDUCE_PROD, PACK, CONCATENATION, FILL, ...) with the
``fold-constants`` machinery. RESHAPEs then get constant shapes, and LiteRT (and delegates such
as XNNPACK) see a fully static graph.

When it is safe: the specialized model only accepts the given input shapes; that is the point,
and the model's outputs for those shapes are unchanged (bit-identical: only integer shape
arithmetic is folded). A tensor's shape is recorded as static only if it cannot depend on input
*values*: shapes are propagated through ops whose output shape is a function of their input
shapes (and of inputs that are themselves known constants), so data-dependent shapes (WHERE,
UNIQUE, NON_MAX_SUPPRESSION, custom ops, control flow...) stay dynamic, and so does everything
computed from them. Without ``--input-shape`` the pass does nothing to a model with dynamic
inputs (a note says so); every dynamic input must be given, and a given shape must agree with
the model's static dimensions.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from tflc.evaluate import fold, fold_refusal, make_constant
from tflc.ir.core import Model, Operator, Subgraph, Tensor
from tflc.ir.opinfo import VALUE_SHAPE_INPUTS, has_side_effects
from tflc.passes_api import Pass, register

# Which ops' output shapes follow from their input shapes alone (and which inputs' values also
# count) is a fact of the ops: ``tflc.ir.opinfo.VALUE_SHAPE_INPUTS``.


@dataclass
class SpecializeShapesOptions:
    fold: bool = field(default=True, metadata={
        "help": "fold SHAPE/RANK and the shape arithmetic computed from them into constants"})
    max_bytes: int = field(default=1 << 20, metadata={
        "help": "largest folded result in bytes (as fold-constants; 0: no limit)"})


def _dynamic(t: Tensor) -> bool:
    return t.shape is None or (t.shape_signature is not None and any(d < 0 for d in t.shape_signature))


def _analyse(sg: Subgraph) -> tuple[set[int], set[int]]:
    """(tensors whose shape cannot depend on input values, tensors whose value is computed from
    shapes and constants only). Ops are visited in execution order."""
    shape_known: set[int] = {id(t) for t in sg.inputs}
    value_known: set[int] = set()
    shape_derived: set[int] = set()
    for t in sg.tensors:
        if t.is_constant:
            shape_known.add(id(t))
            value_known.add(id(t))
    for op in sg.operators:
        ins = [(i, t) for i, t in enumerate(op.inputs) if t is not None]
        outs = [t for t in op.outputs if t is not None]
        pure = not has_side_effects(op) and not op.opcode.is_custom
        all_shapes = all(id(t) in shape_known for _, t in ins)
        if pure and op.type in ("SHAPE", "RANK") and all_shapes:
            for t in outs:
                shape_known.add(id(t))
                value_known.add(id(t))
                shape_derived.add(id(t))
            continue
        if pure and ins and all(id(t) in value_known for _, t in ins):
            for t in outs:
                shape_known.add(id(t))
                value_known.add(id(t))
                if any(id(t) in shape_derived for _, t in ins):
                    shape_derived.add(id(t))
            continue
        value_inputs = VALUE_SHAPE_INPUTS.get(op.type)
        if (pure and value_inputs is not None and all_shapes
                and all(id(t) in value_known for i, t in ins if i in value_inputs)):
            shape_known.update(id(t) for t in outs)
    return shape_known, shape_derived


@register
class SpecializeShapes(Pass):
    name = "specialize-shapes"
    description = "Fix dynamic input shapes (--input-shape), make all shapes static, fold shape computations"
    Options = SpecializeShapesOptions

    def run(self, model: Model, ctx) -> bool:
        sg = model.main
        overrides = dict(getattr(ctx, "shapes", None) or {})
        new_inputs = self._input_shapes(sg, overrides, ctx)
        if new_inputs is None:
            return False
        if not overrides and not any(_dynamic(t) for t in sg.tensors if not t.is_constant) \
                and not sg.ops_of_type("SHAPE", "RANK"):
            return False                              # already static: nothing to do
        shapes = self._ask_litert(model, new_inputs, ctx)
        if shapes is None:
            return False
        shape_known, shape_derived = _analyse(sg)
        changed = False
        plan: list[tuple[Tensor, tuple[int, ...]]] = []
        kept_dynamic = 0
        for t in sg.tensors:
            if t.is_constant or t.uid not in shapes:
                continue
            got = shapes[t.uid]
            if id(t) not in shape_known:
                kept_dynamic += _dynamic(t)
                continue
            old = t.shape_signature if t.shape_signature is not None else t.shape
            if old is not None and (len(old) != len(got) or any(o >= 0 and o != g for o, g in zip(old, got))):
                ctx.note(f"specialize-shapes: LiteRT computed {list(got)} for '{t.name}', the model says "
                         f"{list(old)}; nothing changed")
                return False
            plan.append((t, got))
        for t, got in plan:
            sig = got if t.shape_signature is not None or _dynamic(t) else None
            if t.shape != got or t.shape_signature != sig:
                sg.set_shape(t, got, sig)
                changed = True
        if kept_dynamic:
            ctx.note(f"specialize-shapes: {kept_dynamic} tensor(s) keep a dynamic shape (it depends on input values)")
        if self.options.fold:
            changed |= self._fold_shape_ops(model, sg, shape_known, shape_derived, ctx) > 0
        return changed

    # ----------------------------------------------------------------------------------------
    def _input_shapes(self, sg: Subgraph, overrides: dict, ctx) -> dict[int, tuple[int, ...]] | None:
        """Graph-input index -> its specialized shape; None (with a note) if the pass must stop."""
        by_name = {t.name: i for i, t in enumerate(sg.inputs)}
        for name in overrides:
            if name not in by_name:
                ctx.note(f"specialize-shapes: the model has no input named '{name}' "
                         f"(inputs: {', '.join(by_name) or 'none'}); ignored")
        out: dict[int, tuple[int, ...]] = {}
        for i, t in enumerate(sg.inputs):
            sig = t.shape_signature if t.shape_signature is not None else t.shape
            if t.name in overrides:
                want = tuple(int(d) for d in overrides[t.name])
                if sig is not None and (len(sig) != len(want) or any(s >= 0 and s != w for s, w in zip(sig, want))):
                    ctx.note(f"specialize-shapes: --input-shape {t.name}:{'x'.join(map(str, want))} does not fit "
                             f"the input's shape {list(sig)}; nothing changed")
                    return None
                out[i] = want
            elif _dynamic(t):
                ctx.note(f"specialize-shapes: input '{t.name}' has dynamic shape {list(sig or [])}: give "
                         f"--input-shape {t.name}:DxD... to specialize; nothing changed")
                return None
            else:
                out[i] = tuple(t.shape)
        return out

    def _ask_litert(self, model: Model, new_inputs: dict[int, tuple[int, ...]], ctx) -> dict[int, tuple[int, ...]] | None:
        """Tensor uid -> shape computed by LiteRT for the new inputs
        (the ``shapes`` analysis, for the context's input shapes)."""
        result = ctx.analyses.get("shapes", model, ctx)
        if result.error is not None:
            ctx.note(f"specialize-shapes: LiteRT cannot run the model with the given shapes ({result.error}); "
                     "nothing changed")
            return None
        return dict(result.shapes)

    def _fold_shape_ops(self, model: Model, sg: Subgraph, shape_known: set[int], shape_derived: set[int],
                        ctx) -> int:
        n = 0
        for op in list(sg.operators):
            if op.type not in ("SHAPE", "RANK") or fold_refusal(op, sg) is not None:
                continue
            x, out = op.inputs[0], op.outputs[0]
            if x is None or out is None or id(x) not in shape_known or _dynamic(x):
                continue
            if op.type == "SHAPE" and len(x.shape) == 0:
                continue                      # an empty constant would have no buffer
            value = np.asarray(x.shape if op.type == "SHAPE" else len(x.shape), dtype=out.np_dtype)
            if out.shape is not None and not _dynamic(out) and int(np.prod(out.shape)) == value.size:
                value = value.reshape(out.shape)  # RANK is a scalar, but some files say [1]
            sg.remove_op(op, detach=True)     # its output stays, as a constant
            make_constant(sg, out, value)
            n += 1

        def derived(op: Operator) -> bool:
            return any(t is not None and id(t) in shape_derived for t in op.outputs)

        n += fold(model, ctx, max_bytes=self.options.max_bytes, select=derived, subgraphs=[sg])
        if n:
            sg.remove_unused_tensors()
            ctx.note(f"specialize-shapes: folded {n} shape op(s)")
        return n
