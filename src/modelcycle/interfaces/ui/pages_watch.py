"""Monitoring (drift over checks as a heatmap, a check's page), automations (rules, jobs with
retry/cancel for operators) and the audit trail (timeline with filters, verify, export, why)."""

from __future__ import annotations

import os
import tempfile
from dataclasses import replace

from fastapi import APIRouter, BackgroundTasks, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse
from starlette.concurrency import run_in_threadpool

from modelcycle.errors import InvalidInput, ModelcycleError, NotFound
from modelcycle.interfaces.ui.web import (
    ConsoleRoute,
    Page,
    check_csrf,
    link_with,
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


_EVENTS_PER_PAGE = 50


def _seq(value: str | None, name: str) -> int | None:
    if not value:
        return None
    try:
        return int(value)
    except ValueError:
        raise InvalidInput("expected an event number", field=name) from None


@router.get("/audit")
def audit(request: Request) -> HTMLResponse:
    """The timeline, newest first, 50 a page. Pages are cut by the database at an event
    number (``before=SEQ`` for older, ``after=SEQ`` for newer), so a filter or a page deep
    in 100,000 events costs one indexed query."""
    who = viewer(request)
    q = request.query_params
    subject = q.get("subject") or None
    action = q.get("action") or None
    since = q.get("since") or None
    actor = (q.get("actor") or "").strip() or None
    before, after = _seq(q.get("before"), "before"), _seq(q.get("after"), "after")
    n = _EVENTS_PER_PAGE
    where = AuditFilter(subject=subject, action=action, since=since, actor=actor, limit=n + 1)
    trail = who.caller.ws.audit
    if after is not None:
        # The n events just after ``after`` (oldest first from the database), shown newest first.
        found = trail.events(replace(where, after_seq=after))
        newer, events = len(found) > n, list(reversed(found[:n]))
        older = bool(events)
    else:
        found = list(reversed(trail.events(replace(where, before_seq=before))))
        older, events = len(found) > n, found[:n]
        newer = before is not None
    page = Page(
        items=events, number=0, pages=0, total=-1,
        prev_url=link_with(request, after=str(events[0].seq), before=None)
        if newer and events else None,
        next_url=link_with(request, before=str(events[-1].seq), after=None)
        if older and events else None,
    )  # fmt: skip
    return render(
        request, "audit.html", who, page=page, events=events, subject=subject or "",
        action=action or "", since=since or "", actor=actor or "", verified=None,
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
