"""A SQLite workspace with three versions of ``credit`` (v2 better, v3 with a signature its
model cannot satisfy) and a pickle model; every server a test starts is killed by pid after."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from modelcycle import Workspace, init_workspace


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


@pytest.fixture(scope="module")
def dws(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Workspace]:
    root = tmp_path_factory.mktemp("deploy") / "ws"
    mp = pytest.MonkeyPatch()
    for key in ("MODELCYCLE_HOME", "MODELCYCLE_DB_URL", "MODELCYCLE_ARTIFACTS"):
        mp.delenv(key, raising=False)
    mp.setenv("MODELCYCLE_ACTOR", "tester")
    ws, _ = init_workspace(root)
    x, y = frame()
    ws.registry.register(
        LogisticRegression(C=0.01).fit(x, y), "credit", input_example=x.head(5), tags={"a": "1"}
    )
    ws.registry.register(LogisticRegression(C=10.0).fit(x, y), "credit", input_example=x.head(5))
    # v3 claims a column the model was never fitted on: it loads, then every request fails.
    bad = x.head(5).assign(shoe_size=np.arange(5, dtype=np.int64))
    signature = {
        "inputs": [
            {"name": "age", "type": "int64", "nullable": False},
            {"name": "income", "type": "double", "nullable": False},
            {"name": "shoe_size", "type": "int64", "nullable": False},
        ],
        "outputs": [{"name": "predict", "type": "int64", "shape": [-1]}],
        "task": "binary_classification",
        "classes": [0, 1],
    }
    ws.registry.register(
        LogisticRegression().fit(x, y), "credit", signature=signature, input_example=bad
    )
    ws.registry.register(
        LogisticRegression().fit(x, y),
        "pickled",
        flavor="pickle",
        trust=True,
        input_example=x.head(5),
    )
    try:
        yield ws
    finally:
        kill_servers(root)
        ws.close()
        mp.undo()


def audit_actions(ws: Workspace, subject: str) -> list[tuple[str, dict[str, object]]]:
    return [(e.action, e.payload) for e in ws.audit.events() if e.subject == subject]


def read_json(path: Path) -> dict[str, object]:
    data: dict[str, object] = json.loads(path.read_text())
    return data
