"""The audit trail (``modelcycle audit ...``) and API tokens (``modelcycle tokens ...``)."""

from __future__ import annotations

import getpass
import os
import tempfile
from typing import Annotated

from fastapi import APIRouter, BackgroundTasks, Path, Query, Request, Response
from fastapi.responses import FileResponse
from pydantic import BaseModel, ConfigDict, Field

from modelcycle.audit import parse_since
from modelcycle.errors import Conflict
from modelcycle.interfaces.http.auth import Admin, Reader
from modelcycle.interfaces.http.fast import json_page, on_loop_if
from modelcycle.interfaces.http.paging import Cursor, Limit, Page, decode_cursor, page_of
from modelcycle.interfaces.http.schemas import (
    AuditEventOut,
    ChainProblemOut,
    TokenCreated,
    TokenOut,
    VerifyOut,
    WhyOut,
)
from modelcycle.store import AuditFilter
from modelcycle.store.causes import causal_chain
from modelcycle.store.tokens import TokenStore

__all__ = ["router"]

router = APIRouter()


@router.get("/audit/events", tags=["audit"], response_model=Page[AuditEventOut])
async def audit_events(
    caller: Reader,
    request: Request,
    subject: Annotated[str | None, Query(max_length=300)] = None,
    action: Annotated[str | None, Query(max_length=100)] = None,
    since: Annotated[str | None, Query(max_length=40, description="30m, 2h, 7d or ISO")] = None,
    limit: Limit = 100,
    cursor: Cursor = None,
) -> Response:
    """Audit events, oldest first, with the filters of `audit log`."""
    after = decode_cursor(cursor, arity=1)
    where = AuditFilter(
        subject=subject,
        action=action,
        since=parse_since(since, field="since") if since is not None else None,
        limit=limit + 1,
        after_seq=int(after[0]) if after is not None else 0,
    )

    def page() -> Response:
        items = [e.as_dict() for e in caller.ws.audit.events(where)]
        return json_page(request, items, limit, lambda e: (e["seq"],))

    # Unfiltered, a page is a range of the primary key; a filter may scan many events.
    return await on_loop_if(subject is None and action is None and since is None, page)


@router.get("/audit/verify", tags=["audit"])
def audit_verify(caller: Reader) -> VerifyOut:
    """Recompute the hash chain (as `audit verify`)."""
    report = caller.ws.audit.verify()
    return VerifyOut(
        ok=report.ok,
        events=report.events,
        head_seq=report.head.seq,
        head_hash=report.head.hash,
        problem=str(report.problem) if report.problem is not None else None,
        problems=[ChainProblemOut.model_validate(p.as_dict()) for p in report.unacknowledged],
        acknowledged=[ChainProblemOut.model_validate(p.as_dict()) for p in report.acknowledged],
    )


class AcknowledgeRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    note: str = Field(
        min_length=1, max_length=10_000, description="What happened and what was done about it."
    )


@router.post("/audit/acknowledge", tags=["audit"], status_code=201)
def audit_acknowledge(caller: Admin, body: AcknowledgeRequest) -> AuditEventOut:
    """Acknowledge the breaks verification finds now (as `audit acknowledge`): an
    ``audit.acknowledged`` event lists them, the compromised mark is lifted and writes resume.
    409 when there is nothing to acknowledge."""
    # The actor is the token's name; os_user records the account the server runs as, which
    # is what the CLI records for whoever typed the command.
    event = caller.ws.audit.acknowledge(body.note, os_user=getpass.getuser())
    return AuditEventOut.of(event)


@router.get(
    "/audit/export",
    tags=["audit"],
    response_class=FileResponse,
    responses={200: {"content": {"application/x-ndjson": {}}}},
)
def audit_export(caller: Reader, background: BackgroundTasks) -> FileResponse:
    """Every event and the head as JSON lines: the file `audit export` writes."""
    fd, name = tempfile.mkstemp(prefix="mc-audit-", suffix=".jsonl")
    os.close(fd)
    try:
        caller.ws.audit.export(name)
    except BaseException:
        os.unlink(name)
        raise
    background.add_task(os.unlink, name)
    return FileResponse(name, media_type="application/x-ndjson", filename="audit.jsonl")


@router.get("/audit/why", tags=["audit"])
def audit_why(
    caller: Reader,
    subject: Annotated[str, Query(min_length=1, max_length=500, description="model:credit/2")],
) -> WhyOut:
    """The causal chain of a subject, newest first: its latest event, the job that wrote it,
    the event that queued the job, and so on back to the first cause."""
    chain = causal_chain(caller.ws.metadata, subject)
    return WhyOut(subject=subject, events=[AuditEventOut.of(e) for e in chain])


# -- tokens -----------------------------------------------------------------------------------


class TokenRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=100)
    role: str = Field(description="reader, scorer, operator or admin")


@router.get("/tokens", tags=["tokens"])
def list_tokens(
    caller: Admin,
    request: Request,
    response: Response,
    active: bool = False,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> Page[TokenOut]:
    """Tokens, oldest first, never their secrets (as `tokens list`)."""
    tokens = TokenStore(caller.ws.metadata, caller.ws.actor).list(include_revoked=not active)
    items = [TokenOut.of(t) for t in tokens]
    return page_of(request, response, items, limit, cursor,
                   lambda t: (t.created_at, t.token_id))  # fmt: skip


@router.post("/tokens", tags=["tokens"], status_code=201)
def create_token(caller: Admin, request: Request, body: TokenRequest) -> TokenCreated:
    """A new token; its text is in this answer only (the server keeps its hash)."""
    token, secret = TokenStore(caller.ws.metadata, caller.ws.actor).create(body.name, body.role)
    request.app.state.gate.forget()
    return TokenCreated(**TokenOut.of(token).model_dump(), token=secret)


@router.delete("/tokens/{token_id}", tags=["tokens"])
def revoke_token(
    caller: Admin, request: Request, token_id: Annotated[str, Path(max_length=64)]
) -> TokenOut:
    """Revoke a token (as `tokens revoke`); this server refuses it from now on."""
    if token_id == caller.token_id:
        # Locking oneself out by accident is easy with a fuzzer or a script; the CLI can do it.
        raise Conflict("a token cannot revoke itself; use another admin token or the CLI")
    token = TokenStore(caller.ws.metadata, caller.ws.actor).revoke(token_id)
    request.app.state.gate.forget()
    return TokenOut.of(token)
