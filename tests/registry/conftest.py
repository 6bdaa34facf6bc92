"""Small data and models shared by the registry tests (fitted once per session: they do not
depend on the backend)."""

from __future__ import annotations

from typing import Any

import pandas as pd
import pytest
from _registry_helpers import FEATURES, NUMERIC, make_frame
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler


@pytest.fixture(scope="session")
def frame() -> pd.DataFrame:
    return make_frame()


@pytest.fixture(scope="session")
def hgb(frame: pd.DataFrame) -> HistGradientBoostingClassifier:
    return HistGradientBoostingClassifier(max_iter=15, random_state=0).fit(
        frame[NUMERIC], frame.label
    )


@pytest.fixture(scope="session")
def pipeline(frame: pd.DataFrame) -> Any:
    pre = ColumnTransformer(
        [
            ("num", StandardScaler(), NUMERIC),
            ("cat", OneHotEncoder(handle_unknown="ignore"), ["region"]),
        ]
    )
    return make_pipeline(pre, LogisticRegression(max_iter=500)).fit(frame[FEATURES], frame.label)


@pytest.fixture(scope="session")
def weak_pipeline(frame: pd.DataFrame) -> Any:
    """Sees only the region: clearly worse than ``pipeline``."""
    pre = ColumnTransformer([("cat", OneHotEncoder(handle_unknown="ignore"), ["region"])])
    return make_pipeline(pre, LogisticRegression()).fit(frame[FEATURES], frame.label)


@pytest.fixture(scope="session")
def ridge(frame: pd.DataFrame) -> Ridge:
    return Ridge().fit(frame[NUMERIC], frame.income * 2 + frame.age)
