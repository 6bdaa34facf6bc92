"""The audit chain head kept in a ``workspace_info`` row, for workspaces without a folder.

A stateless process (worker, server, scoring container, batch job started from
``MODELCYCLE_DB_URL`` and an artifacts URL alone) has no ``.modelcycle/audit.head`` file to
keep. It keeps the same record as the row ``audit.head`` instead, with the head file's
semantics: advanced after each commit, only forwards (concurrent writers leave it at the
highest head any of them committed), one step behind at worst after a crash, reset only when
an admin acknowledges a break. Verification compares the chain with it, so deleting the newest
events (and rewinding the ``audit_head`` row) still shows. Why a row rather than an object in
the bucket: decision 0009.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from sqlalchemy import Engine, Select, insert, select, update
from sqlalchemy.exc import IntegrityError as SAIntegrityError

from modelcycle.entities import ChainHead
from modelcycle.errors import IntegrityError
from modelcycle.store import tables

__all__ = ["HEAD_KEY", "HeadRow"]

HEAD_KEY = "audit.head"


class HeadRow:
    """``{"seq": N, "hash": "..."}`` in the ``workspace_info`` row :data:`HEAD_KEY`.

    ``engine`` is called when the row is first needed: the store that owns the engine is built
    after this object (it takes :meth:`advance` as its commit hook).
    """

    path = f"workspace_info[{HEAD_KEY!r}]"
    label = f"the head row {path}"  # how verification names this copy in a break

    def __init__(self, engine: Callable[[], Engine]) -> None:
        self._engine = engine

    def read(self) -> ChainHead | None:
        """The recorded head, or None when nothing was recorded yet."""
        with self._engine().connect() as conn:
            text = conn.execute(_select()).scalar()
        return None if text is None else _parse(text)

    def advance(self, head: ChainHead) -> None:
        """Record ``head`` unless the row already records a later one."""
        self._write(head, forward_only=True)

    def reset(self, head: ChainHead) -> None:
        """Record ``head`` even if it is behind (an admin acknowledged a break)."""
        self._write(head, forward_only=False)

    def _write(self, head: ChainHead, *, forward_only: bool) -> None:
        value = json.dumps({"seq": head.seq, "hash": head.hash})
        t = tables.workspace_info
        for _ in range(3):  # a concurrent first insert of the row: read it again and compare
            try:
                with self._engine().begin() as conn:
                    text = conn.execute(_select().with_for_update()).scalar()
                    if text is None:
                        conn.execute(insert(t).values(key=HEAD_KEY, value=value))
                    elif not forward_only or _parse(text).seq < head.seq:
                        conn.execute(update(t).where(t.c.key == HEAD_KEY).values(value=value))
                return
            except SAIntegrityError:
                continue


def _select() -> Select[Any]:
    t = tables.workspace_info
    return select(t.c.value).where(t.c.key == HEAD_KEY)


def _parse(text: str) -> ChainHead:
    try:
        data = json.loads(text)
        return ChainHead(seq=int(data["seq"]), hash=str(data["hash"]))
    except (ValueError, KeyError, TypeError) as exc:
        raise IntegrityError(f"the audit head {HeadRow.path} is unreadable ({exc})") from exc
