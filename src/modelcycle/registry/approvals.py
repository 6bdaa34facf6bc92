"""Promotion requests: an alias move that waits for approvals, with separation of duties.

Under a ``[promotion.<alias>]`` policy with ``approvals >= 1`` (registry/approval_policy.py), a
promotion that passes the gate (or skips it with ``force``) does not move the alias: it becomes
a *request*. Distinct allowed identities approve it; the approval that completes the count moves
the alias in its own transaction (``promotion.approved``, ``model.promoted`` and
``model.alias_moved`` with ``approved_by`` commit together, or none does). A rejected,
cancelled or expired request moves nothing.

Concurrency: every write locks the request row (``SELECT ... FOR UPDATE``; on PostgreSQL the
audit chain lock already serialises writers, on SQLite ``BEGIN IMMEDIATE`` does) and leaves the
pending state by a conditional ``UPDATE ... WHERE state = 'pending'``, so two racing approvals
give exactly one alias move and the other is refused as a Conflict.

Identity is the registry's actor: the token's name over HTTP, ``MODELCYCLE_ACTOR`` or the OS
user on the CLI (the local machine is the trust boundary; docs/approvals.md).
"""

from __future__ import annotations

import builtins
import contextvars
import json
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, insert, select, update

from modelcycle.audit import utc_timestamp
from modelcycle.entities import ModelVersion
from modelcycle.errors import Conflict, Forbidden, NotFound
from modelcycle.registry.approval_policy import PromotionPolicies
from modelcycle.registry.notes import check_text
from modelcycle.statuses import ApprovalState
from modelcycle.store import MetadataStore, tables
from modelcycle.store.ids import resolve_id

if TYPE_CHECKING:
    from modelcycle.registry.promotion import PromotionResult
    from modelcycle.registry.registry import ModelRegistry

__all__ = [
    "Approval",
    "PromotionApprovals",
    "PromotionRequest",
    "request_origin",
]

# The actor of an expiry: nobody acted, the clock did.
EXPIRY_ACTOR = "modelcycle"

# Where a promotion came from (cli, http, rule:NAME; sdk when nobody says), for the request's
# record, set by the interface around its call so promote() keeps its signature.
_ORIGIN: contextvars.ContextVar[str] = contextvars.ContextVar("promotion_origin", default="sdk")


@contextmanager
def request_origin(origin: str) -> Iterator[None]:
    """Within this block, promotion requests record ``origin`` (``cli``, ``http``, ``rule:X``)."""
    token = _ORIGIN.set(origin)
    try:
        yield
    finally:
        _ORIGIN.reset(token)


@dataclass(frozen=True, slots=True)
class Approval:
    approver: str
    at: str
    comment: str | None

    def as_dict(self) -> dict[str, Any]:
        return {"approver": self.approver, "at": self.at, "comment": self.comment}


@dataclass(frozen=True, slots=True)
class PromotionRequest:
    """One request to move ``name@alias`` to ``version``, and where it stands."""

    id: str
    name: str
    version: int
    alias: str
    from_version: int | None
    state: str
    approvals_needed: int
    policy: dict[str, Any]
    gate: dict[str, Any] | None
    forced: bool
    reason: str | None
    origin: str
    requested_by: str
    requested_at: str
    expires_at: str | None
    decided_by: str | None
    decided_at: str | None
    comment: str | None
    approvals: tuple[Approval, ...] = field(default_factory=tuple)

    @property
    def ref(self) -> str:
        return f"{self.name}/{self.version}"

    @property
    def pending(self) -> bool:
        return self.state == ApprovalState.PENDING

    @property
    def approved_by(self) -> builtins.list[str]:
        return [a.approver for a in self.approvals]

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "model": self.ref,
            "name": self.name,
            "version": self.version,
            "alias": self.alias,
            "from": self.from_version,
            "state": self.state,
            "approvals_needed": self.approvals_needed,
            "approvals": [a.as_dict() for a in self.approvals],
            "policy": self.policy,
            "gate": self.gate,
            "forced": self.forced,
            "reason": self.reason,
            "origin": self.origin,
            "requested_by": self.requested_by,
            "requested_at": self.requested_at,
            "expires_at": self.expires_at,
            "decided_by": self.decided_by,
            "decided_at": self.decided_at,
            "comment": self.comment,
        }


