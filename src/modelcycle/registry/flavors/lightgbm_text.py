"""LightGBM models in LightGBM's own text model format, no pickle.

Stores the scikit-learn wrappers (``LGBMClassifier``, ``LGBMRegressor``) and raw ``Booster``
objects. The file is a small JSON document: ``format``, ``kind`` (``classifier``,
``regressor`` or ``booster``), ``classes`` (a classifier's labels, which the text format does
not keep) and ``model``, the booster's text exactly as ``Booster.model_to_string()`` writes it
(``lightgbm.Booster(model_str=doc["model"])`` reads it back anywhere). Nothing in it is code.

Loading gives a :class:`LightGBMModel`: the booster plus what the wrapper knew. It predicts
as the wrapper does: a classifier's label is its class with the highest probability; a raw
booster with a ``binary`` or ``multiclass`` objective is a classifier with classes 0..K-1.

Optional extra: ``pip install 'modelcycle[lightgbm]'``.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
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
from modelcycle.registry.flavors.xgboost_ubj import tabular_frame

__all__ = ["FORMAT", "LightGBMFlavor", "LightGBMModel"]

FORMAT = "modelcycle-lightgbm/1"
_EXTRA = "lightgbm"


@dataclass(frozen=True, eq=False)
class LightGBMModel:
    """A loaded LightGBM model: its booster, kind and (classifiers) class labels."""

    booster: Any
    kind: str
    classes: list[Any] | None

    def predict_proba(self, x: Any) -> np.ndarray:
        raw = np.asarray(self.booster.predict(x), dtype=np.float64)
        return np.column_stack([1.0 - raw, raw]) if raw.ndim == 1 else raw

    def predict(self, x: Any) -> np.ndarray:
        if self.classes is None:
            return np.asarray(self.booster.predict(x))
        index = np.argmax(self.predict_proba(x), axis=1)
        labels = np.asarray(self.classes, dtype=object if _texts(self.classes) else None)
        return np.asarray(labels[index])


def _texts(classes: list[Any]) -> bool:
    return any(isinstance(c, str) for c in classes)


_RANKING = ("lambdarank", "rank_xendcg")


def _objective(booster: Any) -> str:
    return str(booster.dump_model(num_iteration=0).get("objective", "")).split(" ")[0]


def _objective_classes(booster: Any) -> list[Any] | None:
    """Classes 0..K-1 of a raw booster trained for classification (None otherwise)."""
    objective = _objective(booster)
    if objective in ("binary", "cross_entropy"):
        return [0, 1]
    if objective in ("multiclass", "multiclassova"):
        return list(range(int(booster.num_model_per_iteration())))
    return None


class LightGBMFlavor(ModelFlavor):
    name = "lightgbm"
    file_extension = "json"

    def detect(self, model: Any) -> bool:
        lgb = sys.modules.get("lightgbm")  # a LightGBM object means lightgbm is imported already
        return lgb is not None and isinstance(model, lgb.Booster | lgb.LGBMModel | LightGBMModel)

    def runtime(self, model: Any) -> LightGBMModel:
        if isinstance(model, LightGBMModel):
            return model
        lgb = require_module("lightgbm", _EXTRA)
        if isinstance(model, lgb.Booster):
            return LightGBMModel(model, "booster", _objective_classes(model))
        if isinstance(model, lgb.LGBMClassifier):
            classes = [c.item() if isinstance(c, np.generic) else c for c in model.classes_]
            return LightGBMModel(model.booster_, "classifier", classes)
        return LightGBMModel(model.booster_, "regressor", None)

    def save(self, model: Any) -> bytes:
        loaded = self.runtime(model)
        doc = {
            "format": FORMAT,
            "kind": loaded.kind,
            "classes": loaded.classes if loaded.kind == "classifier" else None,
            "model": loaded.booster.model_to_string(),
        }
        return json.dumps(doc, sort_keys=True, ensure_ascii=False).encode()

    def load(self, data: bytes, *, trust: bool = False) -> LightGBMModel:
        lgb = require_module("lightgbm", _EXTRA)
        try:
            doc = json.loads(data)
        except (ValueError, UnicodeDecodeError):
            doc = None
        if not isinstance(doc, dict) or doc.get("format") != FORMAT:
            raise InvalidInput(f"not a {FORMAT} document (JSON with the model text)", field="model")
        kind = doc.get("kind")
        if kind not in ("classifier", "regressor", "booster"):
            raise InvalidInput(f"unknown kind {kind!r} in the LightGBM document", field="model")
        try:
            booster = lgb.Booster(model_str=str(doc.get("model", "")))
        except lgb.basic.LightGBMError as exc:
            raise InvalidInput(f"not a LightGBM text model ({exc})", field="model") from exc
        if kind == "booster":
            return LightGBMModel(booster, kind, _objective_classes(booster))
        if kind == "regressor":
            return LightGBMModel(booster, kind, None)
        classes = doc.get("classes")
        if not isinstance(classes, list) or len(classes) < 2:
            raise InvalidInput("a LightGBM classifier document lists its classes", field="model")
        return LightGBMModel(booster, kind, classes)

    def requirements(self, model: Any) -> list[str]:
        return pinned("lightgbm", "numpy", "scipy")

    def signature_hints(self, model: Any) -> SignatureHints:
        loaded = self.runtime(model)
        if loaded.classes is not None:
            binary = len(loaded.classes) == 2
            task = "binary_classification" if binary else "multiclass_classification"
            return SignatureHints(task, list(loaded.classes))
        if loaded.kind == "regressor" or _objective(loaded.booster) not in _RANKING:
            return SignatureHints("regression")
        return SignatureHints()

    def fast_input(self, model: Any, table: pa.Table) -> Any:
        values = row_major(table)
        return values if values is not None else tabular_frame(table)

    def array_predictor(self, model: Any) -> Callable[[np.ndarray], np.ndarray] | None:
        return partial(self.predict_input, model)

    def predict_input(self, model: Any, x: Any) -> np.ndarray:
        return self.runtime(model).predict(x)

    def predict_proba_input(self, model: Any, x: Any) -> np.ndarray:
        loaded = self.runtime(model)
        if loaded.classes is None:
            return super().predict_proba_input(model, x)
        return loaded.predict_proba(x)
