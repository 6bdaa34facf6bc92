"""Helpers of the deploy tests (a module of its own, not conftest.py, so ``import`` never picks
another folder's conftest)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import time
from pathlib import Path

import numpy as np
import pandas as pd

from modelcycle import Workspace


def frame(n: int = 40) -> tuple[pd.DataFrame, pd.Series]:
    rng = np.random.default_rng(0)
    x = pd.DataFrame({"age": rng.integers(18, 80, n), "income": rng.normal(50.0, 10.0, n)})
    y = ((x["age"] > 45) ^ (x["income"] > 52.0)).astype(np.int64)
    return x, y


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def kill_servers(root: Path) -> None:
    """SIGKILL every server whose pid file lies under ``root`` (and whose command line names
    this workspace), then wait until it is gone."""
    for pid_file in root.glob(".modelcycle/deployments/*/*/server.pid"):
        with contextlib.suppress(ValueError, OSError):
            pid = int(pid_file.read_text().strip())
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            if str(pid_file.parent).encode() in cmdline:
                os.kill(pid, signal.SIGKILL)
                with contextlib.suppress(ChildProcessError):
                    os.waitpid(pid, 0)


def pid_alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except FileNotFoundError:
        return False
    return state not in ("Z", "X")


def wait_gone(pid: int, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not pid_alive(pid):
            return True
        time.sleep(0.05)
    return False


def audit_actions(ws: Workspace, subject: str) -> list[tuple[str, dict[str, object]]]:
    return [(e.action, e.payload) for e in ws.audit.events() if e.subject == subject]


def read_json(path: Path) -> dict[str, object]:
    data: dict[str, object] = json.loads(path.read_text())
    return data
