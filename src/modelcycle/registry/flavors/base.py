"""The one contract every model format implements.

A flavor owns everything about its format, so that nothing outside its module asks which
flavor a model is: how a model object becomes bytes and back (``save``, ``load``,
``from_file``), whether loading runs code from the file (``needs_trust``,
``untrusted_types``), the file's extension in a bundle, the packages a deployment installs
(``requirements``), what the model says about its task and classes (``signature_hints``) and
how a table becomes the array or frame the model wants (``fast_input``).

Predicting is split in two so that a caller can build the model's input once and ask for
labels and probabilities on it: ``predict(m, t) == predict_input(m, fast_input(m, t))``.
The table given to ``fast_input`` already follows the signature (see
:func:`modelcycle.registry.signature.enforce`).

A flavor is stateless (one instance serves every model of its format): the model is passed
in. A flavor whose library is an optional extra imports it only when used, and says which
extra to install when it is missing (:func:`require_module`).
"""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata as importlib_metadata
from pathlib import Path
from types import ModuleType
from typing import Any, ClassVar

import numpy as np
import pyarrow as pa

from modelcycle.errors import InvalidInput, NotReady
from modelcycle.registry.errors import UntrustedModel

__all__ = [
    "ModelFlavor",
    "SignatureHints",
    "distribution_of",
    "estimator_hints",
    "frame_for",
    "pinned",
    "positional_estimator",
    "require_module",
    "row_major",
]


@dataclass(frozen=True, slots=True)
class SignatureHints:
    """What a model object says about itself: its task (see ``signature.TASKS``) and, for
    classifiers, its class labels in the order of its probability columns."""

    task: str = "unknown"
    classes: list[Any] | None = None


class ModelFlavor(ABC):
    """A model format. Subclasses set ``name`` and ``file_extension`` and implement
    ``detect``, ``save``, ``load``, ``predict_input`` and ``requirements``."""

    name: ClassVar[str]
    # The model file's extension in a deployment bundle (``model/model.<ext>``).
    file_extension: ClassVar[str] = "bin"
    # Loading runs code from the file: storing and loading always need ``trust=True``.
    needs_trust: ClassVar[bool] = False
    # Why trust is needed, for the refusal's message.
    trust_reason: ClassVar[str] = "loading it runs code from the file"
    # ``to_onnx`` can convert its models (``models export-onnx``).
    converts_to_onnx: ClassVar[bool] = False

    @abstractmethod
    def detect(self, model: Any) -> bool:
        """Whether this flavor stores ``model`` (used when the caller names no flavor).
        Must not import an optional library: a model of that library has imported it."""

    @abstractmethod
    def save(self, model: Any) -> bytes:
        """The model's bytes; the same model gives the same bytes (its sha256 is stable)."""

    @abstractmethod
    def load(self, data: bytes, *, trust: bool = False) -> Any:
        """The runtime model from its bytes; refuses what is not trusted unless ``trust``.
        Bytes that are not this format raise InvalidInput naming ``model``."""

    def from_file(self, data: bytes, *, trust: bool = False) -> Any:
        """The model object a user's file holds, to register it (by default: ``load``)."""
        return self.load(data, trust=trust)

    def untrusted_types(self, data: bytes) -> list[str]:
        """What in ``data`` would run code of the file's choosing if loaded without trust
        (type names); empty when loading it safely is possible."""
        return ["code"] if self.needs_trust else []

    def check_trust(self, trust: bool, what: str = "this model") -> None:
        """Refuse a flavor that runs code from the file unless the caller said ``trust``."""
        if self.needs_trust and not trust:
            raise UntrustedModel(
                f"{what} is stored as {self.name}, and {self.trust_reason}; pass trust=True "
                "(CLI: --trust) if you trust who made it"
            )

    @abstractmethod
    def requirements(self, model: Any) -> list[str]:
        """Packages with their exact installed versions, e.g. ``scikit-learn==1.9.1``:
        exactly what a deployment needs to load and run this model."""

    def signature_hints(self, model: Any) -> SignatureHints:
        """The task and class labels, as far as the object says."""
        return estimator_hints(model)

    def version_tags(self, model: Any) -> dict[str, str]:
        """Tags the registry records with every version of this flavor (e.g. a code hash)."""
        return {}

    def runtime(self, model: Any) -> Any:
        """What ``predict`` takes, made from the object the user registers (often itself)."""
        return model

    def fast_input(self, model: Any, table: pa.Table) -> Any:
        """The array or frame ``model`` itself takes, built once per batch (by default a
        DataFrame, or its row-major array: see :func:`frame_for`)."""
        return frame_for(model, table)

    @abstractmethod
    def predict_input(self, model: Any, x: Any) -> np.ndarray:
        """Predictions (labels for classifiers) for what ``fast_input`` built."""

    def predict_proba_input(self, model: Any, x: Any) -> np.ndarray:
        """Class probabilities, one column per class in the signature's class order."""
        raise InvalidInput(f"{self.name} models of this kind give no probabilities", field="model")

    def array_predictor(self, model: Any) -> Callable[[np.ndarray], np.ndarray] | None:
        """Predict on a plain 2-D numeric array whose columns are the signature's inputs, in
        order; None (the default) when this model cannot take one."""
        return None

    def compiled_labels(
        self, model: Any, cache_dir: Path, key: str, *, build: bool = True
    ) -> Callable[[Any], np.ndarray] | None:
        """A faster stand-in for ``predict_input`` giving the very same labels, built once
        per ``key`` into ``cache_dir`` (or only read from there when not ``build``); None (the
        default) when this flavor has none."""
        return None

    def predict(self, model: Any, table: pa.Table) -> np.ndarray:
        return self.predict_input(model, self.fast_input(model, table))

    def predict_proba(self, model: Any, table: pa.Table) -> np.ndarray:
        return self.predict_proba_input(model, self.fast_input(model, table))

    def to_onnx(self, model: Any, signature: Any) -> Any:
        """The model converted to an ``onnx.ModelProto`` (flavors that can say how)."""
        raise InvalidInput(
            f"{self.name} models do not convert to ONNX here; only scikit-learn (skops) ones do",
            field="model",
        )

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}>"


