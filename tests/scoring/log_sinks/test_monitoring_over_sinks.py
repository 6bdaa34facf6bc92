"""Monitoring reads the window from whichever sink holds it: the same predictions logged
through the database sink and through the Parquet sink give the same drift check and the same
performance from feedback; the Parquet sink's hourly aggregates add up."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from _scoring_helpers import credit_model

from modelcycle import Workspace
from modelcycle.datasets import make_credit
from modelcycle.monitoring.drift_columns import ColumnDrift
from modelcycle.scoring import LogRecord, PredictionLog
from modelcycle.scoring.feedback import FeedbackItem, store_feedback
from modelcycle.scoring.log_sinks import open_log_sink, read_hourly
from modelcycle.scoring.log_sinks.aggregates import latency_quantile

NOW = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
TARGET = "default"


def _records(model: Any, prefix: str, start: datetime, n: int) -> list[LogRecord]:
    rows = make_credit(n, seed=7, drift=1.0).drop_columns([TARGET])
    preds = np.asarray(model.predict(rows.to_pandas()))
    proba = np.asarray(model.predict_proba(rows.to_pandas()))
    classes = [c.item() for c in model.classes_]
    return [
        LogRecord(
            request_id=f"{prefix}-{i}",
            model_name="credit",
            model_version=1,
            inputs=rows.slice(i, 1),
            predictions=preds[i : i + 1],
            probabilities=proba[i : i + 1],
            classes=classes,
            latency_ms=float(1 + i % 10),
            at=(start + timedelta(seconds=5 * i)).timestamp(),
        )
        for i in range(n)
    ]


def _columns(columns: list[ColumnDrift]) -> dict[str, tuple[object, ...]]:
    out: dict[str, tuple[object, ...]] = {}
    for c in columns:
        stat = None if c.statistic is None else round(c.statistic, 9)
        p = None if c.p_value is None else round(c.p_value, 9)
        out[c.name] = (c.method, stat, p, c.drifted, c.current_rows, c.distinct, c.status)
    return out


def test_drift_and_performance_match_over_either_sink(workspace: Workspace, tmp_path: Path) -> None:
    ws = workspace
    train = make_credit(1500, seed=0)
    ws.datasets.add("credit", train)
    frame = train.drop_columns([TARGET]).to_pandas()
    model = credit_model(frame, train.column(TARGET).to_numpy())
    ws.registry.register(model, "credit", input_example=frame.head(50), datasets=["credit@1"])
    n = 300
    db_start, pq_start = NOW - timedelta(hours=5), NOW - timedelta(hours=2)
    db_log = PredictionLog(ws.metadata, tmp_path / "s1")
    sink = open_log_sink(
        {"scoring": {"log_sink": "parquet"}},
        ws.metadata,
        tmp_path / "s2",
        artifacts_url=ws.settings.artifacts_url,
    )
    pq_log = PredictionLog(ws.metadata, tmp_path / "s2", sink=sink)
    for log, prefix, start in ((db_log, "db", db_start), (pq_log, "pq", pq_start)):
        log.start(ingest_leftovers=False)
        for rec in _records(model, prefix, start, n):
            assert log.submit(rec)
        log.close()
        assert log.stats.logged_rows == n
    # Labels sent to another process than the one that scored: unmatched on arrival.
    truth = make_credit(n, seed=7, drift=1.0).column(TARGET).to_pylist()
    items = [
        FeedbackItem(f"{p}-{i}", label, 0) for p in ("db", "pq") for i, label in enumerate(truth)
    ]
    store_feedback(ws.metadata, items)

    hour = timedelta(hours=1)
    a = ws.monitoring.drift(
        model="credit/1", since=db_start, until=db_start + hour, now=NOW, store=False
    )
    b = ws.monitoring.drift(
        model="credit/1", since=pq_start, until=pq_start + hour, now=NOW, store=False
    )
    assert a.report.current["rows"] == b.report.current["rows"] == n
    assert a.report.dataset_drift == b.report.dataset_drift
    assert a.report.dataset_drift  # drifted traffic: a check that can tell the two apart
    assert _columns(a.report.columns) == _columns(b.report.columns)
    if a.prediction is not None or b.prediction is not None:
        assert a.prediction is not None
        assert b.prediction is not None
        assert _columns(a.prediction.columns) == _columns(b.prediction.columns)
    pa_, pb = (
        ws.monitoring.performance(
            "credit/1", window="1h", since=s, until=s + hour, now=NOW, record=False
        )
        for s in (db_start, pq_start)
    )
    (wa,), (wb,) = pa_.windows[-1:], pb.windows[-1:]
    assert wa.labelled == wb.labelled == n
    assert wa.metrics == pytest.approx(wb.metrics)

    hours = read_hourly(ws.metadata, "credit")
    assert sum(h["rows"] for h in hours) == n  # only the Parquet sink keeps aggregates
    assert sum(h["requests"] for h in hours) == n
    latency: dict[str, int] = {}
    for h in hours:
        for k, v in h["latency"].items():
            latency[k] = latency.get(k, 0) + v
    assert latency_quantile(latency, 0.5) == pytest.approx(5.0, rel=0.02)
    income = hours[0]["columns"]["income"]
    assert income["kind"] == "numeric"
    assert income["count"] + income["nulls"] == hours[0]["rows"]
