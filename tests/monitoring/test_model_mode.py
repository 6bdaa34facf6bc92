"""Model mode: the prediction log of a window vs the training data, prediction drift,
performance from feedback joined by request id, scheduled checks.

Rows go straight into ``tables.prediction_log`` / ``tables.feedback`` in the scoring writer's
format (inputs and outputs JSON, labels JSON values); monitoring reads them back through
``modelcycle.scoring.read_predictions`` / ``read_feedback``.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pyarrow as pa
import pytest
from sqlalchemy import insert

from modelcycle import Workspace
from modelcycle.audit import utc_timestamp
from modelcycle.datasets import make_credit
from modelcycle.errors import InvalidInput
from modelcycle.monitoring.schedule import MonitorEntry, monitor_entries, run_scheduled_check
from modelcycle.store import tables

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
TARGET = "default"


def _log(
    ws: Workspace, model: str, version: int, rows: pa.Table, start: datetime, prefix: str
) -> tuple[list[str], list[int]]:
    """Score ``rows`` with the model and log them one request each, a second apart."""
    loaded = ws.registry.load(f"{model}/{version}")
    features = rows.drop_columns([TARGET])
    predictions = loaded.predict(features)
    probabilities = loaded.predict_proba(features)
    inputs = features.to_pylist()
    has_row_index = "row_index" in tables.prediction_log.c
    values: list[dict[str, Any]] = []
    ids = []
    for i, row in enumerate(inputs):
        rid = f"{prefix}-{i}"
        ids.append(rid)
        value = {
            "request_id": rid,
            "model_name": model,
            "model_version": version,
            "source": "online",
            "job_id": None,
            "shadow": False,
            "at": utc_timestamp(start + timedelta(seconds=i)),
            "latency_ms": 1.0,
            "inputs": json.dumps(row),
            "outputs": json.dumps(
                {"prediction": predictions[i].item(), "probabilities": probabilities[i].tolist()}
            ),
        }
        if has_row_index:
            value["row_index"] = 0
        values.append(value)
    with ws.metadata.engine.begin() as conn:
        conn.execute(insert(tables.prediction_log), values)
    return ids, [int(v) for v in rows.column(TARGET).to_pylist()]


def _feedback(ws: Workspace, ids: list[str], labels: list[Any]) -> None:
    with ws.metadata.engine.begin() as conn:
        conn.execute(
            insert(tables.feedback),
            [
                {
                    "request_id": rid,
                    "model_name": None,
                    "label": str(label),
                    "at": utc_timestamp(NOW),
                }
                for rid, label in zip(ids, labels, strict=True)
            ],
        )


def test_model_mode_drift_empty_window_performance_and_schedule(
    workspace: Workspace, cli: Any
) -> None:
    ws = workspace
    ws.datasets.add("credit", make_credit(3000, seed=0))
    ws.pipelines.train(data="credit@1", target=TARGET, progress=False)
    mv = ws.registry.get("credit@challenger")

    # An hour of drifted traffic, and an older hour of ordinary traffic.
    drifted_ids, drifted_truth = _log(
        ws,
        "credit",
        mv.version,
        make_credit(400, seed=7, drift=1.0),
        NOW - timedelta(minutes=50),
        "d",
    )
    calm_ids, calm_truth = _log(
        ws, "credit", mv.version, make_credit(400, seed=8), NOW - timedelta(hours=3), "c"
    )

    check = ws.monitoring.drift(model="credit@challenger", window="1h", now=NOW)
    assert check.model == mv.ref
    assert check.id is not None
    assert check.report.reference["name"] == "data:credit@1"
    assert check.report.current["rows"] == 400
    assert {c.name for c in check.report.columns} == set(make_credit(2).column_names) - {TARGET}
    assert check.report.dataset_drift
    assert check.detected
    assert check.prediction is not None
    assert check.prediction.status == "ok"
    assert check.prediction.columns[0].type == "categorical"
    calm = ws.monitoring.drift(
        model="credit", since=NOW - timedelta(hours=4), until=NOW - timedelta(hours=2)
    )
    assert calm.report.current["rows"] == 400
    assert not calm.report.dataset_drift

    # An empty window: "not enough data", stored, never an alarm.
    empty = ws.monitoring.drift(
        model=f"credit/{mv.version}", window="1h", now=NOW + timedelta(days=1)
    )
    assert empty.report.status == "not_enough_data"
    assert not empty.report.dataset_drift
    assert not empty.detected
    assert empty.prediction is not None
    assert empty.prediction.status == "not_enough_data"
    assert any("not enough data" in n for n in empty.notes)
    detected = [e for e in ws.audit.events() if e.action == "drift.detected"]
    assert len(detected) == 1
    assert detected[0].subject == f"model:{mv.ref}"

    # The CLI: model mode with a report, then the history.
    since, until = utc_timestamp(NOW - timedelta(hours=1)), utc_timestamp(NOW)
    report = ws.root / "out.html"
    proc = cli("monitor", "drift", "--model", "credit@challenger", "--since", since, "--until",
               until, "--report", str(report), "--json", check=True)  # fmt: skip
    data = json.loads(proc.stdout)
    assert data["dataset_drift"] is True
    assert data["prediction_drift"]["number_of_columns"] == 1
    assert report.is_file()
    assert "Prediction drift" in report.read_text()
    history = json.loads(
        cli("monitor", "history", "--model", "credit", "--json", check=True).stdout
    )
    assert [h["status"] for h in history] == ["ok", "ok", "not_enough_data", "ok"]

    # Performance: feedback joined by request id, per window, against the holdout metrics.
    _feedback(ws, drifted_ids, drifted_truth)
    _feedback(ws, calm_ids[:300], calm_truth[:300])
    perf = ws.monitoring.performance(
        "credit@challenger", window="1h", since=NOW - timedelta(hours=4), now=NOW
    )
    assert [w.predictions for w in perf.windows] == [0, 400, 0, 400]
    assert [w.labelled for w in perf.windows] == [0, 300, 0, 400]
    calm_window = perf.windows[1]
    # ROC AUC needs probabilities, which scoring.read_predictions does not return (yet).
    assert {"accuracy", "f1"} <= set(calm_window.metrics)
    assert calm_window.baseline["accuracy"] == pytest.approx(mv.metrics["accuracy"])
    assert perf.windows[0].status == "not_enough_data"
    # Flipped labels for the last window: the model looks far worse than on its holdout.
    flipped = [f"x-{i}" for i in range(60)]
    _log(ws, "credit", mv.version, make_credit(60, seed=11), NOW - timedelta(minutes=5), "x")
    _feedback(
        ws, flipped, [1 - int(v) for v in make_credit(60, seed=11).column(TARGET).to_pylist()]
    )
    bad = ws.monitoring.performance("credit@challenger", window="10m", now=NOW)
    assert bad.windows[0].labelled == 60
    assert "accuracy" in bad.windows[0].degraded
    assert bad.event_recorded
    events = [e for e in ws.audit.events() if e.action == "performance.degraded"]
    assert events
    assert events[-1].subject == f"model:{mv.ref}"

    # One scheduled check, as the worker will run it.
    result = run_scheduled_check(
        ws.metadata, ws.actor, ws.registry, ws.datasets,
        {"model": "credit@challenger", "window": "1h", "every": "1h"}, now=NOW,
    )  # fmt: skip
    assert result.drift.report.dataset_drift
    assert result.performance is not None
    assert ws.audit.verify().ok


def test_monitor_entries_are_validated() -> None:
    entries = monitor_entries({"monitor": [{"model": "credit", "window": "1h", "every": "15m"}]})
    assert entries == [MonitorEntry("credit", timedelta(hours=1), timedelta(minutes=15))]
    assert monitor_entries({}) == []
    with pytest.raises(InvalidInput, match=r"^modelcycle.toml monitor\[0\].window: expected"):
        monitor_entries({"monitor": [{"model": "m", "window": "soon", "every": "1h"}]})
    with pytest.raises(InvalidInput, match=r"monitor\.every: required key is missing"):
        MonitorEntry.from_config({"model": "m", "window": "1h"})
    with pytest.raises(InvalidInput, match="unknown key"):
        MonitorEntry.from_config({"model": "m", "window": "1h", "every": "1h", "evry": 1})
    with pytest.raises(InvalidInput, match="model"):
        MonitorEntry.from_config({"model": "m/zero", "window": "1h", "every": "1h"})


def test_feedback_join_by_request_and_row() -> None:
    from modelcycle.monitoring.performance import join_feedback

    joined = join_feedback(
        ["a", "b", "b", "c", "d", "d"],
        [0, 0, 1, 0, 0, 1],
        {("a", None): "1", ("b", 1): "0", ("c", 0): "1", ("d", None): "1", ("zz", None): "0"},
    )
    assert joined.rows == [0, 2, 3]
    assert joined.labels == ["1", "0", "1"]
    assert joined.ambiguous == 1  # d: two rows, one label for the whole request
