"""passes/ and kernels/ install as tflc.passes and tflc.kernels, never as top-level modules."""
from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_wheel_layout(tmp_path):
    p = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(REPO)],
                       capture_output=True, text=True)
    assert p.returncode == 0, p.stderr[-2000:]
    wheel = next(tmp_path.glob("tflc-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/")[0] for n in names}
    assert tops == {"tflc", next(n.split("/")[0] for n in names if ".dist-info/" in n)}, tops
    for f in ("tflc/passes/__init__.py", "tflc/passes/remove_dead_code.py", "tflc/kernels/__init__.py",
              "tflc/ir/core.py", "tflc/cli/main.py"):
        assert f in names, f
    # every module of the source tree ships (a package missing from pyproject's list would not)
    sources = {f"tflc/{p.relative_to(REPO / 'tflc').as_posix()}" for p in (REPO / "tflc").rglob("*.py")}
    sources |= {f"tflc/{d}/{p.relative_to(REPO / d).as_posix()}" for d in ("passes", "kernels")
                for p in (REPO / d).rglob("*.py")}
    missing = sorted(s for s in sources if s not in names and "__pycache__" not in s)
    assert not missing, f"not in the wheel (add the package to [tool.setuptools] packages): {missing}"
    entry = next(n for n in names if n.endswith("entry_points.txt"))
    assert "tflc = tflc.cli.main:main" in zipfile.ZipFile(wheel).read(entry).decode()


def test_installed_names():
    import tflc.kernels
    import tflc.passes
    assert tflc.passes.__name__ == "tflc.passes" and tflc.kernels.__name__ == "tflc.kernels"
