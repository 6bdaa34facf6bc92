"""Traffic over time: a real router process counts per minute (GET /router/history) what it
forwards, the history stays bounded, and the console turns it into a chart and table rows.
No browser here (the endpoint page's chart is checked in test_console_pages)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from types import SimpleNamespace

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from _servers import serve_app
from modelcycle.deploy._router_stats import HORIZON_MINUTES, MAX_BACKENDS, RouterHistory
from modelcycle.deploy.router import EndpointRouter
from modelcycle.interfaces.ui.traffic import endpoint_traffic


def _answer(request: Request) -> PlainTextResponse:
    status = 500 if request.url.path == "/bad" else 200
    return PlainTextResponse("x", status_code=status)


def test_the_router_counts_requests_errors_and_p99_per_minute(tmp_path: Path) -> None:
    backend_app = Starlette(routes=[Route("/{path}", _answer)])
    router = EndpointRouter(tmp_path / "router", endpoint="traffic")
    with serve_app(backend_app, what="the backend") as backend:
        url = router.ensure(port=None, backend=backend)
        try:
            with httpx.Client(base_url=url, timeout=10) as client:
                statuses = [client.get(p).status_code for p in ["/ok"] * 5 + ["/bad"] * 2]
            assert statuses == [200] * 5 + [500] * 2
            history = router.history()
        finally:
            router.stop()
    assert history["backend"] == backend
    assert history["horizon_minutes"] == HORIZON_MINUTES
    rows = history["backends"][backend]
    assert 1 <= len(rows) <= 2  # a minute may have turned while the requests ran
    assert sum(r[1] for r in rows) == 7
    assert sum(r[2] for r in rows) == 2
    now_minute = int(time.time() // 60) * 60
    assert all(now_minute - 120 <= r[0] <= now_minute for r in rows)
    assert all(r[3] is not None and r[4] is not None and r[3] <= r[4] for r in rows)


def test_history_keeps_three_hours_and_a_few_backends() -> None:
    history = RouterHistory()
    now = 1_800_000_000.0
    for minute in range(300):  # five hours of one request a minute
        history.get("http://127.0.0.1:1").observe(2.0, minute % 10 == 0, now=now + minute * 60)
    rows = history.as_dict(now=now + 299 * 60)["backends"]["http://127.0.0.1:1"]
    assert len(rows) == HORIZON_MINUTES
    assert rows[-1][0] == int((now + 299 * 60) // 60) * 60
    for port in range(2, 2 + MAX_BACKENDS + 3):
        history.get(f"http://127.0.0.1:{port}").observe(1.0, False, now=now + port)
    assert len(history.backends) == MAX_BACKENDS
    history.restart("http://127.0.0.1:5")  # a reused URL starts afresh
    assert history.as_dict(now=now)["backends"]["http://127.0.0.1:5"] == []


def test_the_console_fills_quiet_minutes_and_names_each_backends_model() -> None:
    blue, green = "http://127.0.0.1:7001", "http://127.0.0.1:7002"
    answer = {
        "backend": green,
        "horizon_minutes": HORIZON_MINUTES,
        "backends": {
            blue: [[600, 10, 1, 2.0, 9.0], [780, 4, 0, 2.0, 3.0]],
            green: [[840, 8, 0, 1.0, 2.0]],
        },
    }
    records = [SimpleNamespace(backend_url=blue, model="credit/1"),
               SimpleNamespace(backend_url=green, model="credit/2")]  # fmt: skip
    traffic = endpoint_traffic(answer, records, now=2340)
    assert traffic is not None
    assert traffic.backends == [(green, "credit/2", True), (blue, "credit/1", False)]
    assert [(r.model, r.requests, r.live) for r in traffic.rows] == [
        ("credit/2", 8, True), ("credit/1", 4, False), ("credit/1", 10, False)
    ]  # fmt: skip
    assert traffic.rows[-1].error_rate == 0.1
    data = json.loads(traffic.chart)["data"]
    blue_requests = next(t for t in data if "credit/1" in t["name"] and t["yaxis"] == "y3")
    # 30 minutes up to now at least (minutes 10 to 39 here), one point a minute:
    assert len(blue_requests["x"]) == 30
    assert blue_requests["x"][0] == "1970-01-01T00:10:00Z"
    assert blue_requests["x"][-1] == "1970-01-01T00:39:00Z"
    blue_p99 = next(t for t in data if "credit/1" in t["name"] and t["yaxis"] == "y")
    at = {m: i for i, m in enumerate(blue_requests["x"])}
    ten, thirteen, fourteen = (at[f"1970-01-01T00:{m}:00Z"] for m in ("10", "13", "14"))
    assert blue_requests["y"][ten : fourteen + 1] == [10, 0, 0, 4, 0]  # quiet minutes: 0...
    assert blue_p99["y"][ten : fourteen + 1] == [9.0, None, None, 3.0, None]  # ...no latency
    assert blue_p99["y"][thirteen] == 3.0
    assert endpoint_traffic({"backend": None, "backends": {blue: []}}, records) is None
