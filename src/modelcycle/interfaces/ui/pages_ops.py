"""Deployments (list, one endpoint's history, rollback and stop for operators, confirmed) and
the approvals inbox (a placeholder until a promotion policy requires approval)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from starlette.concurrency import run_in_threadpool

from modelcycle.errors import InvalidInput, ModelcycleError
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


@router.get("/deployments")
def deployments(request: Request) -> HTMLResponse:
    who = viewer(request)
    everything = request.query_params.get("all") == "1"
    rows = who.caller.ws.deploy.list(all=everything)
    return render(
        request, "deployments.html", who, page=paginate(request, rows), everything=everything
    )


def _endpoint_page(
    request: Request, endpoint: str, error: str | None = None, status: int = 200
) -> HTMLResponse:
    who = viewer(request)
    ws = who.caller.ws
    history = ws.deploy.list(endpoint, all=True)
    active = ws.deploy.active(endpoint)
    running = ws.deploy.is_running(active) if active is not None else False
    confirm = request.query_params.get("confirm")
    return render(
        request, "deployment.html", who, http_status=status, endpoint=endpoint, history=history,
        active=active, running=running, error=error,
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


@router.get("/approvals")
def approvals(request: Request) -> HTMLResponse:
    who = viewer(request)
    policy = who.caller.ws.settings.config.get("governance") or {}
    return render(request, "approvals.html", who, configured=bool(policy))
