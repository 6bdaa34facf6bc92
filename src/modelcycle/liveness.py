"""Is the process behind a running record still alive? Shared by pipeline runs and batch jobs.

A record that says "running" carries the host, pid and a heartbeat of the process doing the
work. On the same host a gone (or zombie) pid settles it at once; elsewhere the heartbeat
must be older than ``stale_after`` seconds.
"""

from __future__ import annotations

import os
import socket
from datetime import UTC, datetime, timedelta
from pathlib import Path

__all__ = ["hostname", "pid_alive", "stale_reason"]


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
