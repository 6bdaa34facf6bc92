"""Deployment rows and their audit events: the only module that writes ``deployments``.

Each method is one transaction: the row change and its audit event together, or neither
(as :mod:`modelcycle.pipelines.records` does for runs). The rollout orchestration
(:mod:`modelcycle.deploy.service`) decides what happened; this module records it. Pointer and
router moves that must happen inside the switch's transaction come in as a callback, so a
switch that cannot move the traffic leaves no row saying it did.
"""

from __future__ import annotations

import builtins
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, insert, select, update

from modelcycle.audit import canonical_json, utc_timestamp
from modelcycle.deploy._alias_follow import carry_alias_back
from modelcycle.deploy.targets import Instance
from modelcycle.errors import Conflict, NotFound
from modelcycle.names import validate_name
from modelcycle.statuses import DeploymentStatus
from modelcycle.store import MetadataStore, tables

if TYPE_CHECKING:
    from modelcycle.deploy.rollout import RolloutResult, WatchResult
    from modelcycle.registry import ModelRegistry

__all__ = [
    "Attempt",
    "Deployment",
    "DeploymentRecords",
]


@dataclass(frozen=True, slots=True)
class Deployment:
    """One deployment attempt of one model version to one endpoint."""

    id: str
    endpoint: str
    target: str
    model_name: str
    model_version: int
    bundle_sha256: str
    status: str
    color: str | None
    url: str | None
    details: dict[str, Any]
    created_at: str
    created_by: str
    updated_at: str

    @property
    def model(self) -> str:
        return f"{self.model_name}/{self.model_version}"

    @property
    def reason(self) -> str | None:
        value = self.details.get("reason")
        return str(value) if value is not None else None

    @property
    def instance(self) -> Instance | None:
        data = self.details.get("instance")
        return Instance.from_dict(data) if data else None

    @property
    def backend_url(self) -> str | None:
        """The version's own server (``url`` is the endpoint's stable one, its router)."""
        instance = self.instance
        return instance.url if instance is not None else None

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "endpoint": self.endpoint,
            "target": self.target,
            "model": self.model,
            "bundle_sha256": self.bundle_sha256,
            "status": self.status,
            "color": self.color,
            "url": self.url,
            "backend_url": self.backend_url,
            "details": self.details,
            "created_at": self.created_at,
            "created_by": self.created_by,
            "updated_at": self.updated_at,
        }


@dataclass(frozen=True, slots=True)
class Attempt:
    """What one deployment attempt is, fixed before anything starts: the row's columns and
    the details it starts with (``ref``, ``bundle``, ``previous``, ``endpoint_url``...)."""

    id: str
    endpoint: str
    target: str
    model_name: str
    model_version: int
    bundle_sha256: str
    color: str | None
    details: Mapping[str, Any] = field(default_factory=dict)

    @property
    def model(self) -> str:
        return f"{self.model_name}/{self.model_version}"

    @property
    def subject(self) -> str:
        return f"deployment:{self.endpoint}"

    @property
    def front(self) -> str:
        """The endpoint's stable URL (its router)."""
        return str(self.details["endpoint_url"])

    @property
    def on_demand(self) -> bool:
        """A ``rollback`` the user asked for (not one the watch made)."""
        return self.details.get("rollback_of") is not None

    def columns(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "endpoint": self.endpoint,
            "target": self.target,
            "model_name": self.model_name,
            "model_version": self.model_version,
            "bundle_sha256": self.bundle_sha256,
            "color": self.color,
        }


def _row_to_deployment(row: Any) -> Deployment:
    m = row._mapping
    return Deployment(
        id=m["id"],
        endpoint=m["endpoint"],
        target=m["target"],
        model_name=m["model_name"],
        model_version=int(m["model_version"]),
        bundle_sha256=m["bundle_sha256"],
        status=m["status"],
        color=m["color"],
        url=m["url"],
        details=json.loads(m["details"]),
        created_at=m["created_at"],
        created_by=m["created_by"],
        updated_at=m["updated_at"],
    )


