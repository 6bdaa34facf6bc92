"""The deploy tests' shared workspace (helpers live in _deploy_helpers.py)."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
from _deploy_helpers import frame, kill_servers
from sklearn.linear_model import LogisticRegression

from modelcycle import Workspace, init_workspace


@pytest.fixture(scope="module")
def dws(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Workspace]:
    root = tmp_path_factory.mktemp("deploy") / "ws"
    mp = pytest.MonkeyPatch()
    for key in ("MODELCYCLE_HOME", "MODELCYCLE_DB_URL", "MODELCYCLE_ARTIFACTS"):
        mp.delenv(key, raising=False)
    mp.setenv("MODELCYCLE_ACTOR", "tester")
    ws, _ = init_workspace(root)
    x, y = frame()
    ws.registry.register(
        LogisticRegression(C=0.01).fit(x, y), "credit", input_example=x.head(5), tags={"a": "1"}
    )
    ws.registry.register(LogisticRegression(C=10.0).fit(x, y), "credit", input_example=x.head(5))
    # v3 claims a column the model was never fitted on: it loads, then every request fails.
    bad = x.head(5).assign(shoe_size=np.arange(5, dtype=np.int64))
    signature = {
        "inputs": [
            {"name": "age", "type": "int64", "nullable": False},
            {"name": "income", "type": "double", "nullable": False},
            {"name": "shoe_size", "type": "int64", "nullable": False},
        ],
        "outputs": [{"name": "predict", "type": "int64", "shape": [-1]}],
        "task": "binary_classification",
        "classes": [0, 1],
    }
    ws.registry.register(
        LogisticRegression().fit(x, y), "credit", signature=signature, input_example=bad
    )
    ws.registry.register(
        LogisticRegression().fit(x, y),
        "pickled",
        flavor="pickle",
        trust=True,
        input_example=x.head(5),
    )
    try:
        yield ws
    finally:
        kill_servers(root)
        ws.close()
        mp.undo()
