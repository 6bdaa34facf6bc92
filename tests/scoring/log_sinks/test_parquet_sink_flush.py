"""The Parquet sink flushes by size and by time while the log runs (not only at shutdown),
one part per model and hour, and its hourly aggregates add up over the parts."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from modelcycle import Workspace
from modelcycle.errors import InvalidInput
from modelcycle.scoring import LogRecord, PredictionLog, read_predictions
from modelcycle.scoring.log_sinks import (
    SinkOptions,
    check_log_sink,
    read_hourly,
    scoring_section,
    sink_class,
)
from modelcycle.scoring.log_sinks.aggregates import latency_quantile


def _record(i: int, at: float, model: str = "m") -> LogRecord:
    return LogRecord(
        request_id=f"r-{i}", model_name=model, model_version=1,
        inputs=np.array([[float(i), 1.0]]), predictions=np.array([i % 3]), probabilities=None,
        classes=None, latency_ms=float(i), at=at, columns=("x", "y"),
    )  # fmt: skip


def _log(ws: Workspace, tmp_path: Path, rows: int, seconds: float) -> PredictionLog:
    options = SinkOptions(
        ws.metadata, tmp_path / "spill", artifacts_url=str(tmp_path / "store"),
        flush_rows=rows, flush_seconds=seconds,
    )  # fmt: skip
    log = PredictionLog(ws.metadata, tmp_path / "spill", flush_interval=0.02,
                        sink=sink_class("parquet")(options, None))  # fmt: skip
    log.start(ingest_leftovers=False)
    return log


def _wait_rows(ws: Workspace, model: str, n: int) -> int:
    deadline = time.monotonic() + 15
    got = 0
    while time.monotonic() < deadline:
        got = read_predictions(ws.metadata, model).num_rows
        if got >= n:
            break
        time.sleep(0.05)
    return got


def test_flush_by_size_then_by_time(workspace: Workspace, tmp_path: Path) -> None:
    now = time.time()
    log = _log(workspace, tmp_path, rows=10, seconds=3600)
    for i in range(5):
        log.submit(_record(i, now))
    time.sleep(0.3)
    assert read_predictions(workspace.metadata, "m").num_rows == 0  # buffered, not written
    assert log.sink.buffered_rows == 5  # type: ignore[attr-defined]
    for i in range(5, 12):
        log.submit(_record(i, now))
    assert _wait_rows(workspace, "m", 10) >= 10  # the buffer reached 10 rows: a part
    log.close()
    assert read_predictions(workspace.metadata, "m").num_rows == 12

    timed = _log(workspace, tmp_path, rows=10**6, seconds=0.2)
    for i in range(3):
        timed.submit(_record(i, now, model="t"))
    assert _wait_rows(workspace, "t", 3) == 3  # written by age while the log still runs
    timed.close()


def test_parts_per_model_and_hour_and_hourly_aggregates(
    workspace: Workspace, tmp_path: Path
) -> None:
    hour = 3600.0
    base = (time.time() // hour - 3) * hour  # three hours ago, on the hour
    log = _log(workspace, tmp_path, rows=10**6, seconds=3600)
    for i in range(40):  # 20 in each of two hours
        log.submit(_record(i, base + (i // 20) * hour + i))
    log.submit(_record(99, base, model="other"))
    log.close()
    parts = sorted((tmp_path / "store" / "prediction-log").rglob("*.parquet"))
    assert len(parts) == 3  # (m, hour 1), (m, hour 2), (other, hour 1)
    assert [pq.read_metadata(p).num_rows for p in parts if "model=m/" in str(p)] == [20, 20]
    hours = read_hourly(workspace.metadata, "m")
    assert [h["rows"] for h in hours] == [20, 20]
    assert hours[0]["hour"] < hours[1]["hour"]
    x = hours[1]["columns"]["x"]
    assert (x["count"], x["min"], x["max"], x["sum"]) == (20, 20.0, 39.0, float(sum(range(20, 40))))
    assert hours[0]["columns"]["prediction"]["count"] == 20
    assert latency_quantile(hours[0]["latency"], 0.5) == pytest.approx(9.0, rel=0.02)  # 0..19 ms
    assert hours[0]["errors"] == 0


def test_scoring_section_names_the_key() -> None:
    assert scoring_section({}).log_sink == "database"
    with pytest.raises(InvalidInput, match=r"scoring\.log_flush_rows"):
        scoring_section({"scoring": {"log_sink": "parquet", "log_flush_rows": 0}})
    with pytest.raises(InvalidInput, match=r"scoring\.flush"):
        scoring_section({"scoring": {"flush": 1}})
    parquet = {"scoring": {"log_sink": "parquet"}}
    assert check_log_sink(parquet, "s3://bucket/prefix").log_sink == "parquet"
    with pytest.raises(InvalidInput, match="local folder or an s3:// artifact store"):
        check_log_sink(parquet, "memory://x")
