"""Monitoring (drift over checks as a heatmap, a check's page), automations (rules, jobs with
retry/cancel for operators) and the audit trail (timeline with filters, verify, export, why)."""

from __future__ import annotations

import os
import tempfile
from dataclasses import replace
from datetime import timedelta
from typing import Any

from fastapi import APIRouter, BackgroundTasks, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse
from starlette.concurrency import run_in_threadpool

from modelcycle.errors import InvalidInput, ModelcycleError, NotFound
from modelcycle.interfaces.ui.performance import performance_chart, performance_series
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
from modelcycle.interfaces.ui.why_graph import why_graph
from modelcycle.monitoring import ColumnDrift
from modelcycle.monitoring.schedule import monitor_entries
from modelcycle.monitoring.stored import stored_check, stored_columns, stored_report_html
from modelcycle.store.audit_trail import AuditFilter
from modelcycle.store.causes import causal_chain

__all__ = ["router"]

router = APIRouter(route_class=ConsoleRoute)


_HEATMAP_CHECKS = 200
_HEATMAP_COLUMNS = 40


def _figure(col: ColumnDrift) -> str:
    """The cell's short figure: the verdict's own number against its threshold."""
    if col.status != "ok":
        return "no data"
    if col.robust is not None:
        return f"effect {col.robust['effect_interval'][0]:.2g} / {col.robust['effect_threshold']:g}"
    if col.p_value is not None:
        return f"p {col.p_value:.2g} / {col.threshold:g}"
    return f"{col.statistic:.3g} / {col.threshold:g}" if col.statistic is not None else ""


@router.get("/monitoring")
def monitoring(request: Request) -> HTMLResponse:
    """Drift over checks: rows are checks, columns the data's columns (drifted ones first),
    each cell the verdict in words with its figure against the threshold (hover: the test)."""
    who = viewer(request)
    model = request.query_params.get("model") or None
    ws = who.caller.ws
    checks = list(reversed(ws.monitoring.history(model, limit=_HEATMAP_CHECKS)))
    per_check = stored_columns(ws.metadata, [h.id for h in checks])
    drifts: dict[str, int] = {}
    for cols in per_check.values():
        for col in cols:
            drifts[col.name] = drifts.get(col.name, 0) + int(col.drifted)
    columns = sorted(drifts, key=lambda n: (-drifts[n], n))[:_HEATMAP_COLUMNS]
    cells = {
        check_id: {
            col.name: {"drifted": col.drifted, "figure": _figure(col), "title": col.explain()}
            for col in cols
        }
        for check_id, cols in per_check.items()
    }
    models = sorted({mv.name for mv in ws.registry.list()})
    perf = _performance(ws, model or (models[0] if models else None))
    return render(
        request, "monitoring.html", who, checks=checks, columns=columns, cells=cells,
        models=models, model=model, more_columns=max(0, len(drifts) - len(columns)), perf=perf,
    )  # fmt: skip


def _performance(ws: Any, name: str | None) -> dict[str, Any] | None:
    """The model's champion (else its newest version) over the last 24 hours."""
    if name is None:
        return None
    versions = ws.registry.list(name)
    if not versions:
        return None
    chosen = next((v for v in versions if "champion" in v.aliases), versions[-1])
    series = performance_series(ws, chosen.ref, hours=24)
    chart = performance_chart(series) if series is not None else None
    return {"name": name, "ref": chosen.ref, "s": series, "chart": chart}


@router.get("/monitoring/checks/{check_id}")
def check(request: Request, check_id: int) -> HTMLResponse:
    who = viewer(request)
    c = stored_check(who.caller.ws.metadata, check_id)
    columns = sorted(c.get("columns") or [], key=lambda col: (not col.get("drifted"), col["name"]))
    return render(request, "check.html", who, c=c, columns=columns)


# The report runs its own scripts (Plotly, inline): in a sandbox without same-origin it gets
# an opaque origin, so it cannot read the console's pages or send the SameSite cookie along.
_REPORT_CSP = (
    "sandbox allow-scripts; default-src 'none'; script-src 'unsafe-inline'; "
    "style-src 'unsafe-inline'; img-src data:; font-src data:; frame-ancestors 'self'"
)


@router.get("/monitoring/checks/{check_id}/report")
def check_report(request: Request, check_id: int) -> HTMLResponse:
    """The check's HTML report (as the API's /monitoring/checks/ID/report), sandboxed."""
    who = viewer(request)
    ws = who.caller.ws
    html = stored_report_html(ws.metadata, ws.datasets, check_id)
    return HTMLResponse(html, headers={"Content-Security-Policy": _REPORT_CSP})


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
    try:
        scheduler = ws.automations.scheduler()
        schedules, sources = scheduler.schedules, scheduler.sources
        monitors = monitor_entries(ws.settings.config)
        schedules_error = None
    except ModelcycleError as exc:
        schedules, sources, monitors, schedules_error = [], [], [], str(exc)
    listed = ws.automations.queue.list(state=state, limit=500)
    return render(
        request, "jobs.html", who, page=paginate(request, listed), state=state, rules=rules,
        rules_error=rules_error, schedules=schedules, sources=sources, monitors=monitors,
        schedules_error=schedules_error, every=_every,
    )  # fmt: skip


def _every(span: timedelta) -> str:
    """``1d``, ``6h``, ``15m`` or ``30s``: how modelcycle.toml writes a period."""
    seconds = int(span.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


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
    graph = why_graph(who.caller.ws, subject) if subject else None
    chained = subject
    if graph is not None and not who.caller.ws.audit.events(AuditFilter(subject=subject, limit=1)):
        chained = graph.version_subject  # an alias has no events of its own; its version has
    chain = causal_chain(who.caller.ws.metadata, chained) if chained else []
    return render(
        request, "why.html", who, subject=subject, chain=chain, graph=graph, chained=chained
    )


@router.get("/audit/events/{seq}")
def event(request: Request, seq: int) -> HTMLResponse:
    who = viewer(request)
    found = who.caller.ws.audit.events(AuditFilter(after_seq=seq - 1, limit=1))
    if not found or found[0].seq != seq:
        raise NotFound(f"no audit event {seq}")
    return render(request, "event.html", who, e=found[0])
