"""The HTTP face of a :class:`~modelcycle.scoring.engine.ScoringEngine` (Starlette, orjson).

Routes: Open Inference Protocol v2 under ``/v2``, MLflow's ``/invocations`` (plus ``/ping``,
``/health``, ``/version``), plain ``/predict``, and ``/metrics`` (Prometheus text). Every
answer carries ``X-Request-ID`` (the caller's, when sane, else a new one); answers from a model
carry ``X-Model-Version``. Errors are JSON ``{"error", "problems": [{"field", "problem"}]}``
with the status from :func:`modelcycle.errors.http_status_for`; nothing a client sends can
raise out of a handler.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from modelcycle._version import __version__
from modelcycle.errors import InvalidInput, ModelcycleError, http_status_for
from modelcycle.registry import SignatureMismatch
from modelcycle.scoring._metrics import Metrics
from modelcycle.scoring.engine import ModelSlot, ScoringEngine
from modelcycle.scoring.protocols import mlflow, plain, v2
from modelcycle.scoring.protocols._tabular import RequestInvalid

__all__ = ["DEFAULT_MAX_BODY_BYTES", "create_app"]

_log = logging.getLogger("modelcycle.scoring")

DEFAULT_MAX_BODY_BYTES = 10 * 1024 * 1024
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:@/+=-]{1,128}$")
_TRUE = {"1", "true", "yes", "on"}
_MLFLOW_CODES = {400: "BAD_REQUEST", 404: "RESOURCE_DOES_NOT_EXIST", 503: "TEMPORARILY_UNAVAILABLE"}


class HttpProblem(Exception):
    """A transport-level refusal (size, content type, JSON syntax) with its status."""

    def __init__(self, status: int, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.status = status
        self.field = field
        self.problem = problem


def create_app(
    engine: ScoringEngine,
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
    api = _ScoringApi(engine, max_body_bytes)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        task = None
        if load_on_startup and not engine.ready:
            task = asyncio.create_task(_load(engine, on_load_error))
        try:
            yield
        finally:
            if task is not None and not task.done():
                task.cancel()
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
        Route("/predict", api.predict, methods=["POST"]),
        Route("/predict/{name}", api.predict, methods=["POST"]),
        Route("/metrics", api.metrics, methods=["GET"]),
    ]
    return Starlette(routes=routes, lifespan=lifespan)


async def _load(engine: ScoringEngine, on_error: Callable[[BaseException], None] | None) -> None:
    started = time.perf_counter()
    try:
        await asyncio.to_thread(engine.load)
    except Exception as exc:
        _log.error("loading the models failed: %s", exc)
        if on_error is not None:
            on_error(exc)
        return
    served = ", ".join(f"{s.name}/{s.version}" for s in engine.slots())
    _log.info("ready: %s loaded in %.2f s", served, time.perf_counter() - started)


Handler = Callable[[Request, str], Awaitable[tuple[Any, ModelSlot | None]]]


class _ScoringApi:
    def __init__(self, engine: ScoringEngine, max_body_bytes: int) -> None:
        self.engine = engine
        self.max_body_bytes = max_body_bytes
        self.counters = Metrics()

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
        return Response(text, media_type="text/plain; version=0.0.4")

    # -- scoring ----------------------------------------------------------------------------

    async def v2_infer(self, request: Request) -> Response:
        async def work(request: Request, rid: str) -> tuple[Any, ModelSlot | None]:
            slot = self._slot(request)
            body = await self._json_body(request)
            decoded = v2.decode_infer(body, slot.signature, proba_default=_flag(request))
            result = await self.engine.score_slot(
                slot, decoded.table, predict=decoded.predict, proba=decoded.proba
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
            slot = self.engine.get(name, request.query_params.get("version"))
            proba = _flag(request)
            kind = _content_type(request)
            if kind == "text/csv":
                decoded = mlflow.decode_csv(await self._body(request), proba=proba)
            elif kind in ("", "application/json"):
                decoded = mlflow.decode_json(
                    _parse_json(await self._body(request)),
                    order=slot.signature.input_names,
                    proba_default=proba,
                )
            else:
                raise HttpProblem(
                    415,
                    "content-type",
                    f"{kind!r} is not supported; use application/json or text/csv",
                )
            result = await self.engine.score_slot(
                slot, decoded.table, predict=not decoded.proba, proba=decoded.proba
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
            slot = self.engine.get(name, request.query_params.get("version"))
            body = await self._json_body(request)
            decoded = plain.decode(
                body, order=slot.signature.input_names, proba_default=_flag(request)
            )
            result = await self.engine.score_slot(slot, decoded.table, proba=decoded.proba)
            return plain.encode(result), slot

        return await self._call(request, "plain", work)

    # -- plumbing ---------------------------------------------------------------------------

    def _slot(self, request: Request) -> ModelSlot:
        return self.engine.get(request.path_params["name"], request.path_params.get("version"))

    async def _call(self, request: Request, protocol: str, work: Handler) -> Response:
        started = time.perf_counter()
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
                payload["error_code"] = _MLFLOW_CODES.get(status, "INTERNAL_ERROR")
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
        raise HttpProblem(400, "body", f"malformed JSON ({exc})") from None


def _content_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";", 1)[0].strip().lower()


def _flag(request: Request) -> bool:
    value = request.query_params.get("proba") or request.query_params.get("probabilities")
    return value is not None and value.lower() in _TRUE


def _request_id(request: Request) -> str:
    given = request.headers.get("x-request-id")
    if given and _REQUEST_ID.match(given):
        return given
    return uuid.uuid4().hex


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
