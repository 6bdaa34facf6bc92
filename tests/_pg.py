"""A throw-away PostgreSQL server for the test session, started with initdb/pg_ctl on 127.0.0.1.

PostgreSQL refuses to run as root, so as root the server runs as the ``postgres`` OS user
(``runuser``); as anyone else it runs as that user. ``MODELCYCLE_TEST_PG_URL`` points the tests
at an existing server instead.
"""

from __future__ import annotations

import glob
import itertools
import os
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

_databases = itertools.count()


@dataclass
class PostgresServer:
    host: str
    port: int
    user: str
    data_dir: Path | None = None
    _bin: Path | None = None
    _runas: list[str] | None = None

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://{self.user}@{self.host}:{self.port}/{database}"

    def stop(self) -> None:
        if self.data_dir is None or self._bin is None:
            return
        subprocess.run(
            [
                *(self._runas or []),
                str(self._bin / "pg_ctl"),
                "-D",
                str(self.data_dir),
                "-m",
                "immediate",
                "-w",
                "stop",
            ],
            check=False,
            capture_output=True,
            timeout=60,
        )
        shutil.rmtree(self.data_dir.parent, ignore_errors=True)


def new_database(server: PostgresServer, prefix: str = "mc_test") -> str:
    """A fresh, empty database on ``server`` (a name unique to this process); its URL."""
    import psycopg

    name = f"{prefix}_{os.getpid()}_{next(_databases)}"
    with psycopg.connect(
        host=server.host, port=server.port, user=server.user, dbname="postgres", autocommit=True
    ) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return server.url(name)


def find_bindir() -> Path | None:
    on_path = shutil.which("pg_ctl")
    if on_path:
        return Path(on_path).parent
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), reverse=True)
    return Path(candidates[0]).parent if candidates else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server() -> PostgresServer:
    bindir = find_bindir()
    if bindir is None:
        raise RuntimeError(
            "PostgreSQL binaries (initdb, pg_ctl) not found; install PostgreSQL 15 or set "
            "MODELCYCLE_TEST_PG_URL"
        )
    runas: list[str] = []
    base = Path(tempfile.mkdtemp(prefix="modelcycle-pg-"))
    if os.geteuid() == 0:
        runas = ["runuser", "-u", "postgres", "--"]
        shutil.chown(base, user="postgres")
    data = base / "data"
    port = _free_port()
    subprocess.run(
        [
            *runas,
            str(bindir / "initdb"),
            "-D",
            str(data),
            "-U",
            "postgres",
            "-A",
            "trust",
            "-E",
            "UTF8",
            "--no-locale",
            "--no-sync",
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    options = (
        f"-c listen_addresses=127.0.0.1 -p {port} -k {base} -c fsync=off -c max_connections=200"
    )
    subprocess.run(
        [
            *runas,
            str(bindir / "pg_ctl"),
            "-D",
            str(data),
            "-l",
            str(base / "log"),
            "-w",
            "-t",
            "60",
            "-o",
            options,
            "start",
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    return PostgresServer("127.0.0.1", port, "postgres", data, bindir, runas)
