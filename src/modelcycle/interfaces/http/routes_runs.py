"""Runs (``modelcycle runs ...``) and data sets (``modelcycle data ...``): read routes."""

from __future__ import annotations

import bisect
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Path, Query, Request, Response
from fastapi.responses import PlainTextResponse
from starlette.concurrency import run_in_threadpool

from modelcycle.errors import InvalidInput
from modelcycle.interfaces.http.auth import Reader
from modelcycle.interfaces.http.fast import json_page, on_loop_if, run_item
from modelcycle.interfaces.http.paging import Cursor, Limit, Page, decode_cursor, page_of
from modelcycle.interfaces.http.schemas import (
    DatasetOut,
    DatasetVersionDetail,
    DatasetVersionOut,
    RunComparisonOut,
    RunDetail,
    RunOut,
)
from modelcycle.statuses import RunStatus

__all__ = ["router"]

router = APIRouter()

Name = Annotated[str, Path(min_length=1, max_length=200)]
RunId = Annotated[str, Path(min_length=4, max_length=64)]


@router.get("/runs", tags=["runs"], response_model=Page[RunOut])
async def list_runs(
    caller: Reader,
    request: Request,
    pipeline: Annotated[str | None, Query(max_length=200)] = None,
    status: RunStatus | None = None,
    dataset: Annotated[str | None, Query(max_length=200, description="NAME@VERSION")] = None,
    model: Annotated[str | None, Query(max_length=200, description="NAME/VERSION")] = None,
    sort: Annotated[
        str | None,
        Query(
            max_length=100,
            pattern=r"^-?[A-Za-z0-9_.:/-]+$",
            description="A metric to sort by, best first: `auc` ascending, `-auc` descending",
        ),
    ] = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> Response:
    """Runs, newest first (as `runs list`), filtered by pipeline, status, data set or model,
    or sorted by a metric (runs without it come last)."""
    pipelines = caller.ws.pipelines
    if request.app.state.stale_sweep.due():
        await run_in_threadpool(pipelines.sweep_stale)

    def page() -> Response:
        def wanted(row: dict[str, Any]) -> bool:
            # Only these filters need a JSON column decoded; the page shows the stored text.
            return (dataset is None or dataset in orjson.loads(row["datasets"])) and (
                model is None or model in orjson.loads(row["models"])
            )

        if sort is not None:
            metric, sign = sort.lstrip("-"), -1.0 if sort.startswith("-") else 1.0
            keyed: list[tuple[tuple[int, float, str], dict[str, Any]]] = []
            for row in pipelines.run_rows(pipeline=pipeline, status=status):
                if wanted(row):
                    value = orjson.loads(row["metrics"]).get(metric)
                    k = (0, sign * value, row["id"]) if value is not None else (1, 0.0, row["id"])
                    keyed.append((k, row))
            keyed.sort(key=lambda kr: kr[0])
            start = 0
            after_key = decode_cursor(cursor, arity=3)
            if after_key is not None:
                try:
                    marker = (int(after_key[0]), float(after_key[1]), str(after_key[2]))
                except (TypeError, ValueError):
                    raise InvalidInput("is not a cursor of this list", field="cursor") from None
                start = bisect.bisect_right([k for k, _ in keyed], marker)
            window = keyed[start : start + limit + 1]
            keys = {row["id"]: k for k, row in window}
            items = [run_item(row) for _, row in window]
            return json_page(request, items, limit, lambda item: keys[item["id"]])
        after = decode_cursor(cursor, arity=2)
        last = (str(after[0]), str(after[1])) if after is not None else None
        found: list[dict[str, Any]] = []
        # Data set and model filters look inside each run's lists, so pages are read until full.
        while len(found) <= limit:
            batch = pipelines.run_rows(
                pipeline=pipeline, status=status, limit=limit + 1, after=last
            )
            found += [run_item(r) for r in batch if wanted(r)]
            if len(batch) <= limit:
                break
            last = (batch[-1]["started_at"], batch[-1]["id"])
        return json_page(request, found, limit, lambda r: (r["started_at"], r["id"]))

    # The newest runs, unfiltered, are an index range; filters and sorts may scan them all.
    bounded = (
        sort is None and pipeline is None and status is None and dataset is None and model is None
    )
    return await on_loop_if(bounded, page)


@router.get("/runs/compare", tags=["runs"])
def compare_runs(
    caller: Reader,
    ids: Annotated[str, Query(max_length=2000, description="Run ids, comma-separated.")],
) -> RunComparisonOut:
    """Parameters and metrics of 2 to 10 runs side by side, with the holdouts their metrics
    came from and a warning when those differ (as `runs compare`)."""
    wanted = [i.strip() for i in ids.split(",") if i.strip()]
    try:
        comparison = caller.ws.pipelines.compare(*wanted)
    except InvalidInput as exc:
        # The facade names its argument ``runs``; over HTTP it is the ``ids`` query parameter.
        raise InvalidInput(exc.message.removeprefix("runs: "), field="ids") from None
    return RunComparisonOut.model_validate(comparison.as_dict())


@router.get("/runs/{run_id}", tags=["runs"])
def get_run(caller: Reader, run_id: RunId) -> RunDetail:
    """Everything a run recorded: params, metrics, steps with durations, code, data, models."""
    return RunDetail.full(caller.ws.pipelines.get_run(run_id))


@router.get("/runs/{run_id}/logs", tags=["runs"], response_class=PlainTextResponse)
def run_logs(
    caller: Reader, run_id: RunId, step: Annotated[str | None, Query(max_length=200)] = None
) -> str:
    """The captured output of the run's steps (as `runs logs`)."""
    return caller.ws.pipelines.logs(run_id, step)


@router.get("/datasets", tags=["datasets"])
def list_datasets(
    caller: Reader, request: Request, response: Response, limit: Limit = 50, cursor: Cursor = None
) -> Page[DatasetOut]:
    """Data sets by name, each with its latest version (as `data list`)."""
    by_name: dict[str, list[DatasetVersionOut]] = {}
    for dv in caller.ws.datasets.list():
        by_name.setdefault(dv.name, []).append(DatasetVersionOut.of(dv))
    items = [
        DatasetOut(name=n, versions=len(vs), latest=max(vs, key=lambda v: v.version))
        for n, vs in sorted(by_name.items())
    ]
    return page_of(request, response, items, limit, cursor, lambda d: (d.name,))


@router.get("/datasets/{name}", tags=["datasets"])
def dataset_versions(
    caller: Reader,
    name: Name,
    request: Request,
    response: Response,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> Page[DatasetVersionOut]:
    """The versions of one data set, oldest first."""
    versions = sorted(caller.ws.datasets.list(name), key=lambda v: v.version)
    if not versions:
        caller.ws.datasets.version(name)  # raises NotFound naming the data set
    items = [DatasetVersionOut.of(v) for v in versions]
    return page_of(request, response, items, limit, cursor, lambda v: (v.version,))


@router.get("/datasets/{name}/versions/{version}", tags=["datasets"])
def dataset_version(
    caller: Reader, name: Name, version: Annotated[str, Path(max_length=20)]
) -> DatasetVersionDetail:
    """One version with its schema and per-column profile (as `data show`)."""
    return DatasetVersionDetail.full(caller.ws.datasets.version(name, version))


@router.get("/datasets/{name}/diff", tags=["datasets"])
def dataset_diff(
    caller: Reader,
    name: Name,
    a: Annotated[int, Query(ge=1)],
    b: Annotated[int, Query(ge=1)],
) -> dict[str, object]:
    """Schema and distribution changes between two versions (as `data diff`)."""
    return caller.ws.datasets.diff(f"{name}@{a}", f"{name}@{b}").as_dict()
