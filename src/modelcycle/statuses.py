"""The states a record can be in: one ``StrEnum`` per kind of record.

Each is the single definition its stage writes, its queries filter on and the HTTP API's models
and query parameters derive from, so they cannot disagree. The members are ``str``: they are
stored as these exact strings (SQLite and psycopg write a ``str`` subclass as its value) and
compare equal to the strings read back from the database.

This module imports nothing of modelcycle: every layer may use it.
"""

from __future__ import annotations

from enum import StrEnum

__all__ = [
    "ApprovalState",
    "BatchJobStatus",
    "DeploymentStatus",
    "JobState",
    "ModelVersionStatus",
    "RunStatus",
    "StepStatus",
]


class RunStatus(StrEnum):
    """A pipeline run."""

    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class StepStatus(StrEnum):
    """A step of a pipeline run: like a run, or its outputs reused from an earlier run."""

    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CACHED = "cached"


class BatchJobStatus(StrEnum):
    """A batch scoring job (a failed one may be resumed)."""

    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class JobState(StrEnum):
    """A job of the automation queue (and a notification delivery): a job that fails is
    retried (queued again) until it succeeds or gives up (dead); it never rests in "failed"."""

    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    DEAD = "dead"
    CANCELLED = "cancelled"


class DeploymentStatus(StrEnum):
    """A deployment attempt of one model version to one endpoint."""

    ACTIVE = "active"
    REPLACED = "replaced"
    STOPPED = "stopped"
    FAILED = "failed"
    ROLLED_BACK = "rolled_back"
    WRITTEN = "written"  # Kubernetes manifests written, not applied (no kubectl here)


class ModelVersionStatus(StrEnum):
    """A registered model version (an archived one is kept but never served or promoted)."""

    ACTIVE = "active"
    ARCHIVED = "archived"


class ApprovalState(StrEnum):
    """A promotion request."""

    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"
    CANCELLED = "cancelled"
    EXPIRED = "expired"
