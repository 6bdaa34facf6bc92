"""Named cursors over the audit log (``event_cursors``): after which event a reader acts.

The rule dispatcher (``rules``) and the notification dispatcher (``notify``) each read the
events after their own cursor and move it forward in the transaction that queues their jobs;
a reader that found nothing to do moves it on its own, unaudited (it is bookkeeping).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import Connection, select, update
from sqlalchemy.exc import IntegrityError as SAIntegrityError

from modelcycle.audit import utc_timestamp
from modelcycle.store import MetadataStore, tables

__all__ = ["advance_cursor", "config_changed_at", "start_cursor"]


def start_cursor(meta: MetadataStore, name: str, first: Callable[[Connection], int]) -> int:
    """Cursor ``name``; made at ``first(conn)`` when it does not exist yet (a first worker
    starts there, not at event 1). Two workers making it at once: the second uses the first's.
    """
    t = tables.event_cursors
    with meta.read() as conn:
        seq = conn.execute(select(t.c.seq).where(t.c.name == name)).scalar()
    if seq is not None:
        return int(seq)
    try:
        with meta.unaudited() as conn:
            exists = conn.execute(select(t.c.seq).where(t.c.name == name)).scalar()
            if exists is not None:
                return int(exists)
            start = first(conn)
            conn.execute(t.insert().values(name=name, seq=start))
    except SAIntegrityError:  # another worker on another machine made it first: use theirs
        with meta.read() as conn:
            return int(conn.execute(select(t.c.seq).where(t.c.name == name)).scalar_one())
    return start


def advance_cursor(conn: Connection, name: str, seq: int) -> None:
    """Move cursor ``name`` to ``seq`` inside the caller's transaction; never backwards."""
    t = tables.event_cursors
    conn.execute(update(t).where(t.c.name == name, t.c.seq < seq).values(seq=seq))


def config_changed_at(path: Path | None) -> str | None:
    """When modelcycle.toml last changed (its modification time), or None without a file:
    rules and notify entries were written by then, so older events are not theirs."""
    if path is None:
        return None
    try:
        mtime = path.stat().st_mtime
    except OSError:
        return None
    return utc_timestamp(datetime.fromtimestamp(mtime, UTC))
