"""A model loaded from the registry, ready to predict on a table with its signature enforced."""

from __future__ import annotations

from typing import Any

import numpy as np

from modelcycle.entities import ModelVersion
from modelcycle.errors import InvalidInput
from modelcycle.registry.flavors import ModelFlavor
from modelcycle.registry.signature import Signature, enforce

__all__ = ["LoadedModel"]


class LoadedModel:
    """``predict(table_or_df)`` checks the input against the signature, then asks the model."""

    def __init__(
        self, version: ModelVersion, signature: Signature, flavor: ModelFlavor, model: Any
    ) -> None:
        self.version = version
        self.signature = signature
        self.flavor = flavor
        self.model = model

    def __repr__(self) -> str:
        return f"LoadedModel({self.version.ref!r}, flavor={self.flavor.name!r})"

    def predict(self, data: Any, *, validated: bool = False) -> np.ndarray:
        """Predictions for an Arrow table or DataFrame holding the signature's columns.

        ``validated=True`` skips the signature check: for callers that ran :func:`enforce` on
        this very table already (the scoring engine checks each request, then batches them).
        """
        return self.flavor.predict(self.model, self._checked(data, validated))

    def predict_proba(self, data: Any, *, validated: bool = False) -> np.ndarray:
        """Class probabilities, columns in ``signature.classes`` order (classifiers only)."""
        if not self.signature.is_classifier:
            raise InvalidInput(
                f"{self.version.ref} is a {self.signature.task} model; only classifiers give "
                "probabilities",
                field="model",
            )
        return self.flavor.predict_proba(self.model, self._checked(data, validated))

    def _checked(self, data: Any, validated: bool) -> Any:
        return data if validated else enforce(self.signature, data)
