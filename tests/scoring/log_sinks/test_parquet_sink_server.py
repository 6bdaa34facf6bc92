"""A real ``modelcycle serve`` with ``[scoring] log_sink = "parquet"``: every answered request
is in the log after SIGTERM; after SIGKILL with the object store unreachable, the spilled
parts are ingested by the next start; a bad ``[scoring]`` value exits 2 naming the key."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pyarrow as pa
import pytest
from _scoring_helpers import ServerProcess, ridge_frame, rows_of
from sklearn.linear_model import Ridge

from _cli import run_cli
from modelcycle import Workspace, init_workspace
from modelcycle.scoring import LogRecord, PredictionLog, read_predictions
from modelcycle.scoring.log_sinks import SinkOptions, sink_class


@pytest.fixture(scope="module")
def ws(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Workspace]:
    root = tmp_path_factory.mktemp("parquet-serve") / "ws"
    with pytest.MonkeyPatch.context() as mp:
        for var in ("MODELCYCLE_HOME", "MODELCYCLE_DB_URL", "MODELCYCLE_ARTIFACTS"):
            mp.delenv(var, raising=False)
        mp.setenv("MODELCYCLE_ACTOR", "tester")
        workspace, _ = init_workspace(root)
        x, y = ridge_frame()
        model = Ridge().fit(x, y)
        workspace.registry.register(model, "ridge", input_example=x.head(20))
        workspace.registry.register(model, "ridgek", input_example=x.head(20))
        try:
            yield workspace
        finally:
            workspace.close()


def _configure(ws: Workspace, text: str) -> None:
    (ws.root / "modelcycle.toml").write_text(text)


def _send(proc: ServerProcess, prefix: str, n: int) -> list[str]:
    frame, _ = ridge_frame()
    ids = []
    with httpx.Client(base_url=proc.url, timeout=30) as client:
        for i in range(n):
            rid = f"{prefix}-{i}"
            body = {"dataframe_records": rows_of(frame, 1 + i % 3, start=i)}
            answer = client.post("/invocations", json=body, headers={"X-Request-ID": rid})
            assert answer.status_code == 200, answer.text
            ids.append(rid)
    return ids


def _logged(ws: Workspace, prefix: str, model: str = "ridge") -> set[str]:
    ids = read_predictions(ws.metadata, model).column("request_id").to_pylist()
    return {r for r in ids if r.startswith(prefix + "-")}


def test_every_request_is_in_the_parquet_log_after_sigterm(ws: Workspace, tmp_path: Path) -> None:
    # An hour's flush interval: only the shutdown drain can have written these rows.
    _configure(ws, '[scoring]\nlog_sink = "parquet"\nlog_flush_seconds = 3600\n')
    proc = ServerProcess(ws.root, "ridge/1", log=tmp_path / "server.log")
    try:
        proc.wait_ready()
        ids = _send(proc, "term", 30)
        assert not _logged(ws, "term")  # still buffered: not in the database, not in a part
    finally:
        assert proc.stop() == 0, proc.log()
    assert _logged(ws, "term") == set(ids)
    rows = read_predictions(ws.metadata, "ridge")
    assert sum(1 for r in rows.column("request_id").to_pylist() if r.startswith("term-")) == sum(
        1 + i % 3 for i in range(30)
    )
    parts = list((ws.settings.state_dir / "artifacts" / "prediction-log").rglob("*.parquet"))
    assert parts
    assert all("/model=ridge/date=" in str(p) and "/hour=" in str(p) for p in parts)
    assert not list((ws.settings.state_dir / "artifacts" / "prediction-log").rglob("*.tmp"))


def test_after_sigkill_spilled_rows_are_ingested_on_the_next_start(
    ws: Workspace, tmp_path: Path
) -> None:
    # Every batch flushed at once, and the model's folder in the object store unwritable (a
    # file where the folder should be): each part is spilled to local disk.
    _configure(ws, '[scoring]\nlog_sink = "parquet"\nlog_flush_rows = 1\n')
    blocked = ws.settings.state_dir / "artifacts" / "prediction-log" / "model=ridgek"
    blocked.parent.mkdir(parents=True, exist_ok=True)
    blocked.write_text("in the way")
    proc = ServerProcess(ws.root, "ridgek/1", log=tmp_path / "first.log")
    try:
        proc.wait_ready()
        ids = _send(proc, "kill", 20)
        spill = ws.settings.state_dir / "spill"
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            spilled = sum(pq_rows(p) for p in spill.glob("predictions-*.parquet"))
            if spilled >= sum(1 + i % 3 for i in range(20)):
                break
            time.sleep(0.1)
        else:
            raise AssertionError(f"not every row was spilled:\n{proc.log()}")
        os.killpg(proc.proc.pid, signal.SIGKILL)
        proc.proc.wait(10)
    finally:
        proc.stop()
    assert not _logged(ws, "kill", "ridgek")
    blocked.unlink()
    again = ServerProcess(ws.root, "ridgek/1", log=tmp_path / "second.log")
    try:
        again.wait_ready()
        deadline = time.monotonic() + 20
        while _logged(ws, "kill", "ridgek") != set(ids) and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        assert again.stop() == 0, again.log()
    assert _logged(ws, "kill", "ridgek") == set(ids)
    assert not list(spill.glob("predictions-*"))


def pq_rows(path: Path) -> int:
    import pyarrow.parquet as pq

    return int(pq.read_metadata(path).num_rows)


def test_a_bad_log_sink_exits_2_naming_the_key(ws: Workspace) -> None:
    _configure(ws, '[scoring]\nlog_sink = "kafka"\n')
    try:
        proc = run_cli("serve", "ridge/1", "--port", "0", cwd=ws.root)
    finally:
        _configure(ws, "")
    assert proc.returncode == 2, proc.stderr
    assert "scoring.log_sink" in proc.stderr
    assert "database, parquet" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_ingest_spill_command_commits_spilled_parts(ws: Workspace, tmp_path: Path) -> None:
    spill = ws.settings.state_dir / "spill"
    (tmp_path / "a-file").write_text("not a folder")
    options = SinkOptions(ws.metadata, spill, artifacts_url=str(tmp_path / "a-file" / "store"))
    log = PredictionLog(ws.metadata, spill, sink=sink_class("parquet")(options, None))
    log.start(ingest_leftovers=False)
    frame, _ = ridge_frame()
    ids = [f"cli-{i}" for i in range(5)]
    for i, rid in enumerate(ids):
        log.submit(
            LogRecord(rid, "ridgek", 1, pa.Table.from_pandas(frame.iloc[i : i + 1]),
                      np.array([0.5]), None, None, 1.0, time.time())
        )  # fmt: skip
    log.close()
    assert log.stats.spilled_rows == 5
    _configure(ws, '[scoring]\nlog_sink = "parquet"\n')
    try:
        proc = run_cli("predictions", "ingest-spill", cwd=ws.root)
    finally:
        _configure(ws, "")
    assert proc.returncode == 0, proc.stderr
    assert "Ingested 5 row(s) from 1 spill file(s)" in proc.stdout
    assert _logged(ws, "cli", "ridgek") == set(ids)
