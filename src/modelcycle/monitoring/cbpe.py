"""Confidence-based performance estimation: accuracy before the labels arrive.

A classifier's own probabilities say how sure it is of each answer. Calibrated on the holdout
(where the labels are known), the confidence of its chosen class becomes an estimate of the
chance that answer is right; averaged over a window of production traffic, it estimates that
window's accuracy, with no ground truth. NannyML's CBPE works the same way.

Calibration is top-label and isotonic: on the holdout, ``confidence = max_k p_k`` against
``correct = (argmax == label)``, fitted monotonically (scikit-learn's IsotonicRegression), so
an over- or under-confident model is corrected. The estimate is only as good as the holdout
is representative of how the model errs: under concept drift (the same inputs, new answers)
it stays optimistic, which is why it is shown beside the realized metric once labels arrive.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from modelcycle.errors import InvalidInput

__all__ = ["ConfidenceCalibration", "estimated_accuracy", "fit_confidence_calibration"]

MIN_HOLDOUT_ROWS = 50


@dataclass(frozen=True)
class ConfidenceCalibration:
    """The isotonic map from top-class confidence to the chance of being right."""

    thresholds: NDArray[np.float64]
    values: NDArray[np.float64]
    holdout_rows: int
    holdout_accuracy: float

    def __call__(self, confidence: NDArray[np.float64]) -> NDArray[np.float64]:
        return np.interp(confidence, self.thresholds, self.values)


def fit_confidence_calibration(
    probabilities: NDArray[np.float64], labels: list[Any], classes: list[Any]
) -> ConfidenceCalibration:
    """Fit on the holdout: class probabilities (columns in ``classes`` order) and true labels."""
    from sklearn.isotonic import IsotonicRegression

    probs = np.asarray(probabilities, dtype=np.float64)
    if probs.ndim != 2 or probs.shape[1] != len(classes) or len(labels) != len(probs):
        raise InvalidInput(
            "probabilities must be rows x classes, one row per label", field="probabilities"
        )
    if len(probs) < MIN_HOLDOUT_ROWS:
        raise InvalidInput(
            f"{len(probs)} holdout rows; at least {MIN_HOLDOUT_ROWS} are needed to calibrate",
            field="holdout",
        )
    keys = [str(c) for c in classes]
    chosen = [keys[i] for i in probs.argmax(axis=1)]
    correct = np.array([c == str(y) for c, y in zip(chosen, labels, strict=True)], dtype=float)
    confidence = probs.max(axis=1)
    iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(confidence, correct)
    return ConfidenceCalibration(
        thresholds=np.asarray(iso.X_thresholds_, dtype=np.float64),
        values=np.asarray(iso.y_thresholds_, dtype=np.float64),
        holdout_rows=len(probs),
        holdout_accuracy=float(correct.mean()),
    )


def estimated_accuracy(
    calibration: ConfidenceCalibration, probabilities: NDArray[np.float64]
) -> float | None:
    """The expected accuracy of the answers behind ``probabilities`` (None for no rows)."""
    probs = np.asarray(probabilities, dtype=np.float64)
    if probs.size == 0:
        return None
    return float(calibration(probs.max(axis=1)).mean())
