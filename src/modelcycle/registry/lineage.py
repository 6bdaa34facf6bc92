"""Lineage: where a version came from (run, data sets, code) and everything that happened to it
(aliases, gate evaluations, audit events).

:class:`RegistryLineage` is mixed into :class:`~modelcycle.registry.ModelRegistry`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, select

from modelcycle.entities import AuditEvent, ModelVersion
from modelcycle.registry.refs import ModelRef, parse_model_ref
from modelcycle.store import tables

if TYPE_CHECKING:
    from modelcycle.store import MetadataStore

__all__ = ["Lineage", "RegistryLineage"]


@dataclass(frozen=True, slots=True)
class Lineage:
    """Where a version came from and everything that happened to it."""

    version: ModelVersion
    run_id: str | None
    datasets: list[str]
    code_version: str | None
    signature: dict[str, Any]
    metrics: dict[str, float]
    aliases: tuple[str, ...]
    evaluations: list[dict[str, Any]] = field(default_factory=list)
    events: list[AuditEvent] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "model": self.version.ref,
            "flavor": self.version.flavor,
            "status": self.version.status,
            "sha256": self.version.sha256,
            "run_id": self.run_id,
            "datasets": self.datasets,
            "code_version": self.code_version,
            "signature": self.signature,
            "metrics": self.metrics,
            "params": self.version.params,
            "tags": self.version.tags,
            "requirements": self.version.requirements,
            "aliases": list(self.aliases),
            "evaluations": self.evaluations,
            "events": [e.as_dict() for e in self.events],
        }


class RegistryLineage:
    """A version's lineage (mixed into ModelRegistry, which supplies the store)."""

    if TYPE_CHECKING:
        _meta: MetadataStore

        def _get(self, conn: Connection, ref: ModelRef) -> ModelVersion: ...

    def lineage(self, ref: str) -> Lineage:
        """Run, data sets, code version, signature, metrics, aliases, evaluations, audit events."""
        parsed = parse_model_ref(ref)
        ev = tables.audit_events
        me = tables.model_evaluations
        with self._meta.read(snapshot=True) as conn:
            mv = self._get(conn, parsed)
            rows = conn.execute(
                select(ev).where(ev.c.subject == f"model:{mv.ref}").order_by(ev.c.seq)
            ).all()
            evaluations = conn.execute(
                select(me.c.dataset, me.c.metric, me.c.value, me.c.created_at)
                .where(me.c.name == mv.name, me.c.version == mv.version)
                .order_by(me.c.id)
            ).all()
        events = [
            AuditEvent(
                seq=int(r.seq),
                at=r.at,
                actor=r.actor,
                action=r.action,
                subject=r.subject,
                payload=json.loads(r.payload),
                prev_hash=r.prev_hash,
                hash=r.hash,
            )
            for r in rows
        ]
        code_version = mv.tags.get("code_version") or mv.tags.get("git_commit")
        return Lineage(
            version=mv,
            run_id=mv.run_id,
            datasets=mv.datasets,
            code_version=code_version,
            signature=mv.signature,
            metrics=mv.metrics,
            aliases=mv.aliases,
            evaluations=[dict(e._mapping) for e in evaluations],
            events=events,
        )
