"""The pass manager's notes, grouped for people.

Passes record notes as plain strings (``ctx.note(msg)``); the rules of ``tflc.rewrite`` write
"fold-pad: kept CONV_2D 'name': reason". On a real model the same reason comes back for many
ops, each line carrying a tensor name that can run to hundreds of characters, and the one thing
to learn ("fold-pad kept 5 CONV_2D: ...") is lost among them. Here notes are grouped by their
source (the text before the first ": ") and their text with the names taken out; a group is one
line that counts the ops by type, and ``verbose`` lists the names below it. The notes themselves
are untouched: --json keeps every one of them.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Sequence

#: "source: kept TYPE 'name': reason" (tflc.rewrite.apply_rules, tflc.evaluate)
_KEPT = re.compile(r"^(?P<src>[^\s:]+): kept (?P<type>[A-Z][A-Z0-9_]*) '(?P<name>.*?)': (?P<reason>.+)$", re.S)
#: "source: anything else"
_SOURCE = re.compile(r"^(?P<src>[^\s:']+): (?P<text>.+)$", re.S)
#: a name in quotes, with the parentheses around it when it is an aside: "the ADD before it ('x') is".
#: A quote opens only after a non-word character and closes only before one, so that the
#: apostrophes of "a layer norm's" or "the statistics' own input" are not taken for quotes.
_ASIDE = re.compile(r"\s*\((?<!\w)'[^']*'(?!\w)\)")
_QUOTED = re.compile(r"(?<!\w)'[^']*'(?!\w)")


def strip_names(text: str) -> str:
    """``text`` with the quoted names taken out: an aside "('name')" goes, a name in the sentence
    becomes "…", so that the same reason about other ops reads the same."""
    return _QUOTED.sub("…", _ASIDE.sub("", text))


@dataclass
class NoteGroup:
    source: str                      # the pass (or rule) that wrote the notes: "fold-pad"; "" if none
    text: str                        # the shared text, names taken out ("kept" notes: the reason)
    kept: dict[str, list[str]] = field(default_factory=dict)   # "kept" notes: op type -> op names
    notes: list[str] = field(default_factory=list)             # the notes as written, in order

    @property
    def count(self) -> int:
        return len(self.notes)

    def summary(self) -> str:
        """One line: "fold-pad kept 5 ops (3 CONV_2D, 2 DEPTHWISE_CONV_2D): reason"."""
        src = f"{self.source} " if self.source else ""
        if self.kept:
            n = sum(len(v) for v in self.kept.values())
            if len(self.kept) == 1:
                what = f"{n} {next(iter(self.kept))}"
            else:
                what = f"{n} ops ({', '.join(f'{len(v)} {t}' for t, v in self.kept.items())})"
            return f"{src}kept {what}: {self.text}"
        if self.count == 1:          # a single note keeps its names: they are what it says
            return self.notes[0]
        return f"{src.rstrip()}: {self.text} ({self.count} times)" if src else f"{self.text} ({self.count} times)"

    def details(self) -> list[str]:
        """What --verbose adds below the summary: the ops' names, or the notes as written."""
        if self.kept:
            return [f"{t} '{name}'" for t, names in self.kept.items() for name in names]
        return self.notes if self.count > 1 else []


def group_notes(notes: Sequence[str]) -> list[NoteGroup]:
    """Group ``notes`` by source and text with the names taken out, in order of first appearance."""
    groups: dict[tuple[str, bool, str], NoteGroup] = {}
    for note in notes:
        m = _KEPT.match(note)
        if m:
            key = (m["src"], True, strip_names(m["reason"]))
            g = groups.setdefault(key, NoteGroup(m["src"], key[2]))
            g.kept.setdefault(m["type"], []).append(m["name"])
        else:
            s = _SOURCE.match(note)
            src, text = (s["src"], s["text"]) if s else ("", note)
            key = (src, False, strip_names(text))
            g = groups.setdefault(key, NoteGroup(src, key[2]))
        g.notes.append(note)
    return list(groups.values())


def note_lines(notes: Sequence[str], *, verbose: bool = False, indent: str = "") -> list[str]:
    """The notes as lines: one per group, and with ``verbose`` each group's names below it."""
    out = []
    for g in group_notes(notes):
        out.append(f"{indent}note: {g.summary()}")
        if verbose:
            out += [f"{indent}      {d}" for d in g.details()]
    return out


def hidden_details(notes: Sequence[str]) -> int:
    """How many notes a grouped, non-verbose rendering folds away (0: nothing to see with -v)."""
    return sum(len(g.details()) for g in group_notes(notes))
