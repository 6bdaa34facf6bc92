"""An endpoint's traffic over time for the console: requests, error rate and p99 per backend
per minute, from the history its router keeps (``EndpointRouter.history``), as one Plotly
figure (three stacked panels sharing the time axis) and as table rows.

The router keeps the last three hours per backend in memory: a router that was restarted
shows only what it saw since, which the page says.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

__all__ = ["MinuteRow", "Traffic", "endpoint_traffic"]

# One dash and marker per backend as well as a colour: colour is never the only signal.
_STYLES = (
    ("#1f5fbf", "solid", "circle"),
    ("#b35c00", "dash", "diamond"),
    ("#2e7d32", "dot", "square"),
    ("#7b1fa2", "dashdot", "triangle-up"),
)


@dataclass(frozen=True, slots=True)
class MinuteRow:
    at: str  # the minute's start, ISO 8601 UTC
    backend: str
    model: str | None
    live: bool
    requests: int
    errors: int
    p50_ms: float | None
    p99_ms: float | None

    @property
    def error_rate(self) -> float:
        return self.errors / self.requests if self.requests else 0.0


@dataclass(frozen=True, slots=True)
class Traffic:
    rows: list[MinuteRow]  # newest first
    chart: str  # Plotly figure JSON
    backends: list[tuple[str, str | None, bool]]  # url, model, live; live first
    minutes: int  # the router's horizon


def _iso(seconds: int) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


_LEAST_MINUTES = 30  # the chart spans at least this much, up to now


def endpoint_traffic(
    history: dict[str, Any], deployments: list[Any], *, now: float | None = None
) -> Traffic | None:
    """The figure and rows for a router's ``/router/history`` answer; ``deployments`` are the
    endpoint's records (oldest first), which name the model each backend URL served. None
    when the router saw no request in its horizon. The chart runs up to ``now`` (quiet
    minutes count 0 requests) over at least 30 minutes, at most the router's horizon."""
    live = history.get("backend")
    model_of: dict[str, str] = {}
    for d in deployments:  # the newest record with a URL wins: the router restarts a
        if d.backend_url:  # reused URL's history, so its minutes are that record's
            model_of[d.backend_url] = d.model
    series = {url: rows for url, rows in history.get("backends", {}).items() if rows}
    if not series:
        return None
    order = sorted(series, key=lambda u: (u != live, -series[u][-1][0]))
    rows: list[MinuteRow] = []
    data: list[dict[str, Any]] = []
    horizon = int(history.get("horizon_minutes") or 180)
    first = min(int(r[0]) for rs in series.values() for r in rs)
    last = max(int(r[0]) for rs in series.values() for r in rs)
    end = max(last, int((time.time() if now is None else now) // 60) * 60)
    start = max(min(first, end - (_LEAST_MINUTES - 1) * 60), end - (horizon - 1) * 60)
    minutes = list(range(start, end + 60, 60))
    xs = [_iso(m) for m in minutes]
    for i, url in enumerate(order):
        model = model_of.get(url)
        by_minute = {int(r[0]): r for r in series[url]}
        for r in series[url]:
            rows.append(MinuteRow(_iso(int(r[0])), url, model, url == live, int(r[1]), int(r[2]),
                                  r[3], r[4]))  # fmt: skip
        colour, dash, symbol = _STYLES[i % len(_STYLES)]
        name = f"{model or 'unknown'} ({url.rsplit(':', 1)[-1]}){' live' if url == live else ''}"
        # A minute without requests is 0 requests, but no error rate and no latency (a gap).
        got = [by_minute.get(m) for m in minutes]
        common = {"x": xs, "type": "scatter", "mode": "lines+markers", "legendgroup": url,
                  "line": {"color": colour, "dash": dash},
                  "marker": {"symbol": symbol, "size": 5}}  # fmt: skip
        data += [
            {**common, "name": name, "y": [r[1] if r else 0 for r in got], "yaxis": "y3"},
            {**common, "name": name, "showlegend": False, "yaxis": "y2",
             "y": [round(100 * r[2] / r[1], 2) if r and r[1] else None for r in got]},
            {**common, "name": name, "showlegend": False, "yaxis": "y",
             "y": [r[4] if r else None for r in got]},
        ]  # fmt: skip
    layout = {
        "xaxis": {"title": {"text": "minute (UTC)"}, "anchor": "y", "tickformat": "%H:%M"},
        "yaxis": {"domain": [0, 0.3], "title": {"text": "p99 ms"}, "rangemode": "tozero"},
        "yaxis2": {"domain": [0.35, 0.65], "title": {"text": "errors %"}, "rangemode": "tozero"},
        "yaxis3": {"domain": [0.7, 1], "title": {"text": "requests"}, "rangemode": "tozero"},
        "legend": {"orientation": "h", "y": -0.25},
        "margin": {"t": 10, "l": 60, "r": 10, "b": 60},
        "height": 420,
    }
    rows.sort(key=lambda r: (r.at, r.live), reverse=True)
    return Traffic(
        rows=rows,
        chart=json.dumps({"data": data, "layout": layout}),
        backends=[(u, model_of.get(u), u == live) for u in order],
        minutes=horizon,
    )
