"""Confidence-based performance estimation: accuracy from calibrated confidence, no labels."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
from test_model_mode import NOW, TARGET, _feedback, _log

from _cli import run_cli
from modelcycle import InvalidInput, Workspace
from modelcycle.datasets import make_credit
from modelcycle.monitoring.cbpe import estimated_accuracy, fit_confidence_calibration


def test_calibration_corrects_an_overconfident_model() -> None:
    rng = np.random.default_rng(0)
    n = 4000
    p_true = rng.uniform(0.5, 1.0, n)  # the real chance the chosen class is right
    labels = (rng.random(n) < p_true).astype(int)  # class 1 is always the chosen one
    overconfident = np.clip(p_true + 0.2, 0, 1)  # the model says more than it knows
    probs = np.column_stack([1 - overconfident, overconfident])
    cal = fit_confidence_calibration(probs, labels.tolist(), [0, 1])
    naive = float(overconfident.mean())
    estimate = estimated_accuracy(cal, probs)
    realized = float(labels.mean())
    assert estimate is not None
    assert abs(estimate - realized) < 0.02
    assert naive - realized > 0.1  # uncalibrated confidence would have been far off
    assert estimated_accuracy(cal, np.empty((0, 2))) is None
    with pytest.raises(InvalidInput, match="holdout"):
        fit_confidence_calibration(probs[:10], labels[:10].tolist(), [0, 1])


def test_performance_shows_the_estimate_beside_the_realized_accuracy(
    workspace: Workspace,
) -> None:
    ws = workspace
    ws.datasets.add("credit", make_credit(3000, seed=1))
    ws.pipelines.train("credit", TARGET, progress=False)
    same = make_credit(600, seed=5)
    start = NOW - timedelta(hours=1)
    ids, labels = _log(ws, "credit", 1, same, start, "cbpe")
    _feedback(ws, ids, labels)
    report = ws.monitoring.performance("credit/1", window="2h", now=NOW)
    (window,) = report.windows
    realized = window.metrics["accuracy"]
    estimate = window.estimated["accuracy"]
    # Traffic like the training data: the estimate made without labels matches the labels.
    assert abs(estimate - realized) < 0.04


def test_cli_monitor_feedback_from_a_file(workspace: Workspace, tmp_path: Path) -> None:
    ws = workspace
    ws.datasets.add("credit", make_credit(2000, seed=1))
    ws.pipelines.train("credit", TARGET, progress=False)
    ids, labels = _log(ws, "credit", 1, make_credit(120, seed=6), NOW, "fb")
    path = tmp_path / "labels.csv"
    lines = ["request_id,label"] + [f"{i},{y}" for i, y in zip(ids, labels, strict=True)]
    path.write_text("\n".join([*lines, "never-logged,1"]) + "\n")
    proc = run_cli("monitor", "feedback", str(path), cwd=ws.root)
    assert proc.returncode == 0, proc.stderr
    assert "Stored 121 label(s): 120 matched" in proc.stdout
    report = ws.monitoring.performance("credit/1", window="1h", now=NOW + timedelta(minutes=30))
    assert report.windows[0].labelled == 120
    bad = tmp_path / "bad.csv"
    bad.write_text("request_id,nope\nx,1\n")
    proc = run_cli("monitor", "feedback", str(bad), cwd=ws.root)
    assert proc.returncode == 2
    assert "label" in proc.stderr
