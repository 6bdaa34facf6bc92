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
from modelcycle.interfaces.ui.web import ConsoleRoute, paginate, render, viewer

__all__ = ["router"]

router = APIRouter(route_class=ConsoleRoute)

_SORTS = ("started", "pipeline", "status", "duration")


def duration_s(run: Run) -> float | None:
    if not run.finished_at:
        return None
    try:
        start = datetime.fromisoformat(run.started_at.replace("Z", "+00:00"))
        end = datetime.fromisoformat(run.finished_at.replace("Z", "+00:00"))
    except ValueError:
        return None
    return (end - start).total_seconds()


def _sort_key(key: str) -> Any:
    if key == "pipeline":
        return lambda r: (r.pipeline, r.started_at)
    if key == "status":
        return lambda r: (r.status, r.started_at)
    if key == "duration":
        return lambda r: (duration_s(r) is None, duration_s(r) or 0.0)
    if key.startswith("m:"):
        name = key[2:]
        return lambda r: (name not in r.metrics, r.metrics.get(name, 0.0))
    return lambda r: r.started_at


@router.get("/runs")
def runs(request: Request) -> HTMLResponse:
    who = viewer(request)
    q = request.query_params
    pipeline = q.get("pipeline") or None
    status = q.get("status") or None
    dataset = (q.get("dataset") or "").strip()
    all_runs = who.caller.ws.pipelines.runs(pipeline=pipeline, status=status)
    pipelines = sorted({r.pipeline for r in all_runs}) if not pipeline else [pipeline]
    if dataset:
        all_runs = [r for r in all_runs if any(d.startswith(dataset) for d in r.datasets)]
    metrics = sorted({k for r in all_runs for k in r.metrics})[:5]
    sort = q.get("sort", "started")
    if sort not in _SORTS and not (sort.startswith("m:") and sort[2:] in metrics):
        sort = "started"
    descending = q.get("order", "desc" if sort == "started" else "asc") == "desc"
    ordered = sorted(all_runs, key=_sort_key(sort), reverse=descending)
    page = paginate(request, ordered)

    def sort_url(key: str) -> str:
        query = {k: v for k, v in q.items() if k not in ("sort", "order", "page")}
        order = "asc" if key == sort and descending else "desc"
        query.update(sort=key, order=order)
        return "/runs?" + "&".join(f"{k}={v}" for k, v in query.items())

    return render(
        request, "runs.html", who, page=page, metrics=metrics, sort=sort, descending=descending,
        sort_url=sort_url, pipelines=pipelines, pipeline=pipeline, status=status, dataset=dataset,
        duration=duration_s,
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
