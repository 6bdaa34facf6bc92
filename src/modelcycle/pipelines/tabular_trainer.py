"""The built-in tabular trainer: a pipeline of ordinary steps, as a user would write it.

    load -> split -> preprocess -> train -> evaluate -> register

``split`` stores the holdout as its own data set version (``NAME-holdout``) and the hashes of
the training rows (``training_rows``); ``evaluate`` stores the evaluation details (JSON) and
an HTML page of them; ``register`` links those artifacts of the run to the version in its
tags (``holdout``, ``target``, ``training_rows``, ``evaluation``, ``evaluation_html``), so
promotion gates score on the holdout rows neither model trained on, and points the
``challenger`` alias at the new version. The registered model is one sklearn
``Pipeline`` (ColumnTransformer + estimator) that takes the raw columns. The same data,
parameters and seed give the same fitted model (the ``fitted`` output's hash is the same).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from modelcycle.errors import InvalidInput
from modelcycle.pipelines._estimators import ALGORITHMS, NATIVE, build_estimator
from modelcycle.pipelines._evaluation import evaluation_details, render_html
from modelcycle.pipelines.context import StepContext
from modelcycle.pipelines.spec import Pipeline, step
from modelcycle.registry import encode_row_hashes, row_hashes

__all__ = [
    "ALGORITHMS",
    "TABULAR_TRAINER",
    "TABULAR_TRAINER_REF",
    "TASKS",
    "check_drop",
    "infer_task",
]

TASKS = ("auto", "classification", "regression")
TABULAR_TRAINER_REF = "modelcycle.pipelines.tabular_trainer:TABULAR_TRAINER"
_MAX_CLASSES_FOR_INTEGERS = 20
_EXAMPLE_ROWS = 5


def infer_task(column: pa.ChunkedArray) -> str:
    """classification for text, booleans and integers with few distinct values; else regression."""
    kind = column.type
    if pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_boolean(kind):
        return "classification"
    if pa.types.is_dictionary(kind):
        return "classification"
    if pa.types.is_integer(kind):
        distinct = len(pc.unique(column.drop_null()))
        return "classification" if distinct <= _MAX_CLASSES_FOR_INTEGERS else "regression"
    if pa.types.is_floating(kind) or pa.types.is_decimal(kind):
        return "regression"
    raise InvalidInput(f"cannot learn a target of type {kind}", field="target")


def check_drop(columns: list[str], target: str, drop: Any) -> list[str]:
    """``drop`` if every name is a column other than the target; else InvalidInput."""
    if isinstance(drop, str) or not isinstance(drop, list | tuple):
        raise InvalidInput("expected a list of column names", field="drop")
    if not all(isinstance(d, str) for d in drop):
        raise InvalidInput("expected a list of column names", field="drop")
    for name in drop:
        if name == target:
            raise InvalidInput(
                f"{name!r} is the target; it cannot be dropped from the features", field="drop"
            )
        if name not in columns:
            raise InvalidInput(
                f"no column {name!r} to drop; the columns: {', '.join(columns)}", field="drop"
            )
    if len(set(drop)) == len(columns) - 1:
        raise InvalidInput("dropping these leaves no feature column", field="drop")
    return list(dict.fromkeys(drop))


@step(outputs="table")
def load(data: str, ctx: StepContext) -> pa.Table:
    """The data set version to train on."""
    return ctx.load_data(data)


@step(outputs=("train_set", "holdout_set", "problem", "training_rows"))
def split(
    table: pa.Table,
    data: str,
    target: str,
    task: str,
    holdout_fraction: float,
    seed: int,
    drop: list[str],
    ctx: StepContext,
) -> dict[str, Any]:
    """Split off a holdout (stratified for classification) and store it as a data set version;
    hash the training rows (features and target) so gates can leave them out later."""
    from sklearn.model_selection import train_test_split

    if target not in table.column_names:
        raise InvalidInput(
            f"{data} has no column {target!r}; its columns: {', '.join(table.column_names)}",
            field="target",
        )
    if task not in TASKS:
        raise InvalidInput(f"{task!r} is not one of {', '.join(TASKS)}", field="task")
    drop = check_drop(table.column_names, target, drop)
    features = [c for c in table.column_names if c != target and c not in drop]
    if drop:
        print(f"dropped from the features: {', '.join(drop)}")
    if not 0.0 < float(holdout_fraction) < 1.0:
        raise InvalidInput(f"{holdout_fraction!r} is not in (0, 1)", field="holdout_fraction")
    table = table.filter(pc.is_valid(table.column(target)))
    if table.num_rows < 10:
        raise InvalidInput(
            f"{data} has {table.num_rows} rows with a {target!r}; need at least 10",
            field="data",
        )
    resolved = infer_task(table.column(target)) if task == "auto" else task
    y = table.column(target).to_numpy(zero_copy_only=False)
    stratify = None
    classes: list[Any] = []
    if resolved == "classification":
        values, counts = np.unique(y.astype(str) if y.dtype == object else y, return_counts=True)
        classes = values.tolist()
        if len(values) < 2:
            raise InvalidInput(f"{target!r} has a single class", field="target")
        stratify = y if counts.min() >= 2 else None
    train_idx, holdout_idx = train_test_split(
        np.arange(table.num_rows),
        test_size=float(holdout_fraction),
        random_state=int(seed),
        stratify=stratify,
    )
    train_set = table.take(pa.array(np.sort(train_idx)))
    holdout_set = table.take(pa.array(np.sort(holdout_idx)))
    base = data.split("@", 1)[0]
    holdout = ctx.add_data(
        f"{base}-holdout",
        holdout_set,
        description=f"holdout of {data}: {holdout_fraction} of the rows, seed {seed}, "
        f"target {target}",
    )
    print(
        f"{train_set.num_rows} training rows, {holdout_set.num_rows} holdout rows ({holdout.ref})"
    )
    problem = {
        "task": resolved,
        "target": target,
        "data": data,
        "holdout": holdout.ref,
        "classes": [str(c) for c in classes],
        "features": features,
        "dropped": drop,
    }
    # The same columns the gate hashes: the model's inputs (its signature) and the target.
    training_rows = encode_row_hashes(row_hashes(train_set, [*features, target]))
    return {
        "train_set": train_set,
        "holdout_set": holdout_set,
        "problem": problem,
        "training_rows": training_rows,
    }


@step(outputs="preprocessor")
def preprocess(train_set: pa.Table, problem: dict[str, Any]) -> Any:
    """Imputation and scaling for numbers, one-hot for categories: read off the Arrow schema."""
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline as SkPipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    numeric: list[str] = []
    categorical: list[str] = []
    ignored: list[str] = []
    for f in train_set.schema:
        if f.name not in problem["features"]:
            continue
        if pa.types.is_integer(f.type) or pa.types.is_floating(f.type):
            numeric.append(f.name)
        elif (
            pa.types.is_string(f.type)
            or pa.types.is_large_string(f.type)
            or pa.types.is_boolean(f.type)
            or pa.types.is_dictionary(f.type)
        ):
            categorical.append(f.name)
        else:
            ignored.append(f.name)
    if ignored:
        print(f"ignoring columns of other types: {', '.join(ignored)}")
    if not numeric and not categorical:
        raise InvalidInput("no numeric or categorical feature columns", field="data")
    parts: list[tuple[str, Any, list[str]]] = []
    if numeric:
        parts.append(
            (
                "numeric",
                SkPipeline(
                    [("impute", SimpleImputer(strategy="median")), ("scale", StandardScaler())]
                ),
                numeric,
            )
        )
    if categorical:
        # OneHotEncoder treats a missing value (None) as a category of its own.
        parts.append(("categorical", OneHotEncoder(handle_unknown="ignore"), categorical))
    return ColumnTransformer(parts, remainder="drop")


def _features(table: pa.Table, problem: dict[str, Any]) -> Any:
    return table.select(problem["features"]).to_pandas()


def _native_features(table: pa.Table, problem: dict[str, Any]) -> Any:
    """The raw columns for XGBoost and LightGBM: text as pandas categories (both libraries
    map categories to the ones seen in training by name, as their flavors do at scoring)."""
    frame = _features(table, problem)
    for f in table.select(problem["features"]).schema:
        if pa.types.is_string(f.type) or pa.types.is_large_string(f.type):
            frame[f.name] = frame[f.name].astype("category")
    return frame


def _inputs(fitted: Any, table: pa.Table, problem: dict[str, Any]) -> Any:
    """What ``fitted`` predicts on: a scikit-learn pipeline takes the raw frame."""
    return (
        _features(table, problem) if hasattr(fitted, "steps") else _native_features(table, problem)
    )


def _final(fitted: Any) -> Any:
    return fitted[-1] if hasattr(fitted, "steps") else fitted


def _labels(table: pa.Table, problem: dict[str, Any]) -> np.ndarray:
    y: np.ndarray = table.column(problem["target"]).to_numpy(zero_copy_only=False)
    return y.astype(str) if problem["task"] == "classification" and y.dtype == object else y


@step(outputs="fitted")
def train(
    train_set: pa.Table,
    preprocessor: Any,
    problem: dict[str, Any],
    algorithm: str,
    seed: int,
    hyperparams: dict[str, Any],
) -> Any:
    """Fit preprocessing and estimator together: the model takes the raw columns."""
    from sklearn.pipeline import Pipeline as SkPipeline

    estimator = build_estimator(problem["task"], algorithm, seed, hyperparams)
    given = ", ".join(f"{k}={v!r}" for k, v in hyperparams.items())
    print(f"fitting {type(estimator).__name__} ({algorithm}){f' with {given}' if given else ''}")
    labels = _labels(train_set, problem)
    if algorithm in NATIVE:
        # Registered as is, in the library's own flavor: no scikit-learn preprocessing.
        if algorithm == "xgboost" and problem["task"] == "classification":
            _check_class_codes(labels)
        return estimator.fit(_native_features(train_set, problem), labels)
    model = SkPipeline([("preprocess", preprocessor), ("model", estimator)])
    model.fit(_features(train_set, problem), labels)
    return model


def _check_class_codes(labels: np.ndarray) -> None:
    """XGBoost's classifier learns classes 0..K-1 only (it keeps no other labels)."""
    values = np.unique(labels)
    if values.dtype.kind not in "iu" or values.tolist() != list(range(len(values))):
        shown = ", ".join(map(str, values[:5].tolist()))
        raise InvalidInput(
            f"--model xgboost needs class labels 0..K-1, the target has {shown}; "
            "use --model lightgbm (any labels) or encode the target",
            field="target",
        )


