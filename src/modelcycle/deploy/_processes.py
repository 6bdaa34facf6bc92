"""Detached background processes (scoring servers, endpoint routers) and their ports.

One owner for what the local target and the endpoint router both do: start a process in its
own session that outlives the command, find it again by pid plus a marker on its command line
(a pid reused by another program does not count), and stop it: SIGTERM, a bounded wait, then
SIGKILL.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

__all__ = ["alive", "free_port", "port_free", "spawn", "terminate"]

# Processes this process started: polled so they are reaped (a dead child stays a zombie,
# which kill(pid, 0) still finds, until its parent waits for it).
_CHILDREN: dict[int, subprocess.Popen[bytes]] = {}


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port free at this moment (the server binds it a moment later)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def port_free(host: str, port: int) -> bool:
    """Whether ``port`` can be bound on ``host`` now (as the servers bind: with SO_REUSEADDR,
    so connections of a server that just ended, in TIME_WAIT, do not make it "in use")."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


def spawn(
    cmd: Sequence[str], *, cwd: Path, log_path: Path, env: dict[str, str]
) -> subprocess.Popen[bytes]:
    """Start ``cmd`` detached (its own session, so it outlives this command), output appended
    to ``log_path``."""
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            list(cmd),
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
            close_fds=True,
        )
    _CHILDREN[proc.pid] = proc
    return proc


def alive(pid: int, marker: str | None) -> bool:
    """Whether ``pid`` runs and (when ``marker`` is given) its command line holds it."""
    child = _CHILDREN.get(pid)
    if child is not None:
        if child.poll() is not None:
            _CHILDREN.pop(pid, None)
            return False
        return True
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8") as fh:
            state = fh.read().rpartition(")")[2].split()[0]
        if state in ("Z", "X"):
            return False
        if marker is None:
            return True
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            return marker.encode() in fh.read()
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False
    except PermissionError:
        return True


def terminate(pid: int, marker: str | None, *, timeout: float = 10.0) -> bool:
    """SIGTERM (the servers drain in-flight requests), then SIGKILL after ``timeout``; the
    child is reaped. False if it was not running."""
    running = alive(pid, marker)
    if running:
        for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5.0)):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
            deadline = time.monotonic() + wait
            while time.monotonic() < deadline and alive(pid, marker):
                time.sleep(0.02)
            if not alive(pid, marker):
                break
    child = _CHILDREN.pop(pid, None)
    if child is not None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            child.wait(1)
    return running
