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
import re
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from modelcycle._version import __version__
from modelcycle.audit import utc_timestamp
from modelcycle.errors import (
    Forbidden,
    InvalidInput,
    ModelcycleError,
    NotFound,
    Unauthorized,
    http_status_for,
)
from modelcycle.registry import SignatureMismatch
from modelcycle.scoring._metrics import Metrics
from modelcycle.scoring.engine import ModelSlot, ScoreResult, ScoringEngine
from modelcycle.scoring.feedback import parse_feedback, store_feedback
from modelcycle.scoring.prediction_log import LogRecord, PredictionLog
from modelcycle.scoring.protocols import mlflow, plain, v2
from modelcycle.scoring.protocols._tabular import RequestInvalid, malformed_json
from modelcycle.scoring.swap import AliasFollower
from modelcycle.store import MetadataStore
from modelcycle.store.tokens import TokenCheck

__all__ = ["DEFAULT_MAX_BODY_BYTES", "Serving", "create_app", "required_role"]

_log = logging.getLogger("modelcycle.scoring")

DEFAULT_MAX_BODY_BYTES = 10 * 1024 * 1024
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:@/+=-]{1,128}$")
_TRUE = {"1", "true", "yes", "on"}
# MLflow's error codes (databricks.proto) by status; any other 4xx is BAD_REQUEST, as MLflow's
# scoring server answers a body it cannot use, and only a 5xx is INTERNAL_ERROR.
_MLFLOW_CODES = {401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "RESOURCE_DOES_NOT_EXIST",
                 429: "REQUEST_LIMIT_EXCEEDED", 503: "TEMPORARILY_UNAVAILABLE"}  # fmt: skip


@dataclass
class Serving:
    """An engine and what a full server wires around it (every part optional).

    ``prediction_log``: where scored rows go (started and drained with the app).
    ``metadata``: the workspace database, for ``/feedback``.
    ``tokens``: returns the active API tokens; called at start (a failure stops the start:
    the server fails closed) and on ``/admin/reload``.
    ``follower``: aliases to follow, checked every ``poll_seconds`` (0: only on reload);
    the tokens are re-read as often.
    ``access_log``: one JSON line per request on stderr.
    """

    engine: ScoringEngine
    prediction_log: PredictionLog | None = None
    metadata: MetadataStore | None = None
    tokens: Callable[[], TokenCheck] | None = None
    follower: AliasFollower | None = None
    poll_seconds: float = 5.0
    access_log: bool = False


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


