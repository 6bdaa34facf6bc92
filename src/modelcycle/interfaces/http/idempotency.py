"""``Idempotency-Key`` on the POSTs that start work: a retry gets the first answer again.

The first answer (status and body) is kept per (token name, route, key) for ``ttl`` in the
metadata database (``store/idempotency.py``), so a retry that reaches another worker or another
host of ``modelcycle server`` is recognised too. A retry that arrives while the first request is
still running waits for it (up to ``wait_seconds``, then 409 "still running") instead of
starting the work twice.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import orjson
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse, Response

from modelcycle.errors import InvalidInput
from modelcycle.interfaces.http.problems import PROBLEM_JSON
from modelcycle.store.idempotency import IdempotencyRecords, StoredAnswer

__all__ = ["IdempotencyCache"]

_MAX_KEY = 200


class IdempotencyCache:
    def __init__(
        self,
        records: IdempotencyRecords,
        *,
        ttl: timedelta = timedelta(hours=24),
        wait_seconds: float = 600.0,
    ) -> None:
        self._records = records
        self._ttl = ttl
        self._wait = wait_seconds
        self._swept = 0.0

    def run(
        self,
        key: str | None,
        scope: tuple[str, str],
        work: Callable[[], Any],
        *,
        status: int = 200,
    ) -> Response:
        """``work()``'s answer as JSON; with ``key``, the first answer for that key again."""
        if key is None:
            return JSONResponse(jsonable_encoder(work()), status_code=status)
        if not 0 < len(key) <= _MAX_KEY or not key.isprintable():
            raise InvalidInput(f"must be 1 to {_MAX_KEY} printable characters",
                               field="Idempotency-Key")  # fmt: skip
        self._sweep()
        caller, route = scope
        if not self._records.claim(caller, route, key):
            return self._replay(caller, route, key)
        try:
            body = orjson.dumps(jsonable_encoder(work()))
        except BaseException:
            # A failed request leaves the key unused, so a corrected retry runs.
            self._records.release(caller, route, key)
            raise
        self._records.finish(caller, route, key, status, body.decode())
        return Response(body, status_code=status, media_type="application/json")

    def _replay(self, caller: str, route: str, key: str) -> Response:
        deadline = time.monotonic() + self._wait
        pause = 0.05
        while True:
            answer = self._records.get(caller, route, key)
            if answer is None:
                return _problem("the first request with this Idempotency-Key failed; send it again")
            if answer.state == "done":
                return _stored(answer)
            if time.monotonic() >= deadline:
                return _problem("the first request with this Idempotency-Key is still running; "
                                "retry later")  # fmt: skip
            time.sleep(pause)
            pause = min(pause * 2, 1.0)

    def _sweep(self) -> None:
        now = time.monotonic()
        if now - self._swept >= 600.0:
            self._swept = now
            self._records.expire(self._ttl)


def _stored(answer: StoredAnswer) -> Response:
    return Response(
        (answer.body or "null").encode(),
        status_code=answer.status or 200,
        media_type="application/json",
        headers={"Idempotent-Replayed": "true"},
    )


def _problem(detail: str) -> Response:
    body = {"type": "about:blank", "title": "Conflict", "status": 409, "detail": detail,
            "problems": []}  # fmt: skip
    return JSONResponse(body, status_code=409, media_type=PROBLEM_JSON)
