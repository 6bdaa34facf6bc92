"""Frozen records that cross layer boundaries. Plain data: no I/O, no behaviour beyond views."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "ArtifactRef",
    "AuditEvent",
    "ChainHead",
    "DatasetVersion",
    "Job",
    "ModelVersion",
    "Run",
    "StepRun",
]


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
@dataclass(frozen=True, slots=True)
class StepRun:
    """One step of one run: how it ended, what it received and produced, how long it took.

    ``status``: running, succeeded, cached (outputs reused from ``cached_from``), failed.
    ``inputs`` and ``outputs`` map names to the sha256 of the stored values.
    """

    run_id: str
    name: str
    position: int
    status: str
    cache_key: str | None
    source_sha256: str
    params: dict[str, Any]
    inputs: dict[str, str]
    outputs: dict[str, dict[str, Any]]
    metrics: dict[str, float]
    started_at: str
    datasets: list[str] = field(default_factory=list)
    models: list[str] = field(default_factory=list)
    finished_at: str | None = None
    duration_s: float | None = None
    cached_from: str | None = None
    log_sha256: str | None = None
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """The step as JSON-ready data."""
        return {
            "name": self.name,
            "position": self.position,
            "status": self.status,
            "cache_key": self.cache_key,
            "source_sha256": self.source_sha256,
            "params": self.params,
            "inputs": self.inputs,
            "outputs": self.outputs,
            "metrics": self.metrics,
            "datasets": self.datasets,
            "models": self.models,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "duration_s": self.duration_s,
            "cached_from": self.cached_from,
            "log_sha256": self.log_sha256,
            "error": self.error,
        }


@dataclass(frozen=True, slots=True)
class Run:
    """One execution of a pipeline and everything needed to reproduce and audit it.

    ``status``: running, succeeded or failed (``failure`` says why: ``error`` or ``stale``).
    ``code``: git commit, dirty flag, diff hash and per-step source hashes; ``environment``:
    Python, platform and package versions; ``datasets``: input data set versions ``NAME@V``;
    ``models``: model versions ``NAME/V`` registered by the run.
    """

    id: str
    pipeline: str
    ref: str | None
    status: str
    params: dict[str, Any]
    metrics: dict[str, float]
    code: dict[str, Any]
    environment: dict[str, Any]
    datasets: list[str]
    models: list[str]
    started_at: str
    created_by: str
    hostname: str
    pid: int | None
    heartbeat_at: str | None = None
    finished_at: str | None = None
    failure: str | None = None
    error: str | None = None
    resumed_from: str | None = None
    steps: tuple[StepRun, ...] = ()

    @property
    def ok(self) -> bool:
        return self.status == "succeeded"

    def step(self, name: str) -> StepRun:
        """The step called ``name`` (KeyError when the run has none)."""
        for s in self.steps:
            if s.name == name:
                return s
        raise KeyError(name)

    def as_dict(self) -> dict[str, Any]:
        """The run as JSON-ready data."""
        return {
            "id": self.id,
            "pipeline": self.pipeline,
            "ref": self.ref,
            "status": self.status,
            "failure": self.failure,
            "params": self.params,
            "metrics": self.metrics,
            "code": self.code,
            "environment": self.environment,
            "datasets": self.datasets,
            "models": self.models,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "created_by": self.created_by,
            "hostname": self.hostname,
            "pid": self.pid,
            "heartbeat_at": self.heartbeat_at,
            "error": self.error,
            "resumed_from": self.resumed_from,
            "steps": [s.as_dict() for s in self.steps],
        }


# -- end pipelines ----------------------------------------------------------------------------


# -- scoring ----------------------------------------------------------------------------------
# -- end scoring ------------------------------------------------------------------------------


# -- batch scoring ----------------------------------------------------------------------------
# -- end batch scoring ------------------------------------------------------------------------


# -- monitoring -------------------------------------------------------------------------------
# -- end monitoring ---------------------------------------------------------------------------


# -- deploy -----------------------------------------------------------------------------------
# -- end deploy -------------------------------------------------------------------------------


# -- automations ------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Job:
    """One unit of work in the queue, with the rule and audit event that caused it."""

    id: str
    kind: str
    rule: str | None
    event_seq: int | None
    idempotency_key: str
    state: str  # queued, running, succeeded, failed (will retry), dead, cancelled
    attempts: int
    max_attempts: int
    params: dict[str, Any]
    result: dict[str, Any] | None
    error: str | None
    log: str
    lease_owner: str | None
    lease_expires_at: str | None
    run_after: str
    created_at: str
    updated_at: str


# -- end automations --------------------------------------------------------------------------