class PromotionApprovals:
    """``ws.approvals``: requests under promotion policies. Constructing it touches nothing."""

    def __init__(
        self,
        metadata: MetadataStore,
        registry: ModelRegistry,
        actor: str,
        policies: PromotionPolicies,
    ) -> None:
        self._meta = metadata
        self._registry = registry
        self._actor = actor
        self.policies = policies

    # -- the registry's hook ----------------------------------------------------------------

    def intercept(
        self,
        candidate: ModelVersion,
        alias: str,
        expected: int | None,
        *,
        gate: dict[str, Any] | None,
        forced: bool,
        reason: str | None,
    ) -> PromotionResult | None:
        """Called by the registry where it would move the alias: None when no policy asks
        for approval (move as usual), else the pending request as a PromotionResult."""
        found = self.policies.for_alias(alias)
        if found is None or found[1].approvals <= 0:
            return None
        from modelcycle.registry.promotion import PromotionResult, store_evaluations

        pattern, policy = found
        self.expire_due()
        r = tables.promotion_requests
        with self._meta.read() as conn:
            existing = conn.execute(
                select(r.c.id).where(
                    r.c.name == candidate.name,
                    r.c.version == candidate.version,
                    r.c.alias == alias,
                    r.c.state == ApprovalState.PENDING,
                )
            ).scalar()
        if existing is None:
            now = datetime.now(UTC)
            delta = policy.expires_delta
            request_id = uuid.uuid4().hex
            values: dict[str, Any] = {
                "id": request_id,
                "name": candidate.name,
                "version": candidate.version,
                "alias": alias,
                "from_version": expected,
                "state": ApprovalState.PENDING,
                "approvals_needed": policy.approvals,
                "policy": json.dumps({"section": f"promotion.{pattern}", **policy.as_dict()}),
                "gate": json.dumps(gate) if gate is not None else None,
                "forced": forced,
                "reason": reason,
                "origin": _ORIGIN.get(),
                "requested_by": self._actor,
                "requested_at": utc_timestamp(now),
                "expires_at": utc_timestamp(now + delta) if delta else None,
            }
            payload = {
                "request": request_id,
                "model": candidate.ref,
                "name": candidate.name,
                "version": candidate.version,
                "alias": alias,
                "from": expected,
                "approvals_needed": policy.approvals,
                "approvers": list(policy.approvers),
                "expires_at": values["expires_at"],
                "forced": forced,
                "reason": reason,
                "origin": values["origin"],
                "gate": gate,
            }
            with self._meta.write(
                actor=self._actor,
                action="promotion.requested",
                subject=f"model:{candidate.ref}",
                payload=payload,
            ) as tx:
                tx.conn.execute(insert(r).values(**values))
                if gate is not None:  # the figures are facts whatever the decision
                    store_evaluations(tx.conn, candidate.name, gate)
            existing = request_id
        return PromotionResult(
            candidate.name,
            alias,
            candidate.version,
            expected,
            moved=False,
            forced=forced,
            first=expected is None,
            metric=gate["metric"] if gate else None,
            candidate_score=gate["candidate"]["score"] if gate else None,
            champion_score=gate["champion"]["score"] if gate else None,
            dataset=gate["dataset"] if gate else None,
            request=str(existing),
        )

    def refuse_direct_move(self, alias: str) -> None:
        """An alias under an approval policy moves only through a request."""
        found = self.policies.for_alias(alias)
        if found is not None and found[1].approvals > 0:
            raise Forbidden(
                f"promotion.{found[0]}: the alias {alias!r} needs {found[1].approvals} "
                "approval(s) to move; use `modelcycle models promote NAME/VERSION --to "
                f"{alias}` (it creates a promotion request)"
            )

    # -- reading ----------------------------------------------------------------------------

    def list(
        self, *, pending: bool = False, name: str | None = None, limit: int = 200
    ) -> builtins.list[PromotionRequest]:
        """Requests, newest first (``pending`` only those still waiting)."""
        self.expire_due()
        r = tables.promotion_requests
        query = select(r).order_by(r.c.requested_at.desc(), r.c.id.desc()).limit(limit)
        if pending:
            query = query.where(r.c.state == ApprovalState.PENDING)
        if name is not None:
            query = query.where(r.c.name == name)
        with self._meta.read() as conn:
            rows = [dict(row._mapping) for row in conn.execute(query).all()]
            approvals = _approvals_of(conn, [row["id"] for row in rows])
        return [_to_request(row, approvals.get(row["id"], ())) for row in rows]

    def get(self, request_id: str) -> PromotionRequest:
        """One request (its id or a unique prefix of at least 4 characters)."""
        self.expire_due()
        full = self._resolve(request_id)
        with self._meta.read() as conn:
            return _read(conn, full)

    # -- deciding ---------------------------------------------------------------------------

    def approve(self, request_id: str, *, comment: str | None = None) -> PromotionRequest:
        """Count this identity's approval; the one that completes the count moves the alias."""
        comment = check_text(comment, field="comment")
        self.expire_due()
        full = self._resolve(request_id)
        with self._meta.write(
            actor=self._actor, action="promotion.approved", subject="workspace"
        ) as tx:
            req = _read(tx.conn, full, lock=True)
            _require_pending(req)
            self._check_may_approve(tx.conn, req)
            if self._actor in req.approved_by:
                raise Conflict(
                    f"{self._actor} already approved request {req.id} (approvals count once "
                    f"per identity: {len(req.approvals)} of {req.approvals_needed})"
                )
            now = utc_timestamp()
            a = tables.promotion_approvals
            tx.conn.execute(
                insert(a).values(request_id=req.id, approver=self._actor, at=now, comment=comment)
            )
            approved_by = [*req.approved_by, self._actor]
            complete = len(approved_by) >= req.approvals_needed
            tx.subject = f"model:{req.ref}"
            tx.payload.update(
                _about(req) | {"approver": self._actor, "comment": comment,
                               "approvals": len(approved_by),
                               "approvals_needed": req.approvals_needed, "complete": complete}
            )  # fmt: skip
            if complete:
                _leave_pending(tx.conn, req, ApprovalState.APPROVED, self._actor, now, comment)
                self._move(tx, req, approved_by)
        return self.get(full)

    def reject(self, request_id: str, *, comment: str) -> PromotionRequest:
        """Close the request unapproved; ``comment`` (required) says why."""
        text = check_text(comment, field="comment", required=True)
        return self._close(request_id, ApprovalState.REJECTED, text)

    def cancel(
        self, request_id: str, *, comment: str | None = None, admin: bool = False
    ) -> PromotionRequest:
        """Withdraw the request: its requester, or an allowed approver (``admin`` over HTTP)."""
        text = check_text(comment, field="comment")
        return self._close(request_id, ApprovalState.CANCELLED, text, admin=admin)

    def expire_due(self) -> int:
        """Mark pending requests past their expiry as expired (one audited write each)."""
        r = tables.promotion_requests
        now = utc_timestamp()
        with self._meta.read() as conn:
            due = (
                conn.execute(
                    select(r.c.id).where(
                        r.c.state == ApprovalState.PENDING,
                        r.c.expires_at.is_not(None),
                        r.c.expires_at <= now,
                    )
                )
                .scalars()
                .all()
            )
        expired = 0
        for request_id in due:
            try:
                with self._meta.write(
                    actor=EXPIRY_ACTOR, action="promotion.expired", subject="workspace"
                ) as tx:
                    req = _read(tx.conn, request_id, lock=True)
                    if not req.pending:
                        raise _Gone
                    _leave_pending(tx.conn, req, ApprovalState.EXPIRED, None, now, None)
                    tx.subject = f"model:{req.ref}"
                    tx.payload.update(_about(req) | {"expires_at": req.expires_at})
                expired += 1
            except _Gone:  # decided or expired by someone else meanwhile
                continue
        return expired

    # -- internals --------------------------------------------------------------------------

    def _resolve(self, request_id: str) -> str:
        return resolve_id(
            self._meta,
            tables.promotion_requests.c.id,
            request_id,
            field="request",
            noun="promotion request",
            listing="modelcycle approvals list",
        )

    def _check_may_approve(self, conn: Connection, req: PromotionRequest) -> None:
        who = self._actor
        section = req.policy.get("section", f"promotion.{req.alias}")
        approvers = req.policy.get("approvers") or []
        if req.policy.get("separation_of_duties", True):
            self._check_separation(conn, req, who, section)
        if approvers and who not in approvers:
            raise Forbidden(
                f"{section}.approvers: {who!r} is not an approver of {req.name}@{req.alias} "
                f"(allowed: {', '.join(approvers)})"
            )

    @staticmethod
    def _check_separation(conn: Connection, req: PromotionRequest, who: str, section: str) -> None:
        if who == req.requested_by:
            raise Forbidden(
                f"{section}.separation_of_duties: {who!r} requested this promotion and may not "
                "approve it; another approver must"
            )
        mv = tables.model_versions
        author = conn.execute(
            select(mv.c.created_by).where(mv.c.name == req.name, mv.c.version == req.version)
        ).scalar()
        if author == who:
            raise Forbidden(
                f"{section}.separation_of_duties: {who!r} registered {req.ref} and may not "
                "approve its promotion; another approver must"
            )

    def _move(self, tx: Any, req: PromotionRequest, approved_by: builtins.list[str]) -> None:
        """Within the completing approval's write: move the alias, record the promotion."""
        old = self._registry._move_alias(tx.conn, req.name, req.alias, req.version)
        if req.gate is not None and old != req.from_version:
            # The gate compared against the old holder; a different holder was never compared.
            raise Conflict(
                f"{req.name}@{req.alias} moved from {req.from_version} to {old} since request "
                f"{req.id} was made, so its gate compared the wrong model; cancel it and "
                "promote again"
            )
        promoted: dict[str, Any] = {
            "alias": req.alias,
            "from": old,
            "to": req.version,
            "forced": req.forced,
            "first": old is None,
            "request": req.id,
            "approved_by": approved_by,
        }
        if req.forced or req.reason is not None:
            promoted["reason"] = req.reason
        if req.gate is not None:
            promoted["gate"] = req.gate
        tx.record("model.promoted", f"model:{req.ref}", promoted)
        moved = {"alias": req.alias, "from": old, "to": req.version, "by": "promotion",
                 "forced": req.forced, "request": req.id, "approved_by": approved_by}  # fmt: skip
        if "reason" in promoted:
            moved["reason"] = req.reason
        tx.record("model.alias_moved", f"model:{req.ref}", moved)

    def _close(
        self, request_id: str, state: str, comment: str | None, *, admin: bool = False
    ) -> PromotionRequest:
        self.expire_due()
        full = self._resolve(request_id)
        action = "promotion.rejected" if state == ApprovalState.REJECTED else "promotion.cancelled"
        with self._meta.write(actor=self._actor, action=action, subject="workspace") as tx:
            req = _read(tx.conn, full, lock=True)
            _require_pending(req)
            approvers = req.policy.get("approvers") or []
            allowed_approver = not approvers or self._actor in approvers
            section = req.policy.get("section", f"promotion.{req.alias}")
            if state == ApprovalState.REJECTED and not allowed_approver:
                raise Forbidden(
                    f"{section}.approvers: {self._actor!r} may not reject a promotion of "
                    f"{req.name}@{req.alias} (allowed: {', '.join(approvers)})"
                )
            if state == ApprovalState.CANCELLED and not (
                admin or self._actor == req.requested_by or allowed_approver
            ):
                raise Forbidden(
                    f"only the requester ({req.requested_by}) or an approver of {section} may "
                    f"cancel request {req.id}"
                )
            _leave_pending(tx.conn, req, state, self._actor, utc_timestamp(), comment)
            tx.subject = f"model:{req.ref}"
            tx.payload.update(_about(req) | {"comment": comment})
        return self.get(full)


