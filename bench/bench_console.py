"""Console page speed on a workspace with 10,000 runs, 200 model versions and 100,000 audit
events: the overview, the models list, a model with 100 versions and a version page, the runs
table (first page, sorted by a metric, filtered, a deep page), a comparison of 2 and of 10 runs,
the audit timeline (first page, filtered by actor, an older page) and "why" for an alias.

    .venv/bin/python bench/bench_console.py [--backend sqlite|postgresql] [--requests 40]

Fills a throw-away workspace: two runs trained for real (steps, logs, a model version each:
what a comparison reads), then 10,000 finished runs (7 pipelines, 3 data set versions, 5
metrics, params), 198 more model versions (credit up to 100 versions, 20 more models of 5,
each with a champion and a promotion event per version) with 30 stored drift checks per model,
and audit notes up to 100,000 events, in bulk through the store's audited write path. Starts
``modelcycle server`` as a subprocess on 127.0.0.1 and requests each page ``--requests``
times, one at a time, with a reader's bearer token (no browser: the time is the server's plus
one local round trip). Prints p50 / p95 / max in ms and whether p95 is under the issue's
300 ms. The floor: the same runs page's two SQL statements (page + count) timed in this
process. PostgreSQL is started here (tests/_pg.py) for ``--backend postgresql``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "bench"))

from _server import start_api_server  # noqa: E402

RUNS = 10_000
EVENTS = 100_000
VERSIONS = 200
CHECKS_PER_MODEL = 30
BUDGET_MS = 300.0


def fill_runs(ws: Any, runs: int) -> list[str]:
    """``runs`` finished runs, one ``run.started`` event each; returns their ids."""
    from datetime import UTC, datetime, timedelta

    from sqlalchemy import insert

    from modelcycle.audit import utc_timestamp
    from modelcycle.store import tables

    ids: list[str] = []
    start = datetime.now(UTC) - timedelta(days=30)
    batch = 2000
    for first in range(0, runs, batch):
        rows = []
        with ws.metadata.write(actor="bench", action="bench.filled", subject="bench") as tx:
            for i in range(first, min(first + batch, runs)):
                run_id = f"b{i:011x}"
                ids.append(run_id)
                began = start + timedelta(minutes=4 * i)
                ended = began + timedelta(seconds=5 + i % 300)
                metrics = {"auc": 0.7 + (i * 7 % 100) / 400, "accuracy": 0.6 + (i % 37) / 100,
                           "f1": 0.5 + (i % 53) / 120, "logloss": 0.2 + (i % 29) / 50,
                           "brier": 0.1 + (i % 31) / 200}  # fmt: skip
                rows.append({
                    "id": run_id, "pipeline": f"pipeline-{i % 7}", "ref": None,
                    "status": "failed" if i % 23 == 0 else "succeeded", "failure": None,
                    "params": json.dumps({"C": [0.1, 0.5, 1.0][i % 3], "seed": i % 11,
                                          "max_iter": 100 + i % 5 * 50}),
                    "metrics": json.dumps(metrics), "code": "{}", "environment": "{}",
                    "datasets": json.dumps([f"credit@{1 + i % 3}"]),
                    "models": json.dumps([f"credit/{3 + i}"] if i % 50 == 0 else []),
                    "error": None, "resumed_from": None, "hostname": "bench", "pid": None,
                    "heartbeat_at": utc_timestamp(ended), "started_at": utc_timestamp(began),
                    "finished_at": utc_timestamp(ended), "created_by": "bench",
                })  # fmt: skip
                tx.record("run.started", f"run:{run_id}", {"pipeline": f"pipeline-{i % 7}"})
            tx.conn.execute(insert(tables.runs), rows)
    return ids


def fill_models(ws: Any, versions: int, checks: int) -> list[str]:
    """Copies of credit/1's row up to ``versions`` in all (credit to half of them, the rest in
    models of 5), a champion per model, a ``model.promoted`` event per version, and ``checks``
    stored drift checks per model; returns the model names."""
    from datetime import UTC, datetime, timedelta

    from sqlalchemy import insert, select

    from modelcycle.audit import utc_timestamp
    from modelcycle.store import tables

    mv = tables.model_versions
    with ws.metadata.read() as conn:
        template = dict(conn.execute(select(mv).where(mv.c.name == "credit")).mappings().first())
    template.pop("id")
    have = len(ws.registry.list())
    in_credit = versions // 2
    plan = [("credit", v) for v in range(have + 1, in_credit + 1)]
    extra = [f"m{i:02d}" for i in range((versions - in_credit) // 5)]
    plan += [(name, v) for name in extra for v in range(1, 6)]
    now = utc_timestamp()
    start = datetime.now(UTC) - timedelta(hours=checks)
    columns = [{"name": f"col{c}", "drifted": c % 4 == 0, "statistic": 0.1 * c} for c in range(8)]
    with ws.metadata.write(actor="bench", action="bench.filled", subject="bench") as tx:
        tx.conn.execute(
            insert(tables.registered_models),
            [{"name": n, "created_at": now, "created_by": "bench"} for n in extra],
        )
        tx.conn.execute(insert(mv), [{**template, "name": n, "version": v} for n, v in plan])
        for n, v in plan:
            tx.record("model.promoted", f"model:{n}/{v}",
                      {"alias": "challenger", "from": v - 1 or None, "to": v, "forced": False,
                       "first": v == 1, "gate": {"auc": 0.8}})  # fmt: skip
        tx.conn.execute(
            insert(tables.model_aliases),
            [{"name": n, "alias": "champion", "version": 5, "updated_at": now,
              "updated_by": "bench"} for n in extra],
        )  # fmt: skip
        rows = []
        for n in ["credit", *extra]:
            for c in range(checks):
                drifted = (c + len(n)) % 7 == 0
                rows.append({
                    "model_name": n, "model_version": 1, "reference": "data:credit@1",
                    "current": f"log:{n}", "window_start": None, "window_end": None,
                    "at": utc_timestamp(start + timedelta(hours=c)), "dataset_drift": drifted,
                    "share_drifted": 0.6 if drifted else 0.25,
                    "result": json.dumps({"status": "ok", "columns": columns}),
                })  # fmt: skip
        tx.conn.execute(insert(tables.drift_results), rows)
    return ["credit", *extra]


def fill_events(ws: Any, events: int) -> None:
    while (have := ws.audit.head().seq) < events:
        with ws.metadata.write(actor="bench", action="bench.filled", subject="bench") as tx:
            for i in range(have, min(have + 4999, events - 1)):
                tx.record("audit.note", "workspace", {"text": f"event {i}"})


def floor(ws: Any) -> dict[str, float]:
    """The runs page's SQL (page + count, default order) in this process: p50 of 40, in ms."""
    times = []
    for _ in range(40):
        t0 = time.perf_counter()
        ws.pipelines.run_table(limit=25)
        times.append((time.perf_counter() - t0) * 1000)
    return _stats(times)


