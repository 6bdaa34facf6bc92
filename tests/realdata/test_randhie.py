"""A regression on the RAND Health Insurance Experiment (doctor visits from coinsurance,
deductible, health and chronic disease), run from a user's own git repository: the code
version recorded is the user's commit, batch scoring of the Parquet export agrees with the
SDK, and the evaluation holds the residuals. See _realdata.py for where the data come from."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pandas as pd
import pytest
from _realdata import Project, git_head, project, randhie, read_scored, write_parquet

ROWS = 2_000
TARGET = "mdvis"


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    return randhie(ROWS)


@pytest.fixture(scope="module")
def hie(tmp_path_factory: pytest.TempPathFactory, frame: pd.DataFrame) -> Iterator[Project]:
    """hie@1 from a Parquet export and hie/1, a linear model trained from the CLI inside the
    user's repository."""
    with project(tmp_path_factory, "randhie", git=True) as proj:
        write_parquet(frame, proj.root / "hie.parquet")
        proj.cli("data", "add", "hie", "hie.parquet")
        proj.cli("train", "--data", "hie", "--target", TARGET, "--model", "linear")
        yield proj


def test_the_code_version_is_the_users_commit(hie: Project) -> None:
    head = git_head(hie.root)
    lineage = hie.ws.registry.lineage("hie/1")
    assert lineage.code_version == head
    shown = hie.out("models", "show", "hie/1")
    assert f"code version: {head}" in shown
    run = hie.ws.pipelines.get_run(lineage.run_id or "")
    assert run.code["commit"] == head
    assert run.code["branch"] == "main"
    assert run.code["repository"] == str(hie.root.resolve())
    assert run.code["dirty"] is False


def test_batch_scoring_the_parquet_export_matches_the_sdk(
    hie: Project, frame: pd.DataFrame
) -> None:
    out = hie.root / "scored"
    hie.cli(
        "score", "hie/1", "--input", "hie.parquet", "--output", str(out), "--passthrough", "idp"
    )
    scored = read_scored(out)
    assert len(scored) == ROWS
    assert list(scored["idp"]) == list(frame["idp"])
    expected = hie.ws.registry.load("hie/1").predict(frame.drop(columns=[TARGET]))
    np.testing.assert_allclose(scored["prediction"].to_numpy(), expected, rtol=1e-12)


def test_the_regressor_evaluation_holds_its_residuals(hie: Project) -> None:
    ws = hie.ws
    mv = ws.registry.get("hie/1")
    assert mv.signature["task"] == "regression"
    details = ws.pipelines.output(mv.run_id or "", "evaluate", "evaluation")
    holdout = ws.datasets.get(*_split(mv.tags["holdout"]))
    y = holdout.column(TARGET).to_numpy().astype(float)
    residual = y - ws.registry.load(mv.ref).predict(holdout.drop_columns([TARGET]))
    summary = details["residuals"]["summary"]
    assert summary["count"] == holdout.num_rows == ROWS // 5
    assert summary["mean"] == pytest.approx(residual.mean(), rel=1e-5)
    assert "confusion_matrix" not in details
    features = {f["feature"] for f in details["permutation_importance"]["features"]}
    assert features == set(holdout.column_names) - {TARGET}


def _split(ref: str) -> tuple[str, int]:
    name, version = ref.split("@")
    return name, int(version)
