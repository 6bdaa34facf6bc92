"""What the endpoint router counts per backend: requests, errors and a latency histogram.

The router process fills :class:`_Counters`; ``GET /router/stats`` sends them as JSON and the
deploying command reads them back as :class:`BackendStats` (the ``--watch`` verdict).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

__all__ = ["BackendStats", "Counters", "LatencyHistogram"]

# Bucket bounds in ms, ~19% apart from 0.1 ms to about 2 min: p99 within a few percent.
_BOUNDS: tuple[float, ...] = tuple(0.1 * 2 ** (i / 4) for i in range(82))


class LatencyHistogram:
    """Request latencies in fixed log-spaced buckets; quantiles interpolate within one."""

    def __init__(self) -> None:
        self.counts = [0] * (len(_BOUNDS) + 1)
        self.max_ms = 0.0

    def observe(self, ms: float) -> None:
        lo, hi = 0, len(_BOUNDS)
        while lo < hi:
            mid = (lo + hi) // 2
            if ms <= _BOUNDS[mid]:
                hi = mid
            else:
                lo = mid + 1
        self.counts[lo] += 1
        self.max_ms = max(self.max_ms, ms)

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
