"""A new rule acts only on events after it was added; history is replayed only on request."""

from __future__ import annotations

import textwrap

from _cli import run_cli
from modelcycle import Workspace

RULE = """
[[rules]]
name = "on-data"
on = "dataset.version_created"
where = { subject_name = "credit" }
do = "note"
with = { text = "saw {subject_ref}", subject = "effect" }
"""


def _add(ws: Workspace, rows: int) -> None:
    csv = ws.root / f"credit_{rows}.csv"
    csv.write_text("x,y\n" + "".join(f"{i},{i % 2}\n" for i in range(rows)))
    assert ws.datasets.ingest("credit", str(csv)).created


def _jobs(ws: Workspace) -> list[tuple[str | None, int | None]]:
    return sorted(((j.rule, j.event_seq) for j in ws.automations.queue.list()), key=str)


def _version_events(ws: Workspace) -> list[int]:
    return [e.seq for e in ws.audit.events() if e.action == "dataset.version_created"]


def test_a_new_rule_ignores_history_and_backfill_replays_it_on_request(
    workspace: Workspace,
) -> None:
    root = workspace.root
    _add(workspace, 5)
    _add(workspace, 6)
    config = root / "modelcycle.toml"
    config.write_text(config.read_text() + textwrap.dedent(RULE))

    first = run_cli("worker", "--once", cwd=root, check=True)  # the real worker command
    assert "no job to run" in first.stdout
    assert _jobs(workspace) == []  # the two old versions are history: no retraining them

    _add(workspace, 7)
    ran = run_cli("worker", "--once", cwd=root, check=True)
    assert "succeeded" in ran.stdout
    old1, old2, new = _version_events(workspace)
    assert _jobs(workspace) == [("on-data", new)]
    registered = [e for e in workspace.audit.events() if e.action == "rules.registered"]
    assert [e.payload["rule"] for e in registered] == ["on-data"]
    assert old2 <= registered[0].payload["after_seq"] < new

    dry = run_cli("rules", "backfill", "on-data", "--since", "1", cwd=root, check=True)
    assert "2 new job(s) would be queued" in dry.stdout
    assert "credit@1" in dry.stdout
    assert "credit@2" in dry.stdout
    assert "already exists" in dry.stdout  # the third version has its job
    assert "nothing queued" in dry.stdout
    assert len(_jobs(workspace)) == 1

    done = run_cli("rules", "backfill", "on-data", "--since", "1", "--yes", cwd=root, check=True)
    assert "queued 2 job(s)" in done.stdout
    assert [seq for _, seq in _jobs(workspace)] == [old1, old2, new]
    backfilled = [e for e in workspace.audit.events() if e.action == "rules.backfilled"]
    assert len(backfilled) == 1
    assert backfilled[0].payload["events"] == [old1, old2, new]
    assert backfilled[0].actor == "tester"
    ws = Workspace(root)  # settings (and so rules) are read once: reopen after the edit
    assert ws.automations.backfill("on-data", since_at="2000-01-01T00:00:00.000000Z") == []
    assert len(_jobs(ws)) == 3  # keys RULE:SEQ: never a second job for one event
    ws.close()


def _reopen(ws: Workspace, config: str) -> Workspace:
    (ws.root / "modelcycle.toml").write_text(config)
    ws.close()
    return Workspace(ws.root)


def test_a_changed_rule_is_a_new_rule(workspace: Workspace) -> None:
    base = (workspace.root / "modelcycle.toml").read_text()
    narrow = RULE.replace('"credit"', '"other"')
    ws = _reopen(workspace, base + textwrap.dedent(narrow))
    ws.automations.dispatcher().dispatch(ws.audit)  # a worker ran, then stopped
    _add(ws, 5)
    _add(ws, 6)
    # Widened to match credit while the worker was down: as the same rule it would take both
    # versions behind the worker's cursor; as a new rule (new definition) it acts only on what
    # comes after the change.
    ws = _reopen(ws, base + textwrap.dedent(RULE))
    ws.automations.dispatcher().dispatch(ws.audit)
    assert _jobs(ws) == []
    _add(ws, 7)
    ws.automations.dispatcher().dispatch(ws.audit)
    assert _jobs(ws) == [("on-data", _version_events(ws)[-1])]
    ws.close()


def test_backfill_names_unknown_rules_and_bad_since(workspace: Workspace) -> None:
    root = workspace.root
    config = root / "modelcycle.toml"
    config.write_text(config.read_text() + textwrap.dedent(RULE))
    missing = run_cli("rules", "backfill", "nope", "--since", "1", cwd=root)
    assert missing.returncode != 0
    assert "no rule 'nope'" in missing.stderr
    assert "on-data" in missing.stderr
    bad = run_cli("rules", "backfill", "on-data", "--since", "yesterday", cwd=root)
    assert bad.returncode == 2
    assert "--since" in bad.stderr
