"""The figures promotion gates compare, each with its direction (higher or lower is better)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from modelcycle.errors import InvalidInput

__all__ = ["METRICS", "Metric", "default_metric", "get_metric"]


@dataclass(frozen=True, slots=True)
class Metric:
    name: str
    higher_is_better: bool
    needs_proba: bool
    tasks: tuple[str, ...]
    # (y_true, predictions or probabilities, class labels) -> figure
    compute: Callable[[np.ndarray, np.ndarray, list[Any] | None], float]

    def at_least_as_good(self, candidate: float, champion: float, min_gain: float) -> bool:
        """Whether ``candidate`` beats ``champion`` by ``min_gain`` in this metric's direction."""
        if self.higher_is_better:
            return candidate >= champion + min_gain
        return candidate <= champion - min_gain


_CLS = ("binary_classification", "multiclass_classification")


def _roc_auc(y: np.ndarray, proba: np.ndarray, classes: list[Any] | None) -> float:
    from sklearn.metrics import roc_auc_score

    if classes is not None and len(classes) == 2:
        return float(roc_auc_score(y == classes[1], proba[:, 1]))
    return float(roc_auc_score(y, proba, multi_class="ovr", labels=classes))


def _accuracy(y: np.ndarray, pred: np.ndarray, _c: list[Any] | None) -> float:
    return float(np.mean(y == pred))


def _f1(y: np.ndarray, pred: np.ndarray, classes: list[Any] | None) -> float:
    from sklearn.metrics import f1_score

    if classes is not None and len(classes) == 2:
        return float(f1_score(y, pred, pos_label=classes[1]))
    return float(f1_score(y, pred, average="macro"))


def _log_loss(y: np.ndarray, proba: np.ndarray, classes: list[Any] | None) -> float:
    from sklearn.metrics import log_loss

    return float(log_loss(y, proba, labels=classes))


def _rmse(y: np.ndarray, pred: np.ndarray, _c: list[Any] | None) -> float:
    diff = np.asarray(y, dtype=np.float64) - np.asarray(pred, dtype=np.float64)
    return float(np.sqrt(np.mean(diff**2)))


def _mae(y: np.ndarray, pred: np.ndarray, _c: list[Any] | None) -> float:
    diff = np.asarray(y, dtype=np.float64) - np.asarray(pred, dtype=np.float64)
    return float(np.mean(np.abs(diff)))


def _r2(y: np.ndarray, pred: np.ndarray, _c: list[Any] | None) -> float:
    from sklearn.metrics import r2_score

    return float(r2_score(np.asarray(y, dtype=np.float64), np.asarray(pred, dtype=np.float64)))


METRICS: dict[str, Metric] = {
    m.name: m
    for m in (
        Metric("roc_auc", True, True, _CLS, _roc_auc),
        Metric("accuracy", True, False, _CLS, _accuracy),
        Metric("f1", True, False, _CLS, _f1),
        Metric("log_loss", False, True, _CLS, _log_loss),
        Metric("rmse", False, False, ("regression",), _rmse),
        Metric("mae", False, False, ("regression",), _mae),
        Metric("r2", True, False, ("regression",), _r2),
    )
}

_DEFAULTS = {
    "binary_classification": "roc_auc",
    "multiclass_classification": "accuracy",
    "regression": "rmse",
}


def default_metric(task: str) -> str:
    try:
        return _DEFAULTS[task]
    except KeyError:
        raise InvalidInput(
            f"the model's task is {task!r}, so there is no default metric; pass one of "
            f"{', '.join(METRICS)}",
            field="metric",
        ) from None


def get_metric(name: str, task: str) -> Metric:
    metric = METRICS.get(name)
    if metric is None:
        raise InvalidInput(
            f"unknown metric {name!r}; expected one of {', '.join(METRICS)}", field="metric"
        )
    if task not in metric.tasks:
        raise InvalidInput(f"{name} does not apply to a {task} model", field="metric")
    return metric