class HttpProblem(Exception):
    """A transport-level refusal (size, content type, JSON syntax) with its status."""

    def __init__(self, status: int, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.status = status
        self.field = field
        self.problem = problem


def create_app(
    served: ScoringEngine | Serving,
    *,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    load_on_startup: bool = True,
    on_load_error: Callable[[BaseException], None] | None = None,
) -> Starlette:
    """An ASGI app serving ``engine``.

    With ``load_on_startup`` the app loads the engine in a background thread when it starts:
    ``/v2/health/live`` answers at once, ``/v2/health/ready`` once the models are loaded.
    ``on_load_error`` is called if loading fails (the server uses it to exit).
    """
    if max_body_bytes < 1:
        raise InvalidInput(f"must be >= 1, got {max_body_bytes}", field="max_body_bytes")
    serving = served if isinstance(served, Serving) else Serving(served)
    engine = serving.engine
    api = _ScoringApi(serving, max_body_bytes)

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
            task = asyncio.create_task(_load(engine, on_load_error))
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


async def _poll(api: _ScoringApi, every: float) -> None:
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

    def __init__(self, app: ASGIApp, api: _ScoringApi) -> None:
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
            rid = _valid_rid(_header(scope, b"x-request-id"))
            status = http_status_for(denied)
            headers = {"X-Request-ID": rid}
            if status == 401:
                headers["WWW-Authenticate"] = 'Bearer realm="modelcycle"'
            response = Response(
                orjson.dumps(
                    _error(str(denied), [{"field": "authorization", "problem": str(denied)}])
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


async def _load(engine: ScoringEngine, on_error: Callable[[BaseException], None] | None) -> None:
    started = time.perf_counter()
    try:
        await asyncio.to_thread(engine.load)
        engine.limit_native_threads_here()
    except Exception as exc:
        _log.error("loading the models failed: %s", exc)
        if on_error is not None:
            on_error(exc)
        return
    served = ", ".join(f"{s.name}/{s.version}" for s in engine.slots())
    _log.info("ready: %s loaded in %.2f s", served, time.perf_counter() - started)


Handler = Callable[[Request, str], Awaitable[tuple[Any, ModelSlot | None]]]


class _ScoringApi:
    def __init__(self, serving: Serving, max_body_bytes: int) -> None:
        self.serving = serving
        self.engine = serving.engine
        self.log = serving.prediction_log
        self.max_body_bytes = max_body_bytes
        self.counters = Metrics()
        self.token_check: TokenCheck | None = None
        self._shadow_tasks: set[asyncio.Task[None]] = set()
        self.shadow_failures = 0

    # -- health and metadata ----------------------------------------------------------------

    async def live(self, request: Request) -> Response:
        return _json({"live": True}, _request_id(request))

    async def ready(self, request: Request) -> Response:
        ready = self.engine.ready
        return _json({"ready": ready}, _request_id(request), status=200 if ready else 503)

    async def ping(self, request: Request) -> Response:
        ok = self.engine.ready
        return Response(b"\n", status_code=200 if ok else 503, media_type="application/json")

    async def version(self, request: Request) -> Response:
        return Response(__version__, media_type="text/plain")

    async def openapi(self, request: Request) -> Response:
        from modelcycle.scoring.openapi import openapi_document

        return _json(openapi_document(__version__), _request_id(request))

    async def server_metadata(self, request: Request) -> Response:
        body = {"name": "modelcycle", "version": __version__, "extensions": []}
        return _json(body, _request_id(request))

    async def model_metadata(self, request: Request) -> Response:
        async def work(request: Request, rid: str) -> tuple[Any, ModelSlot | None]:
            slot = self._slot(request)
            versions = [s.version for s in self.engine.slots() if s.name == slot.name]
            return v2.model_metadata(slot, versions), slot

        return await self._call(request, "v2-metadata", work)

    async def model_ready(self, request: Request) -> Response:
        async def work(request: Request, rid: str) -> tuple[Any, ModelSlot | None]:
            slot = self._slot(request)
            return {"name": slot.name, "ready": True}, slot

        return await self._call(request, "v2-metadata", work)

    async def metrics(self, request: Request) -> Response:
        text = self.counters.render(self.engine)
        if self.log is not None:
            text += self.log.render_metrics()
        text += (
            "# HELP modelcycle_shadow_failures_total Shadow predictions that failed.\n"
            "# TYPE modelcycle_shadow_failures_total counter\n"
            f"modelcycle_shadow_failures_total {self.shadow_failures}\n"
        )
        if self.serving.follower is not None:
            text += (
                "# HELP modelcycle_hot_swaps_total Versions swapped in after an alias moved.\n"
                "# TYPE modelcycle_hot_swaps_total counter\n"
                f"modelcycle_hot_swaps_total {self.serving.follower.swaps}\n"
            )
        return Response(text, media_type="text/plain; version=0.0.4")

    # -- feedback and admin -----------------------------------------------------------------

    async def feedback(self, request: Request) -> Response:
        async def work(request: Request, rid: str) -> tuple[Any, ModelSlot | None]:
            meta = self.serving.metadata
            if meta is None:
                raise NotFound("this server has no workspace database to store feedback in")
            items = parse_feedback(await self._json_body(request))
            recent = self.log.recent_model if self.log is not None else None
            result = await asyncio.to_thread(store_feedback, meta, items, recent_model=recent)
            return result.as_dict(), None

        return await self._call(request, "feedback", work)

    async def reload(self, request: Request) -> Response:
        async def work(request: Request, rid: str) -> tuple[Any, ModelSlot | None]:
            swapped: list[dict[str, Any]] = []
            if self.serving.follower is not None:
                reports = await asyncio.to_thread(self.serving.follower.check)
                swapped = [
                    {"model": r.name, "ref": r.ref, "from": r.old_version, "to": r.new_version}
                    for r in reports
                ]
            tokens = None
            if self.serving.tokens is not None:
                self.token_check = await asyncio.to_thread(self.serving.tokens)
                tokens = len(self.token_check)
            served = [f"{s.name}/{s.version}" for s in self.engine.slots()]
            return {"swapped": swapped, "served": served, "active_tokens": tokens}, None

        return await self._call(request, "admin", work)

    # -- logging and shadow -----------------------------------------------------------------

    async def _score(
        self,
        request: Request,
        slot: ModelSlot,
        table: Any,
        rid: str,
        *,
        predict: bool = True,
        proba: bool = False,
        mirror: bool = True,
    ) -> ScoreResult:
        """Score on ``slot``; log the answer (sampled) and mirror it to any shadow version."""
        result = await self.engine.score_slot(slot, table, predict=predict, proba=proba)
        log = self.log
        if log is None or result.inputs is None or not log.sampled():
            return result
        started = request.scope.get("modelcycle.started")
        latency = (time.perf_counter() - started) * 1000.0 if started is not None else None
        at = utc_timestamp()
        log.submit(_record(result, rid, latency, at, shadow=False))
        if mirror:
            for shadow in self.engine.shadows(slot):
                task = asyncio.create_task(self._shadow(shadow, result.inputs, rid, predict, proba))
                self._shadow_tasks.add(task)
                task.add_done_callback(self._shadow_tasks.discard)
        return result

    async def _shadow(
        self, slot: ModelSlot, table: Any, rid: str, predict: bool, proba: bool
    ) -> None:
        started = time.perf_counter()
        try:
            result = await self.engine.score_slot(slot, table, predict=predict, proba=proba)
        except Exception as exc:
            self.shadow_failures += 1
            _log.warning("shadow %s/%s failed on request %s: %s", slot.name, slot.version, rid, exc)
            return
        if self.log is not None:
            latency = (time.perf_counter() - started) * 1000.0
            self.log.submit(_record(result, rid, latency, utc_timestamp(), shadow=True))

    async def finish_shadows(self) -> None:
        if self._shadow_tasks:
            await asyncio.gather(*list(self._shadow_tasks), return_exceptions=True)

    # -- scoring ----------------------------------------------------------------------------

    async def v2_infer(self, request: Request) -> Response:
        async def work(request: Request, rid: str) -> tuple[Any, ModelSlot | None]:
            slot = self._routed(request)
            body = await self._json_body(request)
            decoded = v2.decode_infer(body, slot.signature, proba_default=_flag(request))
            result = await self._score(
                request,
                slot,
                decoded.table,
                rid,
                predict=decoded.predict,
                proba=decoded.proba,
                mirror="version" not in request.path_params,
            )
            return v2.encode_infer(result, decoded.id or rid), slot

        return await self._call(request, "v2", work)

    async def invocations(self, request: Request) -> Response:
        async def work(request: Request, rid: str) -> tuple[Any, ModelSlot | None]:
            name = request.query_params.get("model")
            if name is None:
                names = self.engine.names()
                if len(names) > 1:
                    raise InvalidInput(
                        f"this server serves several models ({', '.join(names)}); "
                        "name one with ?model=NAME",
                        field="model",
                    )
                name = names[0] if names else ""
            version = request.query_params.get("version")
            slot = self.engine.route(name, version)
            proba = _flag(request)
            kind = _content_type(request)
            if kind == "text/csv":
                decoded = mlflow.decode_csv(await self._body(request), proba=proba)
            elif kind in ("", "application/json"):
                decoded = mlflow.decode_json(
                    _parse_json(await self._body(request)),
                    order=slot.signature.input_names,
                    proba_default=proba,
                    types=slot.input_types,
                )
            else:
                raise HttpProblem(
                    415,
                    "content-type",
                    f"{kind!r} is not supported; use application/json or text/csv",
                )
            result = await self._score(
                request,
                slot,
                decoded.table,
                rid,
                predict=not decoded.proba,
                proba=decoded.proba,
                mirror=version is None,
            )
            return mlflow.encode(result), slot

        return await self._call(request, "mlflow", work)

    async def predict(self, request: Request) -> Response:
        async def work(request: Request, rid: str) -> tuple[Any, ModelSlot | None]:
            name = request.path_params.get("name") or request.query_params.get("model")
            if name is None:
                names = self.engine.names()
                if len(names) > 1:
                    raise InvalidInput(
                        f"this server serves several models ({', '.join(names)}); "
                        "use /predict/NAME",
                        field="model",
                    )
                name = names[0] if names else ""
            version = request.query_params.get("version")
            slot = self.engine.route(name, version)
            body = await self._json_body(request)
            decoded = plain.decode(
                body,
                order=slot.signature.input_names,
                proba_default=_flag(request),
                types=slot.input_types,
            )
            result = await self._score(
                request, slot, decoded.table, rid, proba=decoded.proba, mirror=version is None
            )
            return plain.encode(result), slot

        return await self._call(request, "plain", work)

    # -- plumbing ---------------------------------------------------------------------------

    def _slot(self, request: Request) -> ModelSlot:
        return self.engine.get(request.path_params["name"], request.path_params.get("version"))

    def _routed(self, request: Request) -> ModelSlot:
        return self.engine.route(request.path_params["name"], request.path_params.get("version"))

    async def _call(self, request: Request, protocol: str, work: Handler) -> Response:
        started = time.perf_counter()
        request.scope["modelcycle.started"] = started
        rid = _request_id(request)
        slot: ModelSlot | None = None
        try:
            payload, slot = await work(request, rid)
            status = 200
        except HttpProblem as exc:
            status = exc.status
            payload = _error(exc.problem, [{"field": exc.field, "problem": exc.problem}])
        except ModelcycleError as exc:
            status = http_status_for(exc)
            payload = _error(str(exc), _problems(exc))
        except Exception:
            _log.exception("request %s failed", rid)
            status = 500
            payload = _error("internal error; the request id is in the server log", [])
        if status != 200:
            if slot is None:
                slot = self._slot_or_none(request)
            if protocol == "mlflow":
                payload["error_code"] = _MLFLOW_CODES.get(
                    status, "BAD_REQUEST" if status < 500 else "INTERNAL_ERROR"
                )
                payload["message"] = payload["error"]
        headers = {"X-Request-ID": rid}
        if slot is not None:
            headers["X-Model-Version"] = str(slot.version)
            headers["X-Model-Name"] = slot.name
        self.counters.observe(protocol, status, time.perf_counter() - started)
        return Response(
            orjson.dumps(payload),
            status_code=status,
            media_type="application/json",
            headers=headers,
        )

    def _slot_or_none(self, request: Request) -> ModelSlot | None:
        name = request.path_params.get("name")
        if name is None:
            return None
        try:
            return self.engine.get(name, request.path_params.get("version"))
        except ModelcycleError:
            return None

    async def _json_body(self, request: Request) -> Any:
        kind = _content_type(request)
        if kind not in ("", "application/json"):
            raise HttpProblem(
                415, "content-type", f"{kind!r} is not supported; send application/json"
            )
        return _parse_json(await self._body(request))

    async def _body(self, request: Request) -> bytes:
        """The body, refused with 413 as soon as it is known to be over the limit."""
        limit = self.max_body_bytes
        declared = request.headers.get("content-length")
        if declared is not None:
            if not declared.isdigit():
                raise HttpProblem(400, "content-length", f"{declared!r} is not a byte count")
            if int(declared) > limit:
                raise HttpProblem(
                    413, "body", f"{declared} bytes is over the limit of {limit} bytes"
                )
        chunks: list[bytes] = []
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise HttpProblem(413, "body", f"more than the limit of {limit} bytes")
            chunks.append(chunk)
        return b"".join(chunks)


def _parse_json(body: bytes) -> Any:
    if not body:
        raise HttpProblem(400, "body", "empty; expected a JSON object")
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise HttpProblem(400, "body", malformed_json(body, exc)) from None


def _content_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";", 1)[0].strip().lower()


def _flag(request: Request) -> bool:
    value = request.query_params.get("proba") or request.query_params.get("probabilities")
    return value is not None and value.lower() in _TRUE


def _request_id(request: Request) -> str:
    return _valid_rid(request.headers.get("x-request-id"))


def _valid_rid(given: str | None) -> str:
    if given and _REQUEST_ID.match(given):
        return given
    return uuid.uuid4().hex


def _record(
    result: ScoreResult, rid: str, latency: float | None, at: str, *, shadow: bool
) -> LogRecord:
    assert result.inputs is not None
    return LogRecord(
        request_id=rid,
        model_name=result.model_name,
        model_version=result.model_version,
        inputs=result.inputs,
        predictions=result.predictions,
        probabilities=result.probabilities,
        classes=result.classes,
        latency_ms=latency,
        at=at,
        shadow=shadow,
    )


def _problems(exc: ModelcycleError) -> list[dict[str, str]]:
    if isinstance(exc, RequestInvalid):
        return exc.problems
    if isinstance(exc, SignatureMismatch):
        return [{"field": p.column, "problem": p.detail, "kind": p.kind} for p in exc.problems]
    if isinstance(exc, InvalidInput) and exc.field:
        return [{"field": exc.field, "problem": exc.message.removeprefix(f"{exc.field}: ")}]
    return []


def _error(message: str, problems: list[dict[str, str]]) -> dict[str, Any]:
    return {"error": message, "problems": problems}


def _json(body: Any, rid: str, *, status: int = 200) -> Response:
    return Response(
        orjson.dumps(body),
        status_code=status,
        media_type="application/json",
        headers={"X-Request-ID": rid},
    )
