"""docs/writing-a-pass.md: the worked example runs, as a plug-in found through entry points."""
from __future__ import annotations

import re
import sys
from pathlib import Path

import numpy as np

from tflc import passes_api
from tflc.cli.main import main
from tflc.io import read_model, write_model
from tflc.ir.core import Operator
from tflc.rewrite import builtin_opcode
from tflc.schema import fb

DOC = Path(__file__).resolve().parents[1] / "docs" / "writing-a-pass.md"


def _install_plugin(tmp_path: Path, monkeypatch) -> None:
    """Lay out the doc's example as an installed package with a tflc.passes entry point."""
    text = DOC.read_text()
    code = re.search(r"```python\n# my_passes/mul_by_one.py\n(.*?)```", text, re.S).group(1)
    ep = re.search(r'```toml\n\[project.entry-points."tflc.passes"\]\n(.*?)\n```', text, re.S).group(1)
    pkg = tmp_path / "site" / "my_passes"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "mul_by_one.py").write_text(code)
    dist = tmp_path / "site" / "my_passes-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: my-passes\nVersion: 1.0\n")
    name, value = [s.strip().strip('"') for s in ep.split("=", 1)]
    (dist / "entry_points.txt").write_text(f"[tflc.passes]\n{name} = {value}\n")
    passes_api.all_passes()
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    monkeypatch.setattr(passes_api, "_loaded", False)
    monkeypatch.setattr(passes_api, "_REGISTRY", dict(passes_api._REGISTRY))
    monkeypatch.setattr(passes_api, "_ORIGIN", dict(passes_api._ORIGIN))
    for mod in [m for m in sys.modules if m.startswith("my_passes")]:
        del sys.modules[mod]


def _model_with_mul_by_one(example_model, tmp_path) -> Path:
    m = read_model(example_model)
    sg = m.main
    out = sg.outputs[0]
    ones = sg.new_constant("ones", np.ones(out.shape, np.float32))
    mid = sg.new_tensor("pre_mul", out.dtype, out.shape)
    prod = out.producer
    sg.set_output(prod, 0, mid)
    sg.add_op(Operator(builtin_opcode("MUL"), [mid, ones], [out], options=fb.MulOptionsT(),
                       options_type=fb.BuiltinOptions.MulOptions))
    path = tmp_path / "with_mul.tflite"
    write_model(m, path)
    return path


def test_doc_example_plugin_pass(example_model, tmp_path, monkeypatch, capsys):
    _install_plugin(tmp_path, monkeypatch)
    assert main(["passes"]) == 0
    listing = capsys.readouterr().out
    assert "remove-mul-by-one" in listing and "from my-passes" in listing

    src = _model_with_mul_by_one(example_model, tmp_path)
    n_mul = sum(op.type == "MUL" for op in read_model(src).operators())
    out = tmp_path / "out.tflite"
    assert main(["optimize", str(src), "-o", str(out), "--passes", "remove-mul-by-one{verbose=true},remove-dead-code"]) == 0
    capsys.readouterr()
    m = read_model(out)
    assert sum(op.type == "MUL" for op in m.operators()) == n_mul - 1
    assert m.main.outputs[0].name == read_model(src).main.outputs[0].name


def test_doc_python_snippet(example_model, tmp_path, monkeypatch):
    text = DOC.read_text()
    code = re.search(r"## From Python\n\n```python\n(.*?)```", text, re.S).group(1)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "model.tflite").write_bytes(example_model.read_bytes())
    exec(compile(code, "writing-a-pass.md", "exec"), {})
    assert read_model(tmp_path / "out.tflite").main.operators
