"""The local target: the bundle's server as a detached background process on 127.0.0.1.

Per deployment attempt, ``.modelcycle/deployments/ENDPOINT/ID/`` holds the bundle, the
server's log (``server.log``) and its pid file (``server.pid``). The endpoint's active
deployment is named by ``.modelcycle/deployments/ENDPOINT/current.json`` (URL, port, pid,
version; replaced atomically) and the ``current`` symlink to its folder. Clients use the
endpoint's stable port, which its router (:mod:`modelcycle.deploy.router`) forwards here.
"""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path
from typing import ClassVar

from modelcycle.deploy._processes import alive, free_port, port_free, spawn, terminate
from modelcycle.deploy.bundle import BundleInfo
from modelcycle.deploy.targets.base import Instance, Target
from modelcycle.errors import Conflict

__all__ = ["LocalTarget"]


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
        proc = spawn(cmd, cwd=workdir, log_path=log_path, env=env)
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
        return alive(instance.pid, instance.extra.get("bundle"))

    def stop(self, instance: Instance, *, timeout: float = 10.0) -> bool:
        was_running = False
        if instance.pid is not None:
            was_running = terminate(instance.pid, instance.extra.get("bundle"), timeout=timeout)
        with contextlib.suppress(FileNotFoundError):
            (Path(instance.workdir) / "server.pid").unlink()
        return was_running