def require_module(module: str, extra: str) -> ModuleType:
    """Import ``module``, or say which extra installs it (NotReady: a step is missing)."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise NotReady(
            f"this model needs the {module} package, which is not installed; "
            f"install it with: pip install 'modelcycle[{extra}]'"
        ) from None


def row_major(table: pa.Table) -> np.ndarray | None:
    """The table's values as a row-major matrix, when every column is of one numeric type and
    holds no nulls (else None). ``Table.to_pandas`` lays numbers out column by column, and tree
    ensembles walk each row through every tree: row-major values predict ~15% faster
    (HistGradientBoosting, 20 float64 features), with the same values in the same dtype."""
    if not table.num_rows:
        return None
    types = set(table.schema.types)
    if len(types) != 1:
        return None
    (kind,) = types
    if not (pa.types.is_floating(kind) or pa.types.is_integer(kind)):
        return None
    if any(column.null_count for column in table.columns):
        return None
    values = np.empty((table.num_rows, table.num_columns), dtype=kind.to_pandas_dtype())
    for j, column in enumerate(table.columns):
        values[:, j] = column.to_numpy()
    return values


def frame_for(model: Any, table: pa.Table) -> Any:
    """What a scikit-learn-style ``predict`` takes: a DataFrame with the table's columns
    (named, in order), or a plain array for models fitted without feature names (numpy
    input), which would warn about names otherwise. Row-major where :func:`row_major` can."""
    values = row_major(table)
    no_names = hasattr(model, "n_features_in_") and not hasattr(model, "feature_names_in_")
    if values is not None:
        if no_names:
            return values
        import pandas as pd

        return pd.DataFrame(values, columns=table.column_names, copy=False)
    frame = table.to_pandas()
    return frame.to_numpy() if no_names else frame


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


# Classes that may select columns by name, which a plain array does not have.
_NAME_SELECTORS = ("sklearn.compose.", "sklearn.preprocessing._function_transformer.")


def positional_estimator(estimator: Any) -> bool:
    """Whether every estimator in ``estimator`` (steps, nested estimators) is a scikit-learn
    class that takes columns by position, so a plain array in signature order is enough."""
    seen = [estimator]
    try:
        params = estimator.get_params(deep=True)
    except Exception:  # not a scikit-learn estimator (get_params missing or failing)
        return False
    seen += [v for v in params.values() if hasattr(v, "get_params")]
    for obj in seen:
        module = type(obj).__module__ + "."
        if not module.startswith("sklearn.") or module.startswith(_NAME_SELECTORS):
            return False
    return True


def estimator_hints(model: Any) -> SignatureHints:
    """Task and classes of a scikit-learn-style estimator (``classes_``, ``predict_proba``)."""
    classes = getattr(model, "classes_", None)
    if classes is not None and hasattr(model, "predict_proba"):
        labels = [
            c.item() if isinstance(c, np.generic) else c for c in np.asarray(classes).tolist()
        ]
        task = "binary_classification" if len(labels) == 2 else "multiclass_classification"
        return SignatureHints(task, labels)
    try:
        from sklearn.base import is_regressor

        if is_regressor(model):
            return SignatureHints("regression")
    except (ImportError, AttributeError, TypeError):
        pass
    if getattr(model, "_estimator_type", None) == "regressor":
        return SignatureHints("regression")
    return SignatureHints()
