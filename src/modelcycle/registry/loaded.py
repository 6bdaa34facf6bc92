"""A model loaded from the registry, ready to predict on a table with its signature enforced."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
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
        self._labels: Callable[[Any], np.ndarray] | None = None

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
        self._require_classifier()
        return self.flavor.predict_proba(self.model, self._checked(data, validated))

    # The fast path: build the model's own input once, then ask for labels and probabilities
    # on it (the same answers as predict / predict_proba on the table).

    def fast_input(self, data: Any, *, validated: bool = False) -> Any:
        """The array or frame the model takes (see ``ModelFlavor.fast_input``)."""
        return self.flavor.fast_input(self.model, self._checked(data, validated))

    def predict_fast(self, x: Any) -> np.ndarray:
        """Predictions for what :meth:`fast_input` built."""
        if self._labels is not None:
            return self._labels(x)
        return self.flavor.predict_input(self.model, x)

    def compile(self, cache_dir: Path, *, build: bool = True) -> bool:
        """Have :meth:`predict_fast` use the flavor's compiled stand-in (the same labels,
        faster: see ``ModelFlavor.compiled_labels``) where there is one; True if so.

        For batch jobs, which score many rows with one model: the first build of a model on a
        machine takes seconds, so a small job passes ``build=False`` and uses a library only
        if an earlier job built it.
        """
        self._labels = self.flavor.compiled_labels(
            self.model, cache_dir, self.version.sha256, build=build
        )
        return self._labels is not None

    def predict_proba_fast(self, x: Any) -> np.ndarray:
        """Probabilities for what :meth:`fast_input` built (classifiers only)."""
        self._require_classifier()
        return self.flavor.predict_proba_input(self.model, x)

    def array_predictor(self) -> Callable[[np.ndarray], np.ndarray] | None:
        """Predict on a plain 2-D numeric array in signature column order, if the model can
        take one (see ``ModelFlavor.array_predictor``); else None."""
        return self.flavor.array_predictor(self.model)

    def _require_classifier(self) -> None:
        if not self.signature.is_classifier:
            raise InvalidInput(
                f"{self.version.ref} is a {self.signature.task} model; only classifiers give "
                "probabilities",
                field="model",
            )

    def _checked(self, data: Any, validated: bool) -> Any:
        return data if validated else enforce(self.signature, data)
