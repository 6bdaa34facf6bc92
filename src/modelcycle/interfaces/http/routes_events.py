"""``GET /events``: Server-Sent Events of the audit trail (job state changes included).

Every audit event is sent in sequence order with ``id:`` = its sequence number, ``event:``
``job`` for the job queue's state changes (``job.*``) and ``audit`` for the rest, and the event
as JSON. A client that reconnects with ``Last-Event-ID`` (or ``?after=``) gets every event after
that number: nothing is lost between connections, because the audit log is the source.

The stream polls the database every ``events_poll_seconds`` (at most ``_BATCH`` events a
read), each read in a worker thread, so the event loop never waits on the database.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Annotated

from anyio import to_thread
from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import StreamingResponse

from modelcycle.entities import AuditEvent
from modelcycle.errors import InvalidInput
from modelcycle.interfaces.http.auth import Reader
from modelcycle.store import AuditFilter

__all__ = ["router"]

router = APIRouter(tags=["events"])

_BATCH = 500
_HEARTBEAT_SECONDS = 15.0


def _frame(ev: AuditEvent) -> str:
    kind = "job" if ev.action.startswith("job.") else "audit"
    data = json.dumps(ev.as_dict(), separators=(",", ":"), sort_keys=True)
    return f"id: {ev.seq}\nevent: {kind}\ndata: {data}\n\n"


def _start(last_event_id: str | None, after: int | None) -> int:
    if after is not None:
        return after
    if last_event_id is None or last_event_id.strip() == "":
        return 0
    try:
        seq = int(last_event_id.strip())
    except ValueError:
        raise InvalidInput(
            "must be an event id (a sequence number)", field="Last-Event-ID"
        ) from None
    if seq < 0:
        raise InvalidInput("must be >= 0", field="Last-Event-ID")
    return seq


@router.get(
    "/events",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}, "description": "An SSE stream"}},
)
async def events(
    caller: Reader,
    request: Request,
    last_event_id: Annotated[str | None, Header(alias="Last-Event-ID", max_length=20)] = None,
    after: Annotated[int | None, Query(ge=0, description="Start after this sequence")] = None,
    max_seconds: Annotated[
        float | None, Query(gt=0, le=86400, description="Close the stream after this long")
    ] = None,
) -> StreamingResponse:
    """Audit events and job state changes as they happen, resumable with Last-Event-ID."""
    seq = _start(last_event_id, after)
    poll: float = request.app.state.settings.events_poll_seconds
    audit = caller.ws.audit

    def read(after_seq: int) -> list[AuditEvent]:
        return audit.events(AuditFilter(after_seq=after_seq, limit=_BATCH))

    async def stream() -> AsyncIterator[str]:
        nonlocal seq
        deadline = None if max_seconds is None else time.monotonic() + max_seconds
        quiet_since = time.monotonic()
        yield "retry: 1000\n\n"
        while deadline is None or time.monotonic() < deadline:
            batch = await to_thread.run_sync(read, seq)
            for ev in batch:
                yield _frame(ev)
                seq = ev.seq
            if batch:
                quiet_since = time.monotonic()
            elif time.monotonic() - quiet_since > _HEARTBEAT_SECONDS:
                yield ": keep-alive\n\n"
                quiet_since = time.monotonic()
            if len(batch) < _BATCH:
                if await request.is_disconnected():
                    return
                await asyncio.sleep(poll)

    return StreamingResponse(
        stream(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )
