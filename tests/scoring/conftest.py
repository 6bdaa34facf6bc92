"""Scoring fixtures: one SQLite workspace with three registered models, and a real server.

The server tests need one backend only (the registry's backends are tested in tests/registry),
so the workspace is made here with ``init_workspace`` rather than the two-backend fixture.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from _scoring_helpers import Models, ServerProcess, register_models

from modelcycle import Workspace, init_workspace


@pytest.fixture
def fresh_ws(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Workspace:
    """An empty SQLite workspace of the test's own (for tests that change or crash it)."""
    for var in ("MODELCYCLE_HOME", "MODELCYCLE_DB_URL", "MODELCYCLE_ARTIFACTS"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("MODELCYCLE_ACTOR", "tester")
    workspace, _ = init_workspace(tmp_path / "ws")
    return workspace


@pytest.fixture(scope="session")
def models(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Models]:
    root = tmp_path_factory.mktemp("scoring") / "ws"
    with pytest.MonkeyPatch.context() as mp:
        for var in ("MODELCYCLE_HOME", "MODELCYCLE_DB_URL", "MODELCYCLE_ARTIFACTS"):
            mp.delenv(var, raising=False)
        mp.setenv("MODELCYCLE_ACTOR", "tester")
        ws, _ = init_workspace(root, db_url=f"sqlite:///{root.parent / 'meta.db'}")
        try:
            yield register_models(ws)
        finally:
            ws.close()


@pytest.fixture(scope="session")
def server(models: Models, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """Serves credit@champion, typed/1 and ridge/1 with small limits for the error tests."""
    log: Path = tmp_path_factory.mktemp("logs") / "server.log"
    proc = ServerProcess(
        models.root,
        "credit@champion",
        "typed/1",
        "ridge/1",
        "--max-rows",
        "100",
        "--max-body-bytes",
        "100000",
        log=log,
    )
    try:
        proc.wait_ready()
        yield proc
    finally:
        proc.stop()
