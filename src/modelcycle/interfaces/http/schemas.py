"""The API's response bodies (pydantic), built from the entities the facades return.

Free-form parts (params, payloads, profiles, signatures) stay ``dict[str, Any]``: their shape
belongs to the stage that writes them. Secrets never appear: tokens are listed without hash or
text (the text is in :class:`TokenCreated`, once).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from modelcycle.entities import AuditEvent, DatasetVersion, Job, ModelVersion, Run
from modelcycle.statuses import (
    BatchJobStatus,
    DeploymentStatus,
    JobState,
    ModelVersionStatus,
    RunStatus,
    StepStatus,
)
from modelcycle.store.tokens import ApiToken

__all__ = [
    "AliasOut",
    "AuditEventOut",
    "BatchJobOut",
    "DatasetVersionOut",
    "DeploymentOut",
    "Health",
    "JobOut",
    "ModelVersionOut",
    "RunOut",
    "TokenCreated",
    "TokenOut",
]


class Health(BaseModel):
    status: str
    version: str


class AuditEventOut(BaseModel):
    seq: int
    at: str
    actor: str
    action: str
    subject: str
    payload: dict[str, Any]
    prev_hash: str
    hash: str

    @classmethod
    def of(cls, ev: AuditEvent) -> AuditEventOut:
        return cls(**ev.as_dict())


class RunOut(BaseModel):
    """A run as listed (no steps, code or environment: see ``GET /runs/{id}``)."""

    id: str
    pipeline: str
    status: RunStatus
    failure: str | None
    params: dict[str, Any]
    metrics: dict[str, float]
    datasets: list[str]
    models: list[str]
    started_at: str
    finished_at: str | None
    created_by: str

    @classmethod
    def of(cls, r: Run) -> RunOut:
        return cls(
            id=r.id, pipeline=r.pipeline, status=RunStatus(r.status), failure=r.failure,
            params=r.params, metrics=r.metrics, datasets=r.datasets, models=r.models,
            started_at=r.started_at, finished_at=r.finished_at, created_by=r.created_by,
        )  # fmt: skip


class StepOut(BaseModel):
    name: str
    position: int
    status: StepStatus
    params: dict[str, Any]
    inputs: dict[str, str]
    outputs: dict[str, dict[str, Any]]
    metrics: dict[str, float]
    datasets: list[str]
    models: list[str]
    started_at: str
    finished_at: str | None
    duration_s: float | None
    cached_from: str | None
    error: str | None


class RunDetail(RunOut):
    ref: str | None
    code: dict[str, Any]
    environment: dict[str, Any]
    hostname: str
    pid: int | None
    error: str | None
    resumed_from: str | None
    steps: list[StepOut]

    @classmethod
    def full(cls, r: Run) -> RunDetail:
        data = r.as_dict()
        data["steps"] = [StepOut.model_validate(s) for s in data["steps"]]
        return cls.model_validate(data)


class RunComparisonOut(BaseModel):
    runs: list[str]
    params: dict[str, list[Any]]
    metrics: dict[str, list[float | None]]
    # Per run id: the holdout data set versions its metrics came from (ref, sha256).
    holdouts: dict[str, list[dict[str, str | None]]]
    warnings: list[str]


class DatasetVersionOut(BaseModel):
    name: str
    version: int
    ref: str
    sha256: str
    num_rows: int
    size_bytes: int
    source: str
    description: str | None
    created_at: str
    created_by: str

    @classmethod
    def of(cls, dv: DatasetVersion) -> DatasetVersionOut:
        return cls(
            name=dv.name, version=dv.version, ref=dv.ref, sha256=dv.sha256, num_rows=dv.num_rows,
            size_bytes=dv.size_bytes, source=dv.source, description=dv.description,
            created_at=dv.created_at, created_by=dv.created_by,
        )  # fmt: skip


class DatasetVersionDetail(DatasetVersionOut):
    schema_: list[dict[str, Any]] = Field(serialization_alias="schema")
    profile: dict[str, Any]

    @classmethod
    def full(cls, dv: DatasetVersion) -> DatasetVersionDetail:
        base = DatasetVersionOut.of(dv).model_dump()
        return cls(**base, schema_=dv.schema, profile=dv.profile)


class DatasetOut(BaseModel):
    name: str
    versions: int
    latest: DatasetVersionOut


class ModelVersionOut(BaseModel):
    name: str
    version: int
    ref: str
    flavor: str
    status: ModelVersionStatus
    sha256: str
    aliases: list[str]
    metrics: dict[str, float]
    tags: dict[str, str]
    datasets: list[str]
    run_id: str | None
    created_at: str
    created_by: str

    @classmethod
    def of(cls, mv: ModelVersion) -> ModelVersionOut:
        return cls(
            name=mv.name, version=mv.version, ref=mv.ref, flavor=mv.flavor,
            status=ModelVersionStatus(mv.status), sha256=mv.sha256, aliases=list(mv.aliases),
            metrics=mv.metrics, tags=mv.tags, datasets=mv.datasets, run_id=mv.run_id,
            created_at=mv.created_at, created_by=mv.created_by,
        )  # fmt: skip


class ModelOut(BaseModel):
    name: str
    versions: int
    latest: int
    aliases: dict[str, int]


class ModelVersionDetail(ModelVersionOut):
    signature: dict[str, Any]
    params: dict[str, Any]
    requirements: list[str]
    code_version: str | None
    evaluations: list[dict[str, Any]]
    events: list[AuditEventOut]
    deployments: list[dict[str, Any]]
    etag: str


class AliasOut(BaseModel):
    name: str
    alias: str
    version: int
    etag: str


class PromotionOut(AliasOut):
    previous: int | None
    moved: bool
    forced: bool
    first: bool
    metric: str | None
    candidate_score: float | None
    champion_score: float | None
    dataset: str | None
    rows: dict[str, Any] | None = Field(
        default=None,
        description="The gate's holdout rows: evaluated, excluded, seen in training by role",
    )
    warnings: list[str] = Field(default_factory=list)


class DeploymentOut(BaseModel):
    id: str
    endpoint: str
    target: str
    model: str
    status: DeploymentStatus
    color: str | None
    url: str | None
    backend_url: str | None
    details: dict[str, Any]
    created_at: str
    created_by: str
    updated_at: str


class DeploymentDetail(BaseModel):
    endpoint: str
    active: DeploymentOut | None
    attempts: list[DeploymentOut]
    router: dict[str, Any]


class BatchJobOut(BaseModel):
    id: str
    model: str
    input: str
    output: str
    engine: str
    status: BatchJobStatus
    rows_done: int
    rows_total: int | None
    chunks_total: int | None
    error: str | None
    started_at: str
    finished_at: str | None
    created_by: str


class JobOut(BaseModel):
    id: str
    kind: str
    rule: str | None
    event_seq: int | None
    state: JobState
    attempts: int
    max_attempts: int
    params: dict[str, Any]
    result: dict[str, Any] | None
    error: str | None
    run_after: str
    created_at: str
    updated_at: str

    @classmethod
    def of(cls, j: Job) -> JobOut:
        return cls(
            id=j.id, kind=j.kind, rule=j.rule, event_seq=j.event_seq, state=JobState(j.state),
            attempts=j.attempts, max_attempts=j.max_attempts, params=j.params, result=j.result,
            error=j.error, run_after=j.run_after, created_at=j.created_at, updated_at=j.updated_at,
        )  # fmt: skip


class RuleOut(BaseModel):
    name: str
    on: str
    do: str
    where: dict[str, Any]
    params: dict[str, Any]
    debounce_seconds: float | None
    max_attempts: int


class TokenOut(BaseModel):
    token_id: str
    name: str
    role: str
    created_at: str
    created_by: str
    revoked_at: str | None

    @classmethod
    def of(cls, t: ApiToken) -> TokenOut:
        return cls(
            token_id=t.token_id, name=t.name, role=t.role, created_at=t.created_at,
            created_by=t.created_by, revoked_at=t.revoked_at,
        )  # fmt: skip


class TokenCreated(TokenOut):
    token: str


class ChainProblemOut(BaseModel):
    """A break in the audit chain: which event, what kind, and its fingerprint."""

    seq: int
    kind: str = Field(description="altered, inserted, missing or truncated")
    detail: str
    fingerprint: str


class VerifyOut(BaseModel):
    """``ok`` unless a break nobody acknowledged was found (``problem``, the first of
    ``problems``); ``acknowledged`` lists the breaks an ``audit.acknowledged`` event covers."""

    ok: bool
    events: int
    head_seq: int
    head_hash: str
    problem: str | None
    problems: list[ChainProblemOut] = Field(default_factory=list)
    acknowledged: list[ChainProblemOut] = Field(default_factory=list)


class WhyOut(BaseModel):
    subject: str
    events: list[AuditEventOut]
