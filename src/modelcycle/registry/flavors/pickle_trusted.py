"""Plain pickle, for models no safe format covers. Loading a pickle runs code from the file,
so it happens only when the caller says ``trust=True`` (``--trust``)."""

from __future__ import annotations

import pickle
from typing import Any

import numpy as np
import pyarrow as pa

from modelcycle.registry.errors import UntrustedModel
from modelcycle.registry.flavors.base import ModelFlavor, distribution_of, frame_for, pinned

__all__ = ["PickleFlavor", "require_trust"]


def require_trust(trust: bool, what: str) -> None:
    if not trust:
        raise UntrustedModel(
            f"{what} is a pickle, and loading a pickle runs any code it holds; "
            "pass trust=True (CLI: --trust) if you trust who made it"
        )


class PickleFlavor(ModelFlavor):
    name = "pickle"

    def detect(self, model: Any) -> bool:
        # Never chosen on its own: the caller must ask for pickle (and trust it).
        return False

    def save(self, model: Any) -> bytes:
        return pickle.dumps(model, protocol=5)

    def load(self, data: bytes, *, trust: bool = False) -> Any:
        require_trust(trust, "this model")
        return pickle.loads(data)  # noqa: S301 - guarded by the explicit trust above

    def predict(self, model: Any, table: pa.Table) -> np.ndarray:
        return np.asarray(model.predict(frame_for(model, table)))

    def predict_proba(self, model: Any, table: pa.Table) -> np.ndarray:
        if not hasattr(model, "predict_proba"):
            return super().predict_proba(model, table)
        return np.asarray(model.predict_proba(frame_for(model, table)))

    def requirements(self, model: Any) -> list[str]:
        return pinned("numpy", "pandas", *distribution_of(model))
