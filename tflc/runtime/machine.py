"""The CPU a measurement was made on: int8 pays on CPUs with VNNI (x86) or dot-product (ARM)
instructions and barely on AVX2 alone, so every latency figure says which it came from."""
from __future__ import annotations

import os
import platform
import re
from typing import Any

#: the instruction sets XNNPACK's int8 and float kernels pick from, as /proc/cpuinfo names them
ISA_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "avx512vbmi", "asimddp", "i8mm")


def machine() -> dict[str, Any]:
    """``{"cpu", "cores", "machine", "flags": [the ISA_FLAGS present], "avx2", "avx512_vnni"}``
    (the booleans None where /proc/cpuinfo cannot be read)."""
    info: dict[str, Any] = {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
                            "machine": platform.machine(), "flags": [], "avx2": None, "avx512_vnni": None}
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            text = f.read()
    except OSError:
        return info
    m = re.search(r"^model name\s*:\s*(.+)$", text, re.M)
    if m:
        info["cpu"] = m.group(1).strip()
    flags = re.search(r"^(?:flags|Features)\s*:\s*(.+)$", text, re.M)
    if flags:
        fl = set(flags.group(1).split())
        info["flags"] = [f for f in ISA_FLAGS if f in fl]
        info["avx2"], info["avx512_vnni"] = "avx2" in fl, "avx512_vnni" in fl
    return info


def describe(info: dict[str, Any] | None = None) -> str:
    """One line: 'AMD EPYC, 2 cores, x86_64, flags avx2 avx512f avx512_vnni ...'."""
    info = info or machine()
    flags = " ".join(info.get("flags") or []) or "none of " + "/".join(ISA_FLAGS)
    return f"{info.get('cpu')}, {info.get('cores')} cores, {info.get('machine')}, flags {flags}"
