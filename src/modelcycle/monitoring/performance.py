"""Performance from ground truth: predictions joined with feedback by request id, metrics per
time window, compared with the registered holdout metrics.

The "what" is :class:`PerformanceWindow` / :class:`PerformanceReport`; the "how" is
:func:`join_feedback`, :func:`window_metrics` and :func:`compare_with_baseline`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from modelcycle.errors import InvalidInput

__all__ = [
    "HIGHER_IS_BETTER",
    "LOWER_IS_BETTER",
    "Joined",
    "PerformanceReport",
    "PerformanceWindow",
    "compare_with_baseline",
    "join_feedback",
    "label_key",
    "window_metrics",
]

HIGHER_IS_BETTER = ("accuracy", "f1", "roc_auc", "r2")
LOWER_IS_BETTER = ("rmse", "mae")
CLASSIFIER_METRICS = ("accuracy", "f1", "roc_auc")
REGRESSOR_METRICS = ("rmse", "mae")


@dataclass(frozen=True)
class PerformanceWindow:
    """One time window: how many predictions, how many had labels, the metrics, the verdict."""

    start: str
    end: str
    predictions: int
    labelled: int
    metrics: dict[str, float]
    baseline: dict[str, float]
    degraded: list[str]  # metric names worse than the baseline by more than the threshold
    status: str  # "ok" or "not_enough_data"
    # Estimated without labels from calibrated confidence (CBPE), over every prediction in
    # the window, labelled or not: {"accuracy": ...}; empty for regressors.
    estimated: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class PerformanceReport:
    model: str
    task: str
    degradation: float
    min_rows: int
    windows: list[PerformanceWindow] = field(default_factory=list)
    ambiguous_request_ids: int = 0
    event_recorded: bool = False

    @property
    def degraded(self) -> bool:
        return any(w.degraded for w in self.windows)

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["degraded"] = self.degraded
        return data


@dataclass(frozen=True)
class Joined:
    """Predictions that have a label: positions into the prediction rows, and the labels."""

    rows: list[int]
    labels: list[Any]
    ambiguous: int  # request ids with several logged rows: a label cannot be placed


def label_key(value: Any) -> str:
    """One text form for a class however it travelled (JSON bool, text, 1.0 vs 1)."""
    if isinstance(value, bool | np.bool_):
        return "true" if value else "false"
    if isinstance(value, float | np.floating) and float(value).is_integer():
        return str(int(value))
    text = str(value).strip()
    if text.lower() in ("true", "false"):
        return text.lower()
    try:
        number = float(text)
    except ValueError:
        return text
    return str(int(number)) if number.is_integer() and math.isfinite(number) else text


def join_feedback(
    request_ids: Sequence[str],
    row_indexes: Sequence[int],
    feedback: Mapping[tuple[str, int | None], Any],
) -> Joined:
    """Match each prediction row with the label sent for it (the latest label wins).

    Feedback names a row by ``(request_id, row_index)``; with no row index it names the whole
    request, which places it only when the request logged a single row. Otherwise those rows
    are left out and counted as ambiguous.
    """
    counts: dict[str, int] = {}
    for rid in request_ids:
        counts[rid] = counts.get(rid, 0) + 1
    rows: list[int] = []
    labels: list[Any] = []
    ambiguous: set[str] = set()
    for i, (rid, idx) in enumerate(zip(request_ids, row_indexes, strict=True)):
        if (rid, idx) in feedback:
            rows.append(i)
            labels.append(feedback[(rid, idx)])
        elif (rid, None) in feedback:
            if counts[rid] == 1:
                rows.append(i)
                labels.append(feedback[(rid, None)])
            else:
                ambiguous.add(rid)
    return Joined(rows, labels, len(ambiguous))


def window_metrics(
    predictions: Sequence[Any],
    labels: Sequence[Any],
    *,
    classifier: bool,
    classes: list[Any] | None = None,
    probabilities: np.ndarray | None = None,
) -> dict[str, float]:
    """Accuracy, F1 (binary: the second class positive; else macro), ROC AUC (when
    probabilities were logged and both classes occur) for classifiers; RMSE, MAE otherwise."""
    from sklearn import metrics as skm

    if not labels:
        return {}
    if classifier:
        y_true = np.array([label_key(v) for v in labels])
        y_pred = np.array([label_key(v) for v in predictions])
        keys = [label_key(c) for c in classes] if classes else sorted(set(y_true) | set(y_pred))
        out = {"accuracy": float(np.mean(y_true == y_pred))}
        if len(keys) == 2:
            out["f1"] = float(
                skm.f1_score(y_true, y_pred, pos_label=keys[1], average="binary", zero_division=0)
            )
        else:
            out["f1"] = float(
                skm.f1_score(y_true, y_pred, labels=keys, average="macro", zero_division=0)
            )
        if (
            probabilities is not None
            and len(set(y_true)) > 1
            and probabilities.shape[1] == len(keys)
        ):
            if len(keys) == 2:
                out["roc_auc"] = float(skm.roc_auc_score(y_true == keys[1], probabilities[:, 1]))
            elif set(y_true) <= set(keys):
                out["roc_auc"] = float(
                    skm.roc_auc_score(y_true, probabilities, multi_class="ovr", labels=keys)
                )
        return out
    try:
        truth = np.array([float(v) for v in labels], dtype=np.float64)
        guess = np.array([float(v) for v in predictions], dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"a label or prediction is not a number ({exc})", field="label") from exc
    err = guess - truth
    return {"rmse": float(np.sqrt(np.mean(err**2))), "mae": float(np.mean(np.abs(err)))}


def compare_with_baseline(
    metrics: Mapping[str, float], baseline: Mapping[str, float], degradation: float
) -> list[str]:
    """Metrics worse than the holdout's by more than ``degradation`` (relative: 0.05 = 5%)."""
    worse = []
    for name, value in metrics.items():
        base = baseline.get(name)
        if base is None or not math.isfinite(base):
            continue
        if (name in HIGHER_IS_BETTER and value < base * (1 - degradation)) or (
            name in LOWER_IS_BETTER and value > base * (1 + degradation)
        ):
            worse.append(name)
    return worse
