"""The local target: the bundle's server as a detached background process on 127.0.0.1.

Per deployment attempt, ``.modelcycle/deployments/ENDPOINT/ID/`` holds the bundle, the
server's log (``server.log``) and its pid file (``server.pid``). The endpoint's active
deployment is named by ``.modelcycle/deployments/ENDPOINT/current.json`` (URL, port, pid,
version; replaced atomically) and the ``current`` symlink to its folder: there is no stable
front port, so clients read the URL from there or from ``modelcycle deployments show``.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import ClassVar

from modelcycle.deploy.bundle import BundleInfo
from modelcycle.deploy.targets.base import Instance, Target

__all__ = ["LocalTarget", "free_port", "port_free"]

# Servers this process started: polled so they are reaped (a dead child stays a zombie,
# which kill(pid, 0) still finds, until its parent waits for it).
_CHILDREN: dict[int, subprocess.Popen[bytes]] = {}


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port free at this moment (the server binds it a moment later)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def port_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


def _pid_alive(pid: int, marker: str | None) -> bool:
    """Whether ``pid`` runs and (when ``marker`` is given) its command line holds it: a pid
    reused by another program after ours ended does not count."""
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


class LocalTarget(Target):
    """Managed background processes, one per deployment attempt."""

    name: ClassVar[str] = "local"

    def __init__(
        self, deployments_dir: Path, *, host: str = "127.0.0.1", log_db: str | None = None
    ) -> None:
        self.root = Path(deployments_dir)
        self.host = host
        self.log_db = log_db

    def start(
        self,
        bundle: BundleInfo,
        *,
        endpoint: str,
        workdir: Path,
        port: int | None,
        trust: bool = False,
    ) -> Instance:
        from modelcycle.errors import Conflict

        if port is not None and not port_free(self.host, port):
            raise Conflict(f"port {port} on {self.host} is in use")
        chosen = port if port is not None else free_port(self.host)
        workdir.mkdir(parents=True, exist_ok=True)
        log_path = workdir / "server.log"
        serve_py = str(bundle.path / "serve.py")
        cmd = [sys.executable, serve_py, "--host", self.host, "--port", str(chosen)]
        if trust:
            cmd.append("--trust")
        env = {k: v for k, v in os.environ.items() if not k.startswith("MODELCYCLE_")}
        if self.log_db is not None:
            # Log into the workspace, spilling where `modelcycle predictions ingest-spill` looks.
            # The URL goes by environment, not argv: it may hold a password.
            env["MODELCYCLE_BUNDLE_LOG_DB"] = self.log_db
            cmd += ["--spill-dir", str(self.root.parent / "spill")]
        env["PYTHONUNBUFFERED"] = "1"
        env.pop("PYTHONPATH", None)  # the bundle brings modelcycle; nothing else shadows it
        with open(log_path, "ab") as log:
            proc = subprocess.Popen(
                cmd,
                cwd=workdir,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,  # outlives the command that started it
                close_fds=True,
            )
        _CHILDREN[proc.pid] = proc
        (workdir / "server.pid").write_text(f"{proc.pid}\n", encoding="utf-8")
        return Instance(
            target=self.name,
            url=f"http://{self.host}:{chosen}",
            host=self.host,
            port=chosen,
            workdir=str(workdir),
            pid=proc.pid,
            log=str(log_path),
            extra={"bundle": str(bundle.path), "command": cmd},
        )

    def is_running(self, instance: Instance) -> bool:
        if instance.pid is None:
            return False
        return _pid_alive(instance.pid, instance.extra.get("bundle"))

    def stop(self, instance: Instance, *, timeout: float = 10.0) -> bool:
        pid = instance.pid
        if pid is None or not self.is_running(instance):
            self._forget(instance)
            return False
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.is_running(instance):
            time.sleep(0.05)
        if self.is_running(instance):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline and self.is_running(instance):
                time.sleep(0.05)
        self._forget(instance)
        return True

    def _forget(self, instance: Instance) -> None:
        if instance.pid is not None:
            child = _CHILDREN.pop(instance.pid, None)
            if child is not None:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    child.wait(1)
        with contextlib.suppress(FileNotFoundError):
            (Path(instance.workdir) / "server.pid").unlink()
