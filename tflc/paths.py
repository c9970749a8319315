"""Paths tflc writes: checked before any work is done, written atomically, never the input.

``check_output_path`` refuses what a compiler must not write over (the input, a directory, a
device or FIFO, a read-only file, a missing or unwritable folder) and resolves symbolic links,
so that the rename replaces the link's target, not the link. ``atomic_writer`` writes to a
temporary file in the same folder and renames it into place, with the permissions a normal
file would get (umask), and leaves nothing behind on failure.
"""
from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from pathlib import Path
from typing import IO, Iterator, Sequence

from .errors import UsageError


def _same(a: Path, b: Path) -> bool:
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return a.resolve() == b.resolve()


def check_output_path(path: str | os.PathLike, *, flag: str = "-o", not_same_as: Sequence[str | os.PathLike] = (),
                      suffix: str | None = None) -> Path:
    if str(path) == "":
        raise UsageError(f"{flag}: empty path")
    p = Path(path)
    for other in not_same_as:
        if _same(Path(other), p) or Path(other).resolve() == p.resolve():
            raise UsageError(f"{flag} {p}: refusing to overwrite {other}; choose another path")
    if suffix is not None and p.suffix.lower() != suffix:
        raise UsageError(f"{flag} {p}: expected a {suffix} file name")
    target = p.resolve() if p.is_symlink() else p
    if target.exists():
        st = target.stat()
        if stat.S_ISDIR(st.st_mode):
            raise UsageError(f"{flag} {p}: is a directory; give a file path")
        if not stat.S_ISREG(st.st_mode):
            raise UsageError(f"{flag} {p}: is not a regular file (a device, FIFO or socket)")
        if not st.st_mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH):
            raise UsageError(f"{flag} {p}: the file is read-only")
    parent = target.parent
    if not parent.is_dir():
        raise UsageError(f"{flag} {p}: no such directory {parent}")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise UsageError(f"{flag} {p}: cannot write in {parent}")
    return target


def _umask_mode() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


@contextlib.contextmanager
def atomic_writer(path: str | os.PathLike, mode: str = "wb") -> Iterator[IO]:
    """``with atomic_writer(p) as f: f.write(...)``: p appears complete or not at all."""
    p = Path(path)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".tmp", dir=p.parent)
    except OSError as e:
        raise UsageError(f"cannot write {p}: {e.strerror or e}") from None
    try:
        os.chmod(tmp, _umask_mode())
        with os.fdopen(fd, mode) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, p)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def temporary_sibling(path: str | os.PathLike, suffix: str = ".tflite") -> str:
    """An empty temporary file next to ``path`` (same filesystem, so a rename is atomic)."""
    p = Path(path)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=suffix, dir=p.parent)
    except OSError as e:
        raise UsageError(f"cannot write in {p.parent}: {e.strerror or e}") from None
    os.close(fd)
    return tmp
