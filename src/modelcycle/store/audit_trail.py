"""Reading and checking the audit trail kept in the metadata database."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import delete, insert, select

from modelcycle.audit import (
    ACK_ACTION,
    COMPROMISED_KEY,
    Anchor,
    CompromiseFile,
    HeadFile,
    VerifyReport,
    utc_timestamp,
    verify_chain,
    write_export,
)
from modelcycle.audit.chain import canonical_json
from modelcycle.entities import AuditEvent, ChainHead
from modelcycle.errors import Conflict, InvalidInput
from modelcycle.store import tables
from modelcycle.store.head_row import HeadRow
from modelcycle.store.metadata import MetadataStore

__all__ = ["AuditFilter", "AuditTrail"]


@dataclass(frozen=True, slots=True)
class AuditFilter:
    """Which events to list: all given conditions must hold."""

    subject: str | None = None
    action: str | None = None
    since: str | None = None  # ISO 8601 UTC text, compared with the events' fixed-width stamps
    limit: int | None = None  # the newest N, or with after_seq the first N after it
    after_seq: int | None = None  # only events after this sequence number (a reader's cursor)
    actor: str | None = None
    before_seq: int | None = None  # only events before this one (with limit: the newest N)


class AuditTrail:
    """The audit log of one workspace: list, verify, export, and write operator notes."""

    def __init__(
        self,
        meta: MetadataStore,
        head_file: HeadFile | HeadRow,
        actor: str,
        *,
        compromise: CompromiseFile | None = None,
    ) -> None:
        self._meta = meta
        self._head_file = head_file
        self._actor = actor
        self._compromise = compromise

    def events(self, where: AuditFilter | None = None) -> list[AuditEvent]:
        """Events matching ``where``, oldest first (the newest ``limit`` when a limit is set,
        or the first ``limit`` after ``after_seq``)."""
        where = where or AuditFilter()
        if where.limit is not None and where.limit < 1:
            raise InvalidInput("must be at least 1", field="limit")
        t = tables.audit_events
        query = select(t)
        if where.subject is not None:
            query = query.where(t.c.subject == where.subject)
        if where.action is not None:
            query = query.where(t.c.action == where.action)
        if where.since is not None:
            query = query.where(t.c.at >= where.since)
        if where.actor is not None:
            query = query.where(t.c.actor == where.actor)
        if where.before_seq is not None:
            query = query.where(t.c.seq < where.before_seq)
        if where.after_seq is not None:
            query = query.where(t.c.seq > where.after_seq).order_by(t.c.seq)
            if where.limit is not None:
                query = query.limit(where.limit)
        elif where.limit is not None:
            query = query.order_by(t.c.seq.desc()).limit(where.limit)
        with self._meta.read() as conn:
            rows = conn.execute(query).all()
        return sorted((_row_to_event(r) for r in rows), key=lambda e: e.seq)

    def head(self) -> ChainHead:
        """The newest event's sequence number and hash, as the database's head row says."""
        with self._meta.read() as conn:
            return _head_row(conn)

    def verify(self) -> VerifyReport:
        """Recompute the whole chain and compare it with the head row and the head file.

        A break nobody acknowledged marks the workspace compromised (in the database and in a
        file beside the head file): audited writes are then refused until :meth:`acknowledge`.
        """
        report = self._check()
        if report.problem is not None:
            self._mark(report)
        return report

    def compromised(self) -> dict[str, Any] | None:
        """The "chain broken" mark (first bad event, kind, when found), or None."""
        with self._meta.read() as conn:
            return self._meta.compromise_mark(conn)

    def acknowledge(self, note: str, *, os_user: str) -> AuditEvent:
        """An admin's acknowledgement of the breaks found now: recorded, then writes resume.

        The ``audit.acknowledged`` event lists every break verification finds at this moment
        (with its fingerprint) and the head it was appended to; later verifications report
        those breaks as acknowledged, and any other break as a new one.
        """
        if not note.strip():
            raise InvalidInput("must not be empty: say what happened and why", field="--note")
        report = self._check()
        mark = self.compromised()
        breaks = [p.as_dict() for p in report.unacknowledged]
        if mark is None and not breaks:
            raise Conflict(
                "nothing to acknowledge: the workspace is not marked compromised and its audit "
                "chain verifies"
            )
        first = report.problem.seq if report.problem is not None else (mark or {}).get("seq")
        head = self.head()
        with self._meta.write(
            actor=self._actor,
            action=ACK_ACTION,
            subject="workspace",
            payload={
                "note": note,
                "os_user": os_user,
                "first_bad_seq": first,
                "breaks": breaks,
                "head": {"seq": head.seq, "hash": head.hash},
                "mark": mark,
            },
        ) as tx:
            tx.conn.execute(
                delete(tables.workspace_info).where(tables.workspace_info.c.key == COMPROMISED_KEY)
            )
        if self._compromise is not None:
            self._compromise.clear()
        event = tx.events[0]
        # The acknowledged head is the new lower bound (a truncated log never reaches the old).
        self._head_file.reset(ChainHead(event.seq, event.hash))
        return event

    def _check(self) -> VerifyReport:
        # Read the file before the database snapshot: it is written after commit, so whatever
        # it says is already in the snapshot unless events were removed.
        file_head = self._head_file.read()
        with self._meta.read(snapshot=True) as conn:
            anchors = [Anchor("the database's head row", _head_row(conn), exact=True)]
            if file_head is not None:
                label = getattr(self._head_file, "label", f"the head file {self._head_file.path}")
                anchors.append(Anchor(label, file_head))
            return verify_chain(self._stream(conn), anchors)

    def _mark(self, report: VerifyReport) -> None:
        """Record the first unacknowledged break in both places, keeping an earlier mark."""
        assert report.problem is not None
        mark = {
            "seq": report.problem.seq,
            "kind": report.problem.kind,
            "detail": report.problem.detail,
            "found_at": utc_timestamp(),
        }
        t = tables.workspace_info
        # Bookkeeping, not a change to an asset, and the chain is broken: no audit event here.
        # An earlier mark (in either place) stays, and is put back where it was deleted.
        with self._meta.unaudited() as conn:
            mark = self._meta.compromise_mark(conn) or mark
            stored = conn.execute(select(t.c.key).where(t.c.key == COMPROMISED_KEY)).scalar()
            if stored is None:
                conn.execute(insert(t).values(key=COMPROMISED_KEY, value=canonical_json(mark)))
        if self._compromise is not None and not self._compromise.exists():
            self._compromise.write(mark)

    def export(self, path: Path | str) -> int:
        """Write every event and the head as JSON lines to ``path`` (atomically)."""
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
        try:
            with (
                os.fdopen(fd, "w", encoding="utf-8") as out,
                self._meta.read(snapshot=True) as conn,
            ):
                count = write_export(self._stream(conn), _head_row(conn), out)
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return count

    def note(self, text: str, subject: str = "workspace") -> AuditEvent:
        """Record an operator's own entry: an approval, a decision, a remark."""
        if not text.strip():
            raise InvalidInput("must not be empty", field="text")
        with self._meta.write(
            actor=self._actor, action="audit.note", subject=subject, payload={"text": text}
        ) as tx:
            pass
        return tx.events[0]

    def _stream(self, conn: Any) -> Iterator[AuditEvent]:
        t = tables.audit_events
        result = conn.execution_options(yield_per=2000).execute(select(t).order_by(t.c.seq))
        for row in result:
            yield _row_to_event(row)


def _head_row(conn: Any) -> ChainHead:
    row = conn.execute(
        select(tables.audit_head.c.seq, tables.audit_head.c.hash).where(tables.audit_head.c.id == 1)
    ).one()
    return ChainHead(int(row.seq), str(row.hash))


def _row_to_event(row: Any) -> AuditEvent:
    try:
        payload = json.loads(row.payload)
    except ValueError:
        # Keep the damaged text: its hash will not match, and verify names the event.
        payload = {"unparseable_payload": row.payload}
    return AuditEvent(
        seq=int(row.seq),
        at=row.at,
        actor=row.actor,
        action=row.action,
        subject=row.subject,
        payload=payload,
        prev_hash=row.prev_hash,
        hash=row.hash,
    )
