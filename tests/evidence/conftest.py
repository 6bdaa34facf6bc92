"""One workspace shared by a test module: a signing key, training and holdout data sets, and
two versions of a small credit model, v1 the champion then v2 promoted through the gate."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from modelcycle import Workspace, init_workspace
from modelcycle.registry import PromotionRefused

FEATURES = ["age", "income"]


def frame(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = pd.DataFrame(
        {
            "age": rng.integers(18, 80, n),
            "income": rng.normal(50.0, 10.0, n),
            "region": rng.choice(["north", "south", "east"], n),
        }
    )
    noise = rng.random(n) < 0.2
    return x.assign(target=((x["age"] > 45) ^ noise).astype(np.int64))


@pytest.fixture(scope="module")
def ews(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Workspace]:
    root = tmp_path_factory.mktemp("evidence") / "ws"
    mp = pytest.MonkeyPatch()
    for var in ("MODELCYCLE_HOME", "MODELCYCLE_DB_URL", "MODELCYCLE_ARTIFACTS"):
        mp.delenv(var, raising=False)
    mp.setenv("MODELCYCLE_ACTOR", "tester")
    ws, _ = init_workspace(root)
    ws.keys.create()
    train = ws.datasets.add("credit_train", frame(200, 0))
    holdout = ws.datasets.add("credit_holdout", frame(120, 1))
    data = frame(200, 0)
    tags = {
        "holdout": holdout.ref,
        "target": "target",
        "intended_use": "ranking credit applications for manual review",
        "owner": "risk team",
    }
    for c in (0.001, 1.0):
        model = LogisticRegression(C=c).fit(data[FEATURES], data["target"])
        ws.registry.register(
            model, "credit", input_example=data[FEATURES].head(5), datasets=[train], tags=tags
        )
    ws.registry.set_alias("credit", "champion", 1)
    ws.registry.promote("credit/2", "champion", metric="accuracy", min_rows=10)
    # A refused gate (no gain of 1.0 in accuracy is possible): recorded with both scores.
    with pytest.raises(PromotionRefused):
        ws.registry.promote("credit/1", "champion", metric="accuracy", min_rows=10, min_gain=1.0)
    try:
        yield ws
    finally:
        ws.close()
        mp.undo()
