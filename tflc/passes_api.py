"""The pass contract, the registry, and per-pass option parsing.

A pass is a class with a kebab-case ``name`` (its CLI flag, registry key and test name), a
one-line ``description``, an ``Options`` dataclass (typed options), the analyses it ``needs``
and those it ``preserves`` (``tflc.analyses``), and ``run(model, ctx) -> bool`` (True if it
changed the model).
Built-in passes live in ``tflc.passes`` (one per file); other packages add passes through the
``tflc.passes`` entry-point group. See docs/writing-a-pass.md.
"""
from __future__ import annotations

import dataclasses
import importlib
import pkgutil
import re
import typing
import warnings
from importlib import metadata
from typing import Any, Callable, ClassVar, Sequence

from .analyses import all_analyses
from .errors import UsageError
from .ir.verify import verify

ENTRY_POINT_GROUP = "tflc.passes"
_NAME_RE = re.compile(r"^[a-z][a-z0-9]*(-[a-z0-9]+)*$")


@dataclasses.dataclass
class NoOptions:
    pass


class Pass:
    """Base class of all passes. Subclass, set the class attributes, implement ``run``."""

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    Options: ClassVar[type] = NoOptions
    #: analyses the pass asks for (names in ``tflc.analyses``: "profile", "shapes", ...); checked
    #: before the pipeline runs, so a pass needing data it cannot have fails before any work
    needs: ClassVar[frozenset[str]] = frozenset()
    #: analyses still valid after the pass changed the model (``tflc.analyses.ALL``: every one);
    #: the pass manager invalidates the others
    preserves: ClassVar[frozenset[str]] = frozenset()
    #: largest relative output error the pass may introduce (0.0: bit-identical outputs)
    tolerance: ClassVar[float] = 0.0
    #: quantization steps an integer (quantized) output may move (0: judged by ``tolerance`` alone);
    #: a pass that re-rounds int8 values declares the steps it may cost
    quant_steps: ClassVar[int] = 0
    #: the pass quantizes the model (what --quantize MODE adds): a refusal names it, and the -O2
    #: latency guard dropping it is a warning, since the user asked for it
    quantizes: ClassVar[bool] = False

    def __init__(self, options: Any = None, **kwargs: Any):
        if options is None:
            options = self.Options(**kwargs)
        self.options = options

    def run(self, model, ctx) -> bool:  # pragma: no cover - abstract
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"<pass {self.name} {self.options}>"


def function_pass(name: str, description: str, *, options: type = NoOptions,
                  needs: frozenset[str] = frozenset(), preserves: frozenset[str] = frozenset(),
                  tolerance: float = 0.0) -> Callable[[Callable], type]:
    """Make a Pass class from ``fn(model, ctx, options) -> bool``."""
    def wrap(fn: Callable) -> type:
        cls = type(fn.__name__, (Pass,), {
            "name": name, "description": description, "Options": options, "needs": needs, "preserves": preserves,
            "tolerance": tolerance, "run": lambda self, model, ctx: fn(model, ctx, self.options),
            "__doc__": fn.__doc__, "__module__": fn.__module__})
        return cls
    return wrap


_REGISTRY: dict[str, type[Pass]] = {}
_ORIGIN: dict[str, str] = {}
_loaded = False


def register(cls: type[Pass]) -> type[Pass]:
    """Class decorator adding a pass to the registry (built-in passes use it)."""
    _validate(cls)
    if cls.name in _REGISTRY and _REGISTRY[cls.name] is not cls:
        raise ValueError(f"two passes named {cls.name!r}: {_REGISTRY[cls.name]} and {cls}")
    _REGISTRY[cls.name] = cls
    _ORIGIN.setdefault(cls.name, "builtin")
    return cls


def _validate(cls: Any) -> None:
    if not (isinstance(cls, type) and issubclass(cls, Pass)):
        raise TypeError(f"{cls!r} is not a tflc Pass subclass")
    if not _NAME_RE.match(cls.name or ""):
        raise ValueError(f"pass name {cls.name!r} must be kebab-case (e.g. 'fold-constants')")
    if not cls.description:
        raise ValueError(f"pass {cls.name!r} needs a one-line description")
    if not dataclasses.is_dataclass(cls.Options):
        raise TypeError(f"pass {cls.name!r}: Options must be a dataclass")
    unknown = sorted(set(cls.needs) - set(all_analyses()))
    if unknown:
        raise ValueError(f"pass {cls.name!r} needs unknown analyses {', '.join(unknown)} "
                         f"(registered: {', '.join(all_analyses())})")


