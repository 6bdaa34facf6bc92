"""Is the process behind a running record still alive? Shared by pipeline runs, batch jobs and
the job queue: the heartbeat thread that keeps a record fresh, and the test that finds it stale.

A record that says "running" carries the host, pid and a heartbeat of the process doing the
work. On the same host a gone (or zombie) pid settles it at once; elsewhere the heartbeat
must be older than ``stale_after`` seconds.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import TracebackType

__all__ = ["Heartbeat", "hostname", "pid_alive", "stale_reason"]

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

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _loop(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                if self._beat() is False:
                    return
            except Exception:  # a missed beat is retried; never kill the work
                _log.debug("%s: a beat failed", self._thread.name, exc_info=True)
