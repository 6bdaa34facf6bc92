"""Deployments (list, deploy, one endpoint's history, router counters and traffic over time,
rollback and stop for operators, confirmed)."""

from __future__ import annotations

import contextlib
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from starlette.concurrency import run_in_threadpool

from modelcycle.errors import InvalidInput, ModelcycleError, http_status_for
from modelcycle.interfaces.ui.traffic import Traffic, endpoint_traffic
from modelcycle.interfaces.ui.web import (
    ConsoleRoute,
    check_csrf,
    paginate,
    redirect,
    render,
    viewer,
)

__all__ = ["router"]

router = APIRouter(route_class=ConsoleRoute)


_TARGETS = ("local", "container", "kubernetes")


def _deployments_page(
    request: Request,
    error: str | None = None,
    status: int = 200,
    form: dict[str, str] | None = None,
) -> HTMLResponse:
    who = viewer(request)
    everything = request.query_params.get("all") == "1"
    rows = who.caller.ws.deploy.list(all=everything)
    given = form or {"model": request.query_params.get("model", ""), "endpoint": "",
                     "target": "local"}  # fmt: skip
    return render(
        request, "deployments.html", who, http_status=status, page=paginate(request, rows),
        everything=everything, error=error, form=given, targets=_TARGETS,
    )  # fmt: skip


@router.get("/deployments")
def deployments(request: Request) -> HTMLResponse:
    return _deployments_page(request)


@router.post("/deployments", response_model=None)
async def deploy(request: Request) -> HTMLResponse | RedirectResponse:
    """Deploy a version to an endpoint (operator), through the same service call as the API's
    ``POST /api/v1/deployments``; the form's ``confirm`` box must be ticked."""
    who = viewer(request, "operator")
    form = await check_csrf(request, who)
    model = form.get("model", "").strip()
    endpoint = form.get("endpoint", "").strip()
    target = form.get("target", "local")
    if not model:
        raise InvalidInput("name a version: NAME/VERSION or NAME@ALIAS", field="model")
    if not endpoint:
        raise InvalidInput("name the endpoint to deploy to", field="endpoint")
    if target not in _TARGETS:
        raise InvalidInput(f"expected one of {', '.join(_TARGETS)}", field="target")
    if form.get("confirm") != "yes":
        raise InvalidInput("tick the box to confirm the deployment", field="confirm")
    try:
        await run_in_threadpool(who.caller.ws.deploy.deploy, model, endpoint=endpoint,
                                target=target)  # fmt: skip
    except ModelcycleError as exc:
        given = {"model": model, "endpoint": endpoint, "target": target}
        status = http_status_for(exc)
        return await run_in_threadpool(_deployments_page, request, str(exc), status, given)
    return redirect(f"/deployments/{endpoint}")


def _router_counters(ws: Any, endpoint: str, history: list[Any]) -> list[tuple[Any, Any]]:
    """What the endpoint's router counted per backend (the live one and the one before it,
    which is all a router keeps), newest first, with the deployment each backend served."""
    router_ = ws.deploy.router(endpoint)
    if not router_.is_running():
        return []
    out: list[tuple[Any, Any]] = []
    seen: set[str] = set()
    for d in reversed(history):
        url = d.backend_url
        if not url or url in seen:
            continue
        seen.add(url)
        with contextlib.suppress(ModelcycleError, OSError):
            stats = router_.stats(url)
            if stats is not None:
                out.append((d, stats))
        if len(seen) == 2:
            break
    return out


def _traffic(ws: Any, endpoint: str, history: list[Any]) -> Traffic | None:
    """Requests, error rate and p99 per backend per minute, from the router's history."""
    router_ = ws.deploy.router(endpoint)
    if not router_.is_running():
        return None
    try:
        return endpoint_traffic(router_.history(), history)
    except (ModelcycleError, OSError):
        return None  # a router started by an older modelcycle has no history route


def _endpoint_page(
    request: Request, endpoint: str, error: str | None = None, status: int = 200
) -> HTMLResponse:
    who = viewer(request)
    ws = who.caller.ws
    history = ws.deploy.list(endpoint, all=True)
    active = ws.deploy.active(endpoint)
    running = ws.deploy.is_running(active) if active is not None else False
    confirm = request.query_params.get("confirm")
    counters = _router_counters(ws, endpoint, history) if history else []
    traffic = _traffic(ws, endpoint, history) if counters else None
    minutes = paginate(request, traffic.rows if traffic else [], per_page=30, param="minutes")
    return render(
        request, "deployment.html", who, http_status=status, endpoint=endpoint, history=history,
        active=active, running=running, error=error, counters=counters, traffic=traffic,
        minutes=minutes,
        confirm=confirm if confirm in ("rollback", "stop") else None,
    )  # fmt: skip


@router.get("/deployments/{endpoint}")
def deployment(request: Request, endpoint: str) -> HTMLResponse:
    return _endpoint_page(request, endpoint)


@router.post("/deployments/{endpoint}/{action}", response_model=None)
async def act(request: Request, endpoint: str, action: str) -> HTMLResponse | RedirectResponse:
    """Roll back or stop an endpoint (operator); the form's ``confirm`` field must name it."""
    who = viewer(request, "operator")
    form = await check_csrf(request, who)
    if action not in ("rollback", "stop"):
        raise InvalidInput("expected rollback or stop", field="action")
    if form.get("confirm") != endpoint:
        raise InvalidInput(f"type the endpoint name {endpoint!r} to confirm", field="confirm")
    deploy = who.caller.ws.deploy
    try:
        if action == "rollback":
            await run_in_threadpool(deploy.rollback, endpoint)
        else:
            await run_in_threadpool(deploy.stop, endpoint)
    except ModelcycleError as exc:
        return await run_in_threadpool(_endpoint_page, request, endpoint, str(exc), 409)
    return redirect(f"/deployments/{endpoint}")
