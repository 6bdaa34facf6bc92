"""After tampering is found, the workspace refuses changes until an admin acknowledges it."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, create_engine, text

from modelcycle import IntegrityError, InvalidInput, Workspace


@pytest.fixture
def sql(workspace: Workspace) -> Iterator[Engine]:
    engine = create_engine(workspace.settings.db_url)
    yield engine
    engine.dispose()


def _versions(sql: Engine) -> int:
    with sql.connect() as conn:
        return int(conn.execute(text("SELECT count(*) FROM dataset_versions")).scalar() or 0)


def test_tampering_blocks_writes_until_acknowledged(  # type: ignore[no-untyped-def]
    workspace: Workspace, sql: Engine, cli
) -> None:
    for i in range(4):
        workspace.audit.note(f"note {i}")  # events 2..5
    csv = workspace.root / "credit.csv"
    csv.write_text("x,y\n1,0\n2,1\n3,0\n")
    with sql.begin() as conn:
        conn.execute(
            text("""UPDATE audit_events SET payload = '{"text":"forged"}' WHERE seq = 3""")
        )

    found = cli("audit", "verify")
    assert found.returncode == 1
    assert "event 3 altered" in found.stderr
    assert "marked compromised" in found.stderr

    head = workspace.audit.head()
    refused = cli("data", "add", "credit", str(csv))
    assert refused.returncode == 5, refused.stderr  # IntegrityError's exit code
    assert "broken at event 3 (altered)" in refused.stderr
    assert "modelcycle audit acknowledge --note" in refused.stderr
    assert workspace.audit.head() == head
    assert _versions(sql) == 0

    listed = cli("audit", "log", "--json", check=True)
    rows = [json.loads(line) for line in listed.stdout.splitlines()]
    assert [r["seq"] for r in rows if r["tampered"]] == [3]
    assert rows[2]["payload"] == {"text": "forged"}
    assert rows[2]["tamper"] == {"kind": "altered", "acknowledged": False}
    table = cli("audit", "log", check=True)
    assert "TAMPERED (altered)" in table.stdout

    # The mark survives reopening, and deleting it from one place does not clear it.
    mark_file = workspace.settings.state_dir / "audit.compromised"
    assert mark_file.exists()
    mark_file.unlink()
    again = Workspace(workspace.root)
    with pytest.raises(IntegrityError, match="broken at event 3"):
        again.audit.note("still refused: the database keeps the mark")
    again.audit.verify()
    assert mark_file.exists()  # put back by the next verification
    with sql.begin() as conn:
        conn.execute(text("DELETE FROM workspace_info WHERE key = 'audit.compromised'"))
    with pytest.raises(IntegrityError, match="broken at event 3"):
        again.audit.note("still refused: the file keeps the mark")
    again.close()

    with pytest.raises(InvalidInput, match="--note"):
        workspace.audit.acknowledge(" ", os_user="root")
    ack = cli("audit", "acknowledge", "--note", "restored note 1 from the backup", check=True)
    assert "1 break(s) acknowledged from event 3" in ack.stdout
    event = workspace.audit.events()[-1]
    assert event.action == "audit.acknowledged"
    assert event.actor == "tester"
    assert event.payload["note"] == "restored note 1 from the backup"
    assert event.payload["first_bad_seq"] == 3
    assert event.payload["head"]["seq"] == head.seq
    assert [b["seq"] for b in event.payload["breaks"]] == [3]
    assert event.payload["os_user"]
    assert not mark_file.exists()

    cli("data", "add", "credit", str(csv), check=True)
    assert _versions(sql) == 1
    ok = cli("audit", "verify", check=True)
    assert "acknowledged break: event 3 altered" in ok.stdout

    # A new break fails again, and so does tampering with the acknowledged event once more.
    with sql.begin() as conn:
        conn.execute(text("""UPDATE audit_events SET payload = '{"text":"again"}' WHERE seq = 3"""))
    report = workspace.audit.verify()
    assert report.problem is not None
    assert (report.problem.seq, report.problem.kind) == (3, "altered")
    with pytest.raises(IntegrityError, match="broken at event 3"):
        workspace.audit.note("refused again")


def test_a_new_break_after_an_acknowledged_one_fails(workspace: Workspace, sql: Engine) -> None:
    for i in range(4):
        workspace.audit.note(f"note {i}")
    with sql.begin() as conn:
        conn.execute(text("UPDATE audit_events SET actor = 'mallory' WHERE seq = 2"))
    assert not workspace.audit.verify().ok
    workspace.audit.acknowledge("known", os_user="root")
    report = workspace.audit.verify()
    assert report.ok
    assert [(p.seq, p.kind) for p in report.acknowledged] == [(2, "altered")]
    workspace.audit.note("writes resume")
    with sql.begin() as conn:
        conn.execute(text("UPDATE audit_events SET actor = 'mallory' WHERE seq = 4"))
    report = workspace.audit.verify()
    assert report.problem is not None
    assert (report.problem.seq, report.problem.kind) == (4, "altered")
    assert workspace.audit.compromised() is not None


def test_an_acknowledged_truncation_verifies_afterwards(workspace: Workspace, sql: Engine) -> None:
    for i in range(5):
        workspace.audit.note(f"note {i}")
    with sql.begin() as conn:
        conn.execute(text("DELETE FROM audit_events WHERE seq >= 5"))
    report = workspace.audit.verify()
    assert report.problem is not None
    assert (report.problem.seq, report.problem.kind) == (5, "truncated")
    workspace.audit.acknowledge("events 5 and 6 lost in a restore", os_user="root")
    workspace.audit.note("writes resume")
    report = workspace.audit.verify()
    assert report.ok, report.problem
    assert [(p.seq, p.kind) for p in report.acknowledged] == [(5, "missing")]


def test_nothing_to_acknowledge_on_a_sound_chain(workspace: Workspace, cli) -> None:  # type: ignore[no-untyped-def]
    proc = cli("audit", "acknowledge", "--note", "just in case")
    assert proc.returncode == 4
    assert "nothing to acknowledge" in proc.stderr


RULE = """
[[rules]]
name = "echo"
on = "audit.note"
where = { subject = "trigger" }
do = "note"
with = { text = "seen {seq}" }
"""


def test_a_worker_stops_with_the_reason_on_a_compromised_workspace(
    workspace: Workspace, sql: Engine
) -> None:
    config = workspace.root / "modelcycle.toml"
    config.write_text(config.read_text() + RULE)
    ws = Workspace(workspace.root)
    ws.audit.note("go", subject="trigger")
    with sql.begin() as conn:
        conn.execute(text("UPDATE audit_events SET actor = 'mallory' WHERE seq = 1"))
    assert not ws.audit.verify().ok
    worker = ws.automations.worker(poll_seconds=0.01)
    with pytest.raises(IntegrityError, match="broken at event 1"):
        worker.run()  # returns only by raising: nothing can be written
    assert ws.automations.queue.list() == []
    ws.close()
