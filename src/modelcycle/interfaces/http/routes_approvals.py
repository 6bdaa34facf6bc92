"""Promotion requests (``modelcycle approvals ...``): list, show, approve, reject, cancel.

The identity that approves is the token's name (``Caller.name``): the workspace view each
request gets acts as it, so separation of duties compares token names with the requester and
the version's author. Deciding needs an operator (or admin) token; an admin may also cancel
someone else's request. ``PUT /models/{name}/aliases/{alias}`` answers 202 with the request
when a policy needs approvals (routes_models.py calls :func:`accepted`).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from modelcycle.interfaces.http.auth import Operator, Reader
from modelcycle.interfaces.http.paging import Cursor, Limit, Page, page_of
from modelcycle.registry import PromotionRequest, request_origin
from modelcycle.statuses import ApprovalState

__all__ = ["ApprovalOut", "accepted", "from_http", "router"]

router = APIRouter(tags=["approvals"])

RequestId = Annotated[
    str, Path(min_length=4, max_length=32, pattern="^[0-9a-f]+$", description="Id or prefix")
]
_LIST_CAP = 5000


class ApprovalGiven(BaseModel):
    approver: str
    at: str
    comment: str | None


class ApprovalOut(BaseModel):
    """A promotion request and where it stands."""

    id: str
    model: str
    name: str
    version: int
    alias: str
    from_: int | None = Field(alias="from", serialization_alias="from")
    state: ApprovalState
    approvals_needed: int
    approvals: list[ApprovalGiven]
    policy: dict[str, Any]
    gate: dict[str, Any] | None = Field(description="The gate's figures; null when not run")
    forced: bool
    reason: str | None
    origin: str = Field(description="cli, http, sdk or rule:NAME")
    requested_by: str
    requested_at: str
    expires_at: str | None
    decided_by: str | None
    decided_at: str | None
    comment: str | None

    model_config = ConfigDict(populate_by_name=True)


class Decision(BaseModel):
    """An approval's optional comment."""

    model_config = ConfigDict(extra="forbid")

    comment: str | None = Field(None, max_length=2000)


class Rejection(BaseModel):
    """Why the request is rejected (required)."""

    model_config = ConfigDict(extra="forbid")

    comment: str = Field(min_length=1, max_length=2000)


def _out(req: PromotionRequest) -> ApprovalOut:
    return ApprovalOut.model_validate(req.as_dict())


@contextmanager
def from_http() -> Iterator[None]:
    """Promotion requests made within are recorded as coming from the API."""
    with request_origin("http"):
        yield


def accepted(req: PromotionRequest) -> JSONResponse:
    """202 with the request: the alias waits for approvals (its URL in ``Location``)."""
    body = _out(req).model_dump(mode="json", by_alias=True)
    return JSONResponse(body, status_code=202, headers={"Location": f"/api/v1/approvals/{req.id}"})


@router.get("/approvals", response_model=Page[ApprovalOut], response_model_by_alias=True)
def list_approvals(
    caller: Reader,
    request: Request,
    response: Response,
    pending: Annotated[bool, Query(description="Only requests still waiting.")] = False,
    model: Annotated[str | None, Query(max_length=200, description="Only this model.")] = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> Page[ApprovalOut]:
    """Promotion requests, newest first (as `approvals list`)."""
    items = [
        _out(r) for r in caller.ws.approvals.list(pending=pending, name=model, limit=_LIST_CAP)
    ]
    return page_of(
        request, response, items, limit, cursor, lambda a: (a.requested_at, a.id), descending=True
    )


@router.get("/approvals/{request_id}", response_model_by_alias=True)
def get_approval(caller: Reader, request_id: RequestId) -> ApprovalOut:
    """One request with its approvals and gate figures (as `approvals show`)."""
    return _out(caller.ws.approvals.get(request_id))


@router.post("/approvals/{request_id}/approve", response_model_by_alias=True)
def approve(caller: Operator, request_id: RequestId, body: Decision | None = None) -> ApprovalOut:
    """Approve as the token's name; the approval completing the count moves the alias (403 when
    the policy refuses this identity, 409 when the request is no longer pending)."""
    comment = body.comment if body else None
    return _out(caller.ws.approvals.approve(request_id, comment=comment))


@router.post("/approvals/{request_id}/reject", response_model_by_alias=True)
def reject(caller: Operator, request_id: RequestId, body: Rejection) -> ApprovalOut:
    """Reject with a comment: the request closes and the alias does not move."""
    return _out(caller.ws.approvals.reject(request_id, comment=body.comment))


@router.post("/approvals/{request_id}/cancel", response_model_by_alias=True)
def cancel(caller: Operator, request_id: RequestId, body: Decision | None = None) -> ApprovalOut:
    """Withdraw the request (its requester, an approver, or an admin token)."""
    comment = body.comment if body else None
    return _out(
        caller.ws.approvals.cancel(request_id, comment=comment, admin=caller.role == "admin")
    )
