"""The one small interface every model format implements.

A flavor turns a model object into bytes and back, predicts on an Arrow table whose columns
already follow the signature (see :func:`modelcycle.registry.signature.enforce`), and names
the packages a deployment must install to load it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from importlib import metadata as importlib_metadata
from typing import Any, ClassVar

import numpy as np
import pyarrow as pa

from modelcycle.errors import InvalidInput

__all__ = ["ModelFlavor", "pinned"]


class ModelFlavor(ABC):
    """A model format: detect, save, load (safely), predict, requirements."""

    name: ClassVar[str]

    @abstractmethod
    def detect(self, model: Any) -> bool:
        """Whether this flavor stores ``model`` (used when the caller names no flavor)."""

    @abstractmethod
    def save(self, model: Any) -> bytes: ...

    @abstractmethod
    def load(self, data: bytes, *, trust: bool = False) -> Any:
        """The model from its bytes; refuses what is not trusted unless ``trust``."""

    @abstractmethod
    def predict(self, model: Any, table: pa.Table) -> np.ndarray: ...

    def predict_proba(self, model: Any, table: pa.Table) -> np.ndarray:
        """Class probabilities, one column per class in the signature's class order."""
        raise InvalidInput(f"{self.name} models of this kind give no probabilities", field="model")

    @abstractmethod
    def requirements(self, model: Any) -> list[str]:
        """Packages with their exact installed versions, e.g. ``scikit-learn==1.9.1``."""

    def runtime(self, model: Any) -> Any:
        """What ``predict`` takes, made from the object the user registers (often itself)."""
        return model

    def describe(self, model: Any) -> tuple[str, list[Any] | None]:
        """The task (see ``signature.TASKS``) and the class labels, as far as the object says."""
        return _describe_estimator(model)


def frame_for(model: Any, table: pa.Table) -> Any:
    """A DataFrame with the table's columns (named, in order), or a plain array for models
    fitted without feature names (numpy input), which would warn about names otherwise."""
    frame = table.to_pandas()
    if hasattr(model, "n_features_in_") and not hasattr(model, "feature_names_in_"):
        return frame.to_numpy()
    return frame


def pinned(*distributions: str) -> list[str]:
    """``dist==version`` for each installed distribution (unknown ones are left out)."""
    out = []
    for dist in distributions:
        try:
            out.append(f"{dist}=={importlib_metadata.version(dist)}")
        except importlib_metadata.PackageNotFoundError:
            continue
    return out


def distribution_of(obj: Any) -> list[str]:
    """The distributions providing the top-level package that defines ``obj``'s class."""
    top = type(obj).__module__.split(".", 1)[0]
    return list(importlib_metadata.packages_distributions().get(top, []))


def _describe_estimator(model: Any) -> tuple[str, list[Any] | None]:
    classes = getattr(model, "classes_", None)
    if classes is not None and hasattr(model, "predict_proba"):
        labels = [
            c.item() if isinstance(c, np.generic) else c for c in np.asarray(classes).tolist()
        ]
        task = "binary_classification" if len(labels) == 2 else "multiclass_classification"
        return task, labels
    estimator_type = getattr(model, "_estimator_type", None)
    try:
        from sklearn.base import is_regressor

        if is_regressor(model):
            return "regression", None
    except (ImportError, AttributeError, TypeError):
        pass
    if estimator_type == "regressor":
        return "regression", None
    return "unknown", None
