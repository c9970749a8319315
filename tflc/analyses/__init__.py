"""Analyses: facts about a model that passes ask for, computed on demand and cached.

An analysis has a name, a description and ``compute(model, ctx) -> value``. Passes ask
``ctx.analyses.get("profile", model, ctx)``; the manager computes once per model state and keeps
the result until a pass that changed the model does not declare the analysis preserved
(``Pass.preserves``), as LLVM's analysis manager does with ``PreservedAnalyses``. A mutation
outside a pass (or inside one, after it asked) is caught by the model's version stamp: the value
is then computed again.

Registered here: ``profile`` (per-op latency in LiteRT, ``tflc.profiler``), ``shapes`` (every
tensor's shape as LiteRT computes it for the context's input shapes), ``partition`` and
``calibration`` (every tensor's range on calibration samples, for quantize-int8).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Iterable

__all__ = ["ALL", "Analysis", "AnalysisManager", "all_analyses", "analysis", "get_analysis"]

#: ``Pass.preserves = ALL``: the pass keeps every analysis valid (e.g. it only renames).
ALL = frozenset({"*"})


@dataclass(frozen=True)
class Analysis:
    name: str
    description: str
    compute: Callable[[Any, Any], Any]
    #: needs the user's inputs (``--inputs``), e.g. calibration ranges; generated data will not do
    needs_inputs: bool = False


_REGISTRY: dict[str, Analysis] = {}


def analysis(name: str, description: str, *, needs_inputs: bool = False,
             ) -> Callable[[Callable[[Any, Any], Any]], Callable[[Any, Any], Any]]:
    """Decorator registering ``compute(model, ctx)`` as the analysis ``name``."""
    def wrap(fn: Callable[[Any, Any], Any]) -> Callable[[Any, Any], Any]:
        old = _REGISTRY.get(name)
        if old is not None and old.compute.__qualname__ != fn.__qualname__:
            raise ValueError(f"two analyses named {name!r}")
        _REGISTRY[name] = Analysis(name, description, fn, needs_inputs)
        return fn
    return wrap


def all_analyses() -> dict[str, Analysis]:
    _load_builtin()
    return dict(sorted(_REGISTRY.items()))


def get_analysis(name: str) -> Analysis:
    known = all_analyses()
    if name not in known:
        raise KeyError(f"unknown analysis {name!r} (known: {', '.join(known)})")
    return known[name]


def _load_builtin() -> None:
    from . import calibration, partition, profile, shapes  # noqa: F401  (their decorators register them)


class AnalysisManager:
    """Caches each analysis for one model state and invalidates what a pass did not preserve."""

    def __init__(self) -> None:
        self._cache: dict[str, tuple[tuple, Any]] = {}     # name -> (model version stamp, value)
        self.hits = 0
        self.computed: list[str] = []                       # in order, for reports and tests

    def get(self, name: str, model: Any, ctx: Any) -> Any:
        stamp = model.version_stamp
        hit = self._cache.get(name)
        if hit is not None and hit[0] == stamp:
            self.hits += 1
            return hit[1]
        value = get_analysis(name).compute(model, ctx)
        self._cache[name] = (model.version_stamp, value)
        self.computed.append(name)
        return value

    def cached(self) -> list[str]:
        return sorted(self._cache)

    def after_pass(self, model: Any, changed: bool, preserves: Iterable[str]) -> list[str]:
        """Called by the pass manager after each pass: a pass that changed the model keeps only the
        analyses it preserves (re-stamped to the new model state). Returns the invalidated names."""
        if not changed:
            return []
        keep = set(preserves)
        dropped = [n for n in self._cache if not (keep & {n, "*"})]
        stamp = model.version_stamp
        self._cache = {n: (stamp, v) for n, (_, v) in self._cache.items() if n not in dropped}
        return dropped

    def invalidate(self, name: str | None = None) -> None:
        if name is None:
            self._cache.clear()
        else:
            self._cache.pop(name, None)
