"""Schedules on a controllable clock, watched data sources, and the cycle guard."""

from __future__ import annotations

import textwrap
from pathlib import Path

from modelcycle import Workspace
from modelcycle.datasets import make_credit


def _configure(ws: Workspace, text: str) -> Workspace:
    path = ws.root / "modelcycle.toml"
    path.write_text(path.read_text() + textwrap.dedent(text))
    ws.close()
    return Workspace(ws.root)


def test_a_schedule_fires_once_per_slot_on_time(workspace: Workspace) -> None:
    ws = _configure(
        workspace,
        """
        [[schedules]]
        name = "every-15m"
        every = "15m"
        do = "note"
        with = { text = "scheduled check" }
        """,
    )
    now = [900.0 * 1000]  # the start of a 15-minute slot
    scheduler = ws.automations.scheduler(clock=lambda: now[0])
    other = ws.automations.scheduler(clock=lambda: now[0])  # a second worker's scheduler
    assert len(scheduler.tick()) == 1
    assert other.tick() == []  # same slot: the key is taken
    now[0] += 899
    assert scheduler.tick() == []
    now[0] += 1  # the next slot begins
    assert len(scheduler.tick()) == 1
    assert [j.idempotency_key for j in ws.automations.queue.list()] == [
        "schedule:every-15m:1001",
        "schedule:every-15m:1000",
    ]
    ws.close()


def test_a_watched_source_is_taken_once_stable_and_only_when_changed(
    workspace: Workspace,
) -> None:
    incoming = workspace.root / "incoming"
    incoming.mkdir()
    ws = _configure(
        workspace,
        """
        [[sources]]
        dataset = "credit"
        path = "incoming/part-1.csv"
        """,
    )
    worker = ws.automations.worker(poll_seconds=0.01)
    scheduler = ws.automations.scheduler()
    target = incoming / "part-1.csv"
    make_credit(200, seed=1).to_pandas().to_csv(target, index=False)
    assert scheduler.tick() == []  # first sight: wait for a second poll
    with open(target, "a") as fh:  # still being written
        fh.write(target.read_text().splitlines()[1] + "\n")
    assert scheduler.tick() == []
    jobs = scheduler.tick()  # unchanged since the last poll: stable
    assert [j.kind for j in jobs] == ["ingest"]
    done = worker.run_once()
    assert done is not None
    assert done.state == "succeeded", done.log
    assert done.result == {"version": "credit@1", "created": True}
    assert scheduler.tick() == []  # nothing changed
    # Touched but identical content: a job runs, and the catalog keeps the version.
    target.write_text(target.read_text())
    scheduler.tick()
    assert scheduler.tick() != []
    again = worker.run_once()
    assert again is not None
    assert again.result == {"version": "credit@1", "created": False}
    assert [v.ref for v in ws.datasets.list("credit")] == ["credit@1"]
    ws.close()


def test_a_rule_whose_effect_triggers_itself_is_cut(workspace: Workspace) -> None:
    ws = _configure(
        workspace,
        """
        [[rules]]
        name = "echo-forever"
        on = "audit.note"
        where = { subject = "loop" }
        do = "note"
        with = { text = "again", subject = "loop" }
        """,
    )
    ws.audit.note("start", subject="loop")
    worker = ws.automations.worker(poll_seconds=0.01)
    first = worker.run_once()
    assert first is not None
    assert first.state == "succeeded"
    assert worker.run_once() is None  # the echo's own note would fire the rule: cut
    jobs = ws.automations.queue.list()
    assert [j.state for j in jobs] == ["cancelled", "succeeded"]
    assert "cycle cut" in jobs[0].log
    assert "echo-forever <- echo-forever" in jobs[0].log
    effect = [e for e in ws.audit.events() if e.payload.get("text", "").endswith("again")]
    assert effect[0].payload["caused_by"] == f"job:{first.id}"
    assert ws.audit.verify().ok
    ws.close()


def test_events_written_by_a_job_name_it(workspace: Workspace, tmp_path: Path) -> None:
    ws = _configure(
        workspace,
        """
        [[rules]]
        name = "note-on-trigger"
        on = "audit.note"
        where = { subject = "trigger" }
        do = "note"
        with = { text = "done" }
        """,
    )
    ws.audit.note("go", subject="trigger")
    job = ws.automations.worker(poll_seconds=0.01).run_once()
    assert job is not None
    caused = [e for e in ws.audit.events() if e.payload.get("caused_by") == f"job:{job.id}"]
    assert [e.action for e in caused] == ["audit.note"]
    ws.close()
