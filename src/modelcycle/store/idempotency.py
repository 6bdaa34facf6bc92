"""Answers kept per ``Idempotency-Key`` in the metadata database (decision 0003's bookkeeping:
no audit event; the work itself is audited as usual).

A key is claimed by inserting its row in state ``running``; the primary key makes the claim
atomic across every worker process and host that shares the database, so exactly one request
does the work. The answer is stored on the row when the work ends; a failed request deletes
its row so that a corrected retry runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import ColumnElement, and_, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from modelcycle.audit import utc_timestamp
from modelcycle.store import tables
from modelcycle.store.metadata import MetadataStore

__all__ = ["IdempotencyRecords", "StoredAnswer"]

_t = tables.idempotency_keys


@dataclass(frozen=True)
class StoredAnswer:
    """A key's row: ``running`` until the first request ends, then ``done`` with its answer."""

    state: str
    status: int | None
    body: str | None


class IdempotencyRecords:
    def __init__(self, meta: MetadataStore) -> None:
        self._meta = meta

    def claim(self, caller: str, scope: str, key: str) -> bool:
        """True when this request is the first with the key (and must do the work)."""
        try:
            with self._meta.unaudited() as conn:
                conn.execute(
                    insert(_t).values(caller=caller, scope=scope, key=key, state="running",
                                      created_at=utc_timestamp())
                )  # fmt: skip
        except IntegrityError:
            return False
        return True

    def finish(self, caller: str, scope: str, key: str, status: int, body: str) -> None:
        with self._meta.unaudited() as conn:
            conn.execute(
                update(_t)
                .where(_match(caller, scope, key))
                .values(state="done", status=status, body=body)
            )

    def release(self, caller: str, scope: str, key: str) -> None:
        """Forget a key whose first request failed."""
        with self._meta.unaudited() as conn:
            conn.execute(delete(_t).where(_match(caller, scope, key)))

    def get(self, caller: str, scope: str, key: str) -> StoredAnswer | None:
        with self._meta.read() as conn:
            row = conn.execute(
                select(_t.c.state, _t.c.status, _t.c.body).where(_match(caller, scope, key))
            ).first()
        return None if row is None else StoredAnswer(row.state, row.status, row.body)

    def expire(self, older_than: timedelta) -> int:
        """Delete keys claimed longer ago than ``older_than``; how many went."""
        cutoff = utc_timestamp(datetime.now(UTC) - older_than)
        with self._meta.unaudited() as conn:
            return conn.execute(delete(_t).where(_t.c.created_at < cutoff)).rowcount


def _match(caller: str, scope: str, key: str) -> ColumnElement[bool]:
    return and_(_t.c.caller == caller, _t.c.scope == scope, _t.c.key == key)
