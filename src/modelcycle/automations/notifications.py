"""Notifications: new audit events -> delivery jobs -> channels, after the fact.

The audit log is the outbox here too. :meth:`Notifications.dispatch` (called by every worker
loop, beside the rule dispatcher) reads the events after its own cursor, maps each audit action
to its public event name (:data:`~modelcycle.automations.notify_config.PUBLIC_EVENTS`) and
queues one ``notify`` job per matching ``[[notify]]`` entry, key ``notify:NAME:SEQ``: the
action that caused the event committed long before, so a slow, failing or hanging receiver can
never hold it up or undo it. A job carries the whole message (with a delivery id fixed at
queueing, sent on every attempt) and the entry's name; URLs and secrets stay in
``modelcycle.toml`` and the environment, never in the database.

Failed deliveries retry with exponential backoff and jitter (:func:`delivery_policy`) for
``give_up_after`` (24 h), then the job is dead: ``jobs list --state dead``, ``notify log``.

``audit.verify_failed`` is the exception (decision 0007): once the scheduled verification finds
the chain broken, the workspace refuses every audited write, job claims included, so the alarm
cannot be an audit event nor wait for a worker. The verification job writes its delivery rows
as unaudited bookkeeping and makes the first attempts itself; what is still undelivered stays
queued for after the acknowledgement.
"""

from __future__ import annotations

import random
import re
import time
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, func, select, update

from modelcycle.audit import VerifyReport, canonical_json, utc_timestamp
from modelcycle.automations.channels import DeliveryFailed, Message, make_channel
from modelcycle.automations.cursors import advance_cursor, config_changed_at, start_cursor
from modelcycle.automations.notify_config import (
    TEST_EVENT,
    VERIFY_FAILED,
    NotificationConfig,
    NotificationSettings,
    NotifyEntry,
    public_event,
)
from modelcycle.automations.queue import JobQueue, RetryPolicy
from modelcycle.automations.schedules import Schedule
from modelcycle.entities import AuditEvent, Job
from modelcycle.statuses import JobState
from modelcycle.store import AuditFilter, MetadataStore, tables

__all__ = [
    "NOTIFY_KIND",
    "VERIFY_KIND",
    "Notifications",
    "delivery_policy",
    "describe",
    "max_attempts",
]

NOTIFY_KIND = "notify"
VERIFY_KIND = "audit_verify"
_CURSOR = "notify"
_BATCH = 500
_ALARM_ATTEMPTS = 3  # made by the verification job itself before leaving the rest queued


class _AlreadyDispatched(Exception):
    """Raised inside the dispatch write to roll it back: the batch was taken meanwhile."""


def _age_seconds(created_at: str) -> float:
    return (datetime.now(UTC) - datetime.fromisoformat(created_at)).total_seconds()


def delivery_policy(settings: NotificationSettings) -> RetryPolicy:
    """Seconds before the next attempt: base * 2**(n-1), capped, times a jitter of 0.5-1 (so
    receivers coming back up are not hit by every delivery at once); None once the next
    attempt would fall after ``give_up_after`` since the job was queued."""
    window = settings.give_up_after.total_seconds()

    def next_delay(job: Job) -> float | None:
        step = settings.retry_base_seconds * float(2 ** max(0, job.attempts - 1))
        delay = min(settings.retry_max_seconds, step) * (0.5 + random.random() / 2)  # noqa: S311 (jitter)
        if _age_seconds(job.created_at) + delay > window:
            return None
        return delay

    return next_delay


def max_attempts(settings: NotificationSettings) -> int:
    """Enough attempts to fill the window even if every jitter is the shortest; the window,
    not this count, is what normally ends a failing delivery."""
    window = settings.give_up_after.total_seconds()
    total, n = 0.0, 1
    while total < window and n < 1000:
        total += 0.5 * min(settings.retry_max_seconds, settings.retry_base_seconds * 2.0 ** (n - 1))
        n += 1
    return n


def _model_of(event: AuditEvent) -> str | None:
    """The model an event is about (its payload's ``model``, or a ``model:`` subject)."""
    value = event.payload.get("model")
    ref = value if isinstance(value, str) and value else None
    if ref is None and event.subject.startswith("model:"):
        ref = event.subject[len("model:") :]
    return re.split(r"[/@]", ref, maxsplit=1)[0] if ref else None


