"""The prediction log in-process, on both backends: batches, spill, ingest, readers, tokens."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from sqlalchemy import func, select

from modelcycle import Workspace
from modelcycle.audit import utc_timestamp
from modelcycle.errors import Forbidden, InvalidInput, NotReady, Unauthorized
from modelcycle.scoring import (
    LogRecord,
    PredictionLog,
    ingest_spill,
    read_feedback,
    read_predictions,
)
from modelcycle.scoring.feedback import parse_feedback, store_feedback
from modelcycle.store import MetadataStore, tables
from modelcycle.store.tokens import TokenStore


def _record(rid: str, n: int = 1, *, version: int = 1, shadow: bool = False) -> LogRecord:
    return LogRecord(
        request_id=rid,
        model_name="m",
        model_version=version,
        inputs=pa.table({"x": pa.array(np.arange(n, dtype=np.float64)), "k": ["a"] * n}),
        predictions=np.arange(n) % 2,
        probabilities=None,
        classes=[0, 1],
        latency_ms=1.5,
        at=utc_timestamp(),
        shadow=shadow,
    )


def _rows(meta: MetadataStore) -> int:
    with meta.read() as conn:
        return int(
            conn.execute(select(func.count()).select_from(tables.prediction_log)).scalar_one()
        )


def test_log_batches_reads_back_and_drains_on_close(workspace: Workspace, tmp_path: Path) -> None:
    log = PredictionLog(workspace.metadata, tmp_path / "spill", flush_interval=0.05)
    log.start()
    rid = "r" * 150  # request ids up to 160 characters fit on PostgreSQL too
    for i in range(50):
        assert log.submit(_record(f"{rid[:140]}-{i}", n=3))
    log.submit(_record("shadow-1", version=2, shadow=True))
    proba = _record("p-1", n=2)
    log.submit(
        LogRecord(**{**{f: getattr(proba, f) for f in proba.__slots__}, "model_name": "p",
                     "predictions": None, "probabilities": np.array([[0.9, 0.1], [0.2, 0.8]])})
    )  # fmt: skip
    log.close()
    assert log.stats.logged_rows == 153
    assert log.stats.dropped_rows == 0
    assert not log.submit(_record("late"))  # closed: refused and counted
    table = read_predictions(workspace.metadata, "m")
    assert table.num_rows == 150
    assert table.column_names == [
        "x",
        "k",
        "prediction",
        "model_version",
        "request_id",
        "row_index",
        "at",
    ]
    assert table.column("row_index").to_pylist()[:3] == [0, 1, 2]
    assert table.column("prediction").to_pylist()[:3] == [0, 1, 0]
    assert read_predictions(workspace.metadata, "m", include_shadow=True).num_rows == 151
    later = read_predictions(workspace.metadata, "m", since="2999-01-01T00:00:00.000000Z")
    assert later.num_rows == 0
    assert "prediction" in later.column_names
    with pytest.raises(InvalidInput):
        PredictionLog(workspace.metadata, tmp_path, sample=1.5)
    p = read_predictions(workspace.metadata, "p")
    assert p.column("prediction").to_pylist() == [0, 1]  # the most probable class
    assert p.column("probabilities").to_pylist() == [[0.9, 0.1], [0.2, 0.8]]


def test_spill_then_ingest_is_idempotent(workspace: Workspace, tmp_path: Path) -> None:
    spill = tmp_path / "spill"
    down = MetadataStore("sqlite:////nonexistent-dir/x/y.db")  # any write fails at once
    log = PredictionLog(down, spill, flush_interval=0.05, db_timeout=0.2)
    log.start(ingest_leftovers=False)
    for i in range(20):
        log.submit(_record(f"s-{i}", n=2))
    deadline = time.monotonic() + 10
    while log.stats.spilled_rows < 40 and time.monotonic() < deadline:
        time.sleep(0.05)
    # Still open (locked) by its writer: an ingester leaves it alone.
    assert ingest_spill(workspace.metadata, spill).busy_files == 1
    log.close()
    assert log.stats.spilled_rows == 40
    assert log.stats.dropped_rows == 0
    (path,) = spill.glob("predictions-*.jsonl")
    content = path.read_bytes()
    path.write_bytes(content + b'{"torn": ')  # a writer killed mid-line
    done = ingest_spill(workspace.metadata, spill)
    assert (done.files, done.rows, done.bad_lines) == (1, 40, 1)
    path.write_bytes(content)  # the same file again: replaced, not duplicated
    assert ingest_spill(workspace.metadata, spill).rows == 40
    assert _rows(workspace.metadata) == 40


def test_append_rows_gives_up_when_the_table_is_locked(workspace: Workspace) -> None:
    meta = workspace.metadata
    row = {"request_id": "t", "row_index": 0, "model_name": "m", "model_version": 1,
           "source": "online", "job_id": None, "shadow": False, "at": utc_timestamp(),
           "latency_ms": None, "inputs": "{}", "outputs": "{}"}  # fmt: skip
    other = MetadataStore(meta.url)
    try:
        with meta.write(actor="tester", action="test.locked", subject="x") as tx:
            if meta.dialect == "postgresql":
                tx.conn.exec_driver_sql("LOCK TABLE prediction_log IN ACCESS EXCLUSIVE MODE")
            started = time.monotonic()
            with pytest.raises(NotReady):
                other.append_rows(tables.prediction_log, [row], timeout=0.3)
            assert time.monotonic() - started < 5
        assert other.append_rows(tables.prediction_log, [row], timeout=0.3) == 1
    finally:
        other.close()


def test_feedback_store_and_read(workspace: Workspace, tmp_path: Path) -> None:
    log = PredictionLog(workspace.metadata, tmp_path / "spill", flush_interval=0.05)
    log.start()
    log.submit(_record("f-1", n=2))
    log.close()
    items = parse_feedback({"feedback": [{"request_id": "f-1", "label": 1, "row": 1},
                                         {"request_id": "nope", "label": "x"}]})  # fmt: skip
    result = store_feedback(workspace.metadata, items)
    assert (result.stored, result.matched, result.unmatched) == (2, 1, 1)
    got = read_feedback(workspace.metadata, "m").to_pylist()
    assert [(g["request_id"], g["row_index"], g["label"]) for g in got] == [("f-1", 1, 1)]


def test_tokens_roles_and_revocation(workspace: Workspace) -> None:
    store = TokenStore(workspace.metadata, "tester")
    assert not store.snapshot().enabled
    rec, token = store.create("ci", "scorer")
    check = store.snapshot()
    assert check.enabled
    assert check.authorize(f"Bearer {token}", "scorer") == (
        rec.token_id,
        "scorer",
    )
    with pytest.raises(Forbidden):
        check.authorize(f"Bearer {token}", "operator")
    for bad in (None, "", "Basic abc", f"Bearer {token}x", "Bearer mc_zzzzzzzzzzzz_x"):
        with pytest.raises(Unauthorized):
            check.authorize(bad, "reader")
    with pytest.raises(InvalidInput):
        store.create("x", "root")
    store.revoke(rec.token_id)
    assert not store.snapshot().enabled
    events = [e.action for e in workspace.audit.events()]
    assert events[-2:] == ["token.created", "token.revoked"]
    assert token not in str(store.list())
