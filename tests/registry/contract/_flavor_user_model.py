"""A user's python-model for the flavor contract suite: a lookup table as its artifact."""

from __future__ import annotations

import json
from typing import Any, ClassVar

import numpy as np


class ThresholdModel:
    """Class 1 when ``income`` is above the threshold stored in the ``config`` artifact."""

    classes: ClassVar[list[int]] = [0, 1]
    requirements: ClassVar[list[str]] = ["pandas"]

    def load_context(self, artifacts: dict[str, str]) -> None:
        with open(artifacts["config"], encoding="utf-8") as fh:
            self.threshold = float(json.load(fh)["threshold"])

    def _score(self, frame: Any) -> np.ndarray:
        return 1.0 / (1.0 + np.exp(-(frame["income"].to_numpy() - self.threshold) / 10.0))

    def predict(self, frame: Any) -> np.ndarray:
        return (self._score(frame) > 0.5).astype(np.int64)

    def predict_proba(self, frame: Any) -> np.ndarray:
        p = self._score(frame)
        return np.column_stack([1.0 - p, p])
