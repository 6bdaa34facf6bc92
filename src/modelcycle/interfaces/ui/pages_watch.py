"""Monitoring (drift over checks as a heatmap, a check's page), automations (rules, jobs with
retry/cancel for operators) and the audit trail (timeline with filters, verify, export, why)."""

from __future__ import annotations

import os
import tempfile

from fastapi import APIRouter, BackgroundTasks, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse
from starlette.concurrency import run_in_threadpool

from modelcycle.errors import InvalidInput, ModelcycleError, NotFound
from modelcycle.interfaces.ui.web import (
    ConsoleRoute,
    check_csrf,
    paginate,
    redirect,
    render,
    viewer,
)
from modelcycle.store.audit_trail import AuditFilter
from modelcycle.store.causes import causal_chain

__all__ = ["router"]

router = APIRouter(route_class=ConsoleRoute)


@router.get("/monitoring")
def monitoring(request: Request) -> HTMLResponse:
    who = viewer(request)
    model = request.query_params.get("model") or None
    checks = who.caller.ws.monitoring.history(model, limit=200)
    columns = sorted({c for h in checks for c in h.drifted_columns})
    models = sorted({h.model_name for h in checks if h.model_name})
    return render(
        request, "monitoring.html", who, checks=list(reversed(checks)), columns=columns,
        models=models, model=model,
    )  # fmt: skip


@router.get("/monitoring/checks/{check_id}")
def check(request: Request, check_id: int) -> HTMLResponse:
    who = viewer(request)
    found = [h for h in who.caller.ws.monitoring.history(limit=100_000) if h.id == check_id]
    if not found:
        raise NotFound(f"no drift check {check_id}")
    return render(request, "check.html", who, c=found[0])


@router.get("/jobs")
def jobs(request: Request) -> HTMLResponse:
    who = viewer(request)
    ws = who.caller.ws
    state = request.query_params.get("state") or None
    try:
        rules = ws.automations.rules
        rules_error = None
    except ModelcycleError as exc:
        rules, rules_error = [], str(exc)
    listed = ws.automations.queue.list(state=state, limit=500)
    return render(
        request, "jobs.html", who, page=paginate(request, listed), state=state, rules=rules,
        rules_error=rules_error,
    )  # fmt: skip


@router.get("/jobs/{job_id}")
def job(request: Request, job_id: str) -> HTMLResponse:
    who = viewer(request)
    ws = who.caller.ws
    j = ws.automations.queue.get(job_id)
    try:
        chain = causal_chain(ws.metadata, f"job:{j.id}")
    except NotFound:
        chain = []
    return render(request, "job.html", who, j=j, chain=chain)


@router.post("/jobs/{job_id}/{action}")
async def job_action(request: Request, job_id: str, action: str) -> RedirectResponse:
    who = viewer(request, "operator")
    await check_csrf(request, who)
    queue = who.caller.ws.automations.queue
    if action == "retry":
        await run_in_threadpool(queue.retry, job_id)
    elif action == "cancel":
        await run_in_threadpool(queue.cancel, job_id)
    else:
        raise InvalidInput("expected retry or cancel", field="action")
    return redirect(f"/jobs/{job_id}")


@router.get("/audit")
def audit(request: Request) -> HTMLResponse:
    who = viewer(request)
    q = request.query_params
    subject = q.get("subject") or None
    action = q.get("action") or None
    since = q.get("since") or None
    actor = (q.get("actor") or "").strip()
    events = who.caller.ws.audit.events(
        AuditFilter(subject=subject, action=action, since=since, limit=5000)
    )
    if actor:
        events = [e for e in events if e.actor == actor]
    page = paginate(request, list(reversed(events)), per_page=50)
    return render(
        request, "audit.html", who, page=page, events=page.items, subject=subject or "",
        action=action or "", since=since or "", actor=actor, verified=None,
    )  # fmt: skip


@router.post("/audit/verify")
async def verify(request: Request) -> HTMLResponse:
    who = viewer(request)
    await check_csrf(request, who)
    report = await run_in_threadpool(who.caller.ws.audit.verify)
    return await run_in_threadpool(render, request, "verify.html", who, report=report)


@router.get("/audit/export")
def export(request: Request, background: BackgroundTasks) -> FileResponse:
    who = viewer(request)
    fd, name = tempfile.mkstemp(prefix="mc-audit-", suffix=".jsonl")
    os.close(fd)
    who.caller.ws.audit.export(name)
    background.add_task(os.unlink, name)
    return FileResponse(name, media_type="application/x-ndjson", filename="audit.jsonl")


@router.get("/audit/why")
def why(request: Request, subject: str = "") -> HTMLResponse:
    who = viewer(request)
    chain = causal_chain(who.caller.ws.metadata, subject) if subject else []
    return render(request, "why.html", who, subject=subject, chain=chain)


@router.get("/audit/events/{seq}")
def event(request: Request, seq: int) -> HTMLResponse:
    who = viewer(request)
    found = who.caller.ws.audit.events(AuditFilter(after_seq=seq - 1, limit=1))
    if not found or found[0].seq != seq:
        raise NotFound(f"no audit event {seq}")
    return render(request, "event.html", who, e=found[0])
