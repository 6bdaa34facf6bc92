"""The trainer's estimators: which scikit-learn class each algorithm is, and its
hyperparameters checked against that class's constructor before anything runs.

``xgboost`` and ``lightgbm`` are those libraries' scikit-learn wrappers, available when the
extra is installed (``pip install 'modelcycle[xgboost]'``, ``[lightgbm]``). They take the raw
columns themselves (text as categories, missing numbers as they are: see ``NATIVE``), so the
trainer registers them without a scikit-learn preprocessing pipeline, in their own flavor."""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any

from modelcycle.errors import InvalidInput, NotReady

__all__ = [
    "ALGORITHMS",
    "NATIVE",
    "build_estimator",
    "check_hyperparams",
    "estimator_class",
    "parse_value",
]

ALGORITHMS = ("hgb", "logreg", "rf", "linear", "xgboost", "lightgbm")
# Algorithms fitted on the raw columns (text as pandas categories), without preprocessing.
NATIVE = ("xgboost", "lightgbm")

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
    "xgboost": ("xgboost", "XGBClassifier", "XGBRegressor"),
    "lightgbm": ("lightgbm", "LGBMClassifier", "LGBMRegressor"),
}
# What the trainer sets unless the user says otherwise.
_DEFAULTS: dict[str, dict[str, Any]] = {
    "RandomForestClassifier": {"n_estimators": 100},
    "RandomForestRegressor": {"n_estimators": 100},
    "LogisticRegression": {"max_iter": 1000},
    "Ridge": {"alpha": 1.0},
    # Text columns reach XGBoost as pandas categories; hist is the method that takes them.
    "XGBClassifier": {"n_estimators": 100, "enable_categorical": True, "tree_method": "hist"},
    "XGBRegressor": {"n_estimators": 100, "enable_categorical": True, "tree_method": "hist"},
    "LGBMClassifier": {"n_estimators": 100, "verbose": -1},
    "LGBMRegressor": {"n_estimators": 100, "verbose": -1},
}
_SEEDED = (
    "HistGradientBoostingClassifier",
    "HistGradientBoostingRegressor",
    "RandomForestClassifier",
    "RandomForestRegressor",
    "XGBClassifier",
    "XGBRegressor",
    "LGBMClassifier",
    "LGBMRegressor",
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
    try:
        found = importlib.import_module(module)
    except ImportError:
        raise NotReady(
            f"--model {algorithm} needs the {module} package, which is not installed; "
            f"install it with: pip install 'modelcycle[{algorithm}]'"
        ) from None
    cls: type[Any] = getattr(found, name)
    return cls


def _accepted(cls: type[Any]) -> list[str]:
    names = {
        p.name
        for p in inspect.signature(cls.__init__).parameters.values()
        if p.name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
    }
    # XGBoost's wrappers take most parameters through **kwargs; get_params lists them all.
    return sorted(names | set(cls().get_params(deep=False)))


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
        # scikit-learn checks values at fit time; check them now, with the parameter named
        # (XGBoost and LightGBM declare no constraints: they check at fit time).
        if hasattr(estimator, "_parameter_constraints"):
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
