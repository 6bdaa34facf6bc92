"""Performance over time for the console: per hourly window, the metric measured from ground
truth beside the CBPE estimate (from the prediction log alone), and the holdout's figure.

The figures come from ``Monitoring.performance`` with ``record=False``: viewing a page never
writes a ``performance.degraded`` event (that is for scheduled checks and the CLI). Computing
them reads the prediction log per window and loads the model for the estimate, so a result is
kept per model and refreshed in the background after a minute: the overview's sparklines do
not redo it on every view.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from modelcycle.errors import ModelcycleError

__all__ = ["Series", "performance_chart", "performance_series", "sparkline"]

_TTL_SECONDS = 60.0
_cache: dict[tuple[str, str, int], tuple[float, Series | None]] = {}
_refreshing: set[tuple[str, str, int]] = set()
_lock = threading.Lock()
_log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Series:
    """One metric per window (None where a window had too few rows)."""

    model: str  # the version's ref, e.g. credit/1
    metric: str
    ends: list[str]
    measured: list[float | None]
    estimated: list[float | None]
    baseline: float | None
    labelled: list[int]
    predictions: list[int]

    @property
    def last_measured(self) -> float | None:
        return next((v for v in reversed(self.measured) if v is not None), None)

    @property
    def last_estimated(self) -> float | None:
        return next((v for v in reversed(self.estimated) if v is not None), None)


def performance_series(ws: Any, ref: str, *, hours: int = 24) -> Series | None:
    """Hourly windows over the last ``hours`` for ``ref`` (NAME@ALIAS or NAME/V); None when
    nothing was logged for it then, or when its performance cannot be computed.

    Computing takes about a second (the estimate loads the model), so a result is kept and
    served for a minute; after that the kept result is still served while one background
    thread computes the next (stale while revalidating): only the first view of a model since
    the server started waits for the computation.
    """
    key = (str(ws.root), ref, hours)
    now = time.monotonic()
    with _lock:
        hit = _cache.get(key)
        if hit is not None:
            if hit[0] <= now and key not in _refreshing:
                _refreshing.add(key)
                threading.Thread(
                    target=_refresh, args=(ws, ref, hours, key), daemon=True, name="perf-trend"
                ).start()
            return hit[1]
    value = _compute(ws, ref, hours)
    with _lock:
        _cache[key] = (time.monotonic() + _TTL_SECONDS, value)
    return value


def _refresh(ws: Any, ref: str, hours: int, key: tuple[str, str, int]) -> None:
    try:
        value = _compute(ws, ref, hours)
        with _lock:
            _cache[key] = (time.monotonic() + _TTL_SECONDS, value)
    except Exception:  # keep serving the last result; the next view after a minute retries
        _log.warning("could not refresh the performance trend of %s", ref, exc_info=True)
    finally:
        with _lock:
            _refreshing.discard(key)


def _compute(ws: Any, ref: str, hours: int) -> Series | None:
    until = datetime.now(UTC)
    try:
        report = ws.monitoring.performance(
            ref, window="1h", since=until - timedelta(hours=hours), until=until, record=False
        )
    except ModelcycleError:
        return None
    windows = report.windows
    if not any(w.predictions for w in windows):
        return None
    # The estimate exists for one metric (accuracy for classifiers): chart that one when it
    # is there, else the first measured metric the holdout also has.
    estimated = [k for w in windows for k in w.estimated]
    measured = [k for w in windows for k in w.metrics]
    metric = (estimated or measured or list(windows[0].baseline) or [""])[0]
    if not metric:
        return None
    return Series(
        model=report.model,
        metric=metric,
        ends=[str(w.end) for w in windows],
        measured=[w.metrics.get(metric) for w in windows],
        estimated=[w.estimated.get(metric) for w in windows],
        baseline=windows[0].baseline.get(metric),
        labelled=[w.labelled for w in windows],
        predictions=[w.predictions for w in windows],
    )


def performance_chart(s: Series) -> str:
    """Plotly figure JSON: measured and estimated lines, the holdout's value dashed."""
    data: list[dict[str, Any]] = [
        {"x": s.ends, "y": s.measured, "type": "scatter", "mode": "lines+markers",
         "name": f"{s.metric} measured (ground truth)", "connectgaps": False},
        {"x": s.ends, "y": s.estimated, "type": "scatter", "mode": "lines+markers",
         "name": f"{s.metric} estimated (CBPE)", "line": {"dash": "dash"},
         "marker": {"symbol": "diamond"}},
    ]  # fmt: skip
    if s.baseline is not None:
        data.append(
            {"x": [s.ends[0], s.ends[-1]], "y": [s.baseline, s.baseline], "type": "scatter",
             "mode": "lines", "name": "holdout", "line": {"dash": "dot", "color": "#7a8699"}}
        )  # fmt: skip
    layout = {
        "xaxis": {"title": {"text": "window end (UTC)"}},
        "yaxis": {"title": {"text": s.metric}},
        "legend": {"orientation": "h"},
        "margin": {"t": 20, "l": 60, "r": 20, "b": 50},
    }
    return json.dumps({"data": data, "layout": layout})


def sparkline(s: Series, width: int = 120, height: int = 28) -> dict[str, Any]:
    """SVG polyline points for the measured and the estimated line, on one shared scale, and
    the points themselves (drawn as dots: one window with data is one dot, not a line)."""
    values = [v for v in (*s.measured, *s.estimated) if v is not None]
    if s.baseline is not None:
        values.append(s.baseline)
    low, high = (min(values), max(values)) if values else (0.0, 1.0)
    span = (high - low) or 1.0
    step = width / max(1, len(s.ends) - 1)

    def points(series: list[float | None]) -> str:
        return " ".join(
            f"{i * step:.1f},{height - 2 - (v - low) / span * (height - 4):.1f}"
            for i, v in enumerate(series)
            if v is not None
        )

    base = ""
    if s.baseline is not None:
        y = height - 2 - (s.baseline - low) / span * (height - 4)
        base = f"0,{y:.1f} {width},{y:.1f}"
    measured, estimated = points(s.measured), points(s.estimated)
    return {
        "measured": measured,
        "estimated": estimated,
        "baseline": base,
        "measured_dots": [p.split(",") for p in measured.split()],
        "estimated_dots": [p.split(",") for p in estimated.split()],
    }