def _stats(times: list[float]) -> dict[str, float]:
    s = sorted(times)
    return {
        "p50": s[len(s) // 2],
        "p95": s[min(len(s) - 1, int(len(s) * 0.95))],
        "max": s[-1],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--backend", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--requests", type=int, default=40)
    parser.add_argument("--runs", type=int, default=RUNS)
    parser.add_argument("--events", type=int, default=EVENTS)
    parser.add_argument("--versions", type=int, default=VERSIONS)
    args = parser.parse_args()

    import httpx

    from modelcycle import init_workspace
    from modelcycle.datasets import make_credit
    from modelcycle.store.tokens import TokenStore

    tmp = Path(tempfile.mkdtemp(prefix="mc-bench-console-"))
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
        ws.datasets.add("credit", make_credit(1500, seed=1))
        real = [
            ws.pipelines.train(
                data="credit@1", target="default", model="logreg", seed=s, params={"C": c},
                progress=False,
            ).id
            for s, c in ((0, 1.0), (7, 0.5))
        ]  # fmt: skip
        ws.registry.promote("credit/1", to="champion", force=True, reason="bench")
        synthetic = fill_runs(ws, args.runs)
        names = fill_models(ws, args.versions, CHECKS_PER_MODEL)
        fill_events(ws, args.events)
        print(
            f"filled {args.runs + 2} runs, {len(ws.registry.list())} model versions of "
            f"{len(names)} models and {ws.audit.head().seq} audit events "
            f"in {time.perf_counter() - t0:.0f} s ({args.backend})"
        )
        _, token = TokenStore(ws.metadata, "bench").create("bench", "reader")
        server, base = start_api_server(ws.root)
        ten = ",".join(real + synthetic[-8:])
        pages = {
            "overview": "/",
            "models": "/models",
            "model credit (100 v)": "/models/credit",
            "model m07 (5 v)": "/models/m07",
            "version credit/2": "/models/credit/versions/2",
            "why credit@champion": "/audit/why?subject=model:credit@champion",
            "runs": "/runs",
            "runs sort=m:auc": "/runs?sort=m:auc&order=desc",
            "runs sort=duration": "/runs?sort=duration&order=desc",
            "runs dataset+status": "/runs?dataset=credit@2&status=succeeded",
            "runs page 300": "/runs?page=300",
            "compare 2": f"/runs/compare?ids={','.join(real)}",
            "compare 10": f"/runs/compare?ids={ten}",
            "run": f"/runs/{real[1]}",
            "audit": "/audit",
            "audit actor=bench": "/audit?actor=bench&action=run.started",
            "audit older": f"/audit?before={args.events // 2}",
        }
        fl = floor(ws)
        print(f"floor (runs page SQL in-process): p50 {fl['p50']:.1f} ms, p95 {fl['p95']:.1f} ms")
        print(f"{'page':22} | {'p50 ms':>7} {'p95 ms':>7} {'max ms':>7} | {'KB':>5} | < 300 ms")
        failed = []
        with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}) as client:
            for name, path in pages.items():
                times, size = [], 0
                for i in range(args.requests + 3):
                    t = time.perf_counter()
                    answer = client.get(path)
                    elapsed = (time.perf_counter() - t) * 1000
                    if answer.status_code != 200:
                        server.terminate()
                        log = server.communicate(timeout=30)[1].decode(errors="replace")
                        raise SystemExit(f"{path}: {answer.status_code}\n{log[-3000:]}")
                    size = len(answer.content)
                    if i >= 3:  # the first requests warm the server's caches and templates
                        times.append(elapsed)
                s = _stats(times)
                ok = s["p95"] < BUDGET_MS
                if not ok:
                    failed.append(name)
                print(
                    f"{name:22} | {s['p50']:7.1f} {s['p95']:7.1f} {s['max']:7.1f} | "
                    f"{size / 1024:5.0f} | {'yes' if ok else 'NO'}"
                )
        print("all pages under 300 ms (p95)" if not failed else f"over budget: {failed}")
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=30)
        if pg is not None:
            pg.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
