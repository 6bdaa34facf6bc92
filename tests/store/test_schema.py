"""Schema versions: created by init, checked on open, migrated only when asked."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, inspect, text

from _cli import run_cli
from modelcycle import NotReady, Workspace
from modelcycle.store import SCHEMA_HEAD, MetadataStore, tables


def _old_workspace(root: Path, db_url: str, revision: str) -> Path:
    """A workspace whose database an older modelcycle created (schema at ``revision``)."""
    MetadataStore(db_url).upgrade(revision)
    (root / ".modelcycle").mkdir(parents=True)
    (root / "modelcycle.toml").write_text(f'[store]\ndb_url = "{db_url}"\n')
    return root


def test_schema_head_matches_the_migrations() -> None:
    cfg = Config()
    cfg.set_main_option("script_location", str(Path(tables.__file__).parent / "migrations"))
    assert ScriptDirectory.from_config(cfg).get_heads() == [SCHEMA_HEAD]


def test_tables_match_what_the_migrations_build(workspace: Workspace) -> None:
    engine = create_engine(workspace.settings.db_url)
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), tables.metadata)
    engine.dispose()
    assert diff == []


def test_database_behind_names_the_command(tmp_path: Path, db_url: str) -> None:
    root = _old_workspace(tmp_path / "old", db_url, "0001")
    with pytest.raises(NotReady, match="modelcycle db upgrade"):
        Workspace(root).audit.events()
    proc = run_cli("audit", "log", cwd=root)
    assert proc.returncode == 6
    assert "modelcycle db upgrade" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_db_upgrade_migrates_and_is_audited(tmp_path: Path, db_url: str) -> None:
    root = _old_workspace(tmp_path / "old", db_url, "0001")
    proc = run_cli("db", "upgrade", cwd=root)
    assert proc.returncode == 0, proc.stderr
    assert f"from 0001 to {SCHEMA_HEAD}" in proc.stdout
    with Workspace(root) as ws:
        events = ws.audit.events()
        assert [e.action for e in events] == ["db.upgraded"]
        assert events[0].payload["from"] == "0001"
        assert ws.audit.verify().ok
    again = run_cli("db", "upgrade", cwd=root)
    assert again.returncode == 0
    assert "nothing to do" in again.stdout


def test_database_from_a_newer_modelcycle_is_refused(tmp_path: Path, db_url: str) -> None:
    root = _old_workspace(tmp_path / "new", db_url, "head")
    engine = create_engine(db_url)
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '9999_future'"))
    engine.dispose()
    with pytest.raises(NotReady, match="newer modelcycle"):
        Workspace(root).audit.events()
    for args in (["audit", "log"], ["db", "upgrade"]):
        proc = run_cli(*args, cwd=root)
        assert proc.returncode == 6, args
        assert "newer modelcycle" in proc.stderr


def test_opening_never_migrates(tmp_path: Path, db_url: str) -> None:
    root = tmp_path / "empty"
    (root / ".modelcycle").mkdir(parents=True)
    (root / "modelcycle.toml").write_text(f'[store]\ndb_url = "{db_url}"\n')
    ws = Workspace(root)
    with pytest.raises(NotReady, match="modelcycle init"):
        ws.audit.events()
    ws.close()
    engine = create_engine(db_url)
    with engine.connect() as conn:
        assert inspect(conn).get_table_names() == []
    engine.dispose()


def test_sqlite_runs_in_wal_mode(tmp_path: Path) -> None:
    from modelcycle import init_workspace

    ws, _ = init_workspace(tmp_path / "w")
    with ws.metadata.read() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
    ws.close()
