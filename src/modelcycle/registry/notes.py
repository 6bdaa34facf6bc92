"""Notes on model versions, and the history of a model's aliases.

A note (``models annotate``) is a line of text kept on a version with its author and time,
never edited: several notes stack up, each audited as ``model.annotated``. The alias history
is read from the audit log (``model.alias_moved`` and ``model.alias_deleted`` events), the one
record that holds every move with who made it, when, and why (a forced promotion's
``reason``, a rollback's).

:class:`RegistryNotes` is mixed into :class:`~modelcycle.registry.ModelRegistry`.
"""

from __future__ import annotations

import builtins
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import insert, select

from modelcycle.audit import utc_timestamp
from modelcycle.errors import InvalidInput, NotFound
from modelcycle.names import validate_name
from modelcycle.store import tables

if TYPE_CHECKING:
    from modelcycle.entities import ModelVersion
    from modelcycle.store import MetadataStore

__all__ = ["MAX_TEXT", "AliasMove", "ModelNote", "RegistryNotes", "check_text"]

MAX_TEXT = 2000  # characters of a note or a reason
_ALIAS_ACTIONS = ("model.alias_moved", "model.alias_deleted")


@dataclass(frozen=True, slots=True)
class ModelNote:
    """One note on a version."""

    id: int
    model: str  # NAME/VERSION
    note: str
    author: str
    at: str

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "model": self.model, "note": self.note, "author": self.author,
                "at": self.at}  # fmt: skip


@dataclass(frozen=True, slots=True)
class AliasMove:
    """One change of an alias, as the audit log recorded it."""

    seq: int
    at: str
    actor: str
    alias: str
    from_version: int | None
    to_version: int | None  # None: the alias was deleted
    by: str | None  # "promotion", a rollback, or None for `models alias set`
    forced: bool | None
    reason: str | None
    payload: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "at": self.at,
            "actor": self.actor,
            "alias": self.alias,
            "from": self.from_version,
            "to": self.to_version,
            "by": self.by,
            "forced": self.forced,
            "reason": self.reason,
            "payload": self.payload,
        }


def check_text(value: object, *, field: str, required: bool = False) -> str | None:
    """A note or reason: non-blank text of at most MAX_TEXT characters (None when absent and
    not required)."""
    if value is None:
        if required:
            raise InvalidInput("is required: say why, in a few words", field=field)
        return None
    if not isinstance(value, str) or not value.strip():
        raise InvalidInput("expected some text, got nothing", field=field)
    text = value.strip()
    if len(text) > MAX_TEXT:
        raise InvalidInput(
            f"is {len(text)} characters long; at most {MAX_TEXT} are kept", field=field
        )
    return text


class RegistryNotes:
    """Notes and alias history (mixed into ModelRegistry, which supplies the store)."""

    if TYPE_CHECKING:
        _meta: MetadataStore
        _actor: str

        def get(self, ref: str) -> ModelVersion: ...

    def annotate(self, ref: str, note: str) -> ModelNote:
        """Keep ``note`` on the version ``ref`` names (an alias resolves to its version now),
        with this registry's actor as author; audited as ``model.annotated``."""
        text = check_text(note, field="note", required=True)
        assert text is not None
        mv = self.get(ref)
        t = tables.model_notes
        at = utc_timestamp()
        with self._meta.write(
            actor=self._actor,
            action="model.annotated",
            subject=f"model:{mv.ref}",
            payload={"note": text},
        ) as tx:
            new_id = tx.conn.execute(
                insert(t)
                .values(name=mv.name, version=mv.version, note=text, author=self._actor, at=at)
                .returning(t.c.id)
            ).scalar_one()
            tx.payload["id"] = int(new_id)
        return ModelNote(int(new_id), mv.ref, text, self._actor, at)

    def notes(self, ref: str) -> builtins.list[ModelNote]:
        """The notes on the version ``ref`` names, oldest first."""
        mv = self.get(ref)
        t = tables.model_notes
        with self._meta.read() as conn:
            rows = conn.execute(
                select(t).where(t.c.name == mv.name, t.c.version == mv.version).order_by(t.c.id)
            ).all()
        return [ModelNote(int(r.id), mv.ref, r.note, r.author, r.at) for r in rows]

    def alias_history(self, name: str, alias: str | None = None) -> builtins.list[AliasMove]:
        """Every move and deletion of model ``name``'s aliases (or of one alias), oldest first."""
        name = validate_name(name, field="name")
        if alias is not None:
            alias = validate_name(alias, field="alias")
        ev = tables.audit_events
        with self._meta.read() as conn:
            known = conn.execute(
                select(tables.registered_models.c.name).where(
                    tables.registered_models.c.name == name
                )
            ).scalar()
            if known is None:
                raise NotFound(f"no model named {name!r}")
            rows = conn.execute(
                select(ev)
                .where(
                    ev.c.action.in_(_ALIAS_ACTIONS),
                    ev.c.subject.startswith(f"model:{name}/", autoescape=True),
                )
                .order_by(ev.c.seq)
            ).all()
        moves = []
        for r in rows:
            # startswith is a LIKE: "_" in a name matches any character; compare exactly.
            if r.subject.rpartition("/")[0] != f"model:{name}":
                continue
            payload = json.loads(r.payload)
            if alias is not None and payload.get("alias") != alias:
                continue
            moves.append(
                AliasMove(
                    seq=int(r.seq),
                    at=r.at,
                    actor=r.actor,
                    alias=str(payload.get("alias")),
                    from_version=payload.get("from"),
                    to_version=payload.get("to"),
                    by=payload.get("by") or _by(payload),
                    forced=payload.get("forced"),
                    reason=payload.get("reason"),
                    payload=payload,
                )
            )
        return moves


def _by(payload: dict[str, Any]) -> str | None:
    # A rollback's move names its endpoint (registry/alias_moves.py); `alias set` names nothing.
    if "endpoint" in payload:
        return f"rollback of {payload['endpoint']}"
    return None
