"""The approvals inbox: promotion requests waiting under a ``[promotion.<alias>]`` policy, one
request's page with the gate's figures and the approvals so far, and approve / reject with a
comment (operators and admins; the registry then checks the policy's approvers and separation
of duties, as for ``modelcycle approvals`` and ``/api/v1/approvals``)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from starlette.concurrency import run_in_threadpool

from modelcycle.errors import InvalidInput, ModelcycleError, http_status_for
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

_LIST_CAP = 500  # requests are few (one per gated promotion); the page cuts 25 of these


@router.get("/approvals")
def approvals(request: Request) -> HTMLResponse:
    who = viewer(request)
    ws = who.caller.ws
    everything = request.query_params.get("all") == "1"
    requests = ws.approvals.list(pending=not everything, limit=_LIST_CAP)
    configured = bool(ws.settings.config.get("promotion"))
    return render(
        request, "approvals.html", who, page=paginate(request, requests), everything=everything,
        configured=configured,
    )  # fmt: skip


def _why_not(who: Any, req: Any) -> str | None:
    """Why this viewer may not decide (shown instead of the forms); the server checks anyway,
    including what only the database knows (who registered the version)."""
    if not req.pending:
        return f"this request is {req.state}"
    name = who.caller.name
    approvers = req.policy.get("approvers") or []
    if req.policy.get("separation_of_duties", True) and name == req.requested_by:
        return f"{name} requested this promotion; another approver must decide"
    if approvers and name not in approvers:
        return f"{name} is not among this policy's approvers ({', '.join(approvers)})"
    if name in req.approved_by:
        return f"{name} already approved"
    return None


def _request_page(
    request: Request, request_id: str, error: str | None = None, status: int = 200
) -> HTMLResponse:
    who = viewer(request)
    req = who.caller.ws.approvals.get(request_id)
    gate = req.gate or {}
    figures = [(k, v) for k, v in gate.items() if isinstance(v, str | int | float | bool)]
    return render(
        request, "approval.html", who, http_status=status, req=req, figures=figures, error=error,
        why_not=_why_not(who, req) if who.can("operator") else None,
    )  # fmt: skip


@router.get("/approvals/{request_id}")
def approval(request: Request, request_id: str) -> HTMLResponse:
    return _request_page(request, request_id)


@router.post("/approvals/{request_id}/{decision}", response_model=None)
async def decide(
    request: Request, request_id: str, decision: str
) -> HTMLResponse | RedirectResponse:
    """Approve (comment optional) or reject (comment required) as the signed-in token."""
    who = viewer(request, "operator")
    form = await check_csrf(request, who)
    comment = (form.get("comment") or "").strip() or None
    approvals_ = who.caller.ws.approvals
    if decision not in ("approve", "reject"):
        raise InvalidInput("expected approve or reject", field="decision")
    if decision == "reject" and comment is None:
        raise InvalidInput("say why the promotion is rejected", field="comment")
    try:
        if decision == "approve":
            done = await run_in_threadpool(approvals_.approve, request_id, comment=comment)
        else:
            done = await run_in_threadpool(approvals_.reject, request_id, comment=comment or "")
    except ModelcycleError as exc:
        status = http_status_for(exc)
        return await run_in_threadpool(_request_page, request, request_id, str(exc), status)
    return redirect(f"/approvals/{done.id}")
