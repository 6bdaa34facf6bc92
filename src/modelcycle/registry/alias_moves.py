"""Alias moves made on behalf of another stage, inside that stage's own audited write.

A deployment rolled back (on demand, or by its watch) sends traffic back to an older version;
when the deployment was made from an alias (``credit@champion``) that still names the version
being left, the alias goes back with the traffic, in the same transaction as the switch's
records, so ``NAME@champion``, ``models show`` and ``deployments show`` never disagree
(docs/decisions/0004-rollback-moves-the-alias.md).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from modelcycle.errors import InvalidInput
from modelcycle.registry._checks import ARCHIVED
from modelcycle.registry.refs import LATEST, ModelRef, parse_model_ref
from modelcycle.registry.registry import _lock_model
from modelcycle.store import tables

if TYPE_CHECKING:
    from modelcycle.registry.registry import ModelRegistry
    from modelcycle.store.metadata import WriteTx

__all__ = ["alias_of_ref", "move_alias_back"]


def alias_of_ref(ref: str | None) -> ModelRef | None:
    """``NAME@ALIAS`` parsed when ``ref`` is an alias reference (``@latest`` is not an alias
    anyone moves), else None (an explicit version, or nothing recorded)."""
    if not ref or "@" not in ref:
        return None
    try:
        parsed = parse_model_ref(ref)
    except InvalidInput:
        return None
    if parsed.alias is None or parsed.alias == LATEST:
        return None
    return parsed


def move_alias_back(
    registry: ModelRegistry,
    tx: WriteTx,
    alias: ModelRef,
    *,
    expect: int,
    to: int,
    reason: str,
    context: dict[str, Any],
) -> int | None:
    """Within the caller's write ``tx``: move ``alias`` from version ``expect`` to ``to`` and
    record ``model.alias_moved`` (``reason`` and ``context``, e.g. the endpoint, in its payload).

    Returns ``expect`` when it moved; None, moving nothing, when the alias no longer names
    ``expect`` (someone moved it since: their move stands), ``to`` is ``expect``, or ``to`` is
    archived (it cannot take an alias)."""
    assert alias.alias is not None
    if to == expect or not _lock_model(tx.conn, alias.name):
        return None
    a = tables.model_aliases
    current = tx.conn.execute(
        select(a.c.version).where(a.c.name == alias.name, a.c.alias == alias.alias)
    ).scalar()
    if current is None or int(current) != expect:
        return None
    mv = tables.model_versions
    status = tx.conn.execute(
        select(mv.c.status).where(mv.c.name == alias.name, mv.c.version == to)
    ).scalar()
    if status is None or status == ARCHIVED:
        return None
    registry._move_alias(tx.conn, alias.name, alias.alias, to)
    tx.record(
        "model.alias_moved",
        f"model:{alias.name}/{to}",
        {"alias": alias.alias, "from": expect, "to": to, "reason": reason, **context},
    )
    return expect
