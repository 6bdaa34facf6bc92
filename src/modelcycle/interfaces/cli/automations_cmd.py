"""``modelcycle worker``, ``modelcycle jobs ...`` and ``modelcycle rules ...``."""

from __future__ import annotations

import json
import signal
import sys
from typing import Any

import typer
from rich.markup import escape
from rich.table import Table

from modelcycle.interfaces.cli._context import console, open_workspace, parse_since

jobs_app = typer.Typer(help="The job queue: list, show, retry, cancel.", no_args_is_help=True)
rules_app = typer.Typer(help="Automation rules from modelcycle.toml.", no_args_is_help=True)


def worker(
    concurrency: int = typer.Option(1, "--concurrency", min=1, max=32, help="Jobs at once."),
    once: bool = typer.Option(False, "--once", help="Dispatch and run at most one job, then exit."),
    lease: float = typer.Option(60.0, "--lease", min=2.0, help="Lease seconds (renewed)."),
    poll: float = typer.Option(1.0, "--poll", min=0.05, help="Seconds between idle polls."),
    name: str | None = typer.Option(None, "--name", help="Worker name (default host:pid)."),
) -> None:
    """Run jobs: turn new events into jobs by the rules, claim them, run them."""
    with open_workspace() as ws:
        w = ws.automations.worker(name=name, lease_seconds=lease, poll_seconds=poll)
        if once:
            job = w.run_once()
            console.print(f"job {job.id} {job.kind}: {job.state}" if job else "no job to run")
            return
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: w.stop())
        console.print(f"worker {escape(w.name)} started ({concurrency} at a time)")
        w.run(
            concurrency=concurrency,
            on_job=lambda j: console.print(
                f"job {j.id} {escape(j.kind)} (rule {escape(j.rule or '-')}): {j.state}"
            ),
        )
        console.print("worker stopped")


@jobs_app.command("list")
def list_jobs(
    state: str | None = typer.Option(None, "--state", help="Only jobs in this state."),
    limit: int = typer.Option(50, "--limit", "-n", min=1, help="Newest N jobs."),
    as_json: bool = typer.Option(False, "--json", help="JSON lines."),
) -> None:
    """Jobs, newest first."""
    with open_workspace() as ws:
        jobs = ws.automations.queue.list(state=state, limit=limit)
    if as_json:
        for j in jobs:
            typer.echo(json.dumps(_job_dict(j)))
        return
    table = Table("job", "kind", "rule", "event", "state", "attempts", "updated (UTC)")
    for j in jobs:
        table.add_row(
            j.id, escape(j.kind), escape(j.rule or "-"), str(j.event_seq or "-"), j.state,
            f"{j.attempts}/{j.max_attempts}", j.updated_at[:19].replace("T", " "),
        )  # fmt: skip
    console.print(table)


@jobs_app.command("show")
def show(job: str = typer.Argument(..., help="Job id (or 4+ leading characters).")) -> None:
    """One job: parameters, result or error, and its log."""
    with open_workspace() as ws:
        j = ws.automations.queue.get(job)
    typer.echo(json.dumps(_job_dict(j), indent=2))


@jobs_app.command("retry")
def retry(job: str = typer.Argument(..., help="A dead or cancelled job.")) -> None:
    """Queue a dead or cancelled job again."""
    with open_workspace() as ws:
        j = ws.automations.queue.retry(job)
    console.print(f"job {j.id} queued again")


@jobs_app.command("cancel")
def cancel(job: str = typer.Argument(..., help="A queued or running job.")) -> None:
    """Cancel a queued or running job."""
    with open_workspace() as ws:
        j = ws.automations.queue.cancel(job)
    console.print(f"job {j.id} cancelled")


@rules_app.command("list")
def list_rules() -> None:
    """The rules, as modelcycle.toml declares them."""
    with open_workspace() as ws:
        rules = ws.automations.rules
    table = Table("rule", "on", "where", "do", "with", "debounce")
    for r in rules:
        table.add_row(
            escape(r.name), r.on, escape(json.dumps(dict(r.where))), r.do,
            escape(json.dumps(dict(r.params))), str(r.debounce or "-"),
        )  # fmt: skip
    console.print(table)


@rules_app.command("check")
def check() -> None:
    """Validate the rules; exit non-zero naming the first problem."""
    with open_workspace() as ws:
        rules = ws.automations.rules
        policies = ws.approvals.policies  # [promotion.*]: InvalidInput naming the key
        notify = ws.automations.notifications.config.entries  # [[notify]], [smtp] ...
    console.print(f"[green]OK[/]: {len(rules)} rule(s) valid")
    if policies.sections:
        console.print(f"[green]OK[/]: {len(policies.sections)} promotion policy(ies) valid")
    if notify:
        console.print(f"[green]OK[/]: {len(notify)} notify entr(ies) valid")


@rules_app.command("backfill")
def backfill(
    rule: str = typer.Argument(..., help="The rule to run over past events."),
    since: str = typer.Option(
        ..., "--since", help="From event SEQ (inclusive), or 30m, 2h, 7d ago, or an ISO time."
    ),
    yes: bool = typer.Option(False, "--yes", "-y", help="Queue the jobs without asking."),
) -> None:
    """Run a rule over past events: list what it would queue, then queue it (audited)."""
    since = since.strip()
    since_seq = int(since) if since.isdigit() else None
    since_at = None if since_seq is not None else parse_since(since)
    with open_workspace() as ws:
        plan = ws.automations.plan_backfill(rule, since_seq=since_seq, since_at=since_at)
        table = Table("event", "at (UTC)", "subject", "job it would queue")
        for item in plan:
            job = (
                f"none: job {item.existing_job} already exists"
                if item.existing_job
                else f"{item.kind} {json.dumps(item.params)}"
            )
            table.add_row(
                str(item.event.seq), item.event.at[:19].replace("T", " "),
                escape(item.event.subject), escape(job),
            )  # fmt: skip
        new = [i for i in plan if i.existing_job is None]
        console.print(table)
        console.print(
            f"rule {escape(rule)} matches {len(plan)} event(s) since {escape(since)}; "
            f"{len(new)} new job(s) would be queued"
        )
        if not new:
            return
        asked = not yes and sys.stdin.isatty() and typer.confirm("Queue these jobs?", default=False)
        if not (yes or asked):
            console.print("nothing queued (dry run): pass --yes to queue them")
            return
        jobs = ws.automations.backfill(rule, since_seq=since_seq, since_at=since_at)
    console.print(f"queued {len(jobs)} job(s): {', '.join(j.id for j in jobs) or '-'}")


def _job_dict(j: Any) -> dict[str, Any]:
    return {
        "id": j.id, "kind": j.kind, "rule": j.rule, "event_seq": j.event_seq,
        "key": j.idempotency_key, "state": j.state, "attempts": j.attempts,
        "max_attempts": j.max_attempts, "params": j.params, "result": j.result,
        "error": j.error, "log": j.log, "created_at": j.created_at, "updated_at": j.updated_at,
    }  # fmt: skip