def _load() -> None:
    global _loaded
    if _loaded:
        return
    _loaded = True
    from . import passes as builtin
    for info in pkgutil.iter_modules(builtin.__path__):
        if not info.name.startswith("_"):
            mod = importlib.import_module(f"{builtin.__name__}.{info.name}")
            for obj in vars(mod).values():  # idempotent: also after a registry reset
                if (isinstance(obj, type) and issubclass(obj, Pass) and obj.__module__ == mod.__name__ and obj.name
                        and not obj.__name__.startswith("_")):      # _Private passes are phases of a pass
                    register(obj)
    for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
        try:
            cls = ep.load()
            _validate(cls)
        except Exception as e:  # a broken plug-in must not break tflc
            warnings.warn(f"tflc: skipping pass plug-in {ep.name!r} ({ep.value}): {e}", stacklevel=2)
            continue
        if cls.name in _REGISTRY:
            warnings.warn(f"tflc: plug-in pass {cls.name!r} ({ep.value}) clashes with an existing pass; skipped",
                          stacklevel=2)
            continue
        _REGISTRY[cls.name] = cls
        _ORIGIN[cls.name] = ep.dist.name if getattr(ep, "dist", None) else ep.value


def all_passes() -> dict[str, type[Pass]]:
    _load()
    return dict(sorted(_REGISTRY.items()))


def origin(name: str) -> str:
    _load()
    return _ORIGIN.get(name, "?")


