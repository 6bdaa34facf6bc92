"""The shipped credit-risk generator: deterministic per seed, learnable, drift moves it."""

from __future__ import annotations

import pyarrow.compute as pc
import pytest
from sklearn.compose import make_column_transformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from modelcycle import InvalidInput
from modelcycle.datasets import make_credit
from modelcycle.datasets._ingest import content_sha256

NUMERIC = [
    "age", "income", "debt_ratio", "credit_lines", "late_payments", "loan_amount",
    "loan_term", "years_employed",
]  # fmt: skip
CATEGORICAL = ["employment", "home_ownership", "purpose"]


def test_same_seed_same_table_other_seed_other_table() -> None:
    a = make_credit(2000, seed=5)
    assert a.equals(make_credit(2000, seed=5))
    assert content_sha256(a) == content_sha256(make_credit(2000, seed=5))
    assert not a.equals(make_credit(2000, seed=6))
    assert a.num_rows == 2000
    assert a.column_names == [*NUMERIC, *CATEGORICAL, "default"]
    assert 8 <= a.num_columns <= 12


def test_a_logistic_regression_learns_it() -> None:
    train = make_credit(8000, seed=1).to_pandas()
    test = make_credit(4000, seed=2).to_pandas()
    model = make_pipeline(
        make_column_transformer(
            (make_pipeline(SimpleImputer(), StandardScaler()), NUMERIC),
            (OneHotEncoder(handle_unknown="ignore"), CATEGORICAL),
        ),
        LogisticRegression(max_iter=1000),
    ).fit(train[NUMERIC + CATEGORICAL], train["default"])
    auc = roc_auc_score(test["default"], model.predict_proba(test[NUMERIC + CATEGORICAL])[:, 1])
    assert 0.7 < auc < 0.9
    assert 0.08 < train["default"].mean() < 0.35


def test_drift_moves_the_distributions() -> None:
    base = make_credit(5000, seed=3).to_pandas()
    drifted = make_credit(5000, seed=3, drift=1.0).to_pandas()
    assert drifted["age"].mean() < base["age"].mean() - 5
    assert drifted["debt_ratio"].mean() > base["debt_ratio"].mean() + 0.05
    assert (drifted["employment"] == "unemployed").mean() > (
        base["employment"] == "unemployed"
    ).mean()
    assert drifted["default"].mean() > base["default"].mean()


def test_bad_arguments() -> None:
    with pytest.raises(InvalidInput, match="rows"):
        make_credit(0)
    with pytest.raises(InvalidInput, match="drift"):
        make_credit(10, drift=2.0)


def test_concept_drift_changes_only_the_target() -> None:
    base = make_credit(3000, seed=4)
    assert make_credit(3000, seed=4, concept=0.0).equals(base)
    shifted = make_credit(3000, seed=4, concept=1.0)
    assert shifted.drop_columns(["default"]).equals(base.drop_columns(["default"]))
    assert shifted.column("default") != base.column("default")
    assert pc.mean(shifted.column("default")).as_py() > pc.mean(base.column("default")).as_py()
