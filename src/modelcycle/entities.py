"""Frozen records that cross layer boundaries. Plain data: no I/O, no behaviour beyond views."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["ArtifactRef", "AuditEvent", "ChainHead", "DatasetVersion", "ModelVersion"]


@dataclass(frozen=True, slots=True)
class ArtifactRef:
    """An immutable blob in the artifact store, named by the sha256 of its bytes."""

    sha256: str
    size: int


@dataclass(frozen=True, slots=True)
class ChainHead:
    """The newest event of the audit chain: its sequence number and hash."""

    seq: int
    hash: str


@dataclass(frozen=True, slots=True)
class AuditEvent:
    """One entry of the append-only, hash-chained audit log."""

    seq: int
    at: str
    actor: str
    action: str
    subject: str
    payload: dict[str, Any] = field(default_factory=dict)
    prev_hash: str = ""
    hash: str = ""

    def as_dict(self) -> dict[str, Any]:
        """The event as JSON-ready data (the export format's line)."""
        return {
            "seq": self.seq,
            "at": self.at,
            "actor": self.actor,
            "action": self.action,
            "subject": self.subject,
            "payload": self.payload,
            "prev_hash": self.prev_hash,
            "hash": self.hash,
        }


# -- datasets ---------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class DatasetVersion:
    """One immutable version of a named data set: content hash, schema and profile."""

    name: str
    version: int
    sha256: str
    num_rows: int
    size_bytes: int
    schema: list[dict[str, Any]]
    profile: dict[str, Any]
    source: str
    created_at: str
    created_by: str
    # The stored Parquet blob's sha256 (``sha256`` above is the content's identity).
    artifact_sha256: str
    description: str | None = None

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.version}"

    def as_dict(self) -> dict[str, Any]:
        """The version as JSON-ready data."""
        return {
            "name": self.name,
            "version": self.version,
            "sha256": self.sha256,
            "artifact_sha256": self.artifact_sha256,
            "num_rows": self.num_rows,
            "size_bytes": self.size_bytes,
            "schema": self.schema,
            "profile": self.profile,
            "source": self.source,
            "description": self.description,
            "created_at": self.created_at,
            "created_by": self.created_by,
        }


# -- end datasets -----------------------------------------------------------------------------


# -- registry ---------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class ModelVersion:
    """One registered version of a model, with its lineage and the aliases pointing at it."""

    name: str
    version: int
    sha256: str
    flavor: str
    signature: dict[str, Any]
    metrics: dict[str, float]
    params: dict[str, Any]
    tags: dict[str, str]
    datasets: list[str]
    requirements: list[str]
    run_id: str | None
    status: str
    created_at: str
    created_by: str
    aliases: tuple[str, ...] = ()
    # A few rows of the input example (Parquet blob): the check data when no holdout is known.
    example_sha256: str | None = None

    @property
    def ref(self) -> str:
        return f"{self.name}/{self.version}"


# -- end registry -----------------------------------------------------------------------------


# -- pipelines --------------------------------------------------------------------------------
# -- end pipelines ----------------------------------------------------------------------------
