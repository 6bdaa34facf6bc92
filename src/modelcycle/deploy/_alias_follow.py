"""A rollback carries the alias a deployment was made from back with the traffic.

When the deployment being rolled away from was made from an alias (``credit@champion``) that
still names its version, the alias moves to the version traffic goes back to, inside the
rollback's own audited transaction (``model.alias_moved`` with ``reason: rollback`` and the
endpoint). A deployment made by explicit version (``credit/2``) moves no alias. Why:
docs/decisions/0004-rollback-moves-the-alias.md.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from modelcycle.registry import alias_of_ref, move_alias_back

if TYPE_CHECKING:
    from modelcycle.deploy.records import Deployment
    from modelcycle.registry import ModelRegistry
    from modelcycle.store.metadata import WriteTx

__all__ = ["ROLLBACK_REASON", "alias_note", "carry_alias_back"]

ROLLBACK_REASON = "rollback"


def carry_alias_back(
    registry: ModelRegistry,
    tx: WriteTx,
    details: dict[str, Any],
    *,
    left: Deployment,
    to: int,
    deployment: str,
) -> dict[str, Any]:
    """Within the rollback's write ``tx``: move the alias ``left`` was deployed from to version
    ``to`` when it still names ``left``'s version. Returns ``details`` (the row that now serves)
    with ``alias_moved`` and ``ref`` (the alias: what the endpoint follows) when it moved,
    unchanged otherwise."""
    alias = alias_of_ref(left.details.get("ref"))
    if alias is None or alias.name != left.model_name:
        return details
    moved_from = move_alias_back(
        registry,
        tx,
        alias,
        expect=left.model_version,
        to=to,
        reason=ROLLBACK_REASON,
        context={"endpoint": left.endpoint, "deployment": deployment, "rolled_back": left.id},
    )
    if moved_from is None:
        return details
    record = {"alias": str(alias), "from": moved_from, "to": to, "reason": ROLLBACK_REASON}
    return {**details, "ref": str(alias), "alias_moved": record}


def alias_note(details: dict[str, Any]) -> str:
    """``, and NAME@ALIAS names it again`` when a rollback moved the alias, else nothing."""
    moved = details.get("alias_moved")
    return f", and {moved['alias']} names it again" if moved else ""
