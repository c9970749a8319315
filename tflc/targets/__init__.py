"""Delegate targets as data: which ops a delegate takes, under which conditions, and why not.

A :class:`Target` maps op types (builtin names, or a custom op's code) to capability predicates
(``tflc.capabilities``) answering ``(ok, reason)`` for one op. It records what it describes (the
runtime and its version) and where its rules come from (source file, measurement), so a reader
can check it, and ``tflc partition --target NAME`` can say, for every op left on the CPU, the
precise reason. ``tflc.targets.plan`` turns the per-op answers into the partitions LiteRT builds.

Targets register themselves by name in :data:`TARGETS` when their module is imported.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Mapping

from ..capabilities import Predicate, Result
from ..ir.core import Model, Operator, Subgraph

__all__ = ["TARGETS", "Target", "get_target", "target_names"]


@dataclass(frozen=True)
class Target:
    """What one delegate takes. ``rules[op_type]`` decides an op of that type; an op type without a
    rule is not taken (``unlisted`` says why, ``{op}`` replaced by its type)."""

    name: str
    title: str                         # "LiteRT's XNNPACK delegate"
    runtime: str                       # the runtime and version the rules describe
    source: str                        # where the rules come from
    rules: Mapping[str, Predicate]
    unlisted: str = "{op} is not supported by {title}"
    #: a delegate that keeps only this many partitions (the largest), the rest run on the CPU
    max_partitions: int | None = None
    #: checks on the whole model before any op (e.g. "the model is int16x8"): reason or ""
    model_check: Callable[[Model], str] | None = None
    #: decisions that depend on neighbours, after the per-op checks (e.g. XNNPACK takes a constant
    #: DEQUANTIZE only if nothing it refuses reads it): ``finalize(subgraph, decisions) -> decisions``
    finalize: Callable[[Subgraph, list], list] | None = None
    notes: tuple[str, ...] = field(default_factory=tuple)

    def check(self, op: Operator) -> Result:
        rule = self.rules.get(op.type)
        if rule is None:
            return False, self.unlisted.format(op=op.type, title=self.title, runtime=self.runtime)
        return rule(op)

    def describe(self) -> dict[str, str]:
        """op type -> its condition in words (for docs and ``tflc partition --rules``)."""
        return {name: rule.describe() for name, rule in sorted(self.rules.items())}


TARGETS: dict[str, Target] = {}


def register_target(target: Target) -> Target:
    if target.name in TARGETS and TARGETS[target.name] is not target:
        raise ValueError(f"two targets named {target.name!r}")
    TARGETS[target.name] = target
    return target


def _load() -> None:
    from . import xnnpack  # noqa: F401  (registers itself)
    from . import gpu  # noqa: F401
    from . import nnapi  # noqa: F401
    from . import ethos_u  # noqa: F401
    from . import tflc  # noqa: F401


def target_names() -> list[str]:
    _load()
    return sorted(TARGETS)


def get_target(name: str) -> Target:
    from ..errors import UsageError
    _load()
    if name not in TARGETS:
        raise UsageError(f"unknown target '{name}' (choose from {', '.join(sorted(TARGETS))})")
    return TARGETS[name]
