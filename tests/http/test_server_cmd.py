"""``modelcycle server`` starts the API on the given port over the current workspace."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

import httpx

from modelcycle import Workspace
from modelcycle.store.tokens import TokenStore


def test_modelcycle_server_serves_the_workspace(workspace: Workspace) -> None:
    _, token = TokenStore(workspace.metadata, "tester").create("cli-check", "reader")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODELCYCLE_")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "modelcycle", "server", "--port", str(port)],
        cwd=workspace.root, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        base = f"http://127.0.0.1:{port}/api/v1"
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            try:
                if httpx.get(f"{base}/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "the server did not answer in 60 s"
            time.sleep(0.2)
        r = httpx.get(f"{base}/audit/events", headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 200
        assert r.json()["items"][0]["action"] in ("workspace.created", "workspace.attached")
        assert httpx.get(f"{base}/models").status_code == 401
    finally:
        proc.terminate()
        proc.wait(timeout=30)
