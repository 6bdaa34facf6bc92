"""The overview: per model its champion, deployments and drift checks; jobs; recent events.

The page itself reads stored rows only (versions, deployments, drift checks, jobs, events), so
its time does not grow with what monitoring costs to compute. Each champion's performance
sparkline comes from ``/overview/trend/NAME``, a fragment the card loads after the page
(htmx; without scripts the card links to the monitoring page instead).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from modelcycle.errors import NotFound
from modelcycle.interfaces.ui.overview_data import (
    drift_spark,
    last_checks,
    model_summaries,
    recent_checks,
)
from modelcycle.interfaces.ui.performance import performance_series, sparkline
from modelcycle.interfaces.ui.web import ConsoleRoute, render, viewer
from modelcycle.store.audit_trail import AuditFilter

__all__ = ["router"]

router = APIRouter(route_class=ConsoleRoute)


@router.get("/")
def overview(request: Request) -> HTMLResponse:
    who = viewer(request)
    ws = who.caller.ws
    deployments = ws.deploy.list()
    checks = recent_checks(ws)
    verdicts = last_checks(ws, [points[-1].id for points in checks.values()])
    models: list[dict[str, Any]] = []
    for summary in model_summaries(ws):
        name = summary.name
        points = checks.get(name, [])
        models.append(
            {
                "name": name,
                "versions": summary.versions,
                "champion": summary.ref("champion"),
                "deployed": [d for d in deployments if d.model_name == name],
                "last_check": verdicts.get(points[-1].id) if points else None,
                "drift": drift_spark(points) if points else None,
            }
        )
    queue = ws.automations.queue
    troubled = queue.list(state="dead", limit=20)
    events = ws.audit.events(AuditFilter(limit=20))
    pending = ws.approvals.list(pending=True, limit=20)
    return render(
        request,
        "overview.html",
        who,
        models=models,
        jobs=troubled,
        pending=pending,
        events=list(reversed(events)),
    )


@router.get("/overview/trend/{name}")
def trend(request: Request, name: str) -> HTMLResponse:
    """One card's performance sparkline: the champion's measured and estimated figures per
    hour over the last 12 hours (kept a minute per model, see ``performance``)."""
    who = viewer(request)
    ws = who.caller.ws
    versions = ws.registry.list(name)
    if not versions:
        raise NotFound(f"no model named {name!r}")
    champion = next((v for v in versions if "champion" in v.aliases), None)
    series = performance_series(ws, champion.ref, hours=12) if champion is not None else None
    t = {"s": series, "line": sparkline(series)} if series is not None else None
    return render(request, "_trend.html", who, name=name, t=t, champion=champion)
