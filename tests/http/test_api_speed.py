"""The long lists stay cheap: one query a page, no stale-run sweep on every read, and each run
shown as stored (the figures are in bench/bench_api.py and docs/api.md, not timed here)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager

from _api import Api
from sqlalchemy import event

from modelcycle.audit import utc_timestamp
from modelcycle.entities import Run
from modelcycle.liveness import hostname
from modelcycle.pipelines.records import RunRecords


@contextmanager
def _statements(api: Api) -> Iterator[list[str]]:
    seen: list[str] = []

    def record(conn: object, cursor: object, statement: str, *args: object) -> None:
        seen.append(statement)

    engine = api.ws.metadata.engine
    event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", record)


def _run(run_id: str, *, pid: int | None, params: dict[str, object]) -> Run:
    return Run(
        id=run_id, pipeline="p", ref=None, status="running", params=params,
        metrics={"auc": 0.5}, code={"big": "x" * 1000}, environment={"packages": ["a"] * 50},
        datasets=["d@1"], models=[], started_at=utc_timestamp(), created_by="tester",
        hostname=hostname(), pid=pid,
    )  # fmt: skip


def test_run_pages_read_once_each_and_sweep_dead_runs_on_a_schedule(api: Api) -> None:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    records = RunRecords(api.ws.metadata, "tester")
    records.create(_run("deadrun1", pid=dead.pid, params={"nested": {"a": [1, 2.5, None]}}))
    for i in range(5):
        records.create(_run(f"live{i:04d}", pid=None, params={"i": i}))
    with api.client("reader") as c:
        first = c.get("/runs", params={"limit": 3})
        assert first.status_code == 200, first.text
        # The first listing of the process sweeps: the dead run is failed, as `runs list` does.
        everything = c.get("/runs", params={"limit": 50}).json()["items"]
        by_id = {r["id"]: r for r in everything}
        assert by_id["deadrun1"]["status"] == "failed"
        assert by_id["deadrun1"]["failure"] == "stale"
        assert by_id["deadrun1"]["params"] == {"nested": {"a": [1, 2.5, None]}}
        assert by_id["live0001"]["metrics"] == {"auc": 0.5}
        assert by_id["live0001"]["datasets"] == ["d@1"]
        # A listing shows what RunOut declares, not the run's code or environment.
        assert set(by_id["live0001"]) == {
            "id", "pipeline", "status", "failure", "params", "metrics", "datasets", "models",
            "started_at", "finished_at", "created_by",
        }  # fmt: skip
        with _statements(api) as seen:
            for _ in range(10):
                page = c.get("/runs", params={"limit": 3})
                assert page.status_code == 200
                assert len(page.json()["items"]) == 3
                assert page.headers["content-type"] == "application/json"
    # One SELECT on runs a page (no sweep of running runs each time, no query per run).
    on_runs = [s for s in seen if "FROM runs" in s]
    assert len(on_runs) == 10, on_runs


def test_audit_pages_read_once_each(api: Api) -> None:
    with api.client("reader") as c:
        c.get("/audit/events", params={"limit": 2})
        with _statements(api) as seen:
            for _ in range(5):
                page = c.get("/audit/events", params={"limit": 2})
                assert page.status_code == 200
                body = page.json()
                assert len(body["items"]) == 2
                assert body["next"]
                assert set(body["items"][0]) == {
                    "seq", "at", "actor", "action", "subject", "payload", "prev_hash", "hash",
                }  # fmt: skip
    assert len([s for s in seen if "FROM audit_events" in s]) == 5
