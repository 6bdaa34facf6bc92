"""Rules, the job queue and workers: one effect per event, leases, retries, debounce."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from _cli import run_cli
from modelcycle import InvalidInput, Workspace


def _configure(ws: Workspace, rules: str, extra: str = "") -> Workspace:
    """Append rules to modelcycle.toml and reopen the workspace (settings are read once)."""
    path = ws.root / "modelcycle.toml"
    path.write_text(path.read_text() + textwrap.dedent(extra) + textwrap.dedent(rules))
    ws.close()
    return Workspace(ws.root)


NOTE_RULE = """
[[rules]]
name = "echo"
on = "audit.note"
where = { subject = "trigger" }
do = "note"
with = { text = "seen event {seq}", subject = "effect" }
"""


def _effects(ws: Workspace) -> list[str]:
    return [e.payload["text"] for e in ws.audit.events() if e.subject == "effect"]


def test_a_rule_fires_once_per_event(workspace: Workspace) -> None:
    ws = _configure(workspace, NOTE_RULE)
    trigger = ws.audit.note("go", subject="trigger")
    ws.audit.note("not a trigger", subject="other")
    worker = ws.automations.worker(poll_seconds=0.01)
    job = worker.run_once()
    assert job is not None
    assert job.state == "succeeded"
    assert job.idempotency_key == f"echo:{trigger.seq}"
    assert worker.run_once() is None  # the event was dispatched once, the job ran once
    assert _effects(ws) == [f"[job {job.id}] seen event {trigger.seq}"]
    actions = [e.action for e in ws.audit.events(None) if e.subject == f"job:{job.id}"]
    assert actions == ["job.queued", "job.started", "job.succeeded"]
    assert ws.audit.verify().ok
    ws.close()


def _worker(root: Path, *args: str) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODELCYCLE_")}
    env["MODELCYCLE_ACTOR"] = "worker"
    return subprocess.Popen(
        [sys.executable, "-m", "modelcycle", "worker", "--poll", "0.05", *args],
        cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip


def _wait(predicate, timeout: float = 90.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def _stop(*procs: subprocess.Popen[str]) -> None:
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    for p in procs:
        try:
            p.wait(timeout=30)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(timeout=10)


def test_two_workers_racing_give_one_effect_per_event(workspace: Workspace) -> None:
    ws = _configure(workspace, NOTE_RULE)
    workers = [_worker(ws.root, "--name", "w1"), _worker(ws.root, "--name", "w2")]
    try:
        triggers = [ws.audit.note(f"go {i}", subject="trigger") for i in range(8)]
        _wait(lambda: len(ws.automations.queue.list(state="succeeded")) == 8)
    finally:
        _stop(*workers)
    jobs = ws.automations.queue.list()
    assert len(jobs) == 8
    assert sorted(j.event_seq for j in jobs) == sorted(t.seq for t in triggers)  # type: ignore[misc]
    effects = _effects(ws)
    assert len(effects) == 8
    assert len(set(effects)) == 8
    assert ws.audit.verify().ok
    ws.close()


SLOW_PIPELINE = """
import time
from modelcycle.pipelines import Pipeline, step

@step
def slow():
    time.sleep(4)
    return 1

