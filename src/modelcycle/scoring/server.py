"""The HTTP face of a :class:`~modelcycle.scoring.engine.ScoringEngine` (Starlette, orjson).

Routes: Open Inference Protocol v2 under ``/v2``, MLflow's ``/invocations`` (plus ``/ping``,
``/health``, ``/version``), plain ``/predict``, ``/feedback`` (ground truth), ``/admin/reload``
(hot swap, tokens) and ``/metrics`` (Prometheus text). Given a :class:`Serving` rather than a
bare engine, the app also logs predictions, checks API tokens (:func:`required_role` per
route), routes canary/shadow traffic, follows aliases, and writes JSON access log lines. Every
answer carries ``X-Request-ID`` (the caller's, when sane, else a new one); answers from a model
carry ``X-Model-Version``. Errors are JSON ``{"error", "problems": [{"field", "problem"}]}``
with the status from :func:`modelcycle.errors.http_status_for`; nothing a client sends can
raise out of a handler.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from modelcycle.audit import utc_timestamp
from modelcycle.errors import (
    Forbidden,
    InvalidInput,
    ModelcycleError,
    Unauthorized,
    http_status_for,
)
from modelcycle.scoring._http import error_body, valid_rid
from modelcycle.scoring._startup import freeze_heap
from modelcycle.scoring.engine import ScoringEngine
from modelcycle.scoring.handlers import ScoringApi, Serving

__all__ = ["DEFAULT_MAX_BODY_BYTES", "Serving", "create_app", "required_role"]

_log = logging.getLogger("modelcycle.scoring")

DEFAULT_MAX_BODY_BYTES = 10 * 1024 * 1024

_PUBLIC = ("/v2/health/live", "/v2/health/ready", "/ping", "/health", "/openapi.json")


def required_role(path: str) -> str | None:
    """The least role a route needs when the workspace has tokens (None: open to all)."""
    if path in _PUBLIC:
        return None
    if path.startswith("/admin/") or path == "/admin":
        return "operator"
    if (
        path in ("/invocations", "/predict", "/feedback")
        or path.startswith("/predict/")
        or (path.startswith("/v2/models/") and path.endswith("/infer"))
    ):
        return "scorer"
    return "reader"


def create_app(
    served: ScoringEngine | Serving,
    *,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    load_on_startup: bool = True,
    on_load_error: Callable[[BaseException], None] | None = None,
    freeze_after_load: bool = False,
) -> Starlette:
    """An ASGI app serving ``engine``.

    With ``load_on_startup`` the app loads the engine in a background thread when it starts:
    ``/v2/health/live`` answers at once, ``/v2/health/ready`` once the models are loaded.
    ``on_load_error`` is called if loading fails (the server uses it to exit).
    ``freeze_after_load``: once loaded, move the heap out of the cyclic garbage collector's
    reach (:func:`~modelcycle.scoring._startup.freeze_heap`); for a server process, which
    keeps its models until it exits, not for an app embedded in a longer-lived process.
    """
    if max_body_bytes < 1:
        raise InvalidInput(f"must be >= 1, got {max_body_bytes}", field="max_body_bytes")
    serving = served if isinstance(served, Serving) else Serving(served)
    engine = serving.engine
    api = ScoringApi(serving, max_body_bytes)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        task = poll = None
        if serving.tokens is not None:
            # Before the first request is read: a server that cannot load its tokens does not
            # start, rather than start open.
            api.token_check = await asyncio.to_thread(serving.tokens)
        if serving.prediction_log is not None:
            serving.prediction_log.start()
        if load_on_startup and not engine.ready:
            task = asyncio.create_task(_load(engine, on_load_error, freeze_after_load))
        if (serving.follower or serving.tokens) is not None and serving.poll_seconds > 0:
            poll = asyncio.create_task(_poll(api, serving.poll_seconds))
        try:
            yield
        finally:
            for t in (task, poll):
                if t is not None and not t.done():
                    t.cancel()
            # uvicorn has finished the in-flight requests; their shadow copies finish now,
            # then the log drains: every row answered is written (or spilled).
            await api.finish_shadows()
            if serving.prediction_log is not None:
                await asyncio.to_thread(serving.prediction_log.close)
            if load_on_startup:
                await asyncio.to_thread(engine.close)

    routes = [
        Route("/v2/health/live", api.live, methods=["GET"]),
        Route("/v2/health/ready", api.ready, methods=["GET"]),
        Route("/v2", api.server_metadata, methods=["GET"]),
        Route("/v2/models/{name}", api.model_metadata, methods=["GET"]),
        Route("/v2/models/{name}/versions/{version}", api.model_metadata, methods=["GET"]),
        Route("/v2/models/{name}/ready", api.model_ready, methods=["GET"]),
        Route("/v2/models/{name}/versions/{version}/ready", api.model_ready, methods=["GET"]),
        Route("/v2/models/{name}/infer", api.v2_infer, methods=["POST"]),
        Route("/v2/models/{name}/versions/{version}/infer", api.v2_infer, methods=["POST"]),
        Route("/invocations", api.invocations, methods=["POST"]),
        Route("/ping", api.ping, methods=["GET"]),
        Route("/health", api.ping, methods=["GET"]),
        Route("/version", api.version, methods=["GET"]),
        Route("/openapi.json", api.openapi, methods=["GET"]),
        Route("/predict", api.predict, methods=["POST"]),
        Route("/predict/{name}", api.predict, methods=["POST"]),
        Route("/metrics", api.metrics, methods=["GET"]),
        Route("/feedback", api.feedback, methods=["POST"]),
        Route("/admin/reload", api.reload, methods=["POST"]),
    ]
    app = Starlette(routes=routes, lifespan=lifespan)
    app.add_middleware(_Gate, api=api)
    return app


async def _poll(api: ScoringApi, every: float) -> None:
    """Every ``every`` seconds: swap in versions whose alias moved, re-read the tokens (so a
    revocation reaches every worker, not only the one that answered ``/admin/reload``)."""
    follower, tokens = api.serving.follower, api.serving.tokens
    while True:
        await asyncio.sleep(every)
        if follower is not None and api.engine.ready:
            try:
                await asyncio.to_thread(follower.check)
            except Exception as exc:
                follower.failures += 1
                _log.warning("checking the followed aliases failed: %s", exc)
        if tokens is not None:
            try:
                api.token_check = await asyncio.to_thread(tokens)
            except Exception as exc:  # keep the tokens we have; try again next time
                _log.warning("re-reading the API tokens failed: %s", exc)


class _Gate:
    """Token checks before the routes, and one JSON access log line after each request."""

    def __init__(self, app: ASGIApp, api: ScoringApi) -> None:
        self.app = app
        self.api = api

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        seen: dict[str, Any] = {"status": 500}

        async def watch(message: Message) -> None:
            if message["type"] == "http.response.start":
                seen["status"] = message["status"]
                seen["headers"] = message.get("headers", [])
            await send(message)

        check = self.api.token_check
        needed = required_role(scope["path"]) if check is not None and check.enabled else None
        denied: ModelcycleError | None = None
        if needed is not None and check is not None:
            header = _header(scope, b"authorization")
            try:
                check.authorize(header, needed)
            except (Unauthorized, Forbidden) as exc:
                denied = exc
        if denied is not None:
            rid = valid_rid(_header(scope, b"x-request-id"))
            status = http_status_for(denied)
            headers = {"X-Request-ID": rid}
            if status == 401:
                headers["WWW-Authenticate"] = 'Bearer realm="modelcycle"'
            response = Response(
                orjson.dumps(
                    error_body(str(denied), [{"field": "authorization", "problem": str(denied)}])
                ),
                status_code=status,
                media_type="application/json",
                headers=headers,
            )
            await response(scope, receive, watch)
        else:
            await self.app(scope, receive, watch)
        if self.api.serving.access_log:
            _access_line(scope, seen, time.perf_counter() - started)


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key == name:
            return bytes(value).decode("latin-1")
    return None


def _access_line(scope: Scope, seen: dict[str, Any], seconds: float) -> None:
    headers = {bytes(k).decode("latin-1").lower(): bytes(v).decode("latin-1")
               for k, v in seen.get("headers", [])}  # fmt: skip
    version = headers.get("x-model-version")
    line = {
        "at": utc_timestamp(),
        "request_id": headers.get("x-request-id"),
        "method": scope.get("method"),
        "route": scope.get("path"),
        "status": seen["status"],
        "latency_ms": round(seconds * 1000.0, 3),
        "model": headers.get("x-model-name"),
        "model_version": int(version) if version and version.isdigit() else None,
    }
    sys.stderr.write(orjson.dumps(line).decode() + "\n")
    sys.stderr.flush()


async def _load(
    engine: ScoringEngine, on_error: Callable[[BaseException], None] | None, freeze: bool
) -> None:
    started = time.perf_counter()
    try:
        await asyncio.to_thread(engine.load)
        engine.limit_native_threads_here()
        if freeze:
            freeze_heap()
    except Exception as exc:
        _log.error("loading the models failed: %s", exc)
        if on_error is not None:
            on_error(exc)
        return
    served = ", ".join(f"{s.name}/{s.version}" for s in engine.slots())
    _log.info("ready: %s loaded in %.2f s", served, time.perf_counter() - started)