class _Gone(Exception):
    """A request another writer already took out of the pending state."""


def _about(req: PromotionRequest) -> dict[str, Any]:
    return {"request": req.id, "model": req.ref, "name": req.name, "version": req.version,
            "alias": req.alias}  # fmt: skip


def _require_pending(req: PromotionRequest) -> None:
    if not req.pending:
        by = f" by {req.decided_by}" if req.decided_by else ""
        raise Conflict(
            f"request {req.id} ({req.ref} to {req.alias}) is already {req.state}{by}; "
            "nothing to decide"
        )


def _leave_pending(
    conn: Connection,
    req: PromotionRequest,
    state: str,
    who: str | None,
    at: str,
    comment: str | None,
) -> None:
    r = tables.promotion_requests
    done = conn.execute(
        update(r)
        .where(r.c.id == req.id, r.c.state == ApprovalState.PENDING)
        .values(state=state, decided_by=who, decided_at=at, comment=comment)
    )
    if done.rowcount != 1:  # someone else decided it first: their decision stands
        raise Conflict(f"request {req.id} was decided by someone else meanwhile; read it again")


def _read(conn: Connection, request_id: str, *, lock: bool = False) -> PromotionRequest:
    r = tables.promotion_requests
    query = select(r).where(r.c.id == request_id)
    if lock:
        query = query.with_for_update()
    row = conn.execute(query).first()
    if row is None:
        raise NotFound(f"no promotion request {request_id!r}; `modelcycle approvals list`")
    return _to_request(dict(row._mapping), _approvals_of(conn, [request_id]).get(request_id, ()))


