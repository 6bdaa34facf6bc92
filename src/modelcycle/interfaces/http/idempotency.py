"""``Idempotency-Key`` on the POSTs that start work: a retry gets the first answer again.

The first answer (status and body) is kept per (token name, route, key) for ``ttl_seconds``;
a retry that arrives while the first is still running waits for it instead of starting the
work twice. The cache lives in the server process: a retry that reaches another worker of a
multi-worker server is not recognised (run one worker where clients retry blindly).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse

from modelcycle.errors import InvalidInput
from modelcycle.interfaces.http.problems import PROBLEM_JSON

__all__ = ["IdempotencyCache"]

_MAX_KEY = 200


class _Entry:
    def __init__(self) -> None:
        self.done = threading.Event()
        self.status = 0
        self.body: Any = None
        self.media_type = "application/json"
        self.at = time.monotonic()


class IdempotencyCache:
    def __init__(self, *, ttl_seconds: float = 24 * 3600.0, max_entries: int = 10_000) -> None:
        self._ttl = ttl_seconds
        self._max = max_entries
        self._lock = threading.Lock()
        self._entries: dict[tuple[str, str, str], _Entry] = {}
        self._swept = time.monotonic()

    def run(
        self,
        key: str | None,
        scope: tuple[str, str],
        work: Callable[[], Any],
        *,
        status: int = 200,
    ) -> JSONResponse:
        """``work()``'s answer as JSON; with ``key``, the first answer for that key again."""
        if key is None:
            return JSONResponse(jsonable_encoder(work()), status_code=status)
        if not 0 < len(key) <= _MAX_KEY or not key.isprintable():
            raise InvalidInput(f"must be 1 to {_MAX_KEY} printable characters",
                               field="Idempotency-Key")  # fmt: skip
        full = (scope[0], scope[1], key)
        with self._lock:
            self._expire()
            entry = self._entries.get(full)
            first = entry is None
            if entry is None:
                entry = self._entries[full] = _Entry()
        if not first:
            entry.done.wait()
            return self._answer(entry, replayed=True)
        try:
            entry.body = jsonable_encoder(work())
            entry.status = status
        except BaseException:
            # A failed request leaves the key unused, so a corrected retry runs; a retry that
            # was waiting on it is told to send again.
            with self._lock:
                self._entries.pop(full, None)
            entry.status = -1
            entry.done.set()
            raise
        entry.done.set()
        return self._answer(entry, replayed=False)

    def _answer(self, entry: _Entry, *, replayed: bool) -> JSONResponse:
        if entry.status < 0:
            return JSONResponse(
                {"type": "about:blank", "title": "Conflict", "status": 409,
                 "detail": "the first request with this Idempotency-Key failed; send it again",
                 "problems": []},
                status_code=409, media_type=PROBLEM_JSON,
            )  # fmt: skip
        headers = {"Idempotent-Replayed": "true"} if replayed else None
        return JSONResponse(entry.body, status_code=entry.status, headers=headers)

    def _expire(self) -> None:
        now = time.monotonic()
        if len(self._entries) < self._max and now - self._swept < 60.0:
            return
        self._swept = now
        stale = [k for k, e in self._entries.items() if e.done.is_set() and now - e.at > self._ttl]
        for k in stale:
            del self._entries[k]
        while len(self._entries) >= self._max:
            self._entries.pop(next(iter(self._entries)))
