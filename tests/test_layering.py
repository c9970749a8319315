"""The layering is a contract: IR -> runtime -> analyses -> passes -> pipeline -> CLI and reports.

The contracts live in pyproject.toml ([tool.importlinter]); this test runs import-linter on the
source tree, looks for import cycles, and checks that tflc.runtime is the only code that opens a
LiteRT interpreter or compiled model.
"""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import networkx as nx
import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("tflc", "passes", "kernels")


def test_import_contracts_hold():
    exe = Path(sys.executable).with_name("lint-imports")
    if not exe.exists():
        pytest.fail("import-linter is not installed: pip install -e '.[dev]'")
    res = subprocess.run([str(exe), "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout[-4000:] + res.stderr[-2000:]
    summary = res.stdout.lower().split("contracts:")[-1].split("\n")[0]      # " 3 kept, 0 broken."
    assert not re.search(r"\b[1-9]\d* broken", summary), summary


def _import_graph() -> nx.DiGraph:
    import grimp
    sys.path.insert(0, str(ROOT))
    try:
        g = grimp.build_graph(*PACKAGES, cache_dir=None)
    finally:
        sys.path.remove(str(ROOT))
    dg = nx.DiGraph()
    for m in g.modules:
        for imported in g.find_modules_directly_imported_by(m):
            dg.add_edge(m, imported)
    return dg


def test_no_import_cycles():
    """No module reaches itself through imports (lazy imports inside functions count too: a cycle
    of lazy imports is still a tangle of layers)."""
    g = _import_graph()
    # a package's __init__ re-exporting its own submodules is not a cycle between layers
    g.remove_edges_from([(a, b) for a, b in list(g.edges) if b.startswith(a + ".") or a.startswith(b + ".")])
    cycles = [c for c in nx.simple_cycles(g) if len(c) > 1]
    assert not cycles, "import cycles: " + "; ".join(" -> ".join(c + [c[0]]) for c in cycles[:5])


_OPENS_LITERT = re.compile(r"\b(Interpreter|CompiledModel|InterpreterWithCustomOps)\s*\(|LiteRtCreateCompiledModel|"
                           r"from ai_edge_litert(\.interpreter)? import|import ai_edge_litert")


def test_runtime_is_the_only_door_to_litert():
    offenders = []
    for pkg in PACKAGES:
        for path in sorted((ROOT / pkg).rglob("*.py")):
            rel = path.relative_to(ROOT).as_posix()
            if rel.startswith("tflc/runtime/") or rel == "tflc/schema.py" or rel.startswith("tflc/testing/"):
                continue
            for n, line in enumerate(path.read_text().splitlines(), 1):
                if _OPENS_LITERT.search(line) and not line.lstrip().startswith("#"):
                    offenders.append(f"{rel}:{n}: {line.strip()}")
    assert not offenders, "LiteRT opened outside tflc/runtime:\n" + "\n".join(offenders)
