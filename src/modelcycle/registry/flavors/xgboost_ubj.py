"""XGBoost models in the booster's own format (UBJSON; JSON accepted from a file), no pickle.

Stores scikit-learn wrappers (``XGBClassifier``, ``XGBRegressor``) and raw ``Booster`` objects.
A wrapper is saved with its ``save_model`` (which notes the wrapper's kind in the file), a
booster with ``save_raw``. Neither runs code from the file: an XGBoost model is trees and
numbers.

Loading gives the ``Booster``, and every model (a wrapper too) predicts through its booster,
as the wrappers themselves do: so serving needs xgboost and numpy only, not scikit-learn
(an image ~50 MB smaller). The task comes from the objective: ``binary:logistic`` answers
probabilities (label: probability > 0.5, as ``XGBClassifier``), ``multi:softprob`` one
probability per class (label: the most probable), ``reg:*`` numbers; any other objective
answers what the booster answers, task ``unknown``. Classes are 0..K-1 (``XGBClassifier``
learns no other labels).

Optional extra: ``pip install 'modelcycle[xgboost]'`` (the ``xgboost-cpu`` wheel).
"""

from __future__ import annotations

import json
import sys
import tempfile
import weakref
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from modelcycle.errors import InvalidInput
from modelcycle.registry.flavors.base import (
    ModelFlavor,
    SignatureHints,
    pinned,
    require_module,
    row_major,
)

__all__ = ["XGBoostFlavor", "tabular_frame"]

_EXTRA = "xgboost"


def tabular_frame(table: pa.Table) -> Any:
    """The table as a DataFrame for a tree library: text columns as ``category`` (XGBoost and
    LightGBM map categories to the ones seen in training by name), missing numbers as NaN."""
    frame = table.to_pandas()
    for name, kind in zip(table.column_names, table.schema.types, strict=True):
        if pa.types.is_string(kind) or pa.types.is_large_string(kind):
            frame[name] = frame[name].astype("category")
    return frame


class XGBoostFlavor(ModelFlavor):
    name = "xgboost"
    file_extension = "ubj"

    def detect(self, model: Any) -> bool:
        xgb = sys.modules.get("xgboost")  # an XGBoost object means xgboost is imported already
        return xgb is not None and isinstance(model, xgb.Booster | xgb.XGBModel)

    def save(self, model: Any) -> bytes:
        xgb = require_module("xgboost", _EXTRA)
        if isinstance(model, xgb.Booster):
            return bytes(model.save_raw(raw_format="ubj"))
        # The wrapper's save_model adds its kind to the file; it only writes to a path.
        with tempfile.TemporaryDirectory(prefix="modelcycle-xgb-") as tmp:
            path = Path(tmp) / "model.ubj"
            model.save_model(path)
            return path.read_bytes()

    def load(self, data: bytes, *, trust: bool = False) -> Any:
        xgb = require_module("xgboost", _EXTRA)
        try:
            return xgb.Booster(model_file=bytearray(data))
        except xgb.core.XGBoostError as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise InvalidInput(f"not an XGBoost model ({first})", field="model") from exc

    def runtime(self, model: Any) -> Any:
        """The booster: a wrapper predicts through it (see the module's docstring)."""
        return model.get_booster() if hasattr(model, "get_booster") else model

    def requirements(self, model: Any) -> list[str]:
        # Whichever distribution provides the package (xgboost or xgboost-cpu); no
        # scikit-learn: wrappers are served through their booster.
        return pinned("xgboost", "xgboost-cpu", "numpy", "scipy")

    def signature_hints(self, model: Any) -> SignatureHints:
        objective, classes = _config(self.runtime(model))
        if objective == "binary:logistic":
            return SignatureHints("binary_classification", [0, 1])
        if objective == "multi:softprob":
            return SignatureHints("multiclass_classification", list(range(classes)))
        if objective.startswith("reg:"):
            return SignatureHints("regression")
        return SignatureHints()

    def fast_input(self, model: Any, table: pa.Table) -> Any:
        values = row_major(table)
        return values if values is not None else tabular_frame(table)

    def array_predictor(self, model: Any) -> Callable[[np.ndarray], np.ndarray] | None:
        return partial(self.predict_input, model)

    def predict_input(self, model: Any, x: Any) -> np.ndarray:
        booster = self.runtime(model)
        objective = _config(booster)[0]
        raw = np.asarray(booster.inplace_predict(x))
        if objective == "binary:logistic":
            return (raw > 0.5).astype(np.int64)
        if objective == "multi:softprob":
            labels: np.ndarray = np.argmax(raw, axis=1).astype(np.int64)
            return labels
        return raw

    def predict_proba_input(self, model: Any, x: Any) -> np.ndarray:
        booster = self.runtime(model)
        objective = _config(booster)[0]
        if objective not in ("binary:logistic", "multi:softprob"):
            return super().predict_proba_input(model, x)
        raw = np.asarray(booster.inplace_predict(x), dtype=np.float64)
        return np.column_stack([1.0 - raw, raw]) if objective == "binary:logistic" else raw


# A booster's (objective, number of classes), read from its config once: reading it per batch
# would serialise the whole config each time.
_CONFIGS: weakref.WeakKeyDictionary[Any, tuple[str, int]] = weakref.WeakKeyDictionary()


def _config(booster: Any) -> tuple[str, int]:
    found = _CONFIGS.get(booster)
    if found is None:
        learner = json.loads(booster.save_config())["learner"]
        found = (
            str(learner["objective"]["name"]),
            int(learner["learner_model_param"]["num_class"]),
        )
        _CONFIGS[booster] = found
    return found
