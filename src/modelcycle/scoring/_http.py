"""HTTP plumbing of the scoring server: bodies, errors, request ids, query flags."""

from __future__ import annotations

import re
import uuid
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from modelcycle.errors import InvalidInput, ModelcycleError
from modelcycle.registry import SignatureMismatch
from modelcycle.scoring.protocols._tabular import RequestInvalid, malformed_json

__all__ = [
    "MLFLOW_CODES",
    "HttpProblem",
    "content_type",
    "error_body",
    "flag",
    "json_response",
    "parse_json",
    "problems_of",
    "request_id",
    "valid_rid",
]

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:@/+=-]{1,128}$")
_TRUE = {"1", "true", "yes", "on"}
# MLflow's error codes (databricks.proto) by status; any other 4xx is BAD_REQUEST, as MLflow's
# scoring server answers a body it cannot use, and only a 5xx is INTERNAL_ERROR.
MLFLOW_CODES = {401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "RESOURCE_DOES_NOT_EXIST",
                 429: "REQUEST_LIMIT_EXCEEDED", 503: "TEMPORARILY_UNAVAILABLE"}  # fmt: skip


class HttpProblem(Exception):
    """A transport-level refusal (size, content type, JSON syntax) with its status."""

    def __init__(self, status: int, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.status = status
        self.field = field
        self.problem = problem


def parse_json(body: bytes) -> Any:
    if not body:
        raise HttpProblem(400, "body", "empty; expected a JSON object")
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise HttpProblem(400, "body", malformed_json(body, exc)) from None


def content_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";", 1)[0].strip().lower()


def flag(request: Request) -> bool:
    value = request.query_params.get("proba") or request.query_params.get("probabilities")
    return value is not None and value.lower() in _TRUE


def request_id(request: Request) -> str:
    return valid_rid(request.headers.get("x-request-id"))


def valid_rid(given: str | None) -> str:
    if given and _REQUEST_ID.match(given):
        return given
    return uuid.uuid4().hex


def problems_of(exc: ModelcycleError) -> list[dict[str, str]]:
    if isinstance(exc, RequestInvalid):
        return exc.problems
    if isinstance(exc, SignatureMismatch):
        return [{"field": p.column, "problem": p.detail, "kind": p.kind} for p in exc.problems]
    if isinstance(exc, InvalidInput) and exc.field:
        return [{"field": exc.field, "problem": exc.message.removeprefix(f"{exc.field}: ")}]
    return []


def error_body(message: str, problems: list[dict[str, str]]) -> dict[str, Any]:
    return {"error": message, "problems": problems}


def json_response(body: Any, rid: str, *, status: int = 200) -> Response:
    return Response(
        orjson.dumps(body),
        status_code=status,
        media_type="application/json",
        headers={"X-Request-ID": rid},
    )
