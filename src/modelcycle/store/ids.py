"""Record ids as users type them: the whole id, or a unique prefix of it."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from modelcycle.errors import InvalidInput, NotFound
from modelcycle.store.metadata import MetadataStore

__all__ = ["SHORTEST_PREFIX", "resolve_id"]

SHORTEST_PREFIX = 4


def resolve_id(
    meta: MetadataStore, column: Any, value: str, *, field: str, noun: str, listing: str
) -> str:
    """The id ``value`` names in ``column``: itself, or the one id it is a prefix of
    (``SHORTEST_PREFIX`` characters or more). ``listing`` is the command that shows the ids."""
    if not isinstance(value, str) or not value.isalnum():
        raise InvalidInput(f"{value!r} is not a {noun} id", field=field)
    missing = f"no {noun} {value!r}; `{listing}` shows them"
    with meta.read() as conn:
        if conn.execute(select(column).where(column == value)).first() is not None:
            return value
        if len(value) < SHORTEST_PREFIX:
            raise NotFound(missing)
        ids = conn.execute(select(column).where(column.like(f"{value}%")).limit(2)).scalars().all()
    if not ids:
        raise NotFound(missing)
    if len(ids) > 1:
        raise InvalidInput(f"{value!r} matches more than one {noun}; give more of it", field=field)
    return str(ids[0])
