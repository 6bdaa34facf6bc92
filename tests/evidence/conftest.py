"""One workspace with a signing key and two versions of a small model, shared by the module."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from modelcycle import Workspace, init_workspace


def frame(n: int = 60, seed: int = 0) -> tuple[pd.DataFrame, pd.Series]:
    rng = np.random.default_rng(seed)
    x = pd.DataFrame(
        {
            "age": rng.integers(18, 80, n),
            "income": rng.normal(50.0, 10.0, n),
        }
    )
    y = ((x["age"] > 45) ^ (x["income"] > 52.0)).astype(np.int64)
    return x, y


@pytest.fixture(scope="module")
def ews(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Workspace]:
    root = tmp_path_factory.mktemp("evidence") / "ws"
    mp = pytest.MonkeyPatch()
    for var in ("MODELCYCLE_HOME", "MODELCYCLE_DB_URL", "MODELCYCLE_ARTIFACTS"):
        mp.delenv(var, raising=False)
    mp.setenv("MODELCYCLE_ACTOR", "tester")
    ws, _ = init_workspace(root)
    ws.keys.create()
    x, y = frame()
    ws.registry.register(LogisticRegression().fit(x, y), "credit", input_example=x.head(5))
    try:
        yield ws
    finally:
        ws.close()
        mp.undo()
