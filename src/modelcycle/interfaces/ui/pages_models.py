"""Models: the list, one model's versions with a metric across versions, a version's page
(signature, requirements, alias history with gate figures, lineage graph) and promotion."""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from sqlalchemy import select

from modelcycle.entities import AuditEvent
from modelcycle.errors import Conflict, InvalidInput, NotFound
from modelcycle.interfaces.ui.lineage import lineage_graph
from modelcycle.interfaces.ui.overview_data import model_summaries
from modelcycle.interfaces.ui.web import (
    ConsoleRoute,
    check_csrf,
    paginate,
    redirect,
    render,
    viewer,
)
from modelcycle.store import tables
from modelcycle.workspace import Workspace

__all__ = ["router"]

router = APIRouter(route_class=ConsoleRoute)

_ALIAS_ACTIONS = ("model.promoted", "model.alias_moved", "model.alias_deleted",
                  "model.promotion_refused")  # fmt: skip


@router.get("/models")
def models(request: Request) -> HTMLResponse:
    who = viewer(request)
    rows = [
        {
            "name": m.name,
            "versions": m.versions,
            "latest": m.latest,
            "aliases": sorted(m.aliases.items()),
        }
        for m in model_summaries(who.caller.ws)
    ]
    return render(request, "models.html", who, page=paginate(request, rows))


@router.get("/models/{name}")
def model(request: Request, name: str) -> HTMLResponse:
    who = viewer(request)
    versions = who.caller.ws.registry.list(name)
    if not versions:
        raise NotFound(f"no model named {name!r}")
    metric_names = sorted({k for v in versions for k in v.metrics})
    chosen = request.query_params.get("metric") or (metric_names[0] if metric_names else None)
    chart = None
    if chosen:
        points = [(v.version, v.metrics[chosen]) for v in versions if chosen in v.metrics]
        chart = json.dumps(
            {
                "data": [{"x": [p[0] for p in points], "y": [p[1] for p in points],
                          "type": "scatter", "mode": "lines+markers", "name": chosen}],
                "layout": {"title": {"text": f"{chosen} by version"},
                           "xaxis": {"title": {"text": "version"}, "dtick": 1},
                           "yaxis": {"title": {"text": chosen}},
                           "margin": {"t": 40, "l": 60, "r": 20, "b": 50}},
            }
        )  # fmt: skip
    page = paginate(request, list(reversed(versions)))
    return render(
        request, "model.html", who, name=name, page=page, metrics=metric_names[:6],
        all_metrics=metric_names, chosen=chosen, chart=chart,
    )  # fmt: skip


def _alias_history(ws: Workspace, name: str) -> list[AuditEvent]:
    """Every alias move of the model's versions, newest first: one indexed query (by subject)
    for all versions, not one per version (a model with 100 versions took 100)."""
    t, mv = tables.audit_events, tables.model_versions
    with ws.metadata.read(snapshot=True) as conn:
        versions = conn.execute(select(mv.c.version).where(mv.c.name == name)).scalars()
        subjects = [f"model:{name}/{v}" for v in versions]
        query = (
            select(t)
            .where(t.c.subject.in_(subjects), t.c.action.in_(_ALIAS_ACTIONS))
            .order_by(t.c.seq.desc())
        )
        rows = conn.execute(query).all() if subjects else []
    events = [
        AuditEvent(seq=int(r.seq), at=r.at, actor=r.actor, action=r.action, subject=r.subject,
                   payload=json.loads(r.payload), prev_hash=r.prev_hash, hash=r.hash)
        for r in rows
    ]  # fmt: skip
    # A promotion records the move twice (promoted + alias_moved): show it once.
    return [e for e in events if e.payload.get("by") != "promotion"]


def _gate_figures(event: AuditEvent) -> str:
    """The gate's figures of a promotion, or why there were none."""
    p = event.payload
    gate = p.get("gate")
    if isinstance(gate, dict):
        shown = [
            f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
            for k, v in gate.items()
            if isinstance(v, str | int | float) and not isinstance(v, bool)
        ]
        return ", ".join(shown)
    if p.get("forced"):
        return f"forced, gate skipped (reason: {p.get('reason') or 'none given'})"
    if p.get("first"):
        return "first holder of the alias: nothing to compare with"
    if event.action == "model.promotion_refused":
        return str(p.get("message") or p.get("reason") or "refused")
    return "set directly (no gate)" if event.action == "model.alias_moved" else ""


def _version_page(
    request: Request, name: str, version: int, error: str | None = None, status: int = 200
) -> HTMLResponse:
    who = viewer(request)
    ws = who.caller.ws
    lineage = ws.registry.lineage(f"{name}/{version}")
    mv = lineage.version
    deployments = [
        d for d in ws.deploy.list(all=True) if d.model_name == name and d.model_version == version
    ]
    graph = lineage_graph(name, version, lineage.run_id, lineage.datasets, deployments)
    history = [(e, _gate_figures(e)) for e in _alias_history(ws, name)]
    return render(
        request, "model_version.html", who, http_status=status, mv=mv, lineage=lineage, graph=graph,
        history=history, deployments=deployments, error=error,
    )  # fmt: skip


@router.get("/models/{name}/versions/{version}")
def model_version(request: Request, name: str, version: int) -> HTMLResponse:
    return _version_page(request, name, version)


@router.post("/models/{name}/versions/{version}/promote", response_model=None)
async def promote(request: Request, name: str, version: int) -> HTMLResponse | RedirectResponse:
    """Promote through the same gate as ``models promote`` (operator); a refusal is shown."""
    who = viewer(request, "operator")
    form = await check_csrf(request, who)
    alias = form.get("alias", "champion").strip() or "champion"
    try:
        min_gain = float(form.get("min_gain") or 0)
    except ValueError:
        raise InvalidInput("expected a number", field="min_gain") from None
    from starlette.concurrency import run_in_threadpool

    from modelcycle.registry import request_origin

    def work() -> Any:
        # Under a [promotion.<alias>] policy the move becomes a request, recorded as the
        # console's (set in the worker thread, where the registry reads it).
        with request_origin("console"):
            return who.caller.ws.registry.promote(
                f"{name}/{version}",
                alias,
                metric=form.get("metric") or None,
                min_gain=min_gain,
                on=form.get("on") or None,
                target=form.get("target") or None,
            )

    try:
        result = await run_in_threadpool(work)
    except Conflict as exc:
        return await run_in_threadpool(_version_page, request, name, version, str(exc), 409)
    if result.request is not None:
        return redirect(f"/approvals/{result.request}")
    return redirect(f"/models/{name}/versions/{version}")
