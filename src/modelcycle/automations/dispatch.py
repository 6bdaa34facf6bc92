"""From events to jobs: the audit log is the outbox, read after a cursor.

Each stage's change and its audit event commit together, so an event exists exactly when its
change does. The dispatcher reads the events after its cursor, queues one job per matching
rule with the idempotency key ``RULE:SEQ`` and moves the cursor, in one transaction. Two
dispatchers racing queue each job once: the key is unique and writes run one at a time.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select, update

from modelcycle.audit import utc_timestamp
from modelcycle.automations.queue import JobQueue
from modelcycle.automations.rules import Rule
from modelcycle.entities import AuditEvent, Job
from modelcycle.store import AuditFilter, MetadataStore, tables

__all__ = ["Dispatcher"]

_CURSOR = "rules"
_BATCH = 500
_MAX_CHAIN = 50


class Dispatcher:
    """Turns new audit events into queued jobs. Constructing it does no I/O."""

    def __init__(
        self, metadata: MetadataStore, queue: JobQueue, rules: Sequence[Rule], actor: str
    ) -> None:
        self._meta = metadata
        self._queue = queue
        self._rules = list(rules)
        self._actor = actor

    def dispatch(self, audit: Any) -> list[Job]:
        """Queue the jobs for events since the cursor; return the jobs queued now."""
        cursor = self._cursor()
        events = [e for e in audit.events(AuditFilter(after_seq=cursor, limit=_BATCH))]
        if not events:
            return []
        last = events[-1].seq
        matches = [(r, e) for e in events for r in self._rules if r.matches(e)]
        if not matches:
            self._advance(last)  # no change to record: the cursor is bookkeeping
            return []
        queued: list[Job] = []
        with self._meta.write(actor=self._actor, action="rules.dispatched", subject="rules") as tx:
            skipped: list[str] = []
            cut: list[str] = []
            for rule, event in matches:
                if rule.debounce is not None and self._recent(tx, rule, event):
                    skipped.append(f"{rule.name}:{event.seq}")
                    continue
                chain = self._chain(tx, event)
                if rule.name in chain:
                    # The rule's own effect led back to it: running it again would loop.
                    path = " <- ".join([rule.name, *chain])
                    self._queue.enqueue(
                        rule.do, rule.render(event), key=f"{rule.name}:{event.seq}",
                        rule=rule.name, event_seq=event.seq, tx=tx,
                        cancelled=f"cycle cut: rule {rule.name!r} would run again in its own "
                        f"chain ({path}); fix the rules or run the action by hand",
                    )  # fmt: skip
                    cut.append(f"{rule.name}:{event.seq}")
                    continue
                job, created = self._queue.enqueue(
                    rule.do,
                    rule.render(event),
                    key=f"{rule.name}:{event.seq}",
                    rule=rule.name,
                    event_seq=event.seq,
                    max_attempts=rule.max_attempts,
                    tx=tx,
                )
                if created:
                    queued.append(job)
            tx.conn.execute(
                update(tables.event_cursors)
                .where(tables.event_cursors.c.name == _CURSOR, tables.event_cursors.c.seq < last)
                .values(seq=last)
            )
            tx.payload.update(
                after_seq=cursor,
                to_seq=last,
                queued=[j.id for j in queued],
                debounced=skipped,
                cycles_cut=cut,
            )
        return queued

    def _chain(self, tx: Any, event: AuditEvent) -> list[str]:
        """The rules that led to ``event``, nearest first (via each event's ``caused_by``)."""
        names: list[str] = []
        cause = event.payload.get("caused_by")
        for _ in range(_MAX_CHAIN):
            if not isinstance(cause, str) or not cause.startswith("job:"):
                break
            job = tx.conn.execute(
                select(tables.jobs.c.rule, tables.jobs.c.event_seq).where(
                    tables.jobs.c.id == cause[4:]
                )
            ).first()
            if job is None:
                break
            if job.rule:
                names.append(job.rule)
            if job.event_seq is None:
                break
            payload = tx.conn.execute(
                select(tables.audit_events.c.payload).where(
                    tables.audit_events.c.seq == job.event_seq
                )
            ).scalar()
            cause = json.loads(payload).get("caused_by") if payload else None
        return names

    def _recent(self, tx: Any, rule: Rule, event: AuditEvent) -> bool:
        """A job of this rule was queued within its debounce window."""
        assert rule.debounce is not None
        since = utc_timestamp(datetime.now(UTC) - rule.debounce)
        t = tables.jobs
        return (
            tx.conn.execute(
                select(t.c.id).where(t.c.rule == rule.name, t.c.created_at >= since).limit(1)
            ).first()
            is not None
        )

    def _cursor(self) -> int:
        t = tables.event_cursors
        with self._meta.read() as conn:
            seq = conn.execute(select(t.c.seq).where(t.c.name == _CURSOR)).scalar()
        if seq is None:
            with self._meta.unaudited() as conn:
                exists = conn.execute(select(t.c.seq).where(t.c.name == _CURSOR)).scalar()
                if exists is None:
                    conn.execute(t.insert().values(name=_CURSOR, seq=0))
            return 0
        return int(seq)

    def _advance(self, seq: int) -> None:
        t = tables.event_cursors
        with self._meta.unaudited() as conn:
            conn.execute(update(t).where(t.c.name == _CURSOR, t.c.seq < seq).values(seq=seq))
