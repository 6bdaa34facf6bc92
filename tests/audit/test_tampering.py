"""Tampering done straight in the database (or the export) is caught and the event named."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, text

from modelcycle import Workspace
from modelcycle.audit import next_event
from modelcycle.entities import ChainHead


@pytest.fixture
def busy(workspace: Workspace) -> Workspace:
    """A workspace with 6 events: created + 5 notes."""
    for i in range(5):
        workspace.audit.note(f"note {i}")
    return workspace


@pytest.fixture
def sql(busy: Workspace) -> Iterator[Engine]:
    engine = create_engine(busy.settings.db_url)
    yield engine
    engine.dispose()


def _problem(ws: Workspace) -> tuple[int, str]:
    report = ws.audit.verify()
    assert report.problem is not None, "tampering went unnoticed"
    return report.problem.seq, report.problem.kind


def test_intact_chain_verifies_from_the_cli(busy: Workspace, cli) -> None:  # type: ignore[no-untyped-def]
    proc = cli("audit", "verify")
    assert proc.returncode == 0, proc.stderr
    assert "6 event(s)" in proc.stdout


def test_update_is_caught(busy: Workspace, sql: Engine, cli) -> None:  # type: ignore[no-untyped-def]
    with sql.begin() as conn:
        conn.execute(
            text("""UPDATE audit_events SET payload = '{"text":"note X"}' WHERE seq = 3""")
        )
    assert _problem(busy) == (3, "altered")
    proc = cli("audit", "verify")
    assert proc.returncode == 1
    assert "event 3 altered" in proc.stderr


def test_update_of_actor_is_caught(busy: Workspace, sql: Engine) -> None:
    with sql.begin() as conn:
        conn.execute(text("UPDATE audit_events SET actor = 'mallory' WHERE seq = 2"))
    assert _problem(busy) == (2, "altered")


def test_unparseable_payload_is_reported_not_crashing(busy: Workspace, sql: Engine) -> None:
    with sql.begin() as conn:
        conn.execute(text("UPDATE audit_events SET payload = '{not json' WHERE seq = 4"))
    assert _problem(busy) == (4, "altered")


def test_delete_in_the_middle_is_caught(busy: Workspace, sql: Engine, cli) -> None:  # type: ignore[no-untyped-def]
    with sql.begin() as conn:
        conn.execute(text("DELETE FROM audit_events WHERE seq = 4"))
    assert _problem(busy) == (4, "missing")
    proc = cli("audit", "verify")
    assert proc.returncode == 1
    assert "event 4 missing" in proc.stderr


def test_forged_append_with_a_valid_hash_is_caught(busy: Workspace, sql: Engine) -> None:
    head = busy.audit.head()
    forged = next_event(head, actor="mallory", action="audit.note", subject="x", payload={})
    with sql.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO audit_events "
                "(seq, at, actor, action, subject, payload, prev_hash, hash) "
                "VALUES (:seq, :at, :actor, :action, :subject, '{}', :prev_hash, :hash)"
            ),
            {k: v for k, v in forged.as_dict().items() if k != "payload"},
        )
    assert _problem(busy) == (7, "inserted")


def test_garbage_insert_is_caught(busy: Workspace, sql: Engine) -> None:
    with sql.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO audit_events "
                "(seq, at, actor, action, subject, payload, prev_hash, hash) "
                "VALUES (7, '2026-01-01T00:00:00.000000Z', 'm', 'audit.note', 's', '{}', 'x', 'y')"
            )
        )
    assert _problem(busy) == (7, "altered")


def test_truncation_is_caught_by_the_head_row(busy: Workspace, sql: Engine) -> None:
    with sql.begin() as conn:
        conn.execute(text("DELETE FROM audit_events WHERE seq >= 5"))
    seq, kind = _problem(busy)
    assert (seq, kind) == (5, "truncated")


def test_truncation_with_a_rewritten_head_row_is_caught_by_the_head_file(
    busy: Workspace,
    sql: Engine,
    cli,  # type: ignore[no-untyped-def]
) -> None:
    with sql.begin() as conn:
        row = conn.execute(text("SELECT hash FROM audit_events WHERE seq = 4")).one()
        conn.execute(text("DELETE FROM audit_events WHERE seq >= 5"))
        conn.execute(text("UPDATE audit_head SET seq = 4, hash = :h"), {"h": row.hash})
    report = busy.audit.verify()
    assert report.problem is not None
    assert (report.problem.seq, report.problem.kind) == (5, "truncated")
    assert "head file" in report.problem.detail
    proc = cli("audit", "verify")
    assert proc.returncode == 1
    assert "truncated" in proc.stderr


def test_export_verifies_offline_and_catches_edits(busy: Workspace, tmp_path: Path, cli) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "export.jsonl"
    proc = cli("audit", "export", str(out))
    assert proc.returncode == 0, proc.stderr
    lines = out.read_text().splitlines()
    assert len(lines) == 7  # 6 events + head line
    assert json.loads(lines[-1])["head"]["seq"] == 6
    ok = cli("audit", "verify", "--file", str(out))
    assert ok.returncode == 0, ok.stderr

    edited = lines.copy()
    ev = json.loads(edited[2])
    ev["event"]["payload"]["text"] = "rewritten"
    edited[2] = json.dumps(ev)
    bad = tmp_path / "edited.jsonl"
    bad.write_text("\n".join(edited) + "\n")
    proc = cli("audit", "verify", "--file", str(bad))
    assert proc.returncode == 1
    assert "event 3 altered" in proc.stderr

    truncated = tmp_path / "truncated.jsonl"
    truncated.write_text("\n".join(lines[:4] + lines[-1:]) + "\n")
    proc = cli("audit", "verify", "--file", str(truncated))
    assert proc.returncode == 1
    assert "event 5 truncated" in proc.stderr


def test_head_file_never_moves_backwards(busy: Workspace) -> None:
    from modelcycle.audit import HeadFile

    hf = HeadFile(busy.settings.audit_head_path)
    assert hf.read() == busy.audit.head()
    hf.advance(ChainHead(2, "0" * 64))
    assert hf.read() == busy.audit.head()
