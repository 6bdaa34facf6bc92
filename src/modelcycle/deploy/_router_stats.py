"""What the endpoint router counts per backend: requests, errors and a latency histogram.

The router process fills :class:`Counters`; ``GET /router/stats`` sends them as JSON and the
deploying command reads them back as :class:`BackendStats` (the ``--watch`` verdict).

:class:`MinuteHistory` is the same figures over time: one bucket per wall-clock minute
(requests, errors, a latency histogram for p50/p99) for the last ``HORIZON_MINUTES``, kept in
the router process (it sees every request; nothing to sample, no table to grow), sent by
``GET /router/history``. Memory is bounded: at most ``HORIZON_MINUTES`` buckets of ~85 ints
per backend, and at most ``MAX_BACKENDS`` backends. A restarted router starts with none.
"""

from __future__ import annotations

import time
from bisect import bisect_left
from dataclasses import dataclass
from typing import Any

__all__ = [
    "HORIZON_MINUTES",
    "MAX_BACKENDS",
    "BackendStats",
    "Counters",
    "LatencyHistogram",
    "MinuteHistory",
    "RouterHistory",
]

# Bucket bounds in ms, ~19% apart from 0.1 ms to about 2 min: p99 within a few percent.
_BOUNDS: tuple[float, ...] = tuple(0.1 * 2 ** (i / 4) for i in range(82))


HORIZON_MINUTES = 180  # three hours of per-minute buckets per backend
MAX_BACKENDS = 8  # the live backend and up to seven before it


class LatencyHistogram:
    """Request latencies in fixed log-spaced buckets; quantiles interpolate within one."""

    __slots__ = ("counts", "max_ms")

    def __init__(self) -> None:
        self.counts = [0] * (len(_BOUNDS) + 1)
        self.max_ms = 0.0

    def observe(self, ms: float) -> None:
        # The first bucket whose bound is >= ms (bisect in C: the router calls this twice a
        # request, once for the running totals and once for the minute's bucket).
        self.counts[bisect_left(_BOUNDS, ms)] += 1
        if ms > self.max_ms:
            self.max_ms = ms

    def quantile(self, q: float) -> float | None:
        total = sum(self.counts)
        if total == 0:
            return None
        rank = q * total
        seen = 0
        for i, n in enumerate(self.counts):
            if n and seen + n >= rank:
                lower = _BOUNDS[i - 1] if i > 0 else 0.0
                upper = _BOUNDS[i] if i < len(_BOUNDS) else self.max_ms
                value = lower + (upper - lower) * max(0.0, rank - seen) / n
                return min(value, self.max_ms)
            seen += n
        return self.max_ms


@dataclass(frozen=True, slots=True)
class BackendStats:
    """What the router saw of one backend since it became the backend."""

    url: str
    requests: int
    errors: int  # 5xx answers + connection errors
    status_5xx: int
    connection_errors: int
    in_flight: int
    p50_ms: float | None
    p99_ms: float | None
    max_ms: float
    seconds: float

    @property
    def error_rate(self) -> float:
        return self.errors / self.requests if self.requests else 0.0

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BackendStats:
        return cls(**{k: data[k] for k in cls.__slots__})


class Counters:
    def __init__(self) -> None:
        self.requests = 0
        self.status_5xx = 0
        self.connection_errors = 0
        self.in_flight = 0
        self.hist = LatencyHistogram()
        self.since = time.monotonic()

    def as_dict(self, url: str) -> dict[str, Any]:
        p50, p99 = self.hist.quantile(0.5), self.hist.quantile(0.99)
        return {
            "url": url,
            "requests": self.requests,
            "errors": self.status_5xx + self.connection_errors,
            "status_5xx": self.status_5xx,
            "connection_errors": self.connection_errors,
            "in_flight": self.in_flight,
            "p50_ms": round(p50, 3) if p50 is not None else None,
            "p99_ms": round(p99, 3) if p99 is not None else None,
            "max_ms": round(self.hist.max_ms, 3),
            "seconds": round(time.monotonic() - self.since, 3),
        }


class _Minute:
    __slots__ = ("errors", "hist", "minute", "requests")

    def __init__(self, minute: int) -> None:
        self.minute = minute
        self.requests = 0
        self.errors = 0
        self.hist = LatencyHistogram()


class MinuteHistory:
    """One backend's requests, errors and latencies per wall-clock minute, oldest first,
    the last ``HORIZON_MINUTES`` only (minutes without a request have no bucket)."""

    def __init__(self) -> None:
        self.buckets: list[_Minute] = []

    def observe(self, ms: float, error: bool, now: float | None = None) -> None:
        minute = int((time.time() if now is None else now) // 60)
        buckets = self.buckets
        if not buckets or buckets[-1].minute != minute:
            buckets.append(_Minute(minute))
            # Dropped from the front only when a new minute starts: once a minute, not per
            # request. A clock stepped back starts a new bucket rather than rewriting one.
            while buckets and buckets[0].minute <= minute - HORIZON_MINUTES:
                del buckets[0]
        bucket = buckets[-1]
        bucket.requests += 1
        if error:
            bucket.errors += 1
        bucket.hist.observe(ms)

    def newest_minute(self) -> int | None:
        return self.buckets[-1].minute if self.buckets else None

    def as_rows(self, now: float | None = None) -> list[list[Any]]:
        """``[minute start (unix seconds), requests, errors, p50 ms, p99 ms]`` per minute."""
        oldest = int((time.time() if now is None else now) // 60) - HORIZON_MINUTES + 1
        rows: list[list[Any]] = []
        for b in self.buckets:
            if b.minute < oldest:
                continue
            p50, p99 = b.hist.quantile(0.5), b.hist.quantile(0.99)
            rows.append(
                [b.minute * 60, b.requests, b.errors,
                 round(p50, 3) if p50 is not None else None,
                 round(p99, 3) if p99 is not None else None]
            )  # fmt: skip
        return rows


class RouterHistory:
    """The minute histories of the backends a router served, at most ``MAX_BACKENDS``."""

    def __init__(self) -> None:
        self.backends: dict[str, MinuteHistory] = {}

    def get(self, url: str) -> MinuteHistory:
        found = self.backends.get(url)
        if found is None:
            found = self.backends[url] = MinuteHistory()
            self._prune(keep=url)
        return found

    def restart(self, url: str) -> None:
        """``url`` becomes the backend again (a port reused by a later backend): its
        history starts afresh, like its counters, so two versions' minutes never mix."""
        self.backends.pop(url, None)
        self.get(url)

    def _prune(self, keep: str) -> None:
        if len(self.backends) <= MAX_BACKENDS:
            return
        # Drop the backends whose last request is oldest (never the one just added).
        others = sorted(
            (u for u in self.backends if u != keep),
            key=lambda u: self.backends[u].newest_minute() or -1,
        )
        for url in others[: len(self.backends) - MAX_BACKENDS]:
            del self.backends[url]

    def as_dict(self, now: float | None = None) -> dict[str, Any]:
        return {
            "minute_seconds": 60,
            "horizon_minutes": HORIZON_MINUTES,
            "columns": ["minute", "requests", "errors", "p50_ms", "p99_ms"],
            "backends": {url: h.as_rows(now) for url, h in self.backends.items()},
        }
