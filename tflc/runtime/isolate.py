"""Run a function in a forked child, so that a crash or hang inside LiteRT (a native library
that trusts the model) becomes a clear error instead of killing or freezing tflc.

``run_isolated_all`` runs several such calls side by side (one child per core at most): the
measurements a pass makes on independent sample sets (quantize-int8's k-fold range search) take
the time of the slowest instead of the sum."""
from __future__ import annotations

import os
import pickle
import select
import signal
import time
from typing import Any, Callable, Sequence

from ..errors import RuntimeFailure, TflcError


def isolation_enabled() -> bool:
    return os.environ.get("TFLC_ISOLATE", "1") != "0" and hasattr(os, "fork")


def cores() -> int:
    """CPUs this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def _spawn(fn: Callable[..., Any], args: tuple, what: str) -> tuple[int, int]:
    """Fork a child that runs ``fn(*args)`` and writes its pickled result to a pipe: (pid, read fd)."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # child
        os.close(r)
        code = 0
        try:
            import faulthandler
            faulthandler.disable()  # a crash is reported by the parent, in one line
        except Exception:
            pass
        try:
            try:
                payload = ("ok", fn(*args))
            except TflcError as e:
                payload = ("err", e)
            except BaseException as e:  # report, don't print a traceback from the child
                payload = ("err", RuntimeFailure(f"{what}: {type(e).__name__}: {e}"))
            data = pickle.dumps(payload, protocol=pickle.HIGHEST_PROTOCOL)
            with os.fdopen(w, "wb") as f:
                f.write(data)
        except BaseException:
            code = 1
        finally:
            os._exit(code)
    os.close(w)
    return pid, r


def _result(pid: int, data: bytes, what: str) -> tuple[str, Any]:
    """Reap a child whose pipe is closed: ("ok", value) or ("err", the exception to raise)."""
    _, status = os.waitpid(pid, 0)
    if os.WIFSIGNALED(status):
        sig = signal.Signals(os.WTERMSIG(status)).name
        return "err", RuntimeFailure(f"{what} crashed ({sig}): the model is malformed or uses something LiteRT "
                                     "does not support")
    try:
        return pickle.loads(data)
    except Exception:
        return "err", RuntimeFailure(f"{what} ended without a result (exit status {os.WEXITSTATUS(status)})")


def _kill(pids: Sequence[int]) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass


def run_isolated_all(calls: Sequence[tuple[Callable[..., Any], tuple]], *, timeout: float = 600.0,
                     what: str = "LiteRT", parallel: int | None = None) -> list[Any]:
    """Each ``fn(*args)`` of ``calls`` in a child of its own, at most ``parallel`` (default: the
    cores) at once; their results in order. The first failure is raised once every child has
    ended (the others are not left running); ``timeout`` bounds the whole batch."""
    if not isolation_enabled():
        return [fn(*args) for fn, args in calls]
    parallel = max(1, parallel or cores())
    results: list[Any] = [None] * len(calls)
    failure: BaseException | None = None
    running: dict[int, tuple[int, int, list[bytes]]] = {}       # fd -> (call index, pid, chunks)
    nxt, deadline = 0, time.monotonic() + timeout
    try:
        while nxt < len(calls) or running:
            while nxt < len(calls) and len(running) < parallel and failure is None:
                fn, args = calls[nxt]
                pid, fd = _spawn(fn, args, what)
                running[fd] = (nxt, pid, [])
                nxt += 1
            if not running:
                break
            left = deadline - time.monotonic()
            if left <= 0:
                raise RuntimeFailure(f"{what} did not finish within {timeout:.0f} s (killed)")
            ready, _, _ = select.select(list(running), [], [], min(left, 1.0))
            for fd in ready:
                chunk = os.read(fd, 1 << 20)
                if chunk:
                    running[fd][2].append(chunk)
                    continue
                i, pid, chunks = running.pop(fd)
                os.close(fd)
                kind, value = _result(pid, b"".join(chunks), what)
                if kind == "err":
                    failure = failure or value
                else:
                    results[i] = value
    except BaseException:
        _kill([pid for _, pid, _ in running.values()])
        for fd in running:
            os.close(fd)
        raise
    if failure is not None:
        raise failure
    return results


def run_isolated(fn: Callable[..., Any], *args: Any, timeout: float = 600.0, what: str = "LiteRT") -> Any:
    """``fn(*args)`` in a child process; its result or TflcError comes back pickled."""
    return run_isolated_all([(fn, args)], timeout=timeout, what=what, parallel=1)[0]
