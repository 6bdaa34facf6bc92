"""Is the process behind a running record still alive? Shared by pipeline runs, batch jobs and
the job queue: the heartbeat thread that keeps a record fresh (a run's and a batch job's
heartbeat, a job's lease renewal), the test that finds a record stale and the sweep that ends
the stale ones (runs and batch jobs; the queue's lease simply expires and the job is claimed
again), and the last line of a failure that their audit events record.

A record that says "running" carries the host, pid and a heartbeat of the process doing the
work. On the same host a gone (or zombie) pid settles it at once; elsewhere the heartbeat
must be older than ``stale_after`` seconds.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Generic, Protocol, TypeVar

__all__ = [
    "Heartbeat",
    "Running",
    "StaleSweep",
    "hostname",
    "last_line",
    "pid_alive",
    "stale_reason",
]

_log = logging.getLogger(__name__)


def hostname() -> str:
    """This machine's name, as running records store it."""
    return socket.gethostname()


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` exists on this host and is not a zombie."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        state = stat.rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state not in ("Z", "X")


def stale_reason(
    *,
    host: str | None,
    pid: int | None,
    heartbeat_at: str | None,
    started_at: str,
    stale_after: float,
) -> str | None:
    """Why a running record is stale (its process is gone), or None while it seems alive."""
    if host == hostname() and pid is not None and not pid_alive(pid):
        return f"stale: its process {pid} on {host} is gone"
    beat = heartbeat_at or started_at
    try:
        last = datetime.strptime(beat, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    except ValueError:
        return None
    if datetime.now(UTC) - last > timedelta(seconds=stale_after):
        return (
            f"stale: no heartbeat from process {pid} on {host} since {beat} "
            f"(more than {stale_after:g} s)"
        )
    return None


def last_line(text: str, limit: int = 500) -> str:
    """The last non-blank line of ``text`` (a traceback's exception), cut to ``limit``
    characters: what a run's or batch job's failure event records of the error."""
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1][:limit] if lines else ""


class Running(Protocol):
    """What a running record carries about the process doing its work."""

    @property
    def hostname(self) -> str | None: ...
    @property
    def pid(self) -> int | None: ...
    @property
    def heartbeat_at(self) -> str | None: ...
    @property
    def started_at(self) -> str: ...


R = TypeVar("R", bound=Running)


class StaleSweep(Generic[R]):
    """Ends running records whose process is gone (see :func:`stale_reason`).

    ``mark(record, reason)`` ends one (a run failed, a batch job failed) and returns False when
    another process ended it first; ``stale_after`` is read at each check, so an owner may
    change it.
    """

    def __init__(self, mark: Callable[[R, str], bool], stale_after: Callable[[], float]) -> None:
        self._mark = mark
        self._stale_after = stale_after

    def reason(self, record: R) -> str | None:
        """Why ``record`` (known to be running) is stale, or None while it seems alive."""
        return stale_reason(
            host=record.hostname,
            pid=record.pid,
            heartbeat_at=record.heartbeat_at,
            started_at=record.started_at,
            stale_after=self._stale_after(),
        )

    def check(self, record: R) -> bool:
        """End ``record`` if it is stale; True when this call ended it."""
        reason = self.reason(record)
        return reason is not None and self._mark(record, reason)

    def sweep(self, records: Iterable[R]) -> int:
        """:meth:`check` each running record; how many this call ended."""
        return sum(1 for record in records if self.check(record))


class Heartbeat:
    """Calls ``beat`` every ``interval`` seconds from a daemon thread while the ``with`` block
    runs: a run's heartbeat, a batch job's, a job's lease renewal.

    ``beat`` returning False ends the beats (a lease that was lost); one that raises is logged
    and tried again at the next interval, so a missed beat never kills the work itself.
    """

    def __init__(self, beat: Callable[[], bool | None], interval: float, *, name: str) -> None:
        self._beat = beat
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """End the beats (again: a no-op); waits for a beat under way."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    def __enter__(self) -> Heartbeat:
        self.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def _loop(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                if self._beat() is False:
                    return
            except Exception:  # a missed beat is retried; never kill the work
                _log.debug("%s: a beat failed", self._thread.name, exc_info=True)
