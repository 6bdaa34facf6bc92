"""``create_app(workspace)``: the management API under ``/api/v1`` (FastAPI).

The app is a thin interface over the :class:`~modelcycle.workspace.Workspace` facades, as the
CLI is: each route parses its input, calls the facade function the matching CLI command calls,
and shapes the answer. Handlers of blocking facade calls are plain ``def`` (run in the thread
pool); only the health route and the event stream are ``async``. CORS stays off (no middleware
adds it): browsers on other origins cannot call the API.
"""

from __future__ import annotations

import gc
import sys
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from modelcycle._version import __version__
from modelcycle.interfaces.http.auth import TokenGate
from modelcycle.interfaces.http.fast import StaleSweep
from modelcycle.interfaces.http.idempotency import IdempotencyCache
from modelcycle.interfaces.http.problems import (
    ContentTooLarge,
    Problem,
    install_problem_handlers,
    problem,
)
from modelcycle.interfaces.http.schemas import Health
from modelcycle.store.idempotency import IdempotencyRecords
from modelcycle.workspace import Workspace

__all__ = ["PREFIX", "ApiSettings", "app_from_environment", "create_app", "prepare_server_process"]

PREFIX = "/api/v1"

_ERRORS: dict[int | str, dict[str, object]] = {
    status: {"model": Problem, "description": title}
    for status, title in (
        (400, "Invalid input (names the field)"),
        (401, "No token, or an unknown or revoked one"),
        (403, "The token's role is too low (names the role needed)"),
        (404, "Not found"),
        (409, "Conflicts with the current state"),
        (413, "The body is larger than the server's limit"),
        (500, "The server failed (details in its log, none in the answer)"),
    )
}


@dataclass(frozen=True, slots=True)
class ApiSettings:
    """Limits of one app: the largest model upload, how often the event stream polls, the
    tokens are re-read, and run listings look for runs whose process died."""

    max_upload_bytes: int = 512 * 1024 * 1024
    events_poll_seconds: float = 0.25
    token_refresh_seconds: float = 2.0
    stale_sweep_seconds: float = 5.0


def create_app(workspace: Workspace, settings: ApiSettings | None = None) -> FastAPI:
    """The management API app over ``workspace`` (which the caller keeps and closes)."""
    from modelcycle.interfaces.http import (
        routes_approvals,
        routes_audit,
        routes_events,
        routes_evidence,
        routes_models,
        routes_ops,
        routes_runs,
    )

    settings = settings or ApiSettings()
    app = FastAPI(
        title="modelcycle management API",
        version=__version__,
        openapi_url=f"{PREFIX}/openapi.json",
        docs_url=f"{PREFIX}/docs",
        redoc_url=None,
        responses=_ERRORS,
    )
    app.state.workspace = workspace
    app.state.settings = settings
    app.state.gate = TokenGate(workspace, refresh_seconds=settings.token_refresh_seconds)
    app.state.idempotency = IdempotencyCache(IdempotencyRecords(workspace.metadata))
    app.state.stale_sweep = StaleSweep(settings.stale_sweep_seconds)
    install_problem_handlers(app)
    app.add_middleware(BodyLimit, limit=settings.max_upload_bytes)

    @app.get(f"{PREFIX}/health", tags=["health"])
    async def health() -> Health:
        """Whether the server is up (no token needed)."""
        return Health(status="ok", version=__version__)

    for module in (
        routes_runs,
        routes_models,
        routes_ops,
        routes_audit,
        routes_events,
        routes_approvals,
        routes_evidence,
    ):
        app.include_router(module.router, prefix=PREFIX)
    from modelcycle.interfaces.ui import mount_console  # the web console at / (issue 15)

    mount_console(app)
    _document_problems(app)
    return app


def _document_problems(app: FastAPI) -> None:
    """Every error response in the OpenAPI document is ``application/problem+json``, 422
    (FastAPI's request validation) included, so schema-driven clients expect what they get."""
    plain = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        doc = plain()
        ref = {"$ref": "#/components/schemas/Problem"}
        for item in doc.get("paths", {}).values():
            for op in item.values():
                responses = op.get("responses", {})
                for code, response in responses.items():
                    if code[0] in "45":
                        response["content"] = {"application/problem+json": {"schema": ref}}
                if op.get("parameters") or op.get("requestBody"):
                    responses.setdefault("422", {"description": "Request validation failed"})
                    responses["422"]["content"] = {"application/problem+json": {"schema": ref}}
        schemas = doc.get("components", {}).get("schemas", {})
        for name in ("HTTPValidationError", "ValidationError"):
            schemas.pop(name, None)
        app.openapi_schema = doc
        return doc

    app.openapi = openapi  # type: ignore[method-assign]


class BodyLimit:
    """Refuse a request whose declared body is over the limit before reading it (413).

    Bodies without a Content-Length (chunked) are counted as they arrive and cut off at the
    limit; the upload route checks the stored size again.
    """

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for key, value in scope.get("headers", ()):
            if key == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = -1
                if declared < 0 or declared > self.limit:
                    status = 413 if declared > self.limit else 400
                    err = ContentTooLarge(self.limit) if status == 413 else None
                    detail = err.message if err else "Content-Length is not a number"
                    response = problem(status, detail, kind="InvalidInput")
                    await response(scope, receive, send)
                    return
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    raise ContentTooLarge(self.limit)
            return message

        await self.app(scope, counted, send)


def app_from_environment() -> FastAPI:
    """The app for the workspace MODELCYCLE_HOME names (uvicorn's factory in each worker)."""
    app = create_app(Workspace())
    prepare_server_process()
    return app


def prepare_server_process() -> None:
    """Tune a server process once its app is built: freeze the heap, shorten the GIL switch.

    A request's handler runs in a pool thread while the event loop and other handlers want the
    GIL too; at CPython's default 5 ms switch interval a request that becomes runnable can wait
    several slices, which showed as 200-500 ms p99 at concurrency 8 against 77-87 ms with
    0.5 ms (bench/bench_api.py on PostgreSQL, two A/B rounds on a loaded 2-core machine); the
    scoring server does the same (decision 0010).

    Then everything alive now (modules, the app, its OpenAPI models) moves out of the cyclic
    garbage collector's reach.

    Each full collection otherwise walks those hundreds of thousands of long-lived objects,
    a pause of tens to hundreds of milliseconds that lands on whichever requests are in
    flight: it was most of the API's p99 latency. Objects frozen here are still freed by
    reference counting; only cycles among them would stay (there are none worth freeing in
    a process that keeps the app until it exits).
    """
    sys.setswitchinterval(0.0005)
    gc.collect()
    gc.freeze()