@step(outputs=("metrics", "evaluation", "evaluation_html"))
def evaluate(
    fitted: Any, holdout_set: pa.Table, problem: dict[str, Any], seed: int, ctx: StepContext
) -> dict[str, Any]:
    """Score on the holdout: accuracy, F1, ROC AUC, log loss; or RMSE, MAE, R2. Then the
    details (confusion matrix, per-class figures, curves or residuals, permutation
    importance) as JSON, and as an HTML page."""
    from sklearn import metrics as skm

    x = _inputs(fitted, holdout_set, problem)
    y = _labels(holdout_set, problem)
    out: dict[str, float] = {}
    proba = None
    predicted = fitted.predict(x)
    if problem["task"] == "classification":
        classes = list(fitted.classes_)
        proba = fitted.predict_proba(x)
        binary = len(classes) == 2
        out["accuracy"] = float(skm.accuracy_score(y, predicted))
        out["f1"] = float(
            skm.f1_score(y, predicted, average="binary", pos_label=classes[1])
            if binary
            else skm.f1_score(y, predicted, average="macro")
        )
        if len(np.unique(y)) > 1:
            out["roc_auc"] = float(
                skm.roc_auc_score(y, proba[:, 1])
                if binary
                else skm.roc_auc_score(y, proba, multi_class="ovr", labels=classes)
            )
        out["log_loss"] = float(skm.log_loss(y, np.clip(proba, 1e-15, 1), labels=classes))
    else:
        out["rmse"] = float(np.sqrt(skm.mean_squared_error(y, predicted)))
        out["mae"] = float(skm.mean_absolute_error(y, predicted))
        out["r2"] = float(skm.r2_score(y, predicted))
    ctx.log_metrics(out)
    details = evaluation_details(
        fitted, x, y, task=problem["task"], seed=seed, predicted=predicted, proba=proba
    )
    page = render_html(
        details,
        title=f"Evaluation of {type(_final(fitted)).__name__} on {problem['holdout']}",
        metrics=out,
    )
    return {"metrics": out, "evaluation": details, "evaluation_html": page}