def get_pass(name: str) -> type[Pass]:
    passes = all_passes()
    if name not in passes:
        import difflib
        close = difflib.get_close_matches(name, passes, n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else " (see 'tflc passes')"
        raise UsageError(f"unknown pass '{name}'{hint}")
    return passes[name]


# --- sequences of passes: the pass manager is itself a pass ---

def check_needs(p: Pass, ctx: Any) -> None:
    """A pass's ``needs`` name registered analyses; those that need data must have it."""
    known = all_analyses()
    for need in sorted(p.needs):
        if need not in known:
            raise UsageError(f"pass '{p.name}' needs the analysis '{need}', which is not registered "
                             f"(analyses: {', '.join(known)})")
        if known[need].needs_inputs and ctx.input_source is None:
            raise UsageError(f"pass '{p.name}' needs {known[need].description}: give --inputs DATA.npz or an "
                             "image folder")


def run_pass(p: Pass, model: Any, ctx: Any, *, where: str | None = None) -> tuple[bool, list[str]]:
    """One pass: run it, verify the IR (naming the pass), invalidate the analyses it did not
    preserve. Returns (changed, invalidated analyses)."""
    check_needs(p, ctx)
    changed = bool(p.run(model, ctx))
    verify(model, after=where or p.name)
    return changed, ctx.analyses.after_pass(model, changed, p.preserves)


class PassManager(Pass):
    """A sequence of passes that is itself a pass.

    ``max_iterations`` > 1 repeats the sequence until an iteration changes nothing (a fixpoint),
    at most that many times; a sequence still changing at the bound says so in a note. Every
    sub-pass is verified and invalidates analyses like a top-level pass (the manager itself then
    preserves everything: nothing is left to invalidate); a nested manager reports as one pass
    (its own name) in the pipeline's records.
    """

    name: ClassVar[str] = "pass-manager"
    description: ClassVar[str] = "run a sequence of passes (to a fixpoint, bounded)"
    #: the sub-passes of a registered subclass (instantiated fresh for every manager)
    phases: ClassVar[tuple[type[Pass], ...]] = ()
    max_iterations: int = 1
    preserves: ClassVar[frozenset[str]] = frozenset({"*"})

    def __init__(self, options: Any = None, *, passes: Sequence[Pass] | None = None,
                 max_iterations: int | None = None, **kwargs: Any):
        super().__init__(options, **kwargs)
        self.passes: list[Pass] = list(passes) if passes is not None else [cls() for cls in self.phases]
        if max_iterations is not None:
            self.max_iterations = max_iterations
        if self.max_iterations < 1:
            raise ValueError("max_iterations must be at least 1")
        self.iterations = 0
        # a sequence may cost what its worst pass costs, and needs what any of them needs
        self.tolerance = max([type(self).tolerance] + [p.tolerance for p in self.passes])
        self.needs = frozenset(type(self).needs).union(*(p.needs for p in self.passes))

    def run(self, model: Any, ctx: Any) -> bool:
        changed = False
        self.iterations = 0
        for _ in range(self.max_iterations):
            self.iterations += 1
            step = False
            for p in self.passes:
                step |= run_pass(p, model, ctx, where=f"{self.name}/{p.name}" if p.name != self.name else None)[0]
            changed |= step
            if not step:
                return changed
        if self.max_iterations > 1:
            ctx.note(f"{self.name}: still changing after {self.max_iterations} iterations; stopped there")
        return changed


# --- option parsing:  name{key=value,key=value}  ---

def _convert(cls_name: str, fld: dataclasses.Field, raw: str, hints: dict) -> Any:
    t = hints.get(fld.name, str)
    origin_t = typing.get_origin(t)
    args = [a for a in typing.get_args(t) if a is not type(None)]
    if origin_t is typing.Union or str(origin_t) == "<class 'types.UnionType'>":
        t = args[0] if args else str
        origin_t = typing.get_origin(t)
    try:
        if t is bool:
            if raw.lower() in ("1", "true", "yes", "on"):
                return True
            if raw.lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError(raw)
        if t in (int, float, str):
            return t(raw)
        if origin_t in (list, tuple):
            inner = typing.get_args(t)[0] if typing.get_args(t) else str
            vals = [inner(v) for v in raw.split(":") if v]
            return vals if origin_t is list else tuple(vals)
    except ValueError:
        raise UsageError(f"pass '{cls_name}': option '{fld.name.replace('_', '-')}' expects "
                         f"{getattr(t, '__name__', t)}, got {raw!r}") from None
    return raw


def make_options(cls: type[Pass], raw: dict[str, str]) -> Any:
    fields = {f.name: f for f in dataclasses.fields(cls.Options)}
    hints = typing.get_type_hints(cls.Options)
    values = {}
    for key, val in raw.items():
        fname = key.replace("-", "_")
        if fname not in fields:
            known = ", ".join(k.replace("_", "-") for k in fields) or "none"
            raise UsageError(f"pass '{cls.name}' has no option '{key}' (options: {known})")
        values[fname] = _convert(cls.name, fields[fname], val, hints)
    try:
        return cls.Options(**values)   # an Options.__post_init__ may reject values: ValueError
    except (ValueError, TypeError) as e:
        raise UsageError(f"pass '{cls.name}': {e}") from None


def split_pipeline(text: str) -> list[str]:
    """Split ``a,b{x=1,y=2},c`` at top-level commas."""
    parts, depth, cur = [], 0, ""
    for ch in text:
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
            if depth < 0:
                raise UsageError(f"unbalanced '}}' in pass list {text!r}")
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    if depth:
        raise UsageError(f"unbalanced '{{' in pass list {text!r}")
    parts.append(cur)
    parts = [p.strip() for p in parts]
    if not any(parts):
        raise UsageError("empty pass list (use -O0 for no passes)")
    if not all(parts):
        raise UsageError(f"empty entry in pass list {text!r}")
    return parts


def parse_pipeline(text: str) -> list[Pass]:
    """``fold-constants{max-bytes=4096},remove-dead-code`` -> configured Pass objects."""
    out = []
    for item in split_pipeline(text):
        m = re.fullmatch(r"([A-Za-z0-9_-]+)(?:\{(.*)\})?", item, re.S)
        if not m:
            raise UsageError(f"bad pass spec {item!r}: expected NAME or NAME{{key=value,...}}")
        cls = get_pass(m.group(1))
        raw: dict[str, str] = {}
        for kv in (m.group(2) or "").split(","):
            if not kv.strip():
                continue
            k, sep, v = kv.partition("=")
            if not sep:
                raise UsageError(f"pass '{cls.name}': option {kv!r} needs a value (key=value)")
            if k.strip() in raw:
                raise UsageError(f"pass '{cls.name}': option '{k.strip()}' given twice")
            raw[k.strip()] = v.strip()
        out.append(cls(make_options(cls, raw)))
    return out


def describe_options(cls: type[Pass]) -> list[dict]:
    hints = typing.get_type_hints(cls.Options)
    out = []
    for f in dataclasses.fields(cls.Options):
        default = f.default if f.default is not dataclasses.MISSING else (
            f.default_factory() if f.default_factory is not dataclasses.MISSING else None)
        t = hints.get(f.name, str)
        out.append({"name": f.name.replace("_", "-"), "type": getattr(t, "__name__", str(t)),
                    "default": default, "help": f.metadata.get("help", "")})
    return out