class DeploymentRecords:
    """Reads and audited writes of the ``deployments`` table for one actor."""

    def __init__(self, metadata: MetadataStore, registry: ModelRegistry, actor: str) -> None:
        self._meta = metadata
        self._registry = registry  # a rollback moves the alias back in the same transaction
        self._actor = actor

    # -- reads ------------------------------------------------------------------------------

    def get(self, deployment_id: str) -> Deployment:
        d = tables.deployments
        with self._meta.read() as conn:
            row = conn.execute(select(d).where(d.c.id == deployment_id)).first()
        if row is None:
            raise NotFound(f"no deployment {deployment_id!r}")
        return _row_to_deployment(row)

    def active(self, endpoint: str) -> Deployment | None:
        """The deployment serving ``endpoint`` now, if any."""
        d = tables.deployments
        with self._meta.read() as conn:
            row = conn.execute(
                select(d).where(d.c.endpoint == endpoint, d.c.status == DeploymentStatus.ACTIVE)
            ).first()
        return _row_to_deployment(row) if row is not None else None

    def list(self, endpoint: str | None = None, *, all: bool = False) -> builtins.list[Deployment]:
        """Active deployments (every attempt with ``all``), oldest first."""
        d = tables.deployments
        query = select(d).order_by(d.c.created_at, d.c.id)
        if endpoint is not None:
            query = query.where(d.c.endpoint == validate_name(endpoint, field="endpoint"))
        if not all:
            query = query.where(d.c.status == DeploymentStatus.ACTIVE)
        with self._meta.read() as conn:
            rows = conn.execute(query).all()
        return [_row_to_deployment(r) for r in rows]

    def run_code(self, run_id: str) -> dict[str, Any] | None:
        """The code version a run recorded (for the bundle's manifest), if any."""
        r = tables.runs
        with self._meta.read() as conn:
            code = conn.execute(select(r.c.code).where(r.c.id == run_id)).scalar()
        return json.loads(code) if code is not None else None

    # -- writes -----------------------------------------------------------------------------

    def switch(
        self,
        attempt: Attempt,
        green: Instance,
        *,
        expected_blue: Deployment | None,
        move_traffic: Callable[[], None],
    ) -> None:
        """Green becomes ``active`` (blue ``replaced``), audited as ``deployment.succeeded``
        (or ``rolled_back_on_demand``). ``move_traffic`` runs inside the transaction: if it
        raises, no row says the switch happened."""
        d = tables.deployments
        now = utc_timestamp()
        full: dict[str, Any] = {**attempt.details, "instance": green.as_dict()}
        on_demand = attempt.on_demand
        with self._meta.write(
            actor=self._actor,
            action="deployment.rolled_back_on_demand" if on_demand else "deployment.succeeded",
            subject=attempt.subject,
            payload={
                "id": attempt.id,
                "model": attempt.model,
                "target": attempt.target,
                "url": attempt.front,
                "backend_url": green.url,
                "pid": green.pid,
                "color": attempt.color,
                "bundle_sha256": attempt.bundle_sha256,
                "replaced": expected_blue.id if expected_blue is not None else None,
                **({"reason": full["reason"]} if on_demand else {}),
            },
        ) as tx:
            current = tx.conn.execute(
                select(d.c.id).where(
                    d.c.endpoint == attempt.endpoint, d.c.status == DeploymentStatus.ACTIVE
                )
            ).scalar()
            expected = expected_blue.id if expected_blue is not None else None
            if current != expected:
                raise Conflict(
                    f"endpoint {attempt.endpoint!r} changed while this deployment started "
                    f"(now {current}); run it again"
                )
            if current is not None:
                tx.conn.execute(
                    update(d)
                    .where(d.c.id == current)
                    .values(status=DeploymentStatus.REPLACED, updated_at=now)
                )
            if on_demand and expected_blue is not None:
                full = carry_alias_back(
                    self._registry, tx, full, left=expected_blue, to=attempt.model_version,
                    deployment=attempt.id,
                )  # fmt: skip
            self._insert(
                tx.conn,
                attempt,
                status=DeploymentStatus.ACTIVE,
                url=attempt.front,
                details=full,
                now=now,
            )
            move_traffic()

    def failed(self, attempt: Attempt, result: RolloutResult, *, blue_running: bool) -> Deployment:
        """The new version never took traffic: ``rolled_back`` beside a running blue, else
        ``failed``. Returns the recorded row."""
        status, action = (
            (DeploymentStatus.ROLLED_BACK, "deployment.rolled_back")
            if blue_running
            else (DeploymentStatus.FAILED, "deployment.failed")
        )
        full = {
            **attempt.details,
            "reason": result.reason,
            "instance": result.instance.as_dict() if result.instance is not None else None,
            "smoke": result.smoke.as_dict() if result.smoke is not None else None,
            "log_tail": result.log_tail,
        }
        with self._meta.write(
            actor=self._actor,
            action=action,
            subject=attempt.subject,
            payload={
                "id": attempt.id,
                "model": attempt.model,
                "target": attempt.target,
                "reason": result.reason,
                "kept": attempt.details["previous"] if blue_running else None,
                "bundle_sha256": attempt.bundle_sha256,
            },
        ) as tx:
            self._insert(tx.conn, attempt, status=status, url=None, details=full, now=None)
        return self.get(attempt.id)

    def watch_failed(
        self,
        attempt: Attempt,
        verdict: WatchResult,
        blue: Deployment,
        *,
        point_back: Callable[[], None],
    ) -> None:
        """Green went over a limit during the watch: its row becomes ``rolled_back``, blue's
        ``active`` again; ``point_back`` (the pointer file) runs inside the transaction."""
        d = tables.deployments
        now = utc_timestamp()
        green = self.get(attempt.id)
        full = {**green.details, "reason": verdict.reason, "watch": verdict.as_dict()}
        with self._meta.write(
            actor=self._actor,
            action="deployment.rolled_back",
            subject=attempt.subject,
            payload={
                "id": attempt.id,
                "model": green.model,
                "target": attempt.target,
                "reason": verdict.reason,
                "kept": blue.id,
                "bundle_sha256": attempt.bundle_sha256,
                "watch": verdict.as_dict(),
            },
        ) as tx:
            # The alias green was deployed from goes back with the traffic (decision 0004).
            full = carry_alias_back(
                self._registry, tx, full, left=green, to=blue.model_version, deployment=blue.id
            )
            tx.conn.execute(
                update(d)
                .where(d.c.id == attempt.id)
                .values(
                    status=DeploymentStatus.ROLLED_BACK,
                    url=None,
                    details=canonical_json(full),
                    updated_at=now,
                )
            )
            tx.conn.execute(
                update(d)
                .where(d.c.id == blue.id)
                .values(status=DeploymentStatus.ACTIVE, updated_at=now)
            )
            point_back()

    def watch_passed(self, attempt: Attempt, verdict: WatchResult) -> None:
        d = tables.deployments
        record = self.get(attempt.id)
        with self._meta.write(
            actor=self._actor,
            action="deployment.watch_passed",
            subject=attempt.subject,
            payload={"id": attempt.id, "model": record.model, "watch": verdict.as_dict()},
        ) as tx:
            tx.conn.execute(
                update(d)
                .where(d.c.id == attempt.id)
                .values(
                    details=canonical_json({**record.details, "watch": verdict.as_dict()}),
                    updated_at=utc_timestamp(),
                )
            )

    def handed_over(
        self,
        attempt: Attempt,
        *,
        status: str,
        action: str,
        reason: str | None,
        previous: Deployment | None,
    ) -> Deployment:
        """A target that runs the bundle elsewhere (Kubernetes) took it, or refused: one row,
        one event; an ``active`` one replaces ``previous``."""
        d = tables.deployments
        now = utc_timestamp()
        with self._meta.write(
            actor=self._actor,
            action=action,
            subject=attempt.subject,
            payload={
                "id": attempt.id,
                "model": attempt.model,
                "target": attempt.target,
                "bundle_sha256": attempt.bundle_sha256,
                "reason": reason,
            },
        ) as tx:
            if status == DeploymentStatus.ACTIVE and previous is not None:
                tx.conn.execute(
                    update(d)
                    .where(d.c.id == previous.id)
                    .values(status=DeploymentStatus.REPLACED, updated_at=now)
                )
            self._insert(
                tx.conn, attempt, status=status, url=None, details=dict(attempt.details), now=now
            )
        return self.get(attempt.id)

    def stopped(
        self, current: Deployment, *, was_running: bool, clear_pointer: Callable[[], None]
    ) -> Deployment:
        """The active row becomes ``stopped``; ``clear_pointer`` runs inside the transaction."""
        d = tables.deployments
        with self._meta.write(
            actor=self._actor,
            action="deployment.stopped",
            subject=f"deployment:{current.endpoint}",
            payload={"id": current.id, "model": current.model, "was_running": was_running},
        ) as tx:
            tx.conn.execute(
                update(d)
                .where(d.c.id == current.id, d.c.status == DeploymentStatus.ACTIVE)
                .values(status=DeploymentStatus.STOPPED, updated_at=utc_timestamp())
            )
            clear_pointer()
        return self.get(current.id)

    def _insert(
        self,
        conn: Connection,
        attempt: Attempt,
        *,
        status: str,
        url: str | None,
        details: Mapping[str, Any],
        now: str | None,
    ) -> None:
        """One attempt's row (inside the caller's audited transaction)."""
        now = now or utc_timestamp()
        conn.execute(
            insert(tables.deployments).values(
                **attempt.columns(),
                status=status,
                url=url,
                details=canonical_json(dict(details)),
                created_at=now,
                created_by=self._actor,
                updated_at=now,
            )
        )
