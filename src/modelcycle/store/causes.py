"""Why did this happen? The causal chain of an audit subject, newest first.

An event written inside a job's action names the job (``caused_by: "job:ID"``, see
:func:`modelcycle.store.metadata.caused_by`); the job names the event that queued it
(``jobs.event_seq``). Walking both links from the newest event on a subject gives, e.g.,
``deployment.succeeded <- job.queued (deploy) <- model.promoted <- job.queued (promote) <-
drift.detected``: the chain ``GET /api/v1/audit/why`` answers.
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import select

from modelcycle.entities import AuditEvent
from modelcycle.errors import InvalidInput, NotFound
from modelcycle.store import tables
from modelcycle.store.metadata import MetadataStore

__all__ = ["causal_chain"]


def causal_chain(meta: MetadataStore, subject: str, *, limit: int = 50) -> list[AuditEvent]:
    """The newest event on ``subject`` and, link by link, what caused it (at most ``limit``)."""
    if not subject or len(subject) > 500:
        raise InvalidInput("expected a subject such as model:credit/2", field="subject")
    ev, jobs = tables.audit_events, tables.jobs
    chain: list[AuditEvent] = []
    with meta.read(snapshot=True) as conn:
        row = conn.execute(
            select(ev).where(ev.c.subject == subject).order_by(ev.c.seq.desc()).limit(1)
        ).first()
        if row is None:
            raise NotFound(f"no audit event has the subject {subject!r}")
        current: AuditEvent | None = _event(row)
        while current is not None and len(chain) < limit:
            chain.append(current)
            cause = current.payload.get("caused_by")
            if not isinstance(cause, str) or not cause.startswith("job:"):
                break
            job_id = cause.removeprefix("job:")
            queued = conn.execute(
                select(ev)
                .where(ev.c.subject == f"job:{job_id}", ev.c.action == "job.queued")
                .order_by(ev.c.seq)
                .limit(1)
            ).first()
            if queued is not None and len(chain) < limit:
                chain.append(_event(queued))
            seq = conn.execute(select(jobs.c.event_seq).where(jobs.c.id == job_id)).scalar()
            current = None
            if seq is not None:
                trigger = conn.execute(select(ev).where(ev.c.seq == seq)).first()
                current = _event(trigger) if trigger is not None else None
    return chain


def _event(row: Any) -> AuditEvent:
    try:
        payload = json.loads(row.payload)
    except ValueError:
        payload = {"unparseable_payload": row.payload}
    return AuditEvent(
        seq=int(row.seq), at=row.at, actor=row.actor, action=row.action, subject=row.subject,
        payload=payload, prev_hash=row.prev_hash, hash=row.hash,
    )  # fmt: skip
