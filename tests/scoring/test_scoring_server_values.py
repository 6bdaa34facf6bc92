"""Bad values through the real server: each answer names the column, the row (counted from 0,
as in the request's lists), the expected type and the value; pandas-style integral floats in
integer columns are accepted; MLflow error codes are client codes for client errors; the v2
metadata names the classes of ``predict_proba``'s columns."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from _scoring_helpers import Models, ServerProcess, rows_of


@pytest.fixture(scope="module")
def client(server: ServerProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=30) as c:
        yield c


def _split(models: Models, n: int = 3) -> dict[str, Any]:
    """An MLflow ``dataframe_split`` body of credit rows, as ``DataFrame.to_dict("split")``."""
    rows = rows_of(models.credit_x, n)
    columns = list(rows[0])
    return {"columns": columns, "data": [[r[c] for c in columns] for r in rows]}


def _only_problem(resp: httpx.Response) -> dict[str, str]:
    assert resp.status_code == 400, resp.text
    problems = resp.json()["problems"]
    assert len(problems) == 1, problems
    text = resp.text
    assert "Expected bytes" not in text, text
    assert "mixed or unsupported" not in text, text
    assert "not a safe cast" not in text, text
    return dict(problems[0])


def test_text_in_a_numeric_column_names_column_row_type_and_value(
    client: httpx.Client, models: Models
) -> None:
    split = _split(models)
    col = split["columns"].index("debt_ratio")
    split["data"][1][col] = "high"  # after a number: Arrow's "Expected bytes, got a 'float'"
    p = _only_problem(client.post("/invocations?model=credit", json={"dataframe_split": split}))
    assert p["field"] == "debt_ratio"
    for part in ("row 1", "'high'", "double"):
        assert part in p["problem"], p

    rows = rows_of(models.credit_x, 2)
    rows[0]["age"] = "forty"  # before numbers
    p = _only_problem(client.post("/predict/credit", json={"rows": rows}))
    assert p["field"] == "age"
    for part in ("row 0", "'forty'", "int64"):
        assert part in p["problem"], p

    one = rows_of(models.credit_x, 1)
    one[0]["income"] = "lots"  # a column of text only: refused by the signature check
    p = _only_problem(client.post("/predict/credit", json={"rows": one}))
    assert p["field"] == "income"
    for part in ("row 0", "'lots'", "double"):
        assert part in p["problem"], p

    frame = models.credit_x.head(3).copy().astype({"loan_term": object})
    frame.loc[2, "loan_term"] = "3y"
    p = _only_problem(
        client.post(
            "/invocations?model=credit",
            content=frame.to_csv(index=False),
            headers={"Content-Type": "text/csv"},
        )
    )
    assert p["field"] == "loan_term"
    for part in ("row 2", "'3y'", "int64"):
        assert part in p["problem"], p

    tensor = {"name": "f64", "datatype": "FP64", "shape": [2], "data": [0.5, "x"]}
    others = [
        {"name": n, "datatype": d, "shape": [2], "data": v}
        for n, d, v in (
            ("f32", "FP32", [0.1, 0.2]),
            ("i64", "INT64", [1, 2]),
            ("i32", "INT32", [1, 2]),
            ("flag", "BOOL", [True, False]),
        )
    ]
    p = _only_problem(client.post("/v2/models/typed/infer", json={"inputs": [tensor, *others]}))
    assert p["field"].startswith("f64"), p
    for part in ("row 1", "'x'", "double"):
        assert part in p["problem"], p


def test_a_bare_nan_in_json_says_to_send_null(client: httpx.Client, models: Models) -> None:
    row = rows_of(models.credit_x, 1)[0]
    import json

    text = json.dumps({"rows": [row]}).replace(str(row["income"]), "NaN")
    assert "NaN" in text
    for path in ("/predict/credit", "/invocations?model=credit"):
        body = text if path.startswith("/predict") else text.replace('"rows"', '"inputs"')
        resp = client.post(path, content=body, headers={"Content-Type": "application/json"})
        assert resp.status_code == 400, resp.text
        message = resp.json()["problems"][0]["problem"]
        assert "NaN" in message, message
        assert "send null" in message, message
    inf = client.post(
        "/predict/ridge",
        content=b'{"rows": [{"a": 1.0, "b": -Infinity, "c": 0.0}]}',
        headers={"Content-Type": "application/json"},
    )
    assert inf.status_code == 400
    assert "Infinity" in inf.json()["error"]


def test_integral_floats_are_accepted_in_integer_columns(
    client: httpx.Client, models: Models
) -> None:
    rows = rows_of(models.credit_x, 3)
    expected = client.post("/predict/credit", json={"rows": rows, "probabilities": True})
    assert expected.status_code == 200, expected.text
    # What pandas clients send: integer columns as floats (a DataFrame with a NaN elsewhere,
    # or df.to_dict after arithmetic).
    as_floats = [{k: float(v) if isinstance(v, int) else v for k, v in r.items()} for r in rows]
    got = client.post("/predict/credit", json={"rows": as_floats, "probabilities": True})
    assert got.status_code == 200, got.text
    assert got.json()["probabilities"] == expected.json()["probabilities"]

    split = _split(models)
    split["data"] = [[float(v) if isinstance(v, int) else v for v in row] for row in split["data"]]
    mlflow = client.post("/invocations?model=credit", json={"dataframe_split": split})
    assert mlflow.status_code == 200, mlflow.text
    assert mlflow.json()["predictions"] == expected.json()["predictions"]

    frame = models.credit_x.head(3).astype({"age": float})
    csv = client.post(
        "/invocations?model=credit",
        content=frame.to_csv(index=False),  # "46.0"
        headers={"Content-Type": "text/csv"},
    )
    assert csv.status_code == 200, csv.text
    assert csv.json()["predictions"] == expected.json()["predictions"]

    meta = client.get("/v2/models/credit").json()
    tensors = [
        {
            "name": spec["name"],
            "datatype": "FP64" if spec["datatype"] == "INT64" else spec["datatype"],
            "shape": [3],
            "data": [r[spec["name"]] for r in as_floats],
        }
        for spec in meta["inputs"]
    ]
    v2 = client.post("/v2/models/credit/infer", json={"inputs": tensors})
    assert v2.status_code == 200, v2.text
    assert v2.json()["outputs"][0]["data"] == expected.json()["predictions"]

    as_floats[2]["loan_term"] = 36.5
    p = _only_problem(client.post("/predict/credit", json={"rows": as_floats}))
    assert p["field"] == "loan_term"
    for part in ("row 2", "36.5", "int64"):
        assert part in p["problem"], p
    int_tensor = [dict(t) for t in tensors]
    int_tensor[0] = {**int_tensor[0], "datatype": "INT64", "data": [46.0, 42.5, 30.0]}
    p = _only_problem(client.post("/v2/models/credit/infer", json={"inputs": int_tensor}))
    assert p["field"].startswith("age"), p
    for part in ("row 1", "42.5", "INT64"):
        assert part in p["problem"], p


def test_a_blank_csv_field_is_a_null(client: httpx.Client, models: Models) -> None:
    frame = models.credit_x.head(3).copy()
    frame.loc[1, "employment"] = None  # written as an empty field
    resp = client.post(
        "/invocations?model=credit",
        content=frame.to_csv(index=False),
        headers={"Content-Type": "text/csv"},
    )
    assert resp.status_code == 400, resp.text  # employment allows no nulls in the signature
    problems = resp.json()["problems"]
    assert [(p["field"], p["kind"]) for p in problems] == [("employment", "nulls")]


def test_mlflow_error_codes_are_client_codes_for_client_errors(client: httpx.Client) -> None:
    xml = client.post(
        "/invocations?model=ridge", content=b"<a/>", headers={"Content-Type": "application/xml"}
    )
    assert (xml.status_code, xml.json()["error_code"]) == (415, "BAD_REQUEST")
    big = b'{"inputs": [' + b'{"a": 1.0, "b": 2.0, "c": 3.0},' * 5000 + b"{}]}"
    over = client.post(
        "/invocations?model=ridge", content=big, headers={"Content-Type": "application/json"}
    )
    assert (over.status_code, over.json()["error_code"]) == (413, "BAD_REQUEST")
    bad = client.post("/invocations?model=ridge", json={"inputs": [{"a": "x"}]})
    assert (bad.status_code, bad.json()["error_code"]) == (400, "BAD_REQUEST")
    missing = client.post("/invocations?model=nope", json={"inputs": [{"a": 1.0}]})
    assert (missing.status_code, missing.json()["error_code"]) == (404, "RESOURCE_DOES_NOT_EXIST")
    for resp in (xml, over, bad, missing):
        assert resp.json()["message"] == resp.json()["error"]


def test_v2_metadata_names_the_classes_of_predict_proba(client: httpx.Client) -> None:
    meta = client.get("/v2/models/credit").json()
    proba = next(o for o in meta["outputs"] if o["name"] == "predict_proba")
    assert proba["shape"] == [-1, 2]
    assert proba["parameters"]["classes"] == [0, 1]
    typed = client.get("/v2/models/typed/versions/1").json()
    assert next(o for o in typed["outputs"] if o["name"] == "predict_proba")["parameters"] == {
        "classes": [0, 1]
    }
    ridge = client.get("/v2/models/ridge").json()
    assert all("parameters" not in o for o in ridge["outputs"])