def _approvals_of(conn: Connection, ids: builtins.list[str]) -> dict[str, tuple[Approval, ...]]:
    if not ids:
        return {}
    a = tables.promotion_approvals
    out: dict[str, builtins.list[Approval]] = {}
    for row in conn.execute(
        select(a).where(a.c.request_id.in_(ids)).order_by(a.c.at, a.c.approver)
    ).all():
        out.setdefault(row.request_id, []).append(Approval(row.approver, row.at, row.comment))
    return {k: tuple(v) for k, v in out.items()}


def _to_request(row: dict[str, Any], approvals: tuple[Approval, ...]) -> PromotionRequest:
    return PromotionRequest(
        id=row["id"],
        name=row["name"],
        version=int(row["version"]),
        alias=row["alias"],
        from_version=row["from_version"],
        state=row["state"],
        approvals_needed=int(row["approvals_needed"]),
        policy=json.loads(row["policy"]),
        gate=json.loads(row["gate"]) if row["gate"] else None,
        forced=bool(row["forced"]),
        reason=row["reason"],
        origin=row["origin"],
        requested_by=row["requested_by"],
        requested_at=row["requested_at"],
        expires_at=row["expires_at"],
        decided_by=row["decided_by"],
        decided_at=row["decided_at"],
        comment=row["comment"],
        approvals=approvals,
    )
