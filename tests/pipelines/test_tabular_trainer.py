"""The built-in tabular trainer: registration, lineage, holdout, reproducibility, CLI."""

from __future__ import annotations

import html
import json
import re

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
        workspace.pipelines.train("houses", "price", model="catboost")


def test_train_from_the_cli(credit: Workspace, cli) -> None:  # type: ignore[no-untyped-def]
    proc = cli(
        "train", "--data", "credit@1", "--target", "default",  # the default model: hgb
        "--register", "cli-model", "--seed", "1",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "succeeded" in proc.stdout
    assert "cli-model/1" in proc.stdout
    assert credit.registry.get("cli-model@challenger").version == 1


# -- issue 13 item 12: --drop and --param ---------------------------------------------------


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_train_drops_columns_and_takes_estimator_params_from_the_cli(
    credit: Workspace, cli
) -> None:  # type: ignore[no-untyped-def]
    proc = cli(
        "train", "--data", "credit@1", "--target", "default", "--register", "tuned",
        "--drop", "purpose", "--drop", "employment",
        "--param", "max_iter=20", "--param", "learning_rate=0.3",
        "--param", "early_stopping=false", "--param", "max_depth=None",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (
        "algorithm: HistGradientBoostingClassifier (hgb) with max_iter=20, learning_rate=0.3, "
        "early_stopping=False, max_depth=None"
    ) in proc.stdout
    mv = credit.registry.get("tuned/1")
    run = credit.pipelines.get_run(mv.run_id or "")
    assert run.params["drop"] == ["purpose", "employment"]
    assert run.params["hyperparams"] == {
        "max_iter": 20,
        "learning_rate": 0.3,
        "early_stopping": False,
        "max_depth": None,
    }
    assert mv.params["estimator"] == "HistGradientBoostingClassifier"
    inputs = [c["name"] for c in mv.signature["inputs"]]
    assert "purpose" not in inputs
    assert "employment" not in inputs
    assert "age" in inputs
    fitted = credit.registry.load("tuned/1").model[-1]
    assert (fitted.max_iter, fitted.learning_rate, fitted.early_stopping) == (20, 0.3, False)
    # The holdout keeps every column: a champion that uses the dropped ones can be scored on it.
    assert "purpose" in credit.datasets.get("credit-holdout", 1).column_names


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_train_refuses_bad_drops_and_params_before_running(credit: Workspace, cli) -> None:  # type: ignore[no-untyped-def]
    for args, expected in (
        (("--param", "nope=1"), "HistGradientBoostingClassifier (hgb) has no parameter 'nope'"),
        (("--model", "rf", "--param", "max_iter=3"), "RandomForestClassifier (rf) has no"),
        (("--param", "max_iter=abc"), "'max_iter' parameter"),
        (("--param", "max_iter"), "'max_iter' is not KEY=VALUE"),
        (("--drop", "default"), "'default' is the target"),
        (("--drop", "zzz"), "no column 'zzz' to drop"),
    ):
        proc = cli("train", "--data", "credit@1", "--target", "default", *args)
        message = " ".join(proc.stderr.split())
        assert proc.returncode == 2, (args, proc.stdout, proc.stderr)
        assert expected in message, (args, message)
        assert "Traceback" not in proc.stderr
    proc = cli("train", "--data", "credit@1", "--target", "default", "--param", "nope=1")
    assert "valid: " in proc.stderr
    assert "max_iter" in proc.stderr
    assert "learning_rate" in proc.stderr
    assert credit.pipelines.runs() == []  # nothing ran, nothing was half-written
    with pytest.raises(InvalidInput, match="no parameter 'n_estimator'"):
        credit.pipelines.train("credit", "default", model="rf", params={"n_estimator": 5})
    with pytest.raises(InvalidInput, match="is the target"):
        credit.pipelines.train("credit", "default", drop=["default"])
    run = credit.pipelines.train(
        "credit", "default", model="rf", params={"n_estimators": 7}, drop=["age"], progress=False
    )
    assert run.ok, run.error
    assert credit.registry.load(run.models[0]).model[-1].n_estimators == 7
    assert (run.params["hyperparams"], run.params["drop"]) == ({"n_estimators": 7}, ["age"])


def test_param_values_are_parsed_as_numbers_booleans_none_or_text() -> None:
    from modelcycle.pipelines import parse_hyperparam

    assert [parse_hyperparam(v) for v in ("7", "0.5", "1e-3", "true", "False", "None", "null")] == [
        7, 0.5, 0.001, True, False, None, None,
    ]  # fmt: skip
    assert parse_hyperparam("sqrt") == "sqrt"


# -- issue 13 item 13: evaluation artifacts ---------------------------------------------------


def _svg_figures(page: str) -> dict[str, str]:
    """Each inline <svg> of the evaluation page by its <title>; each is an accessible image."""
    figures = {}
    for svg in re.findall(r"<svg\b.*?</svg>", page, flags=re.S):
        assert 'role="img"' in svg
        assert re.search(r"<desc id=[^>]*>[^<]{20,}</desc>", svg)
        title = re.search(r"<title id=[^>]*>([^<]*)</title>", svg)
        assert title is not None
        figures[html.unescape(title.group(1))] = svg
    return figures


def _cell_counts(svg: str) -> list[list[int]]:
    """The counts written in the confusion-matrix cells, read back from their tooltips and
    text, row by row (rows: true class)."""
    cells = re.findall(
        r"<title>true ([^,]*), predicted ([^:]*): (\d+)</title></rect><text[^>]*>"
        r"(\d+)</text>",
        svg,
    )
    assert all(shown == count for _, _, count, shown in cells)
    labels = list(dict.fromkeys(true for true, _, _, _ in cells))
    return [[int(c) for t, _, c, _ in cells if t == label] for label in labels]


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_evaluation_artifacts_of_a_binary_classifier(credit: Workspace, cli) -> None:  # type: ignore[no-untyped-def]
    run = credit.pipelines.train("credit", "default", model="logreg", progress=False)
    assert run.ok, run.error
    ev = run.step("evaluate").outputs
    assert (ev["evaluation"]["format"], ev["evaluation_html"]["format"]) == ("json", "bytes")
    mv = credit.registry.get(run.models[0])
    # Artifacts of the run, linked from the version by sha256.
    assert mv.tags["evaluation"] == ev["evaluation"]["sha256"]
    assert mv.tags["evaluation_html"] == ev["evaluation_html"]["sha256"]
    assert mv.tags["training_rows"] == run.step("split").outputs["training_rows"]["sha256"]

    details = credit.pipelines.output(run.id, "evaluate", "evaluation")
    holdout = credit.datasets.get("credit-holdout", 1)
    y = holdout.column("default").to_numpy()
    predicted = credit.registry.load(mv.ref).predict(holdout.drop_columns(["default"]))
    cm = details["confusion_matrix"]
    assert cm["labels"] == ["0", "1"]
    assert cm["matrix"] == [
        [int(np.sum((y == t) & (predicted == p))) for p in (0, 1)] for t in (0, 1)
    ]
    assert [c["support"] for c in details["per_class"]] == [
        int(np.sum(y == 0)),
        int(np.sum(y == 1)),
    ]
    assert details["roc"]["auc"] == pytest.approx(run.metrics["roc_auc"], abs=1e-5)
    assert details["roc"]["fpr"][0] == 0.0
    assert details["roc"]["tpr"][-1] == 1.0
    assert len(details["pr"]["precision"]) == len(details["pr"]["recall"]) <= 200
    importance = details["permutation_importance"]
    assert {f["feature"] for f in importance["features"]} == set(holdout.column_names) - {"default"}
    assert importance["rows"] == holdout.num_rows
    assert importance["repeats"] <= 5

    raw = credit.artifacts.get_bytes(mv.tags["evaluation_html"])
    page = raw.decode()
    assert page.startswith("<!doctype html>")
    # Inline SVG, no JavaScript: tens of KB per run (it was 4.8 MB with plotly.js inlined).
    assert "<script" not in page.lower()
    assert len(raw) < 200_000
    figures = _svg_figures(page)
    assert list(figures) == [
        f"ROC curve (AUC {details['roc']['auc']}, positive class 1)",
        f"Precision-recall (AP {details['pr']['average_precision']})",
        "Confusion matrix",
        "Permutation importance",
    ]
    roc = figures[f"ROC curve (AUC {details['roc']['auc']}, positive class 1)"]
    points = re.search(r'<polyline data-series="model" points="([^"]*)"', roc)
    assert points is not None
    assert len(points.group(1).split()) == len(details["roc"]["fpr"])
    assert _cell_counts(figures["Confusion matrix"]) == cm["matrix"]
    for feature in importance["features"]:
        assert f">{feature['feature']}</text>" in figures["Permutation importance"]

    proc = cli("runs", "show", run.id)
    assert proc.returncode == 0, proc.stderr
    assert "confusion matrix" in proc.stdout
    assert "top features" in proc.stdout
    assert f"evaluation_html  sha256 {mv.tags['evaluation_html']}" in proc.stdout
    proc = cli("models", "show", mv.ref)
    assert proc.returncode == 0, proc.stderr
    top = importance["features"][0]["feature"]
    assert "confusion matrix" in proc.stdout
    assert "top features" in proc.stdout
    assert top in proc.stdout
    assert f"evaluation       sha256 {mv.tags['evaluation']}" in proc.stdout
    shown = json.loads(cli("models", "show", mv.ref, "--json").stdout)["evaluation"]
    assert shown["details"] == details
    assert shown["artifacts"]["evaluation_html"]["sha256"] == mv.tags["evaluation_html"]
    shown = json.loads(cli("runs", "show", run.id, "--json").stdout)["evaluation"]
    assert shown["details"] == details


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_evaluation_of_a_regressor_and_a_multiclass_model(workspace: Workspace) -> None:
    rng = np.random.default_rng(1)
    n = 300
    x = rng.normal(size=n)
    noise = rng.normal(size=n)
    table = pa.table({"x": x, "noise": noise, "y": 2 * x + rng.normal(0, 0.1, n)})
    workspace.datasets.add("lin", table)
    run = workspace.pipelines.train("lin", "y", model="linear", progress=False)
    assert run.ok, run.error
    details = workspace.pipelines.output(run.id, "evaluate", "evaluation")
    assert "confusion_matrix" not in details
    assert "roc" not in details
    res = details["residuals"]
    assert res["summary"]["count"] == 60
    assert abs(res["summary"]["mean"]) < 0.1
    assert res["summary"]["std"] < 0.2
    assert len(res["points"]["predicted"]) == len(res["points"]["residual"]) == 60
    assert [f["feature"] for f in details["permutation_importance"]["features"]] == ["x", "noise"]
    page = workspace.artifacts.get_bytes(run.step("evaluate").outputs["evaluation_html"]["sha256"])
    assert b"<script" not in page.lower()
    figures = _svg_figures(page.decode())
    assert list(figures) == ["Residuals (60 of 60 holdout rows)", "Permutation importance"]
    assert figures["Residuals (60 of 60 holdout rows)"].count("<circle ") == 60

    species = np.where(x > 0.5, "a", np.where(x < -0.5, "b", "c"))
    workspace.datasets.add("three", pa.table({"x": x, "noise": noise, "kind": species}))
    run = workspace.pipelines.train("three", "kind", model="logreg", progress=False)
    assert run.ok, run.error
    details = workspace.pipelines.output(run.id, "evaluate", "evaluation")
    assert details["confusion_matrix"]["labels"] == ["a", "b", "c"]
    assert sum(map(sum, details["confusion_matrix"]["matrix"])) == 60
    assert "roc" not in details  # curves are for two classes
    page = workspace.artifacts.get_bytes(run.step("evaluate").outputs["evaluation_html"]["sha256"])
    assert b"<script" not in page.lower()
    assert len(page) < 200_000
    figures = _svg_figures(page.decode())
    assert list(figures) == ["Confusion matrix", "Permutation importance"]
    assert _cell_counts(figures["Confusion matrix"]) == details["confusion_matrix"]["matrix"]
