"""The trainer's estimators: which scikit-learn class each algorithm is, and its
hyperparameters checked against that class's constructor before anything runs."""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any

from modelcycle.errors import InvalidInput

__all__ = ["ALGORITHMS", "build_estimator", "check_hyperparams", "estimator_class", "parse_value"]

ALGORITHMS = ("hgb", "logreg", "rf", "linear")

# (module, classification class, regression class); None: the algorithm does not do that task.
_CLASSES: dict[str, tuple[str, str | None, str | None]] = {
    "hgb": (
        "sklearn.ensemble",
        "HistGradientBoostingClassifier",
        "HistGradientBoostingRegressor",
    ),
    "rf": ("sklearn.ensemble", "RandomForestClassifier", "RandomForestRegressor"),
    "logreg": ("sklearn.linear_model", "LogisticRegression", None),
    "linear": ("sklearn.linear_model", "LogisticRegression", "Ridge"),
}
# What the trainer sets unless the user says otherwise.
_DEFAULTS: dict[str, dict[str, Any]] = {
    "RandomForestClassifier": {"n_estimators": 100},
    "RandomForestRegressor": {"n_estimators": 100},
    "LogisticRegression": {"max_iter": 1000},
    "Ridge": {"alpha": 1.0},
}
_SEEDED = (
    "HistGradientBoostingClassifier",
    "HistGradientBoostingRegressor",
    "RandomForestClassifier",
    "RandomForestRegressor",
)


def estimator_class(task: str, algorithm: str) -> type[Any]:
    """The scikit-learn class ``algorithm`` means for ``task`` (classification/regression)."""
    import importlib

    if algorithm not in _CLASSES:
        raise InvalidInput(f"{algorithm!r} is not one of {', '.join(ALGORITHMS)}", field="model")
    module, for_cls, for_reg = _CLASSES[algorithm]
    name = for_cls if task == "classification" else for_reg
    if name is None:
        raise InvalidInput(f"{algorithm} is for classification; use linear", field="model")
    cls: type[Any] = getattr(importlib.import_module(module), name)
    return cls


def _accepted(cls: type[Any]) -> list[str]:
    return sorted(
        p.name
        for p in inspect.signature(cls.__init__).parameters.values()
        if p.name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
    )


def check_hyperparams(task: str, algorithm: str, params: Mapping[str, Any]) -> dict[str, Any]:
    """``params`` if every name is a constructor parameter of the class; else InvalidInput
    naming the first unknown one and listing the valid ones."""
    if not isinstance(params, Mapping):
        raise InvalidInput("expected a mapping of name to value", field="params")
    cls = estimator_class(task, algorithm)
    valid = _accepted(cls)
    for key in params:
        if key not in valid:
            raise InvalidInput(
                f"{cls.__name__} ({algorithm}) has no parameter {key!r}; valid: {', '.join(valid)}",
                field=f"--param {key}",
            )
    return dict(params)


def build_estimator(task: str, algorithm: str, seed: int, params: Mapping[str, Any]) -> Any:
    """An unfitted estimator: the trainer's defaults, the seed, then the user's parameters."""
    cls = estimator_class(task, algorithm)
    given = check_hyperparams(task, algorithm, params)
    kwargs: dict[str, Any] = dict(_DEFAULTS.get(cls.__name__, {}))
    if cls.__name__ in _SEEDED:
        kwargs["random_state"] = seed
    kwargs.update(given)
    try:
        estimator = cls(**kwargs)
        # scikit-learn checks values at fit time; check them now, with the parameter named.
        estimator._validate_params()
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"{exc}", field="--param") from exc
    return estimator


def parse_value(text: str) -> Any:
    """A ``--param`` value: int, float, true/false, none/null, else the text itself."""
    lowered = text.strip().lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if lowered in ("none", "null"):
        return None
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text
