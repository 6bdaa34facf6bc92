"""Management API list speed: ``GET /api/v1/runs?limit=50`` and
``GET /api/v1/audit/events?limit=100`` on a workspace with 10,000 runs and 100,000 audit events,
beside the same queries done directly with SQLAlchemy in this process (the floor).

    .venv/bin/python bench/bench_api.py [--backend sqlite|postgresql] [--seconds 5] [--workers 1]

Fills a throw-away workspace (bulk inserts through the store's audited write path), starts
``modelcycle server`` as a subprocess on 127.0.0.1, and measures each query at concurrency 1
and 8: with ``wrk`` when it is installed (as ../shared/bench/measure.sh does), else with a
bounded keep-alive Python client. The floor runs the same SQL (same ORDER BY and LIMIT) on the
same database with 1 and 8 threads, after 2 s of warm-up at concurrency 8 per query. Prints
p50/p99 (ms), requests/s, and the ratio API req/s / floor req/s. PostgreSQL is started here
(tests/_pg.py) for ``--backend postgresql``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "tests"))

from _server import start_api_server  # noqa: E402 - bench/ is the script's folder

RUNS = 10_000
EVENTS = 100_000
QUERIES = {"runs": "/api/v1/runs?limit=50", "audit": "/api/v1/audit/events?limit=100"}


def fill(ws: Any, runs: int, events: int) -> None:
    """``runs`` finished runs (one run.started event each) and notes up to ``events``."""
    from sqlalchemy import insert

    from modelcycle.audit import utc_timestamp
    from modelcycle.store import tables

    batch = 2000
    for start in range(0, runs, batch):
        rows = []
        with ws.metadata.write(actor="bench", action="bench.filled", subject="bench") as tx:
            for i in range(start, min(start + batch, runs)):
                at = utc_timestamp()
                rows.append({
                    "id": f"{i:012x}", "pipeline": f"p{i % 7}", "ref": None, "status": "succeeded",
                    "failure": None, "params": json.dumps({"i": i, "lr": 0.1}),
                    "metrics": json.dumps({"auc": 0.8 + (i % 100) / 1000}), "code": "{}",
                    "environment": "{}", "datasets": "[]", "models": "[]", "error": None,
                    "resumed_from": None, "hostname": "bench", "pid": None, "heartbeat_at": at,
                    "started_at": at, "finished_at": at, "created_by": "bench",
                })  # fmt: skip
                tx.record("run.started", f"run:{i:012x}", {"pipeline": f"p{i % 7}"})
            tx.conn.execute(insert(tables.runs), rows)
    while (have := ws.audit.head().seq) < events:
        with ws.metadata.write(actor="bench", action="bench.filled", subject="bench") as tx:
            for i in range(have, min(have + 4999, events - 1)):
                tx.record("audit.note", "workspace", {"text": f"event {i}"})


def floor_queries(meta: Any) -> dict[str, Callable[[], int]]:
    from sqlalchemy import select

    from modelcycle.store import tables

    r, a = tables.runs, tables.audit_events

    def runs() -> int:
        with meta.read() as conn:
            rows = conn.execute(select(r).order_by(r.c.started_at.desc(), r.c.id).limit(51)).all()
        return len([dict(x._mapping) for x in rows])

    def audit() -> int:
        with meta.read() as conn:
            rows = conn.execute(select(a).where(a.c.seq > 0).order_by(a.c.seq).limit(101)).all()
        return len([dict(x._mapping) for x in rows])

    return {"runs": runs, "audit": audit}


def measure_calls(call: Callable[[], object], concurrency: int, seconds: float) -> dict[str, float]:
    """Run ``call`` from ``concurrency`` threads for ``seconds``; latency percentiles and rate."""
    latencies: list[list[float]] = [[] for _ in range(concurrency)]
    stop = time.perf_counter() + seconds

    def worker(out: list[float]) -> None:
        while time.perf_counter() < stop:
            t0 = time.perf_counter()
            call()
            out.append((time.perf_counter() - t0) * 1000)

    threads = [threading.Thread(target=worker, args=(out,)) for out in latencies]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - started
    flat = sorted(x for out in latencies for x in out)
    return _summary(flat, len(flat) / elapsed)


def _summary(flat: list[float], rate: float) -> dict[str, float]:
    if not flat:
        return {"p50": float("nan"), "p99": float("nan"), "rps": 0.0}
    p99 = flat[min(len(flat) - 1, int(len(flat) * 0.99))]
    return {"p50": statistics.median(flat), "p99": p99, "rps": rate}


def measure_http(url: str, token: str, concurrency: int, seconds: float) -> dict[str, float]:
    wrk = shutil.which("wrk")
    if wrk is None:
        import httpx

        clients = threading.local()

        def call() -> None:
            c = getattr(clients, "c", None)
            if c is None:
                c = clients.c = httpx.Client(headers={"Authorization": f"Bearer {token}"})
            r = c.get(url)
            assert r.status_code == 200, r.text

        return measure_calls(call, concurrency, seconds)
    done = subprocess.run(
        [wrk, "-t", "1", "-c", str(concurrency), "-d", f"{seconds:g}s", "--latency",
         "-H", f"Authorization: Bearer {token}", url],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    out = done.stdout
    if "Non-2xx" in out:
        raise SystemExit(f"wrk saw errors:\n{out}")

    def pct(label: str) -> float:
        m = re.search(rf"^\s*{label}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        assert m, out
        return float(m.group(1)) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[m.group(2)]

    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    return {"p50": pct("50"), "p99": pct("99"), "rps": rps}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--backend", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--runs", type=int, default=RUNS)
    parser.add_argument("--events", type=int, default=EVENTS)
    args = parser.parse_args()

    from modelcycle import init_workspace
    from modelcycle.store.tokens import TokenStore

    tmp = Path(tempfile.mkdtemp(prefix="mc-bench-api-"))
    pg = None
    db_url = None
    if args.backend == "postgresql":
        from _pg import start_server

        pg = start_server()
        db_url = pg.url()
    os.environ["MODELCYCLE_ACTOR"] = "bench"
    server = None
    try:
        ws, _ = init_workspace(tmp / "ws", db_url=db_url)
        t0 = time.perf_counter()
        fill(ws, args.runs, args.events)
        count = ws.audit.head().seq
        print(
            f"filled {args.runs} runs and {count} audit events in {time.perf_counter() - t0:.0f} s"
        )
        _, token = TokenStore(ws.metadata, "bench").create("bench", "reader")
        server, base = start_api_server(ws.root, "--workers", str(args.workers))
        floors = floor_queries(ws.metadata)
        tool = "wrk" if shutil.which("wrk") else "python client"
        print(f"backend {args.backend}, {args.workers} server worker(s), HTTP by {tool}, "
              f"{args.seconds:g} s per cell")  # fmt: skip
        header = f"{'query':8} {'c':>2} | {'API p50':>8} {'p99':>8} {'req/s':>8} | "
        print(header + f"{'floor p50':>9} {'p99':>8} {'req/s':>8} | {'ratio':>5}")
        for path in QUERIES.values():
            # Each worker's first requests pay one-time costs (imports, compiled statements, the
            # first pooled connections); the harness warms its servers up too.
            measure_http(base + path, token, 8, 2.0)
        for name, path in QUERIES.items():
            for c in (1, 8):
                api = measure_http(base + path, token, c, args.seconds)
                floor = measure_calls(floors[name], c, args.seconds)
                ratio = api["rps"] / floor["rps"] if floor["rps"] else float("nan")
                print(
                    f"{name:8} {c:>2} | {api['p50']:8.2f} {api['p99']:8.2f} {api['rps']:8.0f} | "
                    f"{floor['p50']:9.2f} {floor['p99']:8.2f} {floor['rps']:8.0f} | {ratio:5.2f}"
                )
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=30)
        if pg is not None:
            pg.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
