"""The fast path of the long lists (runs, audit events): rows to JSON bytes in one step.

A page of 50 runs went through three layers of conversion (each JSON column decoded into a
``Run``, a pydantic model per run, then FastAPI validating and encoding the page again); here
the stored JSON text of a run's columns is embedded as it is (``orjson.Fragment``: the store
writes it with ``canonical_json``, so it is valid JSON already) and the page is encoded once
by orjson. The route still declares its pydantic response model, so the OpenAPI document says
the same.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import orjson
from fastapi import Request, Response
from starlette.concurrency import run_in_threadpool

from modelcycle.interfaces.http.paging import encode_cursor

__all__ = ["JSON_COLUMNS", "StaleSweep", "json_page", "on_loop_if", "run_item"]

T = TypeVar("T")

# The run columns that hold JSON text in the store.
JSON_COLUMNS = ("params", "metrics", "datasets", "models")


def run_item(row: dict[str, Any]) -> dict[str, Any]:
    """A listed run (``RunOut``'s fields) from its stored row, without decoding its JSON."""
    item = dict(row)
    for name in JSON_COLUMNS:
        item[name] = orjson.Fragment(row[name])
    return item


def json_page(
    request: Request,
    items: list[Any],
    limit: int,
    key: Callable[[Any], Sequence[Any]],
) -> Response:
    """``{"items", "next"}`` for ``items`` fetched with ``limit + 1`` (as ``paging.paged``),
    encoded by orjson, with the ``Link`` header when there is a next page."""
    headers: dict[str, str] = {}
    url = None
    if len(items) > limit:
        items = items[:limit]
        cursor = encode_cursor(key(items[-1]))
        url = str(request.url.include_query_params(cursor=cursor, limit=limit))
        headers["Link"] = f'<{url}>; rel="next"'
    body = orjson.dumps({"items": items, "next": url})
    return Response(body, media_type="application/json", headers=headers)


async def on_loop_if(bounded: bool, work: Callable[[], T]) -> T:
    """Do ``work`` on the event loop when it is a bounded, indexed read; else in a pool thread.

    FastAPI runs a plain ``def`` route in a pool thread, so at concurrency 8 a server worker
    has several handler threads taking turns on the GIL, and on a busy machine the OS can
    deschedule the one holding it: a first page of runs or audit events (a few ms of work)
    then had a p99 of 0.1-1.2 s at concurrency 8 on PostgreSQL. Done on the loop, such reads
    run one after another, each to the end (the same p99 became 57-93 ms at the same load,
    bench/bench_api.py). Only work that is bounded by its page size may block the loop this way;
    filtered or sorted lists, which may scan, keep the thread.
    """
    if bounded:
        return work()
    return await run_in_threadpool(work)


class StaleSweep:
    """Marks dead runs failed at most once every ``every`` seconds in this process.

    ``runs list`` sweeps on each call (one CLI process, one listing); a server listing runs
    many times a second would repeat the same query over and over for nothing, so its
    listings read the rows as they are and sweep on this schedule instead. A run is declared
    stale minutes after its process died, so a few seconds more change nothing.
    """

    def __init__(self, every: float = 5.0) -> None:
        self._every = every
        self._lock = threading.Lock()
        self._last = float("-inf")

    def due(self) -> bool:
        """True for the one caller that should sweep now (it claims the slot)."""
        now = time.monotonic()
        with self._lock:
            if now - self._last < self._every:
                return False
            self._last = now
            return True
