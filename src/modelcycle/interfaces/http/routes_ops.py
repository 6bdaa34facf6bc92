"""Deployments, batch jobs, monitoring, jobs and rules: the operating side of the CLI.

The POSTs that start work (deploy, rollback, batch job, drift check, retry) take an
``Idempotency-Key``: a retry with the same key answers the first result again.
"""

from __future__ import annotations

import contextlib
import dataclasses
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Header, Path, Query, Request, Response
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, ConfigDict, Field

from modelcycle.errors import InvalidInput, ModelcycleError
from modelcycle.interfaces.http.auth import Caller, Operator, Reader
from modelcycle.interfaces.http.paging import Cursor, Limit, Page, page_of
from modelcycle.interfaces.http.schemas import (
    BatchJobOut,
    DeploymentDetail,
    DeploymentOut,
    JobOut,
    RuleOut,
)
from modelcycle.statuses import JobState

__all__ = ["router"]

router = APIRouter()

Endpoint = Annotated[str, Path(min_length=1, max_length=100)]
IdemKey = Annotated[
    str | None, Header(alias="Idempotency-Key", max_length=200, description="Retry-safe key.")
]
_DATA = "data:"


def _once(request: Request, caller: Caller, key: str | None, status: int, work: Any) -> Response:
    cache = request.app.state.idempotency
    result: Response = cache.run(
        key, (caller.name, f"{request.method} {request.url.path}"), work, status=status
    )
    return result


def _deployment(d: Any) -> DeploymentOut:
    return DeploymentOut.model_validate(d.as_dict())


# -- deployments ------------------------------------------------------------------------------


class DeployRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str = Field(max_length=200, description="NAME/VERSION or NAME@ALIAS")
    endpoint: str = Field(max_length=100)
    target: Literal["local", "container", "kubernetes"] = "local"
    port: int | None = Field(None, ge=1, le=65535)
    ready_timeout: float = Field(60.0, gt=0, le=3600, allow_inf_nan=False)


