"""Runs: the table (sortable, filtered by the query string, paginated), a run's page, and the
comparison of 2-10 runs with the parameters that differ highlighted."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from modelcycle.entities import Run
from modelcycle.errors import InvalidInput
from modelcycle.interfaces.ui.web import (
    ConsoleRoute,
    counted_page,
    link_with,
    page_number,
    render,
    viewer,
)

__all__ = ["router"]

router = APIRouter(route_class=ConsoleRoute)


def duration_s(run: Run) -> float | None:
    if not run.finished_at:
        return None
    try:
        start = datetime.fromisoformat(run.started_at.replace("Z", "+00:00"))
        end = datetime.fromisoformat(run.finished_at.replace("Z", "+00:00"))
    except ValueError:
        return None
    return (end - start).total_seconds()


_PER_PAGE = 25
_SORTS = ("started", "pipeline", "status", "duration")  # and m:METRIC


@router.get("/runs")
def runs(request: Request) -> HTMLResponse:
    """The runs table: filters, sort and page are in the query string and applied in the
    database (one page query and a count), so its cost does not grow with the workspace."""
    who = viewer(request)
    pipelines_ = who.caller.ws.pipelines
    q = request.query_params
    pipeline = q.get("pipeline") or None
    status = q.get("status") or None
    dataset = (q.get("dataset") or "").strip()
    model = (q.get("model") or "").strip()
    sort = q.get("sort", "started")
    if sort not in _SORTS and not (sort.startswith("m:") and len(sort) > 2):
        sort = "started"
    descending = q.get("order", "desc" if sort == "started" else "asc") == "desc"
    filters: dict[str, Any] = {"pipeline": pipeline, "status": status,
                               "dataset": dataset or None, "model": model or None}  # fmt: skip
    # Ask for the page named in the URL; past the end (the list shrank), show the last one.
    number = page_number(request, 10**9, _PER_PAGE)
    table = pipelines_.run_table(
        **filters, sort=sort, descending=descending, offset=(number - 1) * _PER_PAGE,
        limit=_PER_PAGE,
    )  # fmt: skip
    if number > 1 and not table.runs:
        number = page_number(request, table.total, _PER_PAGE)
        table = pipelines_.run_table(
            **filters, sort=sort, descending=descending, offset=(number - 1) * _PER_PAGE,
            limit=_PER_PAGE,
        )  # fmt: skip
    first = table
    page = counted_page(request, table.runs, table.total, number, _PER_PAGE)
    metrics = first.metric_names[:5]
    if sort.startswith("m:") and sort[2:] not in metrics:
        metrics.append(sort[2:])
    pipelines = [pipeline] if pipeline else first.pipelines

    def sort_url(key: str) -> str:
        order = "asc" if key == sort and descending else "desc"
        return link_with(request, sort=key, order=order, page=None)

    return render(
        request, "runs.html", who, page=page, metrics=metrics, sort=sort, descending=descending,
        sort_url=sort_url, pipelines=pipelines, pipeline=pipeline, status=status, dataset=dataset,
        model=model, duration=duration_s,
    )  # fmt: skip


@router.get("/runs/compare")
def compare(request: Request, ids: str = "") -> HTMLResponse:
    who = viewer(request)
    wanted = [i.strip() for i in ids.split(",") if i.strip()]
    if not 2 <= len(wanted) <= 10:
        raise InvalidInput("name 2 to 10 runs, separated by commas", field="ids")
    comparison = who.caller.ws.pipelines.compare(*wanted)
    only = request.query_params.get("only") == "differences"
    params = [
        (name, values, len({json.dumps(v, sort_keys=True, default=str) for v in values}) > 1)
        for name, values in comparison.params.items()
    ]
    if only:
        params = [p for p in params if p[2]]
    metric_names = list(comparison.metrics)
    metric = request.query_params.get("metric") or (metric_names[0] if metric_names else None)
    param_names = list(comparison.params)
    param = request.query_params.get("param") or next((p[0] for p in params if p[2]), None)
    chart = None
    if metric and param and metric in comparison.metrics and param in comparison.params:
        chart = json.dumps(
            {
                "data": [{"x": [str(v) for v in comparison.params[param]],
                          "y": list(comparison.metrics[metric]),
                          "text": [r.id for r in comparison.runs],
                          "type": "scatter", "mode": "markers+text", "textposition": "top center",
                          "marker": {"size": 12}}],
                "layout": {"xaxis": {"title": {"text": param}, "type": "category"},
                           "yaxis": {"title": {"text": metric}},
                           "margin": {"t": 20, "l": 60, "r": 20, "b": 50}},
            }
        )  # fmt: skip
    return render(
        request, "compare.html", who, c=comparison, params=params, only=only, ids=",".join(wanted),
        metric=metric, param=param, metric_names=metric_names, param_names=param_names,
        chart=chart,
    )  # fmt: skip


@router.get("/runs/{run_id}")
def run_page(request: Request, run_id: str) -> HTMLResponse:
    who = viewer(request)
    ws = who.caller.ws
    run = ws.pipelines.get_run(run_id)
    logs = ws.pipelines.logs(run.id)
    return render(request, "run.html", who, run=run, logs=logs, duration=duration_s(run))
