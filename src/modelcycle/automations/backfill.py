"""Replaying history on purpose: ``modelcycle rules backfill RULE --since ...``.

The dispatcher never gives a rule the events written before it was added. When someone does
want a rule run over past events, they ask for it: :func:`plan_backfill` lists the matching
events and the job each would queue (nothing is written), :func:`run_backfill` queues them in
one audited ``rules.backfilled`` transaction. Jobs use the dispatcher's idempotency key
``RULE:SEQ``, so an event that already has a job (dispatched or backfilled before) gets none.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from modelcycle.automations.queue import JobQueue
from modelcycle.automations.rules import Rule
from modelcycle.entities import AuditEvent, Job
from modelcycle.errors import InvalidInput, NotFound
from modelcycle.store import AuditFilter, MetadataStore, tables

__all__ = ["BackfillItem", "find_rule", "plan_backfill", "run_backfill"]


@dataclass(frozen=True, slots=True)
class BackfillItem:
    """One past event the rule matches, the parameters its job gets, and any job it has."""

    event: AuditEvent
    kind: str  # the action the job runs
    params: dict[str, Any]
    existing_job: str | None  # the id of the job already queued for it, if any


def find_rule(rules: Sequence[Rule], name: str) -> Rule:
    """The rule called ``name``, or NotFound listing the ones there are."""
    for rule in rules:
        if rule.name == name:
            return rule
    known = ", ".join(r.name for r in rules) or "none"
    raise NotFound(f"no rule {name!r} in modelcycle.toml (rules: {known})")


def plan_backfill(
    meta: MetadataStore,
    audit: Any,
    rule: Rule,
    *,
    since_seq: int | None = None,
    since_at: str | None = None,
) -> list[BackfillItem]:
    """The events from ``since_seq`` (inclusive) or ``since_at`` on that ``rule`` matches."""
    if (since_seq is None) == (since_at is None):
        raise InvalidInput("give a sequence number, a duration or a time", field="--since")
    if since_seq is not None and since_seq < 1:
        raise InvalidInput("a sequence number starts at 1", field="--since")
    where = AuditFilter(
        action=rule.on,
        since=since_at,
        after_seq=None if since_seq is None else since_seq - 1,
    )
    events = [e for e in audit.events(where) if rule.matches(e)]
    keys = {f"{rule.name}:{e.seq}": e for e in events}
    t = tables.jobs
    with meta.read() as conn:
        rows = conn.execute(
            select(t.c.idempotency_key, t.c.id).where(t.c.idempotency_key.in_(list(keys)))
        ).all()
    existing = {str(r.idempotency_key): str(r.id) for r in rows}
    return [
        BackfillItem(e, rule.do, rule.render(e), existing.get(f"{rule.name}:{e.seq}"))
        for e in events
    ]


def run_backfill(
    meta: MetadataStore,
    queue: JobQueue,
    rule: Rule,
    items: Sequence[BackfillItem],
    *,
    actor: str,
    since: str,
) -> list[Job]:
    """Queue the planned jobs in one audited transaction; return the jobs queued now."""
    queued: list[Job] = []
    with meta.write(actor=actor, action="rules.backfilled", subject=f"rule:{rule.name}") as tx:
        for item in items:
            job, created = queue.enqueue(
                rule.do,
                item.params,
                key=f"{rule.name}:{item.event.seq}",
                rule=rule.name,
                event_seq=item.event.seq,
                max_attempts=rule.max_attempts,
                tx=tx,
            )
            if created:
                queued.append(job)
        tx.payload.update(
            rule=rule.name,
            fingerprint=rule.fingerprint,
            since=since,
            events=[i.event.seq for i in items],
            queued=[j.id for j in queued],
        )
    return queued
