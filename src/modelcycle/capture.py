"""Capturing what one thread prints, leaving every other thread's output alone.

``contextlib.redirect_stdout`` swaps ``sys.stdout`` for the whole process: a worker thread
capturing a job's log that way also swallows what the main thread prints meanwhile. Here
``sys.stdout``/``sys.stderr`` are wrapped once by routers that send a thread's writes to the
sinks it pushed (innermost first; a ``tee`` sink passes them on outward, finally to the real
stream) and everything else straight through.
"""

from __future__ import annotations

import io
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO, Any

__all__ = ["capture_output"]

_local = threading.local()
_install_lock = threading.Lock()


class _Router(io.TextIOBase):
    """Stands in for sys.stdout or sys.stderr; routes by the writing thread."""

    def __init__(self, original: IO[str]) -> None:
        self.original = original

    def write(self, text: str) -> int:
        for sink, tee in reversed(getattr(_local, "sinks", ())):
            sink.write(text)
            if not tee:
                return len(text)
        return self.original.write(text)

    def flush(self) -> None:
        self.original.flush()

    def isatty(self) -> bool:
        # A captured thread is not talking to a terminal; everyone else asks the real stream.
        return not getattr(_local, "sinks", ()) and self.original.isatty()

    def fileno(self) -> int:
        return self.original.fileno()

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return getattr(self.original, "encoding", "utf-8")

    def __getattr__(self, name: str) -> Any:
        return getattr(self.original, name)


def _install() -> None:
    with _install_lock:
        if not isinstance(sys.stdout, _Router):
            sys.stdout = _Router(sys.stdout)
        if not isinstance(sys.stderr, _Router):
            sys.stderr = _Router(sys.stderr)


@contextmanager
def capture_output(sink: IO[str], *, tee: bool = False) -> Iterator[None]:
    """Send this thread's stdout and stderr to ``sink`` (and on outward too with ``tee``)."""
    _install()
    stack = list(getattr(_local, "sinks", ()))
    stack.append((sink, tee))
    previous = getattr(_local, "sinks", ())
    _local.sinks = tuple(stack)
    try:
        yield
    finally:
        _local.sinks = previous
