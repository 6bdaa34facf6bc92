"""One stored drift check, whole: what ``monitor drift --json`` printed when it ran."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import select

from modelcycle.errors import NotFound
from modelcycle.store import MetadataStore, tables

__all__ = ["stored_check"]


def stored_check(metadata: MetadataStore, check_id: int) -> dict[str, Any]:
    """The stored result of check ``check_id`` with its id, time, model and window."""
    t = tables.drift_results
    with metadata.read() as conn:
        row = conn.execute(select(t).where(t.c.id == check_id)).first()
    if row is None:
        raise NotFound(f"no drift check {check_id}; see `modelcycle monitor history`")
    result: dict[str, Any] = json.loads(row.result)
    model = f"{row.model_name}/{row.model_version}" if row.model_name is not None else None
    window = (
        {"start": row.window_start, "end": row.window_end} if row.window_start is not None else None
    )
    return {
        **result,
        "id": int(row.id),
        "at": row.at,
        "model": model,
        "reference": row.reference,
        "current": row.current,
        "window": result.get("window") or window,
    }
