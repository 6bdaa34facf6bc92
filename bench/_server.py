"""``modelcycle server`` for the benches: a subprocess on a free 127.0.0.1 port over a filled
workspace, returned once its health route answers (the tests have tests/_servers.py)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

__all__ = ["start_api_server"]


def start_api_server(
    root: Path, *args: str, timeout: float = 60.0
) -> tuple[subprocess.Popen[bytes], str]:
    """The server process over the workspace at ``root`` (extra CLI ``args``) and its base URL.

    Its stderr is kept (a pipe) for the message when it exits early; the caller terminates it.
    """
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    env = {**os.environ, "MODELCYCLE_HOME": str(root)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "modelcycle", "server", "--port", str(port), *args],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            err = proc.stderr.read().decode() if proc.stderr else ""
            raise SystemExit(f"the server exited: {err}")
        try:
            with urllib.request.urlopen(base + "/api/v1/health", timeout=2):
                return proc, base
        except OSError:
            time.sleep(0.2)
    proc.terminate()
    raise SystemExit("the server did not start")
