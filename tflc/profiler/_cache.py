"""The profiler's small JSON caches (calibrations measured once per LiteRT version and machine)."""
from __future__ import annotations

import json
from pathlib import Path


def read_cached(path: Path, key: str) -> dict | None:
    """The cached measurement at ``path`` if it is readable and holds a number under ``key``."""
    if not path.is_file():
        return None
    try:
        d = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return d if isinstance(d, dict) and isinstance(d.get(key), (int, float)) else None


def write_cached(path: Path, data: dict) -> None:
    """Write ``data`` atomically; a cache that cannot be written is not an error."""
    from ..errors import UsageError
    from ..paths import atomic_writer
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_writer(path, "w") as f:
            f.write(json.dumps(data, indent=1))
    except (OSError, UsageError):
        pass
