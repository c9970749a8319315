"""Ask Arm's Vela compiler which ops of an int8 model it puts on the Ethos-U NPU.

Vela (``ethos-u-vela`` on PyPI) compiles a TFLite model offline: the ops it can run on the NPU
become ``ethos-u`` custom ops holding the command stream; every other op is written out as it was,
for the CPU. So the ops that remain in Vela's output file (other than ``ethos-u``) are the CPU
ones; they keep their tensors' names, which match them back to the ops of the input model. Every
other op of the input went to the NPU.

:func:`run_vela` runs the ``vela`` command in a subprocess, in a temporary directory, and returns
that split per subgraph, with the reason Vela printed for each op it left on the CPU. The
accelerator is Vela's default (``ethos-u55-256``) unless another is named; its constraints are
the same for every Ethos-U55/U65 configuration. Nothing here imports LiteRT or Vela itself.
"""
from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from ..ir.core import Model, Operator

__all__ = ["DEFAULT_ACCELERATOR", "VelaError", "VelaResult", "find_vela", "run_vela", "vela_version"]

#: Vela's own default (``vela --help``: "--accelerator-config ... (default: ethos-u55-256)")
DEFAULT_ACCELERATOR = "ethos-u55-256"
NPU_OP = "ethos-u"


class VelaError(RuntimeError):
    """Vela is missing, failed, or wrote something this module cannot match to the input."""


@dataclass
class VelaResult:
    accelerator: str
    version: str
    npu: dict[int, list[int]]                 # subgraph -> op indices Vela put on the NPU
    cpu: dict[int, list[int]]                 # subgraph -> op indices left on the CPU
    npu_ops_in_output: dict[int, int]         # subgraph -> number of ethos-u ops (NPU partitions) written
    reasons: dict[tuple[int, int], str] = field(default_factory=dict)   # (subgraph, op) -> Vela's words
    log: str = ""

    def on_npu(self, subgraph: int, index: int) -> bool:
        return index in self.npu.get(subgraph, [])


def find_vela() -> str | None:
    """The ``vela`` executable: $TFLC_VELA, next to this Python, or on PATH (None if there is none)."""
    env = os.environ.get("TFLC_VELA")
    if env:
        return env if Path(env).exists() else None
    beside = Path(sys.executable).with_name("vela")
    if beside.exists():
        return str(beside)
    return shutil.which("vela")


def vela_version(vela: str | None = None) -> str:
    vela = vela or find_vela()
    if vela is None:
        raise VelaError("vela is not installed (pip install ethos-u-vela)")
    return _version(vela)


@functools.lru_cache(maxsize=8)
def _version(vela: str) -> str:
    out = subprocess.run([vela, "--version"], capture_output=True, text=True, timeout=60)
    return out.stdout.strip() or out.stderr.strip()


def run_vela(model: Model | str | os.PathLike, accelerator: str = DEFAULT_ACCELERATOR, *, vela: str | None = None,
             timeout: float = 600) -> VelaResult:
    """Compile ``model`` (a file, or an IR model written to a temporary file) with Vela for
    ``accelerator`` and return which ops it put on the NPU."""
    from ..io import read_model, write_model
    vela = vela or find_vela()
    if vela is None:
        raise VelaError("vela is not installed (pip install ethos-u-vela)")
    with tempfile.TemporaryDirectory(prefix="tflc-vela-") as tmp:
        tmpdir = Path(tmp)
        if isinstance(model, Model):
            src = tmpdir / "model.tflite"
            write_model(model, src)
            source = model
        else:
            src = tmpdir / "model.tflite"
            shutil.copyfile(model, src)
            source = read_model(src)
        out_dir = tmpdir / "out"
        cmd = [vela, str(src), "--output-dir", str(out_dir), "--accelerator-config", accelerator]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=tmpdir)
        log = proc.stdout + proc.stderr
        written = out_dir / "model_vela.tflite"
        if proc.returncode != 0 or not written.exists():
            raise VelaError(f"vela failed (exit {proc.returncode}) on {model}:\n{log[-4000:]}")
        compiled = read_model(written)
    result = _split(source, compiled, log)
    result.accelerator = accelerator
    result.version = vela_version(vela)
    return result


def _signature(op: Operator) -> tuple:
    """What identifies an op across Vela's rewrite: its type and output names (an op without outputs,
    such as ASSIGN_VARIABLE: its input names)."""
    outs = tuple(t.name for t in op.outputs if t is not None)
    if outs:
        return (op.type, "out", outs)
    return (op.type, "in", tuple(t.name for t in op.inputs if t is not None))


def _split(source: Model, compiled: Model, log: str) -> VelaResult:
    if len(compiled.subgraphs) != len(source.subgraphs):
        raise VelaError(f"Vela wrote {len(compiled.subgraphs)} subgraphs for {len(source.subgraphs)}")
    npu: dict[int, list[int]] = {}
    cpu: dict[int, list[int]] = {}
    partitions: dict[int, int] = {}
    for si, (sg, out_sg) in enumerate(zip(source.subgraphs, compiled.subgraphs)):
        left = Counter(_signature(op) for op in out_sg.operators if op.type != NPU_OP)
        partitions[si] = sum(op.type == NPU_OP for op in out_sg.operators)
        npu[si], cpu[si] = [], []
        for i, op in enumerate(sg.operators):
            sig = _signature(op)
            if left[sig] > 0:
                left[sig] -= 1
                cpu[si].append(i)
            else:
                npu[si].append(i)
        unmatched = [s for s, n in left.items() if n > 0]
        if unmatched:
            raise VelaError(f"subgraph {si}: Vela's output has CPU ops that match no input op: {unmatched[:5]}")
    result = VelaResult("", "", npu, cpu, partitions, log=log)
    result.reasons = _reasons(source, cpu, log)
    return result


_WARNING = re.compile(r"Warning \(supported operators\) operator: (?P<op>\S+), ofm: '(?P<ofm>[^']*)'\n"
                      r"Reason: (?P<reason>[^\n]*)(?:\n(?P<detail>(?!Warning)[^\n]+))?")


def _reasons(source: Model, cpu: dict[int, list[int]], log: str) -> dict[tuple[int, int], str]:
    """Vela's printed reason per CPU op, matched by the op's first output name."""
    said: dict[str, list[str]] = defaultdict(list)
    for m in _WARNING.finditer(log):
        text = m.group("reason") + (f" ({m.group('detail')})" if m.group("detail") else "")
        said[m.group("ofm")].append(text)
    out = {}
    for si, idx in cpu.items():
        ops = source.subgraphs[si].operators
        for i in idx:
            names = [t.name for t in ops[i].outputs if t is not None]
            if names and said.get(names[0]):
                out[(si, i)] = said[names[0]][0]
    return out
