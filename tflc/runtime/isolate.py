"""Run a function in a forked child, so that a crash or hang inside LiteRT (a native library
that trusts the model) becomes a clear error instead of killing or freezing tflc."""
from __future__ import annotations

import os
import pickle
import select
import signal
import time
from typing import Any, Callable

from ..errors import RuntimeFailure, TflcError


def isolation_enabled() -> bool:
    return os.environ.get("TFLC_ISOLATE", "1") != "0" and hasattr(os, "fork")


def run_isolated(fn: Callable[..., Any], *args: Any, timeout: float = 600.0, what: str = "LiteRT") -> Any:
    """``fn(*args)`` in a child process; its result or TflcError comes back pickled."""
    if not isolation_enabled():
        return fn(*args)
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
    chunks, deadline = [], time.monotonic() + timeout
    with os.fdopen(r, "rb") as f:
        fd = f.fileno()
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                raise RuntimeFailure(f"{what} did not finish within {timeout:.0f} s (killed)")
            ready, _, _ = select.select([fd], [], [], min(left, 1.0))
            if ready:
                chunk = os.read(fd, 1 << 20)
                if not chunk:
                    break
                chunks.append(chunk)
    _, status = os.waitpid(pid, 0)
    if os.WIFSIGNALED(status):
        sig = signal.Signals(os.WTERMSIG(status)).name
        raise RuntimeFailure(f"{what} crashed ({sig}): the model is malformed or uses something LiteRT "
                             "does not support")
    try:
        kind, value = pickle.loads(b"".join(chunks))
    except Exception:
        raise RuntimeFailure(f"{what} ended without a result (exit status {os.WEXITSTATUS(status)})") from None
    if kind == "err":
        raise value
    return value