pipe = Pipeline("slow", [slow])
"""


def test_killed_worker_lease_expires_and_the_job_completes_once(
    workspace: Workspace, tmp_path: Path
) -> None:
    (workspace.root / "mc_slowpipe.py").write_text(textwrap.dedent(SLOW_PIPELINE))
    ws = _configure(
        workspace,
        """
        [[rules]]
        name = "run-slow"
        on = "audit.note"
        where = { subject = "trigger" }
        do = "pipeline"
        with = { ref = "mc_slowpipe:pipe" }
        """,
    )
    ws.audit.note("go", subject="trigger")
    first = _worker(ws.root, "--name", "doomed", "--lease", "2")
    try:
        _wait(lambda: any(j.state == "running" for j in ws.automations.queue.list()))
        time.sleep(1.0)  # inside the slow step
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=10)
        second = _worker(ws.root, "--name", "survivor", "--lease", "2")
        try:
            _wait(lambda: ws.automations.queue.list()[0].state == "succeeded", timeout=120)
        finally:
            _stop(second)
    finally:
        _stop(first)
    job = ws.automations.queue.list()[0]
    assert job.attempts == 2
    started = [
        e for e in ws.audit.events() if e.subject == f"job:{job.id}" and e.action == "job.started"
    ]
    assert [e.payload["worker"] for e in started] == ["doomed", "survivor"]
    assert started[1].payload["reclaimed_from"] == "doomed"
    runs = ws.pipelines.runs(pipeline="slow")
    assert [r.status for r in runs].count("succeeded") == 1
    assert ws.audit.verify().ok
    ws.close()


def test_a_failing_job_is_retried_then_dead_with_job_failed(workspace: Workspace) -> None:
    ws = _configure(
        workspace,
        """
        [[rules]]
        name = "always-fails"
        on = "audit.note"
        where = { subject = "trigger" }
        do = "fail"
        with = { message = "boom" }
        max_attempts = 2
        """,
        extra="\n[automations]\nbackoff_seconds = 0.2\n",
    )
    ws.audit.note("go", subject="trigger")
    worker = ws.automations.worker(poll_seconds=0.01)
    first = worker.run_once()
    assert first is not None
    assert first.state == "queued"  # to be retried after the backoff
    assert first.error == "RuntimeError: boom"
    _wait(lambda: worker.run_once() is not None, timeout=10)
    job = ws.automations.queue.get(first.id)
    assert job.state == "dead"
    assert job.attempts == 2
    assert "RuntimeError: boom" in job.log
    failed = [e for e in ws.audit.events() if e.action == "job.failed"]
    assert [e.subject for e in failed] == [f"job:{job.id}"]
    # job.failed is itself an event rules can react to; retry puts the job back.
    again = ws.automations.queue.retry(job.id)
    assert again.state == "queued"
    assert again.attempts == 0
    ws.close()


def test_debounce_keeps_one_job_per_window(workspace: Workspace) -> None:
    ws = _configure(workspace, NOTE_RULE.replace('do = "note"', 'do = "note"\ndebounce = "1h"'))
    for i in range(3):
        ws.audit.note(f"go {i}", subject="trigger")
    ws.automations.dispatcher().dispatch(ws.audit)
    assert len(ws.automations.queue.list()) == 1
    dispatched = [e for e in ws.audit.events() if e.action == "rules.dispatched"]
    assert len(dispatched[-1].payload["debounced"]) == 2
    ws.close()


@pytest.mark.parametrize(
    ("rule", "field"),
    [
        ('name = "r"\non = "nope.event"\ndo = "note"', "rules[0].on"),
        ('name = "r"\non = "audit.note"\ndo = "launch"', "rules[0].do"),
        ('name = "a/b"\non = "audit.note"\ndo = "note"', "rules[0].name"),
        ('name = "r"\non = "audit.note"\ndo = "note"\ndebounce = "soon"', "rules[0].debounce"),
    ],
)
def test_bad_rules_are_refused_naming_the_field(
    workspace: Workspace, rule: str, field: str
) -> None:
    ws = _configure(workspace, f"\n[[rules]]\n{rule}\n")
    with pytest.raises(InvalidInput, match=field.replace("[", r"\[").replace("]", r"\]")):
        ws.automations.rules  # noqa: B018
    proc = run_cli("rules", "check", cwd=ws.root)
    assert proc.returncode == 2
    assert field in proc.stderr
    ws.close()


def test_cli_jobs_and_rules(workspace: Workspace) -> None:
    ws = _configure(workspace, NOTE_RULE)
    ws.audit.note("go", subject="trigger")
    assert "OK: 1 rule(s) valid" in run_cli("rules", "check", cwd=ws.root, check=True).stdout
    assert "echo" in run_cli("rules", "list", cwd=ws.root, check=True).stdout
    once = run_cli("worker", "--once", cwd=ws.root, check=True)
    assert "succeeded" in once.stdout
    listing = run_cli("jobs", "list", "--json", cwd=ws.root, check=True)
    jobs = [json.loads(line) for line in listing.stdout.splitlines()]
    assert [j["state"] for j in jobs] == ["succeeded"]
    shown = json.loads(run_cli("jobs", "show", jobs[0]["id"], cwd=ws.root, check=True).stdout)
    assert shown["key"].startswith("echo:")
    bad = run_cli("jobs", "cancel", jobs[0]["id"], cwd=ws.root)
    assert bad.returncode == 4
    ws.close()
