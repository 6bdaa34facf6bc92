"""Adaptive micro-batching: whatever requests are queued at a turn of the event loop go together.

A request hands its validated rows to :meth:`MicroBatcher.submit`. The first one to find the
batcher idle schedules a drain task, which runs after every handler already scheduled on the
loop, i.e. after the requests read in the same turn have been parsed and queued too. The drain
then yields while new requests keep arriving (up to ``max_batch_rows`` rows and ``max_wait_ms``),
takes everything queued, and predicts once. Nobody waits on a timer when nobody is coming: a
lone request costs one extra turn of the loop.

Small batches (up to ``inline_rows`` rows) are predicted on the event loop itself: for a few rows
the model's work is mostly Python holding the GIL, so a hop to a predict thread and back (two
wake-ups) costs more than it frees, and while the loop predicts, the next requests pile up in
the sockets and form the next batch. Larger batches run in the predict thread so that health
checks and small requests keep being answered.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import numpy as np

__all__ = ["BATCH_SIZE_BUCKETS", "INLINE_ROWS", "MicroBatcher", "SlotStats"]

# Upper bounds of the batch-size histogram (rows per predict call).
BATCH_SIZE_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
# Up to this many rows a batch is predicted on the event loop (see the module's docstring).
INLINE_ROWS = 256

T = TypeVar("T")


@dataclass(slots=True)
class SlotStats:
    """Counters of one served version (per process)."""

    requests: int = 0
    rows: int = 0
    predict_calls: int = 0
    failed_requests: int = 0
    batch_buckets: list[int] = field(default_factory=lambda: [0] * len(BATCH_SIZE_BUCKETS))
    batch_rows_sum: int = 0
    predict_seconds: float = 0.0

    def observe_batch(self, rows: int, seconds: float) -> None:
        self.predict_calls += 1
        self.batch_rows_sum += rows
        self.predict_seconds += seconds
        for i, bound in enumerate(BATCH_SIZE_BUCKETS):
            if rows <= bound:
                self.batch_buckets[i] += 1


@dataclass(slots=True)
class _Pending(Generic[T]):
    rows: T
    count: int
    future: asyncio.Future[np.ndarray]


class MicroBatcher(Generic[T]):
    """Gathers concurrent calls into one ``fn(rows)``; one call at a time.

    ``concat`` joins the queued requests' rows (Arrow tables, or arrays on the fast path).
    """

    def __init__(
        self,
        fn: Callable[[T], np.ndarray],
        executor: ThreadPoolExecutor,
        *,
        concat: Callable[[list[T]], T],
        max_batch_rows: int,
        max_wait_ms: float,
        stats: SlotStats,
        inline_rows: int = INLINE_ROWS,
    ) -> None:
        self._fn = fn
        self._concat = concat
        self._executor = executor
        self._max_rows = max_batch_rows
        self._max_wait = max_wait_ms / 1000.0
        self._inline_rows = inline_rows
        self._stats = stats
        self._pending: deque[_Pending[T]] = deque()
        self._pending_rows = 0
        self._task: asyncio.Task[None] | None = None

    @property
    def queue_depth(self) -> int:
        return len(self._pending)

    async def submit(self, rows: T, count: int) -> np.ndarray:
        """The output rows for ``rows`` (``count`` of them, already validated), from some batch."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[np.ndarray] = loop.create_future()
        self._pending.append(_Pending(rows, count, future))
        self._pending_rows += count
        if self._task is None or self._task.done():
            self._task = loop.create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        while self._pending:
            await self._gather()
            batch = self._take()
            try:
                await self._run(batch)
            except BaseException as exc:  # never leave a caller waiting
                for item in batch:
                    if not item.future.done():
                        item.future.set_exception(exc)
                if not isinstance(exc, Exception):
                    raise

    async def _gather(self) -> None:
        """Yield to the loop while requests keep arriving, up to max rows / max wait."""
        deadline = time.monotonic() + self._max_wait
        seen = len(self._pending)
        while self._pending_rows < self._max_rows and time.monotonic() < deadline:
            await asyncio.sleep(0)
            if len(self._pending) == seen:
                return
            seen = len(self._pending)

    def _take(self) -> list[_Pending[T]]:
        batch = [self._pending.popleft()]
        rows = batch[0].count
        while self._pending and rows + self._pending[0].count <= self._max_rows:
            item = self._pending.popleft()
            rows += item.count
            batch.append(item)
        self._pending_rows -= rows
        return batch

    async def _run(self, batch: list[_Pending[T]]) -> None:
        live = [item for item in batch if not item.future.cancelled()]
        if not live:
            return
        rows = sum(item.count for item in live)
        joined = live[0].rows if len(live) == 1 else self._concat([i.rows for i in live])
        started = time.perf_counter()
        try:
            if rows <= self._inline_rows:
                out = self._fn(joined)
            else:
                loop = asyncio.get_running_loop()
                out = await loop.run_in_executor(self._executor, self._fn, joined)
        except Exception:
            if len(live) == 1:
                raise
            # One request's rows broke the model: retry each alone so only that one fails.
            for item in live:
                try:
                    await self._run([item])
                except Exception as exc:
                    if not item.future.done():
                        item.future.set_exception(exc)
            return
        self._stats.observe_batch(rows, time.perf_counter() - started)
        if len(out) != rows:
            raise RuntimeError(f"the model answered {len(out)} rows for {rows}")
        offset = 0
        for item in live:
            if not item.future.done():
                item.future.set_result(out[offset : offset + item.count])
            offset += item.count


def concat_arrays(parts: list[Any]) -> Any:
    """Row-wise join of the fast path's arrays."""
    return np.concatenate(parts, axis=0)
