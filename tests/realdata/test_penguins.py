"""The Palmer penguins (text columns with missing values, numeric ones with NaNs) as a new user
brings them: a CSV export with blank fields and a Parquet copy, trained on, served and batch
scored. See _realdata.py for where the data come from."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from _realdata import (
    PENGUIN_FEATURES,
    Project,
    penguins,
    project,
    read_scored,
    table_row,
    write_csv,
    write_parquet,
)

from scoring._scoring_helpers import ServerProcess, rows_of

CLASSES = ["Adelie", "Chinstrap", "Gentoo"]


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    return penguins()


@pytest.fixture(scope="module")
def pp(tmp_path_factory: pytest.TempPathFactory, frame: pd.DataFrame) -> Iterator[Project]:
    """penguins@1 from the CSV (CLI) and penguins-parquet@1 from the Parquet copy (SDK), a model
    trained on each with the default trainer, penguins/1 the champion."""
    with project(tmp_path_factory, "penguins") as proj:
        write_csv(frame, proj.root / "penguins.csv")
        write_parquet(frame, proj.root / "penguins.parquet")
        proj.cli("data", "add", "penguins", "penguins.csv")
        proj.cli("train", "--data", "penguins", "--target", "species")
        proj.ws.datasets.add("penguins-parquet", proj.root / "penguins.parquet")
        assert proj.ws.pipelines.train("penguins-parquet", "species", progress=False).ok
        proj.ws.registry.promote("penguins/1", to="champion")
        yield proj


@pytest.fixture(scope="module")
def server(pp: Project) -> Iterator[ServerProcess]:
    srv = ServerProcess(pp.root, "penguins@champion", log=pp.root / "serve.log")
    try:
        srv.wait_ready()
        yield srv
    finally:
        srv.stop()


def _sdk_predict(pp: Project, ref: str, rows: pd.DataFrame) -> list[Any]:
    model = pp.ws.registry.load(ref)
    table = pa.Table.from_pandas(rows[PENGUIN_FEATURES], preserve_index=False)
    return list(model.predict(table))


def _invocations(server: ServerProcess, body: Any) -> httpx.Response:
    return httpx.post(f"{server.url}/invocations", json=body, timeout=30)


# -- item 3: a CSV with blanks and its Parquet copy are the same data ---------------------------


def test_csv_and_parquet_copies_have_the_same_schema_and_missing_counts(
    pp: Project, frame: pd.DataFrame
) -> None:
    from_csv = pp.ws.datasets.version("penguins", 1)
    from_parquet = pp.ws.datasets.version("penguins-parquet", 1)
    assert from_csv.schema == from_parquet.schema
    nullable = {c["name"]: c["nullable"] for c in from_csv.schema}
    assert nullable["sex"] is True  # 11 blank fields in the CSV
    nulls = {n: p["nulls"] for n, p in from_csv.profile["columns"].items()}
    assert nulls == {n: p["nulls"] for n, p in from_parquet.profile["columns"].items()}
    assert nulls == {c: int(n) for c, n in frame.isna().sum().items()}
    assert nulls["sex"] == 11
    assert "" not in [t["value"] for t in from_csv.profile["columns"]["sex"]["top"]]
    assert from_csv.sha256 == from_parquet.sha256  # the same rows, the same content
    # `data show` prints the missing count of the text column too
    shown = pp.out("data", "show", "penguins@1")
    sex = [cell.strip() for cell in table_row(shown, "sex").strip("│ ").split("│")]
    assert sex[:3] == ["sex", "string", "11"], shown


def test_models_trained_on_either_copy_have_the_same_signature(pp: Project) -> None:
    from_csv = pp.ws.registry.get("penguins/1").signature
    from_parquet = pp.ws.registry.get("penguins-parquet/1").signature
    assert from_csv == from_parquet
    assert from_csv["classes"] == CLASSES
    assert [c["name"] for c in from_csv["inputs"]] == PENGUIN_FEATURES
    assert {c["name"]: c["nullable"] for c in from_csv["inputs"]}["sex"] is True


# -- serving real rows -------------------------------------------------------------------------


def test_invocations_answer_real_rows_as_the_sdk_predicts(
    pp: Project, server: ServerProcess, frame: pd.DataFrame
) -> None:
    # Rows 0-11 hold an all-missing measurement row and three penguins of unrecorded sex.
    rows = frame.iloc[:12]
    assert rows[PENGUIN_FEATURES].isna().any(axis=1).sum() >= 4
    expected = _sdk_predict(pp, "penguins/1", rows)
    answer = _invocations(server, {"dataframe_records": rows_of(rows[PENGUIN_FEATURES], 12)})
    assert answer.status_code == 200, answer.text
    assert answer.json()["predictions"] == expected
    # The same rows as the user's CSV export (blank fields) give the same answer.
    csv_text = rows[PENGUIN_FEATURES].to_csv(index=False)
    as_csv = httpx.post(
        f"{server.url}/invocations",
        content=csv_text,
        headers={"content-type": "text/csv"},
        timeout=30,
    )
    assert as_csv.status_code == 200, as_csv.text
    assert as_csv.json()["predictions"] == expected


def test_a_string_in_a_numeric_column_is_refused_naming_column_row_and_value(
    server: ServerProcess, frame: pd.DataFrame
) -> None:
    records = rows_of(frame[PENGUIN_FEATURES], 3, start=20)
    records[1]["bill_length_mm"] = "thirty-nine"
    answer = _invocations(server, {"dataframe_records": records})
    assert answer.status_code == 400, answer.text
    body = answer.json()
    message = body["message"]
    assert "bill_length_mm" in message
    assert "'thirty-nine'" in message or '"thirty-nine"' in message, message
    assert "row 1" in message, message  # the second record (rows count from 0, as sent)
    assert "double" in message or "number" in message, message
    assert "mixed or unsupported" not in message, message  # Arrow's wording, not ours
    assert body["error_code"] == "BAD_REQUEST"


def test_integral_floats_are_accepted_for_the_integer_column(
    pp: Project, server: ServerProcess, frame: pd.DataFrame
) -> None:
    rows = frame.iloc[[0, 200, 300]]
    records = rows_of(rows[PENGUIN_FEATURES], 3)
    for r in records:
        r["year"] = float(r["year"])  # what a pandas client sends for an int column: 2007.0
    answer = _invocations(server, {"dataframe_records": records})
    assert answer.status_code == 200, answer.text
    assert answer.json()["predictions"] == _sdk_predict(pp, "penguins/1", rows)
    records[2]["year"] = 2007.5
    refused = _invocations(server, {"dataframe_records": records})
    assert refused.status_code == 400, refused.text
    assert "year" in refused.json()["message"]
    assert "2007.5" in refused.json()["message"]


def test_a_bare_nan_is_told_to_send_null(server: ServerProcess, frame: pd.DataFrame) -> None:
    record = rows_of(frame[PENGUIN_FEATURES], 1)[0]
    record["bill_length_mm"] = "__nan__"
    # NaN is not JSON, but Python's json and pandas' to_json (by default) write it bare.
    text = json.dumps({"dataframe_records": [record]}).replace('"__nan__"', "NaN")
    answer = httpx.post(
        f"{server.url}/invocations",
        content=text,
        headers={"content-type": "application/json"},
        timeout=30,
    )
    assert answer.status_code == 400, answer.text
    assert "null" in answer.json()["message"], answer.text
    assert "NaN" in answer.json()["message"], answer.text


def test_an_unsupported_media_type_carries_a_client_error_code(
    server: ServerProcess,
) -> None:
    xml = httpx.post(
        f"{server.url}/invocations",
        content=b"<rows/>",
        headers={"content-type": "application/xml"},
        timeout=30,
    )
    assert xml.status_code == 415, xml.text
    assert xml.json()["error_code"] != "INTERNAL_ERROR"
    assert xml.json()["error_code"] in ("BAD_REQUEST", "INVALID_PARAMETER_VALUE")


def test_v2_metadata_names_the_class_of_each_probability_column(server: ServerProcess) -> None:
    meta = httpx.get(f"{server.url}/v2/models/penguins", timeout=30).json()
    proba = next(o for o in meta["outputs"] if o["name"] == "predict_proba")
    assert proba["shape"] == [-1, 3]
    # as KServe's and MLServer's metadata do: the labels of the columns, in column order
    assert proba["parameters"]["classes"] == CLASSES, json.dumps(meta)


# -- batch scoring -----------------------------------------------------------------------------


def test_batch_scoring_the_csv_gives_one_prediction_per_row_as_the_sdk(
    pp: Project, frame: pd.DataFrame
) -> None:
    out = pp.root / "scored"
    pp.cli("score", "penguins@champion", "--input", "penguins.csv", "--output", str(out), "--proba")
    scored = read_scored(out)
    assert len(scored) == len(frame) == 344
    assert list(scored["prediction"]) == _sdk_predict(pp, "penguins/1", frame)
    proba = scored[[f"proba_{c}" for c in CLASSES]].to_numpy()
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-9)
    assert (scored["model_version"].astype(str) == "1").all()


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_scoring_a_file_without_a_model_column_names_it(
    pp: Project, frame: pd.DataFrame, fmt: str
) -> None:
    path = pp.root / f"no-island.{fmt}"
    lacking = frame.drop(columns=["island"]).head(50)
    write_csv(lacking, path) if fmt == "csv" else write_parquet(lacking, path)
    done = pp.cli(
        "score", "penguins/1", "--input", str(path), "--output", str(pp.root / f"o-{fmt}"),
        check=False,
    )  # fmt: skip
    assert done.returncode == 2, done.stdout + done.stderr
    assert "island" in done.stderr
    assert "Traceback" not in done.stderr
    assert "ArrowKeyError" not in done.stderr
    assert not (pp.root / f"o-{fmt}").exists()


# -- item 12: dropping columns and setting hyperparameters -------------------------------------


def test_train_drops_columns_and_takes_validated_estimator_parameters(pp: Project) -> None:
    done = pp.cli(
        "train", "--data", "penguins", "--target", "species", "--model", "logreg",
        "--drop", "year", "--drop", "island", "--param", "C=0.5", "--register", "penguins-lean",
    )  # fmt: skip
    assert "LogisticRegression" in done.stdout, done.stdout
    lean = pp.ws.registry.load("penguins-lean/1")
    inputs = [c.name for c in lean.signature.inputs]
    assert inputs == [c for c in PENGUIN_FEATURES if c not in ("year", "island")]
    assert lean.model[-1].C == 0.5
    bad = pp.cli(
        "train", "--data", "penguins", "--target", "species", "--model", "logreg",
        "--param", "depth=3", check=False,
    )  # fmt: skip
    assert bad.returncode == 2, bad.stdout + bad.stderr
    assert "depth" in bad.stderr
    assert "Traceback" not in bad.stderr
    assert len(pp.ws.registry.list("penguins-lean")) == 1


# -- item 13: evaluation artifacts of a (three-class) classifier -------------------------------


def test_a_trained_classifier_carries_its_evaluation(pp: Project) -> None:
    ws = pp.ws
    mv = ws.registry.get("penguins/1")
    assert mv.run_id is not None
    details = ws.pipelines.output(mv.run_id, "evaluate", "evaluation")
    holdout = ws.datasets.get("penguins-holdout", 1)
    y = holdout.column("species").to_numpy(zero_copy_only=False)
    predicted = ws.registry.load(mv.ref).predict(holdout.drop_columns(["species"]))
    cm = details["confusion_matrix"]
    assert cm["labels"] == CLASSES
    assert cm["matrix"] == [
        [int(np.sum((y == t) & (predicted == p))) for p in CLASSES] for t in CLASSES
    ]
    assert [c["support"] for c in details["per_class"]] == [int(np.sum(y == c)) for c in CLASSES]
    features = {f["feature"] for f in details["permutation_importance"]["features"]}
    assert features == set(PENGUIN_FEATURES)
    shown = pp.out("models", "show", "penguins/1")
    assert "confusion matrix" in shown
    assert "top features" in shown
    assert details["permutation_importance"]["features"][0]["feature"] in shown
