"""Plain pickle, for models no safe format covers. Loading a pickle runs code from the file,
so it happens only when the caller says ``trust=True`` (``--trust``)."""

from __future__ import annotations

import pickle
from collections.abc import Callable
from typing import Any

import numpy as np

from modelcycle.registry.flavors.base import (
    ModelFlavor,
    distribution_of,
    pinned,
    positional_estimator,
)

__all__ = ["PickleFlavor"]


class PickleFlavor(ModelFlavor):
    name = "pickle"
    file_extension = "pkl"
    needs_trust = True
    trust_reason = "loading a pickle runs any code it holds"

    def detect(self, model: Any) -> bool:
        # Never chosen on its own: the caller must ask for pickle (and trust it).
        return False

    def save(self, model: Any) -> bytes:
        return pickle.dumps(model, protocol=5)

    def untrusted_types(self, data: bytes) -> list[str]:
        return ["pickle"]

    def load(self, data: bytes, *, trust: bool = False) -> Any:
        self.check_trust(trust)
        try:
            return pickle.loads(data)  # noqa: S301 - guarded by the explicit trust above
        except (pickle.UnpicklingError, EOFError, ValueError) as exc:
            from modelcycle.errors import InvalidInput

            raise InvalidInput(f"not a pickle ({exc})", field="model") from exc

    def array_predictor(self, model: Any) -> Callable[[np.ndarray], np.ndarray] | None:
        if not positional_estimator(model):
            return None
        predict: Callable[[np.ndarray], np.ndarray] = model.predict
        return predict

    def predict_input(self, model: Any, x: Any) -> np.ndarray:
        return np.asarray(model.predict(x))

    def predict_proba_input(self, model: Any, x: Any) -> np.ndarray:
        if not hasattr(model, "predict_proba"):
            return super().predict_proba_input(model, x)
        return np.asarray(model.predict_proba(x))

    def requirements(self, model: Any) -> list[str]:
        return pinned("numpy", "pandas", *distribution_of(model))
