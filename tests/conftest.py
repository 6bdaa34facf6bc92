"""Shared fixtures: a real PostgreSQL server for the session, and workspaces on both backends.

``workspace`` (and ``db_url``) are parametrised over ``sqlite`` and ``postgresql``: every test
that takes one runs against both. Each PostgreSQL test gets a database of its own.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from _cli import run_cli
from _pg import PostgresServer, new_database, start_server
from _s3 import S3Server, moto_server
from modelcycle import Workspace, init_workspace


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PostgresServer]:
    url = os.environ.get("MODELCYCLE_TEST_PG_URL")
    if url:
        from sqlalchemy.engine import make_url

        u = make_url(url)
        yield PostgresServer(u.host or "127.0.0.1", u.port or 5432, u.username or "postgres")
        return
    server = start_server()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    """An S3 server (moto) on 127.0.0.1 for the session; tests take a bucket with new_bucket()."""
    with moto_server() as server:
        yield server


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, empty metadata database URL on each backend."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'meta.db'}"
    return new_database(request.getfixturevalue("pg_server"))


@pytest.fixture
def workspace(tmp_path: Path, db_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Workspace]:
    """A freshly initialised workspace in ``tmp_path/ws`` on each backend."""
    monkeypatch.delenv("MODELCYCLE_HOME", raising=False)
    monkeypatch.delenv("MODELCYCLE_DB_URL", raising=False)
    monkeypatch.setenv("MODELCYCLE_ACTOR", "tester")
    ws, _ = init_workspace(tmp_path / "ws", db_url=db_url)
    try:
        yield ws
    finally:
        ws.close()


@pytest.fixture
def cli(workspace: Workspace):  # type: ignore[no-untyped-def]
    """``cli("audit", "log")`` runs the CLI inside the workspace fixture's folder."""

    def _run(*args: str, check: bool = False, env: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
        return run_cli(*args, cwd=workspace.root, env=env, check=check)

    return _run