class Notifications:
    """``ws.automations.notifications``: dispatch, deliver, test, log. No I/O when built."""

    def __init__(
        self,
        metadata: MetadataStore,
        queue: JobQueue,
        actor: str,
        config: NotificationConfig,
        *,
        config_path: Path | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._meta = metadata
        self._queue = queue
        self._actor = actor
        self.config = config
        self._config_path = config_path
        self._sleep = sleep
        self._policy = delivery_policy(config.settings)
        self._max_attempts = max_attempts(config.settings)

    # -- what the worker runs -----------------------------------------------------------------

    def actions(self) -> dict[str, Callable[[Any, Job], dict[str, Any]]]:
        """The job kinds this part adds to the worker's actions."""
        return {NOTIFY_KIND: self.deliver, VERIFY_KIND: self.verify}

    def schedule(self) -> Schedule | None:
        """``[audit] verify_every`` as a schedule of the verification job."""
        if self.config.verify_every is None:
            return None
        return Schedule("audit-verify", self.config.verify_every, VERIFY_KIND, {})

    def dispatch(self, audit: Any) -> list[Job]:
        """Queue deliveries for the events after the cursor; return the jobs queued now."""
        if not self.config.entries:
            return []
        cursor = self._cursor()
        events = audit.events(AuditFilter(after_seq=cursor, limit=_BATCH))
        if not events:
            return []
        last = events[-1].seq
        wanted: list[tuple[NotifyEntry, AuditEvent, str]] = []
        for event in events:
            name = public_event(event.action, event.payload)
            if name is None:
                continue
            model = _model_of(event)
            wanted += [(e, event, name) for e in self.config.entries if e.wants(name, model)]
        if not wanted:
            with self._meta.unaudited() as conn:  # nothing to record: bookkeeping
                advance_cursor(conn, _CURSOR, last)
            return []
        queued: list[Job] = []
        try:
            with self._meta.write(
                actor=self._actor, action="notify.dispatched", subject="notify"
            ) as tx:
                self._dispatch_in(tx, cursor, last, wanted, queued)
        except _AlreadyDispatched:
            return []  # another worker took this batch while this one read it
        return queued

    def _dispatch_in(
        self,
        tx: Any,
        cursor: int,
        last: int,
        wanted: list[tuple[NotifyEntry, AuditEvent, str]],
        queued: list[Job],
    ) -> None:
        t = tables.event_cursors
        # Writers run one at a time: re-read the cursor under the lock, so a batch another
        # worker already queued is neither queued again nor recorded as an empty dispatch.
        if tx.conn.execute(select(t.c.seq).where(t.c.name == _CURSOR)).scalar_one() != cursor:
            raise _AlreadyDispatched
        for entry, event, name in wanted:
            message = self._message(name, event.subject, event.at, event.actor,
                                    {**event.payload, "audit_seq": event.seq},
                                    seq=event.seq, model=_model_of(event))  # fmt: skip
            job, created = self._queue.enqueue(
                NOTIFY_KIND,
                {"notifier": entry.name, "event": name, "message": message.as_dict()},
                key=f"notify:{entry.name}:{event.seq}",
                rule=f"notify:{entry.name}",
                event_seq=event.seq,
                max_attempts=self._max_attempts,
                tx=tx,
            )
            if created:
                queued.append(job)
        advance_cursor(tx.conn, _CURSOR, last)
        tx.payload.update(after_seq=cursor, to_seq=last, queued=[j.id for j in queued])

    def deliver(self, stages: Any, job: Job) -> dict[str, Any]:
        """The ``notify`` action: one attempt to the entry's channel (the queue retries)."""
        entry = self.config.entry(str(job.params["notifier"]))
        message = Message.from_dict(job.params["message"])
        receipt = make_channel(entry, self.config).send(message)
        return {"delivery": message.id, "channel": entry.channel, "receipt": receipt}

    def verify(self, stages: Any, job: Job) -> dict[str, Any]:
        """The ``audit_verify`` action: verify the chain; when it no longer verifies, raise
        ``audit.verify_failed`` to every entry that asks for it."""
        report: VerifyReport = stages.audit.verify()
        if report.ok:
            return {"ok": True, "events": report.events}
        return {"ok": False, "problem": str(report.problem), "alarms": self.alarm(report)}

    # -- the alarm path (decision 0007) -------------------------------------------------------

    def alarm(self, report: VerifyReport) -> list[dict[str, Any]]:
        """Deliver ``audit.verify_failed`` while audited writes are refused: delivery rows are
        unaudited bookkeeping, and the first attempts are made here and now."""
        problem = report.problem
        assert problem is not None
        payload = {"first_bad_seq": problem.seq, "kind": problem.kind, "detail": problem.detail,
                   "events": report.events, "breaks": len(report.unacknowledged)}  # fmt: skip
        now = utc_timestamp()
        jobs: list[tuple[NotifyEntry, Job]] = []
        for entry in self.config.entries:
            if entry.wants(VERIFY_FAILED, None):
                message = self._message(VERIFY_FAILED, "workspace", now, self._actor, payload)
                jobs.append((entry, self._insert_alarm(entry, message, now)))
        return [self._deliver_now(entry, job) for entry, job in jobs]

    def _insert_alarm(self, entry: NotifyEntry, message: Message, now: str) -> Job:
        job_id = uuid.uuid4().hex[:12]
        params = {"notifier": entry.name, "event": VERIFY_FAILED, "message": message.as_dict()}
        row = {
            "id": job_id, "kind": NOTIFY_KIND, "rule": f"notify:{entry.name}", "event_seq": None,
            "idempotency_key": f"notify:{entry.name}:{VERIFY_FAILED}:{message.id}",
            "state": JobState.QUEUED, "attempts": 0, "max_attempts": self._max_attempts,
            "params": canonical_json(params), "result": None, "error": None,
            "log": "queued by the scheduled audit verification (unaudited: the chain is broken)\n",
            "lease_owner": None, "lease_expires_at": None, "run_after": now,
            "created_at": now, "updated_at": now,
        }  # fmt: skip
        with self._meta.unaudited() as conn:
            conn.execute(tables.jobs.insert().values(**row))
        return self._queue.get(job_id)

    def _deliver_now(self, entry: NotifyEntry, job: Job) -> dict[str, Any]:
        message = Message.from_dict(job.params["message"])
        channel = make_channel(entry, self.config)
        error = ""
        for attempt in range(1, _ALARM_ATTEMPTS + 1):
            try:
                receipt = channel.send(message)
            except DeliveryFailed as exc:
                error = f"DeliveryFailed: {exc}"
                job = self._set(job, attempts=attempt, error=error)
                delay = self._policy(job)
                if delay is None:
                    self._set(job, state=JobState.DEAD)
                    return {"notifier": entry.name, "delivery": message.id, "state": JobState.DEAD}
                if attempt < _ALARM_ATTEMPTS:
                    self._sleep(delay)
                    continue
                # Left queued: a worker delivers it once the break is acknowledged.
                self._set(
                    job, run_after=utc_timestamp(datetime.now(UTC) + timedelta(seconds=delay))
                )
                return {"notifier": entry.name, "delivery": message.id, "state": JobState.QUEUED}
            result = {"delivery": message.id, "channel": entry.channel, "receipt": receipt}
            self._set(
                job, state=JobState.SUCCEEDED, attempts=attempt, result=canonical_json(result)
            )
            return {"notifier": entry.name, "delivery": message.id, "state": JobState.SUCCEEDED}
        raise AssertionError("unreachable")  # pragma: no cover

    def _set(self, job: Job, **values: Any) -> Job:
        with self._meta.unaudited() as conn:
            conn.execute(
                update(tables.jobs)
                .where(tables.jobs.c.id == job.id)
                .values(updated_at=utc_timestamp(), **values)
            )
        return self._queue.get(job.id)

    # -- for people ---------------------------------------------------------------------------

    def send_test(self, name: str) -> tuple[Message, str]:
        """Send a sample message to entry ``name`` now (one attempt, no queue)."""
        entry = self.config.entry(name)
        message = self._message(
            TEST_EVENT, "workspace", utc_timestamp(), self._actor,
            {"text": f"a test notification for [[notify]] {name!r} from modelcycle"},
        )  # fmt: skip
        return message, make_channel(entry, self.config).send(message)

    def log(self, *, state: str | None = None, limit: int = 50) -> list[Job]:
        """Delivery jobs, newest first."""
        return self._queue.list(state=state, limit=limit, kind=NOTIFY_KIND)

    # -- helpers ------------------------------------------------------------------------------

    def _message(
        self,
        event: str,
        subject: str,
        at: str,
        actor: str,
        payload: dict[str, Any],
        *,
        seq: int | None = None,
        model: str | None = None,
    ) -> Message:
        links: dict[str, str] = {}
        base = self.config.settings.base_url
        if base:
            if seq is not None:
                links["audit_event"] = f"{base}/audit/events/{seq}"
            if model:
                links["model"] = f"{base}/models/{model}"
        return Message(uuid.uuid4().hex, event, subject, at, actor, payload, links)

    def _cursor(self) -> int:
        # First time: notify about what happened since modelcycle.toml last changed (the
        # entries were there by then at the latest), never about older history.
        def first(conn: Connection) -> int:
            query = select(func.max(tables.audit_events.c.seq))
            changed = config_changed_at(self._config_path)
            if changed is not None:
                query = query.where(tables.audit_events.c.at <= changed)
            return int(conn.execute(query).scalar() or 0)

        return start_cursor(self._meta, _CURSOR, first)


def describe(jobs: Sequence[Job]) -> list[dict[str, Any]]:
    """``notify log`` rows: job, entry, event, delivery id, state, attempts, error."""
    return [
        {
            "job": j.id,
            "notifier": j.params.get("notifier"),
            "event": j.params.get("event"),
            "delivery": (j.params.get("message") or {}).get("id"),
            "state": j.state,
            "attempts": j.attempts,
            "max_attempts": j.max_attempts,
            "error": j.error,
            "receipt": (j.result or {}).get("receipt"),
            "created_at": j.created_at,
            "updated_at": j.updated_at,
        }
        for j in jobs
    ]
