"""The scoring server's route handlers, over a :class:`Serving` (engine, log, tokens, aliases).

Every scoring route decodes its protocol's body, scores it on the engine (the all-numeric fast
path when the version has one and the body qualifies, the general path otherwise), logs the
answer by reference and mirrors it to shadow versions; :meth:`ScoringApi.call` turns any error
into the JSON problem answer with its status.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import orjson
import pyarrow as pa
from starlette.requests import Request
from starlette.responses import Response

from modelcycle._version import __version__
from modelcycle.errors import InvalidInput, ModelcycleError, NotFound, http_status_for
from modelcycle.scoring._http import (
    MLFLOW_CODES,
    HttpProblem,
    content_type,
    error_body,
    flag,
    json_response,
    parse_json,
    problems_of,
    request_id,
)
from modelcycle.scoring._metrics import Metrics
from modelcycle.scoring.engine import ModelSlot, ScoreResult, ScoringEngine
from modelcycle.scoring.feedback import parse_feedback, store_feedback
from modelcycle.scoring.prediction_log import LogRecord, PredictionLog
from modelcycle.scoring.protocols import mlflow, plain, v2
from modelcycle.scoring.swap import AliasFollower
from modelcycle.store import MetadataStore
from modelcycle.store.tokens import TokenCheck

__all__ = ["ScoringApi", "Serving"]

_log = logging.getLogger("modelcycle.scoring")


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


Handler = Callable[[Request, str], Awaitable[tuple[Any, ModelSlot | None]]]


class ScoringApi:
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
        return json_response({"live": True}, request_id(request))

    async def ready(self, request: Request) -> Response:
        ready = self.engine.ready
        return json_response({"ready": ready}, request_id(request), status=200 if ready else 503)

    async def ping(self, request: Request) -> Response:
        ok = self.engine.ready
        return Response(b"\n", status_code=200 if ok else 503, media_type="application/json")

    async def version(self, request: Request) -> Response:
        return Response(__version__, media_type="text/plain")

    async def openapi(self, request: Request) -> Response:
        from modelcycle.scoring.openapi import openapi_document

        return json_response(openapi_document(__version__), request_id(request))

    async def server_metadata(self, request: Request) -> Response:
        body = {"name": "modelcycle", "version": __version__, "extensions": []}
        return json_response(body, request_id(request))

    async def model_metadata(self, request: Request) -> Response:
        async def work(request: Request, rid: str) -> tuple[Any, ModelSlot | None]:
            slot = self._slot(request)
            versions = [s.version for s in self.engine.slots() if s.name == slot.name]
            return v2.model_metadata(slot, versions), slot

        return await self.call(request, "v2-metadata", work)

    async def model_ready(self, request: Request) -> Response:
        async def work(request: Request, rid: str) -> tuple[Any, ModelSlot | None]:
            slot = self._slot(request)
            return {"name": slot.name, "ready": True}, slot

        return await self.call(request, "v2-metadata", work)

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

        return await self.call(request, "feedback", work)

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

        return await self.call(request, "admin", work)

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
        self._logged(request, slot, result, rid, predict, proba, mirror)
        return result

    def _logged(
        self,
        request: Request,
        slot: ModelSlot,
        result: ScoreResult,
        rid: str,
        predict: bool,
        proba: bool,
        mirror: bool,
    ) -> None:
        """Hand the answer to the log by reference (no per-row work here); start shadows."""
        log = self.log
        if log is None or not log.sampled():
            return
        started = request.scope.get("modelcycle.started")
        latency = (time.perf_counter() - started) * 1000.0 if started is not None else None
        log.submit(_record(result, rid, latency, time.time(), shadow=False))
        if mirror:
            for shadow in self.engine.shadows(slot):
                table = result.inputs if result.inputs is not None else _table_of(slot, result)
                task = asyncio.create_task(self._shadow(shadow, table, rid, predict, proba))
                self._shadow_tasks.add(task)
                task.add_done_callback(self._shadow_tasks.discard)

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
            self.log.submit(_record(result, rid, latency, time.time(), shadow=True))

    async def finish_shadows(self) -> None:
        if self._shadow_tasks:
            await asyncio.gather(*list(self._shadow_tasks), return_exceptions=True)

    # -- scoring ----------------------------------------------------------------------------

    async def v2_infer(self, request: Request) -> Response:
        async def work(request: Request, rid: str) -> tuple[Any, ModelSlot | None]:
            slot = self._routed(request)
            body = await self._json_body(request)
            decoded = v2.decode_infer(body, slot.signature, proba_default=flag(request))
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

        return await self.call(request, "v2", work)

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
            proba = flag(request)
            kind = content_type(request)
            if kind == "text/csv":
                decoded = mlflow.decode_csv(await self._body(request), proba=proba)
            elif kind in ("", "application/json"):
                raw = await self._body(request)
                body = parse_json(raw)
                fast = slot.fast
                if fast is not None and not proba:
                    rows = fast.decode(raw, body, self.engine.max_rows_per_request)
                    if rows is not None:  # else the general path (and its wording of problems)
                        result = await self.engine.score_array(slot, rows)
                        self._logged(request, slot, result, rid, True, False, version is None)
                        return mlflow.encode(result), slot
                decoded = mlflow.decode_json(
                    body,
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

        return await self.call(request, "mlflow", work)

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
                proba_default=flag(request),
                types=slot.input_types,
            )
            result = await self._score(
                request, slot, decoded.table, rid, proba=decoded.proba, mirror=version is None
            )
            return plain.encode(result), slot

        return await self.call(request, "plain", work)

    # -- plumbing ---------------------------------------------------------------------------

    def _slot(self, request: Request) -> ModelSlot:
        return self.engine.get(request.path_params["name"], request.path_params.get("version"))

    def _routed(self, request: Request) -> ModelSlot:
        return self.engine.route(request.path_params["name"], request.path_params.get("version"))

    async def call(self, request: Request, protocol: str, work: Handler) -> Response:
        started = time.perf_counter()
        request.scope["modelcycle.started"] = started
        rid = request_id(request)
        slot: ModelSlot | None = None
        try:
            payload, slot = await work(request, rid)
            status = 200
        except HttpProblem as exc:
            status = exc.status
            payload = error_body(exc.problem, [{"field": exc.field, "problem": exc.problem}])
        except ModelcycleError as exc:
            status = http_status_for(exc)
            payload = error_body(str(exc), problems_of(exc))
        except Exception:
            _log.exception("request %s failed", rid)
            status = 500
            payload = error_body("internal error; the request id is in the server log", [])
        if status != 200:
            if slot is None:
                slot = self._slot_or_none(request)
            if protocol == "mlflow":
                payload["error_code"] = MLFLOW_CODES.get(
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
        kind = content_type(request)
        if kind not in ("", "application/json"):
            raise HttpProblem(
                415, "content-type", f"{kind!r} is not supported; send application/json"
            )
        return parse_json(await self._body(request))

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


def _record(
    result: ScoreResult, rid: str, latency: float | None, at: float, *, shadow: bool
) -> LogRecord:
    inputs = result.inputs if result.inputs is not None else result.array
    assert inputs is not None
    return LogRecord(
        request_id=rid,
        model_name=result.model_name,
        model_version=result.model_version,
        inputs=inputs,
        predictions=result.predictions,
        probabilities=result.probabilities,
        classes=result.classes,
        latency_ms=latency,
        at=at,
        shadow=shadow,
        columns=result.input_names if result.inputs is None else None,
    )


def _table_of(slot: ModelSlot, result: ScoreResult) -> pa.Table:
    """The fast path's array as the table the general path would have validated (shadows)."""
    assert result.array is not None
    types = slot.input_types
    return pa.table(
        {
            name: pa.array(result.array[:, j]).cast(pa.type_for_alias(types[name]))
            for j, name in enumerate(result.input_names)
        }
    )
