"""From events to jobs: the audit log is the outbox, read after a cursor.

Each stage's change and its audit event commit together, so an event exists exactly when its
change does. The dispatcher reads the events after its cursor, queues one job per matching
rule with the idempotency key ``RULE:SEQ`` and moves the cursor, in one transaction. Two
dispatchers racing queue each job once: the key is unique and writes run one at a time.

A rule acts only on events written after it was added, never on history: the first time a
dispatcher sees a rule (by its fingerprint: name and definition), it records, as an audited
``rules.registered`` event, the last event written before ``modelcycle.toml`` was last changed,
and never gives the rule that event or any earlier one. Replaying history is an explicit,
audited command (``modelcycle rules backfill``, :mod:`modelcycle.automations.backfill`). A
workspace that never ran a worker starts its cursor at the earliest such point (the head, when
there are no rules), not at the first event.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, func, insert, select

from modelcycle.audit import utc_timestamp
from modelcycle.automations.cursors import advance_cursor, config_changed_at, start_cursor
from modelcycle.automations.queue import JobQueue
from modelcycle.automations.rules import Rule
from modelcycle.entities import AuditEvent, Job
from modelcycle.store import AuditFilter, MetadataStore, tables

__all__ = ["Dispatcher", "rule_key"]

_CURSOR = "rules"
_BATCH = 500
_MAX_CHAIN = 50


def rule_key(rule: Rule) -> str:
    """The ``event_cursors`` row that records after which event ``rule`` acts."""
    return f"rule:{rule.fingerprint[:40]}"


class _Known(Exception):
    """Another dispatcher registered the rule first: roll back, use its point."""

    def __init__(self, seq: int) -> None:
        super().__init__(seq)
        self.seq = seq


class Dispatcher:
    """Turns new audit events into queued jobs. Constructing it does no I/O."""

    def __init__(
        self,
        metadata: MetadataStore,
        queue: JobQueue,
        rules: Sequence[Rule],
        actor: str,
        *,
        config_path: Path | None = None,
    ) -> None:
        self._meta = metadata
        self._queue = queue
        self._rules = list(rules)
        self._actor = actor
        self._config_path = config_path
        self._anchors: dict[str, int] | None = None

    def anchors(self) -> dict[str, int]:
        """Per rule name, the last event it will never act on (registering new rules)."""
        if self._anchors is None:
            keys = {r.name: rule_key(r) for r in self._rules}
            t = tables.event_cursors
            with self._meta.read() as conn:
                rows = conn.execute(
                    select(t.c.name, t.c.seq).where(t.c.name.in_(list(keys.values())))
                ).all()
            known = {str(row.name): int(row.seq) for row in rows}
            # Cached for the dispatcher's life: a point, once recorded, never moves.
            self._anchors = {
                r.name: known[keys[r.name]] if keys[r.name] in known else self._register(r)
                for r in self._rules
            }
        return self._anchors

    def dispatch(self, audit: Any) -> list[Job]:
        """Queue the jobs for events since the cursor; return the jobs queued now."""
        anchors = self.anchors()
        cursor = self._cursor(min(anchors.values(), default=None))
        events = [e for e in audit.events(AuditFilter(after_seq=cursor, limit=_BATCH))]
        if not events:
            return []
        last = events[-1].seq
        matches = [
            (r, e) for e in events for r in self._rules if e.seq > anchors[r.name] and r.matches(e)
        ]
        if not matches:
            with self._meta.unaudited() as conn:  # no change to record: bookkeeping
                advance_cursor(conn, _CURSOR, last)
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
            advance_cursor(tx.conn, _CURSOR, last)
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

    def _register(self, rule: Rule) -> int:
        """Record that ``rule`` acts only on events after the config file last changed."""
        changed_at = config_changed_at(self._config_path)
        key = rule_key(rule)
        ev = tables.audit_events
        try:
            with self._meta.write(
                actor=self._actor, action="rules.registered", subject=f"rule:{rule.name}"
            ) as tx:
                t = tables.event_cursors
                existing = tx.conn.execute(select(t.c.seq).where(t.c.name == key)).scalar()
                if existing is not None:
                    raise _Known(int(existing))
                # The rule was written into modelcycle.toml at the latest when the file last
                # changed: events from before then are history, not the rule's business.
                query = select(func.max(ev.c.seq))
                if changed_at is not None:
                    query = query.where(ev.c.at <= changed_at)
                after = int(tx.conn.execute(query).scalar() or 0)
                tx.conn.execute(insert(t).values(name=key, seq=after))
                tx.payload.update(
                    rule=rule.name,
                    fingerprint=rule.fingerprint,
                    after_seq=after,
                    config_changed_at=changed_at,
                )
        except _Known as known:
            return known.seq
        return after

    def _cursor(self, start: int | None) -> int:
        # Never dispatched here: start where the rules start (or at the head), not at event 1,
        # so a first worker does not walk all of history.
        def first(conn: Connection) -> int:
            if start is not None:
                return start
            head = tables.audit_head
            return int(conn.execute(select(head.c.seq).where(head.c.id == 1)).scalar() or 0)

        return start_cursor(self._meta, _CURSOR, first)
