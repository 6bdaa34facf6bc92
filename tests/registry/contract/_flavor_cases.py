"""One small fitted model per flavor (and kind) for the flavor contract suite.

Each case is built on first use and kept for the session: 200 rows, 3 features, a few trees,
so the whole suite stays fast.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

ROWS = 200


@dataclass(frozen=True)
class Case:
    id: str
    flavor: str
    model: Any  # what the user registers
    table: pa.Table  # input rows, in the model's signature
    classifier: bool
    trust: bool = False
    # the packages (normalised names) the bundle's lock must hold, besides the server's
    needs: tuple[str, ...] = ()
    # the labels the user's own object predicts on these rows (None: no such method)
    own: Callable[[], np.ndarray] | None = None


def frame(numeric_only: bool = False) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(7)
    data = pd.DataFrame(
        {
            "income": rng.normal(50.0, 15.0, ROWS),
            "age": rng.normal(45.0, 12.0, ROWS),
            "debt": rng.normal(10.0, 4.0, ROWS),
        }
    )
    if not numeric_only:
        data["region"] = rng.choice(["north", "south", "east"], ROWS)
    score = (data.income - 50) / 15 + (data.age - 45) / 12
    label = (score + rng.normal(0, 0.5, ROWS) > 0).to_numpy().astype(np.int64)
    target = (data.income * 2 + data.debt).to_numpy()
    return data, label, target


def _skops() -> Case:
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder

    x, y, _ = frame()
    pre = ColumnTransformer(
        [("cat", OneHotEncoder(handle_unknown="ignore"), ["region"])], remainder="passthrough"
    )
    model = make_pipeline(pre, LogisticRegression(max_iter=500)).fit(x, y)
    return Case(
        "skops", "skops", model, pa.Table.from_pandas(x), True, needs=("scikit-learn", "skops")
    )


def _onnx() -> Case:
    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import FloatTensorType
    from sklearn.linear_model import LogisticRegression

    x, y, _ = frame(numeric_only=True)
    fitted = LogisticRegression().fit(x.to_numpy(dtype=np.float32), y)
    proto = to_onnx(
        fitted, initial_types=[("input", FloatTensorType([None, 3]))], options={"zipmap": False}
    )
    return Case("onnx", "onnx", proto, pa.Table.from_pandas(x), True, needs=("onnxruntime",))


def _xgb_classifier() -> Case:
    import xgboost as xgb

    x, y, _ = frame()
    x = x.assign(region=x.region.astype("category"))
    model = xgb.XGBClassifier(n_estimators=8, max_depth=3, enable_categorical=True).fit(x, y)
    table = pa.Table.from_pandas(x.assign(region=x.region.astype(str)))
    return Case(
        "xgboost-classifier",
        "xgboost",
        model,
        table,
        True,
        needs=("xgboost-cpu",),
        own=lambda: model.predict(x),
    )


def _xgb_booster() -> Case:
    import xgboost as xgb

    x, _, target = frame(numeric_only=True)
    booster = xgb.train({"max_depth": 3}, xgb.DMatrix(x, label=target), num_boost_round=8)
    return Case("xgboost-booster-regression", "xgboost", booster, pa.Table.from_pandas(x), False)


def _lgbm_classifier() -> Case:
    import lightgbm as lgb

    x, y, _ = frame()
    labels = np.where(y == 1, "bad", "good")  # text labels: the file format keeps none
    x = x.assign(region=x.region.astype("category"))
    model = lgb.LGBMClassifier(n_estimators=8, num_leaves=7, min_child_samples=5, verbose=-1)
    model.fit(x, labels)
    table = pa.Table.from_pandas(x.assign(region=x.region.astype(str)))
    return Case(
        "lightgbm-classifier",
        "lightgbm",
        model,
        table,
        True,
        needs=("lightgbm",),
        own=lambda: model.predict(x),
    )


def _lgbm_booster() -> Case:
    import lightgbm as lgb

    x, _, target = frame(numeric_only=True)
    params = {"objective": "regression", "num_leaves": 7, "min_data_in_leaf": 5, "verbose": -1}
    booster = lgb.train(params, lgb.Dataset(x, label=target), num_boost_round=8)
    return Case("lightgbm-booster-regression", "lightgbm", booster, pa.Table.from_pandas(x), False)


def _python_model(folder: Path) -> Case:
    from _flavor_user_model import ThresholdModel

    from modelcycle.registry.flavors import PythonModelSpec

    config = folder / "config.json"
    config.write_text(json.dumps({"threshold": 52.5}))
    x, _, _ = frame(numeric_only=True)
    spec = PythonModelSpec(ThresholdModel, artifacts={"config": str(config)})
    return Case("python-model", "python-model", spec, pa.Table.from_pandas(x), True, trust=True)


def _pickle() -> Case:
    from sklearn.ensemble import RandomForestRegressor

    x, _, target = frame(numeric_only=True)
    model = RandomForestRegressor(n_estimators=5, max_depth=4, random_state=0).fit(x, target)
    return Case(
        "pickle",
        "pickle",
        model,
        pa.Table.from_pandas(x),
        False,
        trust=True,
        needs=("scikit-learn",),
    )


def _skops_trees() -> Case:
    """Boosted trees behind a scaler: the kind whose labels batch jobs compile."""
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x, y, _ = frame(numeric_only=True)
    model = make_pipeline(StandardScaler(), HistGradientBoostingClassifier(max_iter=20))
    model.fit(x, y)
    table = pa.Table.from_pandas(x)
    return Case("skops-trees", "skops", model, table, True, needs=("scikit-learn", "skops"))


BUILDERS: dict[str, Callable[[Path], Case]] = {
    "skops": lambda _: _skops(),
    "skops-trees": lambda _: _skops_trees(),
    "onnx": lambda _: _onnx(),
    "xgboost-classifier": lambda _: _xgb_classifier(),
    "xgboost-booster-regression": lambda _: _xgb_booster(),
    "lightgbm-classifier": lambda _: _lgbm_classifier(),
    "lightgbm-booster-regression": lambda _: _lgbm_booster(),
    "python-model": _python_model,
    "pickle": lambda _: _pickle(),
}
# One case per flavor goes through the registry, serving, batch and bundle (the others stop at
# the flavor itself).
FULL = ("skops", "onnx", "xgboost-classifier", "lightgbm-classifier", "python-model", "pickle")


@cache
def build(case_id: str, folder: Path) -> Case:
    return BUILDERS[case_id](folder)
