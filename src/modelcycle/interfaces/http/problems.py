"""RFC 9457 problem details: every error the API answers is ``application/problem+json``.

The status comes from :data:`modelcycle.errors.HTTP_STATUS` (the one table the CLI's exit codes
mirror); ``problems`` lists each field at fault, so a client can point at it. Request-validation
errors of FastAPI (wrong type, missing or unknown field) get the same shape, and anything
unexpected answers a bare 500 without internals (the traceback goes to the server's log).
"""

from __future__ import annotations

import logging
import re
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict
from starlette.exceptions import HTTPException as StarletteHTTPException

from modelcycle.errors import HTTP_STATUS, InvalidInput, ModelcycleError, http_status_for
from modelcycle.registry import PromotionRefused, SignatureMismatch

__all__ = [
    "PROBLEM_JSON",
    "ContentTooLarge",
    "FieldProblem",
    "Problem",
    "install_problem_handlers",
    "problem",
]

PROBLEM_JSON = "application/problem+json"
_log = logging.getLogger("modelcycle.http")

_TITLES = {
    400: "Invalid input",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    409: "Conflict",
    412: "Precondition failed",
    413: "Content too large",
    415: "Unsupported media type",
    422: "Invalid input",
    500: "Internal error",
    502: "Operation failed",
    503: "Not ready",
}


class ContentTooLarge(InvalidInput):
    """A body over the server's limit: an InvalidInput (CLI exit 2) answered 413, not 400."""

    status = 413

    def __init__(self, limit: int, *, field: str = "body") -> None:
        super().__init__(f"is larger than this server's limit of {limit} bytes", field=field)


class FieldProblem(BaseModel):
    """One field at fault: where it is (``body.version``, ``query.limit`` ...) and what is wrong."""

    field: str
    detail: str


class Problem(BaseModel):
    """An RFC 9457 problem; extra members (e.g. a refused promotion's scores) may follow."""

    model_config = ConfigDict(extra="allow")

    type: str
    title: str
    status: int
    detail: str
    problems: list[FieldProblem] = []


def _type_uri(kind: str) -> str:
    return "urn:modelcycle:problem:" + re.sub(r"(?<!^)(?=[A-Z])", "-", kind).lower()


def problem(
    status: int,
    detail: str,
    *,
    kind: str | None = None,
    problems: list[FieldProblem] | None = None,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    """A problem+json response."""
    body = Problem(
        type=_type_uri(kind) if kind else "about:blank",
        title=_TITLES.get(status, "Error"),
        status=status,
        detail=detail,
        problems=problems or [],
        **extra,
    )
    return JSONResponse(
        body.model_dump(), status_code=status, media_type=PROBLEM_JSON, headers=headers
    )


def _kind_of(exc: ModelcycleError) -> str:
    for cls in type(exc).__mro__:
        if cls in HTTP_STATUS:
            return cls.__name__
    return "ModelcycleError"


def _from_modelcycle(exc: ModelcycleError) -> JSONResponse:
    status = ContentTooLarge.status if isinstance(exc, ContentTooLarge) else http_status_for(exc)
    problems: list[FieldProblem] = []
    extra: dict[str, Any] = {}
    if isinstance(exc, SignatureMismatch):
        problems = [FieldProblem(field=p.column, detail=p.detail) for p in exc.problems]
    elif isinstance(exc, InvalidInput) and exc.field:
        problems = [FieldProblem(field=exc.field, detail=exc.message)]
    if isinstance(exc, PromotionRefused):
        # Both figures travel with the refusal, so a reviewer sees why without a second call.
        extra = {
            "metric": exc.metric,
            "candidate_score": exc.candidate,
            "champion_score": exc.champion,
            "dataset": exc.dataset,
            "rows": exc.rows,
        }
    if status >= 500:
        _log.error("%s: %s", type(exc).__name__, exc)
    return problem(status, exc.message, kind=_kind_of(exc), problems=problems, **extra)


def _loc(loc: tuple[Any, ...] | list[Any]) -> str:
    return ".".join(str(part) for part in loc)


def install_problem_handlers(app: FastAPI) -> None:
    """Answer every error as problem JSON (the app stays up, whatever a client sends)."""

    @app.exception_handler(ModelcycleError)
    async def _modelcycle(request: Request, exc: ModelcycleError) -> JSONResponse:
        return _from_modelcycle(exc)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = [
            FieldProblem(field=_loc(err.get("loc", ())), detail=str(err.get("msg", "invalid")))
            for err in exc.errors()
        ]
        fields = ", ".join(p.field for p in problems)
        # 422 as FastAPI documents for every operation; the facades' own InvalidInput is 400.
        return problem(422, f"the request is not valid: {fields}", kind="InvalidInput",
                       problems=problems)  # fmt: skip

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        headers = dict(exc.headers) if exc.headers else None
        return problem(exc.status_code, str(exc.detail), headers=headers)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        _log.exception("unexpected error on %s %s", request.method, request.url.path)
        return problem(500, "the server failed on this request; see its log", kind="Internal")
