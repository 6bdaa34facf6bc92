"""HTTP plumbing of the scoring server: bodies, errors, request ids, query flags."""

from __future__ import annotations

import os
import re
import time
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
    "new_request_id",
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
    return new_request_id()


def new_request_id() -> str:
    """A UUIDv7 (RFC 9562) in 32 hex digits: milliseconds since the epoch, then 74 random bits.

    Ids made later sort later, so the prediction log's ``request_id`` index grows at its right
    edge. With random ids (uuid4) every logged row lands on a random leaf page of that index:
    on a log of 1.5 million rows (SQLite, 1.2 GB) a flush then wrote about one page per row,
    and its insert cost 29-33 µs of CPU per row instead of 16-18 (68 vs 18 µs wall).
    """
    ms = time.time_ns() // 1_000_000
    rand = int.from_bytes(os.urandom(10), "big")  # 80 bits, of which 74 are used
    value = (
        (ms & 0xFFFF_FFFF_FFFF) << 80
        | 0x7 << 76  # version 7
        | (rand >> 68) << 64  # 12 random bits
        | 0b10 << 62  # the RFC 4122/9562 variant
        | (rand & 0x3FFF_FFFF_FFFF_FFFF)  # 62 random bits
    )
    return f"{value:032x}"


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