@router.get("/deployments", tags=["deployments"])
def list_deployments(
    caller: Reader,
    request: Request,
    response: Response,
    all: bool = False,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> Page[DeploymentOut]:
    """Active deployments (``all``: every attempt), by endpoint (as `deployments list`)."""
    rows = sorted(caller.ws.deploy.list(all=all), key=lambda d: (d.endpoint, d.created_at, d.id))
    items = [_deployment(d) for d in rows]
    return page_of(request, response, items, limit, cursor,
                   lambda d: (d.endpoint, d.created_at, d.id))  # fmt: skip


@router.post("/deployments", tags=["deployments"], status_code=201)
def create_deployment(
    caller: Operator, request: Request, body: DeployRequest, idempotency_key: IdemKey = None
) -> DeploymentOut:
    """Deploy a model version to an endpoint (blue/green, as `modelcycle deploy`)."""

    def work() -> DeploymentOut:
        return _deployment(
            caller.ws.deploy.deploy(
                body.model, endpoint=body.endpoint, target=body.target, port=body.port,
                ready_timeout=body.ready_timeout,
            )
        )  # fmt: skip

    return _once(request, caller, idempotency_key, 201, work)  # type: ignore[return-value]


@router.get("/deployments/{endpoint}", tags=["deployments"])
def get_deployment(caller: Reader, endpoint: Endpoint) -> DeploymentDetail:
    """The active version, every attempt, and the router's counters for the live backend."""
    current = caller.ws.deploy.show(endpoint)
    attempts = [_deployment(d) for d in caller.ws.deploy.list(current.endpoint, all=True)]
    counters: dict[str, Any] = {}
    router_ = caller.ws.deploy.router(current.endpoint)
    if current.backend_url and router_.is_running():
        with contextlib.suppress(ModelcycleError, OSError):
            stats = router_.stats(current.backend_url)
            counters = dataclasses.asdict(stats) if stats is not None else {}
    active = _deployment(current) if current.status == "active" else None
    return DeploymentDetail(
        endpoint=current.endpoint, active=active, attempts=attempts, router=counters
    )


@router.post("/deployments/{endpoint}/rollback", tags=["deployments"])
def rollback(
    caller: Operator, request: Request, endpoint: Endpoint, idempotency_key: IdemKey = None
) -> DeploymentOut:
    """Go back to the version served before (as `deployments rollback`)."""
    work = lambda: _deployment(caller.ws.deploy.rollback(endpoint))  # noqa: E731
    return _once(request, caller, idempotency_key, 200, work)  # type: ignore[return-value]


@router.post("/deployments/{endpoint}/stop", tags=["deployments"])
def stop(caller: Operator, endpoint: Endpoint) -> DeploymentOut:
    """Stop the endpoint (as `deployments stop`)."""
    return _deployment(caller.ws.deploy.stop(endpoint))


# -- batch jobs -------------------------------------------------------------------------------


class BatchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str = Field(max_length=200, description="NAME@ALIAS or NAME/VERSION")
    input: str = Field(max_length=300, description="data:NAME@VERSION (a stored data set)")
    output: str = Field(max_length=100, description="A folder name under the workspace's batch/")
    proba: bool = False


def _batch(job: Any) -> BatchJobOut:
    total = job.params.get("rows_total") if isinstance(job.params, dict) else None
    return BatchJobOut(
        id=job.id, model=job.model_ref, input=job.input, output=job.output, engine=job.engine,
        status=job.status, rows_done=job.rows_out, rows_total=total if isinstance(total, int)
        else None, chunks_total=job.chunks_total, error=job.error, started_at=job.started_at,
        finished_at=job.finished_at, created_by=job.created_by,
    )  # fmt: skip


@router.post("/batch-jobs", tags=["batch-jobs"], status_code=201)
def create_batch_job(
    caller: Operator, request: Request, body: BatchRequest, idempotency_key: IdemKey = None
) -> BatchJobOut:
    """Score a stored data set into a folder of the workspace (as `modelcycle score`).

    Over HTTP the input is a stored data set and the output a folder name under ``batch/``:
    a client names no path on the server's disk."""
    from modelcycle.names import validate_name

    if not body.input.startswith(_DATA):
        raise InvalidInput("expected data:NAME@VERSION (a stored data set)", field="input")
    out = caller.ws.root / "batch" / validate_name(body.output, field="output")
    work = lambda: _batch(  # noqa: E731
        caller.ws.batch.score(body.model, body.input, out, proba=body.proba)
    )
    return _once(request, caller, idempotency_key, 201, work)  # type: ignore[return-value]


@router.get("/batch-jobs/{job_id}", tags=["batch-jobs"])
def get_batch_job(
    caller: Reader, job_id: Annotated[str, Path(min_length=4, max_length=64)]
) -> BatchJobOut:
    """A batch job and its progress (rows done / total)."""
    return _batch(caller.ws.batch.get(job_id))


# -- monitoring -------------------------------------------------------------------------------


class DriftRecordOut(BaseModel):
    id: int
    at: str
    model_name: str | None
    model_version: int | None
    reference: str
    current: str
    window_start: str | None
    window_end: str | None
    dataset_drift: bool
    share_drifted: float
    status: str
    number_of_columns: int
    drifted_columns: list[str]
    prediction_drift: bool | None


class DriftRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str | None = Field(None, max_length=200, description="NAME, NAME@ALIAS or NAME/V")
    reference: str | None = Field(None, max_length=300, description="data:NAME@VERSION")
    current: str | None = Field(None, max_length=300, description="data:NAME@VERSION")
    window: str | None = Field(None, max_length=20, description="e.g. 1d, 6h")


@router.get("/monitoring/checks", tags=["monitoring"])
def list_checks(
    caller: Reader,
    request: Request,
    response: Response,
    model: Annotated[str | None, Query(max_length=200)] = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> Page[DriftRecordOut]:
    """Stored drift checks, oldest first (as `monitor history`)."""
    records = caller.ws.monitoring.history(model, limit=100_000)
    items = [DriftRecordOut.model_validate(r.as_dict()) for r in records]
    return page_of(request, response, items, limit, cursor, lambda r: (r.id,))


@router.get("/monitoring/checks/{check_id}", tags=["monitoring"])
def get_check(caller: Reader, check_id: Annotated[int, Path(ge=1, le=2**62)]) -> dict[str, Any]:
    """One stored check, whole: per-column tests, figures and verdicts."""
    from modelcycle.monitoring.stored import stored_check

    return stored_check(caller.ws.metadata, check_id)


@router.get(
    "/monitoring/checks/{check_id}/report",
    tags=["monitoring"],
    response_class=HTMLResponse,
    responses={200: {"content": {"text/html": {}}}},
)
def check_report(caller: Reader, check_id: Annotated[int, Path(ge=1, le=2**62)]) -> HTMLResponse:
    """The HTML report of a stored check (one self-contained page, as `monitor drift
    --report`). Its charts are computed again from the reference and current data sets when
    both are still stored; otherwise the page shows the stored verdicts and says why."""
    from modelcycle.monitoring.stored import stored_report_html

    html = stored_report_html(caller.ws.metadata, caller.ws.datasets, check_id)
    return HTMLResponse(html)


@router.get("/monitoring/performance", tags=["monitoring"])
def performance(
    caller: Reader,
    model: Annotated[str, Query(min_length=1, max_length=200, description="NAME@ALIAS or NAME/V")],
    window: Annotated[str, Query(max_length=20, description="e.g. 1d, 6h")] = "1d",
    since: Annotated[str | None, Query(max_length=40)] = None,
) -> dict[str, Any]:
    """Metrics from ground truth per window against the holdout's (as `monitor performance`)."""
    return caller.ws.monitoring.performance(model, window=window, since=since).as_dict()


@router.post("/monitoring/drift", tags=["monitoring"], status_code=201)
def run_drift(
    caller: Operator, request: Request, body: DriftRequest, idempotency_key: IdemKey = None
) -> dict[str, Any]:
    """Run and store a drift check (as `monitor drift`); data sources are stored data sets."""
    for field in ("reference", "current"):
        value = getattr(body, field)
        if value is not None and not value.startswith(_DATA):
            raise InvalidInput("expected data:NAME@VERSION (a stored data set)", field=field)
    work = lambda: caller.ws.monitoring.drift(  # noqa: E731
        body.reference, body.current, model=body.model, window=body.window
    ).as_dict()
    return _once(request, caller, idempotency_key, 201, work)  # type: ignore[return-value]


# -- jobs and rules ---------------------------------------------------------------------------

JobId = Annotated[str, Path(min_length=4, max_length=64)]


@router.get("/jobs", tags=["jobs"])
def list_jobs(
    caller: Reader,
    request: Request,
    response: Response,
    state: JobState | None = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> Page[JobOut]:
    """Jobs of the queue, newest first (as `jobs list`)."""
    jobs = caller.ws.automations.queue.list(state=state, limit=100_000)
    items = [JobOut.of(j) for j in sorted(jobs, key=lambda j: (j.created_at, j.id), reverse=True)]
    return page_of(request, response, items, limit, cursor, lambda j: (j.created_at, j.id),
                   descending=True)  # fmt: skip


@router.get("/jobs/{job_id}", tags=["jobs"])
def get_job(caller: Reader, job_id: JobId) -> JobOut:
    return JobOut.of(caller.ws.automations.queue.get(job_id))


@router.post("/jobs/{job_id}/retry", tags=["jobs"])
def retry_job(
    caller: Operator, request: Request, job_id: JobId, idempotency_key: IdemKey = None
) -> JobOut:
    """Queue a dead or cancelled job again (as `jobs retry`)."""
    work = lambda: JobOut.of(caller.ws.automations.queue.retry(job_id))  # noqa: E731
    return _once(request, caller, idempotency_key, 200, work)  # type: ignore[return-value]


@router.post("/jobs/{job_id}/cancel", tags=["jobs"])
def cancel_job(caller: Operator, job_id: JobId) -> JobOut:
    """Cancel a queued or running job (as `jobs cancel`)."""
    return JobOut.of(caller.ws.automations.queue.cancel(job_id))


@router.get("/rules", tags=["jobs"])
def list_rules(
    caller: Reader, request: Request, response: Response, limit: Limit = 50, cursor: Cursor = None
) -> Page[RuleOut]:
    """The rules of modelcycle.toml (as `rules list`)."""
    items = [
        RuleOut(
            name=r.name, on=r.on, do=r.do, where=dict(r.where), params=dict(r.params),
            debounce_seconds=r.debounce.total_seconds() if r.debounce else None,
            max_attempts=r.max_attempts,
        )
        for r in sorted(caller.ws.automations.rules, key=lambda r: r.name)
    ]  # fmt: skip
    return page_of(request, response, items, limit, cursor, lambda r: (r.name,))
