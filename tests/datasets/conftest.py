"""Fixtures of the data set tests."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from subprocess import CompletedProcess

import pyarrow as pa
import pytest
from _data_helpers import small_table

from _cli import run_cli
from modelcycle import Workspace, init_workspace


@pytest.fixture
def table() -> pa.Table:
    return small_table()


@pytest.fixture
def sqlite_ws(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Workspace]:
    """A SQLite workspace only, for CLI error paths that do not depend on the backend."""
    monkeypatch.delenv("MODELCYCLE_HOME", raising=False)
    monkeypatch.delenv("MODELCYCLE_DB_URL", raising=False)
    monkeypatch.setenv("MODELCYCLE_ACTOR", "tester")
    ws, _ = init_workspace(tmp_path / "ws", db_url=f"sqlite:///{tmp_path / 'meta.db'}")
    try:
        yield ws
    finally:
        ws.close()


@pytest.fixture
def sqlite_cli(sqlite_ws: Workspace) -> Callable[..., CompletedProcess[str]]:
    def _run(*args: str) -> CompletedProcess[str]:
        return run_cli(*args, cwd=sqlite_ws.root)

    return _run