def _example(features: pa.Table) -> pa.Table:
    """A few rows, plus one with a missing value for each column the training data has
    missing values in: the signature then accepts missing values where the model saw them."""
    rows = list(range(min(_EXAMPLE_ROWS, features.num_rows)))
    for column in features.columns:
        if column.null_count:
            first = int(np.flatnonzero(pc.is_null(column).to_numpy(zero_copy_only=False))[0])
            if first not in rows:
                rows.append(first)
    return features.take(pa.array(rows))


@step(outputs="model_version", cache=False)
def register(
    fitted: Any,
    metrics: dict[str, float],
    train_set: pa.Table,
    problem: dict[str, Any],
    training_rows: np.ndarray,
    evaluation: dict[str, Any],
    evaluation_html: bytes,
    model_name: str | None,
    algorithm: str,
    seed: int,
    holdout_fraction: float,
    hyperparams: dict[str, Any],
    ctx: StepContext,
) -> dict[str, Any]:
    """Register the model with its metrics and lineage (the run's training-row hashes and
    evaluation artifacts linked by sha256 in its tags); point ``challenger`` at it."""
    name = model_name or problem["data"].split("@", 1)[0]
    example = _example(train_set.select(problem["features"]))
    estimator = type(_final(fitted)).__name__
    tags = {
        "holdout": problem["holdout"],
        "target": problem["target"],
        "task": problem["task"],
        "algorithm": algorithm,
        "estimator": estimator,
        "trainer": "tabular",
        # ctx.inputs: the sha256 of each stored output this step received (run artifacts).
        "training_rows": ctx.inputs["training_rows"],
        "evaluation": ctx.inputs["evaluation"],
        "evaluation_html": ctx.inputs["evaluation_html"],
    }
    if ctx.code_version:
        tags["code_version"] = ctx.code_version
    version = ctx.register_model(
        fitted,
        name,
        input_example=example,
        metrics=metrics,
        params={
            "task": problem["task"],
            "target": problem["target"],
            "algorithm": algorithm,
            "estimator": estimator,
            "hyperparams": hyperparams,
            "drop": problem["dropped"],
            "seed": seed,
            "holdout_fraction": holdout_fraction,
        },
        datasets=[problem["data"], problem["holdout"]],
        tags=tags,
    )
    ctx.set_alias(version.name, "challenger", version.version)
    print(f"registered {version.name}/{version.version} (challenger), {estimator} ({algorithm})")
    return {"name": version.name, "version": version.version}


TABULAR_TRAINER = Pipeline(
    "tabular-trainer",
    [load, split, preprocess, train, evaluate, register],
    params={
        "task": "auto",
        "algorithm": "hgb",
        "hyperparams": {},
        "drop": [],
        "model_name": None,
        "seed": 0,
        "holdout_fraction": 0.2,
    },
    required=("data", "target"),
    description="Train, evaluate and register a scikit-learn, XGBoost or LightGBM model on a "
    "tabular data set.",
)
