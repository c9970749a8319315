"""The pass contract, the registry, and per-pass option parsing.

A pass is a class with a kebab-case ``name`` (its CLI flag, registry key and test name), a
one-line ``description``, an ``Options`` dataclass (typed options), what it ``needs`` from the
context ("profile", "calibration"), and ``run(model, ctx) -> bool`` (True if it changed the model).
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
from typing import Any, Callable, ClassVar

from .errors import UsageError

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
    needs: ClassVar[frozenset[str]] = frozenset()     # {"profile", "calibration"}
    #: largest relative output error the pass may introduce (0.0: bit-identical outputs)
    tolerance: ClassVar[float] = 0.0

    def __init__(self, options: Any = None, **kwargs: Any):
        if options is None:
            options = self.Options(**kwargs)
        self.options = options

    def run(self, model, ctx) -> bool:  # pragma: no cover - abstract
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"<pass {self.name} {self.options}>"


def function_pass(name: str, description: str, *, options: type = NoOptions,
                  needs: frozenset[str] = frozenset(), tolerance: float = 0.0) -> Callable[[Callable], type]:
    """Make a Pass class from ``fn(model, ctx, options) -> bool``."""
    def wrap(fn: Callable) -> type:
        cls = type(fn.__name__, (Pass,), {
            "name": name, "description": description, "Options": options, "needs": needs,
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
                if isinstance(obj, type) and issubclass(obj, Pass) and obj.__module__ == mod.__name__ and obj.name:
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
