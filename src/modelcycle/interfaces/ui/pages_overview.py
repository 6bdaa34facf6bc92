"""The overview: per model its champion, deployments and last drift check; jobs; recent events."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from modelcycle.entities import ModelVersion
from modelcycle.interfaces.ui.performance import performance_series, sparkline
from modelcycle.interfaces.ui.web import ConsoleRoute, render, viewer
from modelcycle.store.audit_trail import AuditFilter

__all__ = ["router"]

router = APIRouter(route_class=ConsoleRoute)


def _trend(ws: Any, ref: str) -> dict[str, Any] | None:
    """The champion's measured and estimated performance over the last 12 hours."""
    series = performance_series(ws, ref, hours=12)
    return {"s": series, "line": sparkline(series)} if series is not None else None


@router.get("/")
def overview(request: Request) -> HTMLResponse:
    who = viewer(request)
    ws = who.caller.ws
    by_name: dict[str, list[ModelVersion]] = {}
    for mv in ws.registry.list():
        by_name.setdefault(mv.name, []).append(mv)
    deployments = ws.deploy.list()
    history = ws.monitoring.history(limit=1000)
    models: list[dict[str, Any]] = []
    for name, versions in sorted(by_name.items()):
        champion = next((v for v in versions if "champion" in v.aliases), None)
        checks = [h for h in history if h.model_name == name]
        models.append(
            {
                "name": name,
                "versions": len(versions),
                "champion": champion,
                "deployed": [d for d in deployments if d.model_name == name],
                "last_check": checks[-1] if checks else None,
                "trend": _trend(ws, champion.ref) if champion is not None else None,
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
