"""The job queue: rows in the metadata database, claimed under a lease.

State machine::

    queued --claim--> running --complete--> succeeded
       ^                 |  \\--fail, attempts left--> queued (run_after = now + backoff)
       |                 |   \\-fail, no attempts left--> dead   (+ event job.failed)
       |                 \\--lease expired: claimable again by any worker
       \\--retry (from dead / cancelled)            cancel: queued|running --> cancelled

Every state change is an audited write naming the job (``job:ID``), so the audit trail shows
why a job ran, on which attempt, and how it ended. Claims are writes too, so two workers never
hold the same job: writers run one at a time (SQLite's BEGIN IMMEDIATE, PostgreSQL's lock on
the chain head) and the claim query also skips rows other transactions hold (SKIP LOCKED).
Lease renewals are the exception: a heartbeat is not a change anyone needs in the audit
trail, so it updates one column directly.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import and_, or_, select, update

from modelcycle.audit import canonical_json, utc_timestamp
from modelcycle.entities import Job
from modelcycle.errors import Conflict, InvalidInput, NotFound
from modelcycle.statuses import JobState
from modelcycle.store import MetadataStore, tables

__all__ = ["JOB_STATES", "JobQueue", "RetryPolicy"]

# Seconds until a failed job's next attempt, or None to give up (dead); per job kind.
RetryPolicy = Callable[[Job], float | None]

# The queue's states, for the CLI's choices and the state filter (JobState is the definition).
JOB_STATES = tuple(JobState)
_LOG_LIMIT = 20_000  # characters of log kept per job (the tail)


def _later(seconds: float) -> str:
    return utc_timestamp(datetime.now(UTC) + timedelta(seconds=seconds))


class JobQueue:
    """Enqueue, claim, finish, retry and cancel jobs. Constructing it does no I/O."""

    def __init__(
        self,
        metadata: MetadataStore,
        actor: str,
        *,
        backoff_seconds: float = 5.0,
        retry_policies: Mapping[str, RetryPolicy] | None = None,
    ) -> None:
        self._meta = metadata
        self._actor = actor
        self._backoff = backoff_seconds
        self._policies = dict(retry_policies or {})

    # -- producing --------------------------------------------------------------------------

    def enqueue(
        self,
        kind: str,
        params: Mapping[str, Any],
        *,
        key: str | None = None,
        rule: str | None = None,
        event_seq: int | None = None,
        max_attempts: int = 3,
        tx: Any = None,
        cancelled: str | None = None,
    ) -> tuple[Job, bool]:
        """Queue a job; with a ``key`` already used, return that job instead (and False).

        ``cancelled`` records the job as cancelled from the start, with that reason in its log
        (the dispatcher's cycle guard), so the decision stays visible in ``jobs list``.
        """
        job_id = uuid.uuid4().hex[:12]
        key = key or f"manual:{job_id}"
        if tx is not None:
            return self._enqueue_in(
                tx, job_id, kind, params, key, rule, event_seq, max_attempts, cancelled=cancelled
            )
        try:
            with self._meta.write(
                actor=self._actor, action="job.queued", subject=f"job:{job_id}"
            ) as new_tx:
                job, created = self._enqueue_in(
                    new_tx, job_id, kind, params, key, rule, event_seq, max_attempts, first=True
                )
                if not created:
                    # Nothing changed: roll back rather than audit a non-event.
                    raise _Existing(job)
        except _Existing as found:
            if found.job is None:  # pragma: no cover - raised with a job on this path
                raise
            return found.job, False
        return job, created

    def _enqueue_in(
        self,
        tx: Any,
        job_id: str,
        kind: str,
        params: Mapping[str, Any],
        key: str,
        rule: str | None,
        event_seq: int | None,
        max_attempts: int,
        *,
        first: bool = False,
        cancelled: str | None = None,
    ) -> tuple[Job, bool]:
        t = tables.jobs
        existing = tx.conn.execute(select(t).where(t.c.idempotency_key == key)).first()
        if existing is not None:
            return _to_job(existing), False
        now = utc_timestamp()
        row = {
            "id": job_id,
            "kind": kind,
            "rule": rule,
            "event_seq": event_seq,
            "idempotency_key": key,
            "state": JobState.CANCELLED if cancelled else JobState.QUEUED,
            "attempts": 0,
            "max_attempts": max_attempts,
            "params": canonical_json(dict(params)),
            "result": None,
            "error": None,
            "log": cancelled or "",
            "lease_owner": None,
            "lease_expires_at": None,
            "run_after": now,
            "created_at": now,
            "updated_at": now,
        }
        tx.conn.execute(t.insert().values(**row))
        payload = {"kind": kind, "rule": rule, "event_seq": event_seq, "key": key}
        if cancelled:
            payload["reason"] = cancelled
        if first:
            tx.payload.update(payload)
        else:
            action = "job.cycle_cut" if cancelled else "job.queued"
            tx.record(action, f"job:{job_id}", payload)
        return _to_job(row), True

    # -- consuming --------------------------------------------------------------------------

    def claim(self, owner: str, *, lease_seconds: float = 60.0) -> Job | None:
        """The next runnable job, now leased to ``owner``; None when there is none."""
        t = tables.jobs
        now = utc_timestamp()
        runnable = or_(
            and_(t.c.state == JobState.QUEUED, t.c.run_after <= now),
            and_(t.c.state == JobState.RUNNING, t.c.lease_expires_at < now),
        )
        # Cheap read first: an idle worker must not write (and audit) anything.
        with self._meta.read() as conn:
            if conn.execute(select(t.c.id).where(runnable).limit(1)).first() is None:
                return None
        try:
            with self._meta.write(actor=self._actor, action="job.started", subject="job:?") as tx:
                row = tx.conn.execute(
                    select(t)
                    .where(runnable)
                    .order_by(t.c.run_after, t.c.created_at)
                    .limit(1)
                    .with_for_update(skip_locked=True)
                ).first()
                if row is None:
                    raise _Existing(None)
                job = _to_job(row)
                values = {
                    "state": JobState.RUNNING,
                    "attempts": job.attempts + 1,
                    "lease_owner": owner,
                    "lease_expires_at": _later(lease_seconds),
                    "updated_at": now,
                }
                tx.conn.execute(update(t).where(t.c.id == job.id).values(**values))
                tx.subject = f"job:{job.id}"
                tx.payload.update(
                    attempt=job.attempts + 1,
                    worker=owner,
                    reclaimed_from=job.lease_owner if job.state == JobState.RUNNING else None,
                )
        except _Existing:
            return None
        return _replace(job, **values)

    def renew(self, job: Job, owner: str, *, lease_seconds: float = 60.0) -> bool:
        """Extend the lease while the job runs; False when the worker lost it."""
        t = tables.jobs
        with self._meta.unaudited() as conn:
            changed = conn.execute(
                update(t)
                .where(t.c.id == job.id, t.c.lease_owner == owner, t.c.state == JobState.RUNNING)
                .values(lease_expires_at=_later(lease_seconds))
            ).rowcount
        return bool(changed)

    def complete(self, job: Job, owner: str, result: Mapping[str, Any], log: str = "") -> Job:
        """Mark the job succeeded with its result."""
        return self._finish(
            job, owner, "job.succeeded", state=JobState.SUCCEEDED, result=result, log=log
        )

    def fail(self, job: Job, owner: str, error: str, log: str = "") -> Job:
        """Retry later with exponential backoff, or give up (dead, event ``job.failed``)."""
        current = self.get(job.id)
        delay: float | None = None
        if current.attempts < current.max_attempts:
            policy = self._policies.get(current.kind)
            delay = policy(current) if policy else self._backoff * 2 ** (current.attempts - 1)
        if delay is not None:
            return self._finish(
                job, owner, "job.retrying", state=JobState.QUEUED, error=error, log=log,
                run_after=_later(delay), extra={"retry_in_s": delay},
            )  # fmt: skip
        return self._finish(job, owner, "job.failed", state=JobState.DEAD, error=error, log=log)

    def _finish(
        self,
        job: Job,
        owner: str,
        action: str,
        *,
        state: str,
        result: Mapping[str, Any] | None = None,
        error: str | None = None,
        log: str = "",
        run_after: str | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> Job:
        t = tables.jobs
        with self._meta.write(actor=self._actor, action=action, subject=f"job:{job.id}") as tx:
            row = tx.conn.execute(select(t).where(t.c.id == job.id)).one()
            if row.state != JobState.RUNNING or row.lease_owner != owner:
                raise Conflict(
                    f"job {job.id} is no longer leased to {owner} (state {row.state}, "
                    f"lease holder {row.lease_owner}); its result is discarded"
                )
            values: dict[str, Any] = {
                "state": state,
                "lease_owner": None,
                "lease_expires_at": None,
                "updated_at": utc_timestamp(),
                "log": (row.log + log)[-_LOG_LIMIT:],
            }
            if result is not None:
                values["result"] = canonical_json(dict(result))
            if error is not None:
                values["error"] = error
            if run_after is not None:
                values["run_after"] = run_after
            tx.conn.execute(update(t).where(t.c.id == job.id).values(**values))
            tx.payload.update(
                kind=row.kind, rule=row.rule, event_seq=row.event_seq, attempt=row.attempts,
                **({"error": error[:500]} if error else {}), **dict(extra or {}),
            )  # fmt: skip
        return self.get(job.id)

    # -- operating --------------------------------------------------------------------------

    def retry(self, job_id: str) -> Job:
        """Queue a dead or cancelled job again, with a fresh set of attempts."""
        job = self.get(job_id)
        if job.state not in (JobState.DEAD, JobState.CANCELLED):
            raise Conflict(f"job {job.id} is {job.state}; only dead or cancelled jobs are retried")
        t = tables.jobs
        with self._meta.write(
            actor=self._actor, action="job.retried", subject=f"job:{job.id}"
        ) as tx:
            tx.conn.execute(
                update(t)
                .where(t.c.id == job.id)
                .values(
                    state=JobState.QUEUED, attempts=0, run_after=utc_timestamp(), error=None,
                    updated_at=utc_timestamp(),
                )
            )  # fmt: skip
            tx.payload.update(previous_state=job.state)
        return self.get(job.id)

    def cancel(self, job_id: str) -> Job:
        """Cancel a queued or running job (a running job's result will be discarded)."""
        job = self.get(job_id)
        if job.state not in (JobState.QUEUED, JobState.RUNNING):
            raise Conflict(
                f"job {job.id} is {job.state}; only queued or running jobs are cancelled"
            )
        t = tables.jobs
        with self._meta.write(
            actor=self._actor, action="job.cancelled", subject=f"job:{job.id}"
        ) as tx:
            tx.conn.execute(
                update(t)
                .where(t.c.id == job.id)
                .values(state=JobState.CANCELLED, lease_owner=None, updated_at=utc_timestamp())
            )
        return self.get(job.id)

    def get(self, job_id: str) -> Job:
        """One job by id or unique prefix (4+ characters)."""
        if len(job_id) < 4:
            raise InvalidInput("give at least 4 characters of the job id", field="job")
        t = tables.jobs
        with self._meta.read() as conn:
            rows = conn.execute(select(t).where(t.c.id.startswith(job_id, autoescape=True))).all()
        if not rows:
            raise NotFound(f"no job {job_id!r}")
        if len(rows) > 1:
            raise InvalidInput(f"{job_id!r} matches {len(rows)} jobs; give more of it", field="job")
        return _to_job(rows[0])

    def list(
        self, *, state: str | None = None, limit: int = 50, kind: str | None = None
    ) -> list[Job]:
        """Jobs (of one ``kind``, if given), newest first."""
        if state is not None and state not in JOB_STATES:
            raise InvalidInput(f"expected one of {', '.join(JOB_STATES)}", field="state")
        t = tables.jobs
        query = select(t).order_by(t.c.created_at.desc(), t.c.id).limit(limit)
        if state is not None:
            query = query.where(t.c.state == state)
        if kind is not None:
            query = query.where(t.c.kind == kind)
        with self._meta.read() as conn:
            return [_to_job(r) for r in conn.execute(query).all()]


class _Existing(Exception):
    """Raised inside a write to roll it back when there is nothing to change."""

    def __init__(self, job: Job | None) -> None:
        self.job = job


def _to_job(row: Any) -> Job:
    m = row._mapping if hasattr(row, "_mapping") else row
    return Job(
        id=m["id"],
        kind=m["kind"],
        rule=m["rule"],
        event_seq=m["event_seq"],
        idempotency_key=m["idempotency_key"],
        state=m["state"],
        attempts=int(m["attempts"]),
        max_attempts=int(m["max_attempts"]),
        params=json.loads(m["params"]),
        result=json.loads(m["result"]) if m["result"] else None,
        error=m["error"],
        log=m["log"],
        lease_owner=m["lease_owner"],
        lease_expires_at=m["lease_expires_at"],
        run_after=m["run_after"],
        created_at=m["created_at"],
        updated_at=m["updated_at"],
    )


def _replace(job: Job, **values: Any) -> Job:
    return replace(job, **values)
