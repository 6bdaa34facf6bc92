"""The built-in tabular trainer: registration, lineage, holdout, reproducibility, CLI."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from modelcycle import InvalidInput, Workspace
from modelcycle.datasets import make_credit

ROWS = 1000


@pytest.fixture
def credit(workspace: Workspace) -> Workspace:
    workspace.datasets.add("credit", make_credit(ROWS, seed=3))
    return workspace


def test_trainer_registers_a_challenger_with_lineage_and_a_holdout(credit: Workspace) -> None:
    ws = credit
    run = ws.pipelines.train("credit", "default", model="logreg", register="risk", progress=False)
    assert run.ok, run.error
    assert [s.name for s in run.steps] == [
        "load",
        "split",
        "preprocess",
        "train",
        "evaluate",
        "register",
    ]
    assert set(run.metrics) == {"accuracy", "f1", "roc_auc", "log_loss"}
    assert 0.5 < run.metrics["roc_auc"] <= 1.0
    assert run.models == ["risk/1"]
    assert run.datasets == ["credit@1", "credit-holdout@1"]
    assert run.params["algorithm"] == "logreg"

    holdout = ws.datasets.version("credit-holdout@1")
    assert holdout.num_rows == ROWS // 5
    assert run.step("split").datasets == ["credit-holdout@1"]

    mv = ws.registry.get("risk/1")
    assert mv.run_id == run.id
    assert "challenger" in mv.aliases
    assert mv.tags["holdout"] == "credit-holdout@1"
    assert mv.tags["target"] == "default"
    assert mv.metrics == run.metrics
    assert sorted(mv.datasets) == ["credit-holdout@1", "credit@1"]
    lineage = ws.registry.lineage("risk/1")
    assert lineage.run_id == run.id
    # ... and back from the run id to the run and the data set versions it read.
    back = ws.pipelines.get_run(lineage.run_id or "")
    assert back.models == ["risk/1"]
    assert "credit@1" in back.datasets

    # The registered model takes the raw columns and answers like the evaluation said.
    table = ws.datasets.get("credit-holdout", 1)
    loaded = ws.registry.load("risk/1")
    predicted = loaded.predict(table.drop_columns(["default"]))
    accuracy = float(np.mean(predicted == table.column("default").to_numpy()))
    assert accuracy == pytest.approx(run.metrics["accuracy"])
    # The promotion gate finds the holdout and target on its own.
    assert ws.registry.promote("risk/1", "champion").moved


def test_same_seed_same_model(credit: Workspace) -> None:
    ws = credit
    first = ws.pipelines.train("credit", "default", model="rf", seed=7, progress=False)
    again = ws.pipelines.train(
        "credit", "default", model="rf", seed=7, no_cache=True, progress=False
    )
    assert first.ok, first.error
    assert again.ok, again.error
    assert again.step("train").status == "succeeded"
    assert first.step("train").outputs == again.step("train").outputs  # same model bytes
    assert first.metrics == again.metrics
    table = ws.datasets.get("credit-holdout", 1).drop_columns(["default"])
    p1 = ws.registry.load(first.models[0]).predict_proba(table)
    p2 = ws.registry.load(again.models[0]).predict_proba(table)
    assert np.array_equal(p1, p2)
    other = ws.pipelines.train("credit", "default", model="rf", seed=8, progress=False)
    assert other.step("split").outputs != first.step("split").outputs


def test_regression_with_missing_values(workspace: Workspace) -> None:
    rng = np.random.default_rng(0)
    n = 400
    x = rng.normal(size=n)
    size = [None if i % 10 == 0 else float(v) for i, v in enumerate(rng.normal(5, 1, n))]
    city = [None if i % 7 == 0 else ["oslo", "rome", "lima"][i % 3] for i in range(n)]
    price = 3 * x + np.array([0 if s is None else s for s in size]) + rng.normal(0, 0.1, n)
    table = pa.table({"x": x, "size": size, "city": city, "price": price})
    workspace.datasets.add("houses", table)
    run = workspace.pipelines.train("houses", "price", model="linear", progress=False)
    assert run.ok, run.error
    assert run.step("split").outputs["problem"]["format"] == "json"
    assert set(run.metrics) == {"rmse", "mae", "r2"}
    assert run.metrics["r2"] > 0.5
    loaded = workspace.registry.load(run.models[0])
    assert loaded.predict(table.drop_columns(["price"]).slice(0, 3)).shape == (3,)
    with pytest.raises(InvalidInput, match="no column 'nope'"):
        workspace.pipelines.train("houses", "nope")
    with pytest.raises(InvalidInput, match="is not one of"):
        workspace.pipelines.train("houses", "price", model="xgboost")


def test_train_from_the_cli(credit: Workspace, cli) -> None:  # type: ignore[no-untyped-def]
    proc = cli(
        "train", "--data", "credit@1", "--target", "default",  # the default model: hgb
        "--register", "cli-model", "--seed", "1",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "succeeded" in proc.stdout
    assert "cli-model/1" in proc.stdout
    assert credit.registry.get("cli-model@challenger").version == 1
