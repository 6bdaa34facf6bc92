"""The real server (``python -m modelcycle serve``) driven over HTTP on 127.0.0.1."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import numpy as np
import pytest
from _scoring_helpers import Models, ServerProcess, metric, rows_of

V2_DTYPES = {"f64": "FP64", "f32": "FP32", "i64": "INT64", "i32": "INT32", "flag": "BOOL"}


@pytest.fixture(scope="module")
def client(server: ServerProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=30) as c:
        yield c


def credit_tensors(models: Models, n: int, meta: dict[str, Any]) -> list[dict[str, Any]]:
    """A v2 request built from the metadata alone (names, datatypes) plus the data."""
    rows = rows_of(models.credit_x, n)
    return [
        {
            "name": spec["name"],
            "datatype": spec["datatype"],
            "shape": [n],
            "data": [r[spec["name"]] for r in rows],
        }
        for spec in meta["inputs"]
    ]


# -- v2 -------------------------------------------------------------------------------------


def test_health_and_server_metadata(client: httpx.Client) -> None:
    assert client.get("/v2/health/live").status_code == 200
    ready = client.get("/v2/health/ready")
    assert ready.status_code == 200
    assert ready.json() == {"ready": True}
    meta = client.get("/v2").json()
    assert meta["name"] == "modelcycle"
    assert "version" in meta


def test_v2_metadata_lists_inputs_and_outputs(client: httpx.Client, models: Models) -> None:
    meta = client.get("/v2/models/credit").json()
    assert meta["name"] == "credit"
    assert meta["versions"] == ["1"]
    assert [i["name"] for i in meta["inputs"]] == list(models.credit_x.columns)
    types = {i["name"]: i["datatype"] for i in meta["inputs"]}
    assert types["age"] == "INT64"
    assert types["income"] == "FP64"
    assert types["employment"] == "BYTES"
    assert meta["outputs"] == [
        {"name": "predict", "datatype": "INT64", "shape": [-1]},
        {
            "name": "predict_proba",
            "datatype": "FP64",
            "shape": [-1, 2],
            "parameters": {"classes": [0, 1]},
        },
    ]
    typed = client.get("/v2/models/typed/versions/1").json()
    assert {i["name"]: i["datatype"] for i in typed["inputs"]} == V2_DTYPES
    ridge = client.get("/v2/models/ridge").json()
    assert [o["name"] for o in ridge["outputs"]] == ["predict"]
    assert client.get("/v2/models/credit/ready").json() == {"name": "credit", "ready": True}


def test_v2_infer_from_metadata_alone(client: httpx.Client, models: Models) -> None:
    meta = client.get("/v2/models/credit").json()
    body = {"id": "req-7", "inputs": credit_tensors(models, 5, meta)}
    resp = client.post("/v2/models/credit/infer", json=body)
    assert resp.status_code == 200, resp.text
    out = resp.json()
    assert out["model_name"] == "credit"
    assert out["model_version"] == "1"
    assert out["id"] == "req-7"
    assert [o["name"] for o in out["outputs"]] == ["predict"]
    pred = out["outputs"][0]
    assert pred["shape"] == [5]
    assert pred["datatype"] == "INT64"
    expected = models.credit.predict(models.credit_x.head(5))
    assert pred["data"] == expected.tolist()
    assert resp.headers["X-Model-Version"] == "1"


def test_v2_probabilities_by_parameter_and_by_output(client: httpx.Client, models: Models) -> None:
    meta = client.get("/v2/models/credit").json()
    inputs = credit_tensors(models, 3, meta)
    expected = models.credit.predict_proba(models.credit_x.head(3))
    both = client.post(
        "/v2/models/credit/versions/1/infer",
        json={"inputs": inputs, "parameters": {"probabilities": True}},
    ).json()
    assert [o["name"] for o in both["outputs"]] == ["predict", "predict_proba"]
    proba = both["outputs"][1]
    assert proba["shape"] == [3, 2]
    assert proba["datatype"] == "FP64"
    np.testing.assert_allclose(np.reshape(proba["data"], (3, 2)), expected, rtol=1e-9)
    only = client.post(
        "/v2/models/credit/infer", json={"inputs": inputs, "outputs": [{"name": "predict_proba"}]}
    ).json()
    assert [o["name"] for o in only["outputs"]] == ["predict_proba"]


def test_v2_each_numeric_datatype(client: httpx.Client, models: Models) -> None:
    frame = models.typed_x.head(4)
    inputs = [
        {"name": col, "datatype": dt, "shape": [4], "data": frame[col].tolist()}
        for col, dt in V2_DTYPES.items()
    ]
    resp = client.post("/v2/models/typed/infer", json={"inputs": inputs})
    assert resp.status_code == 200, resp.text
    assert resp.json()["outputs"][0]["data"] == models.typed.predict(frame).tolist()
    # [n, 1] column tensors and nested data are the same request.
    nested = [dict(t, shape=[4, 1], data=[[v] for v in t["data"]]) for t in inputs]
    again = client.post("/v2/models/typed/infer", json={"inputs": nested})
    assert again.json()["outputs"] == resp.json()["outputs"]


def test_v2_two_dimensional_tensor(client: httpx.Client, models: Models) -> None:
    frame = models.ridge_x.head(3)
    expected = models.ridge.predict(frame)
    for data in (frame.to_numpy().tolist(), frame.to_numpy().ravel().tolist()):
        body = {"inputs": [{"name": "input-0", "datatype": "FP64", "shape": [3, 3], "data": data}]}
        resp = client.post("/v2/models/ridge/infer", json=body)
        assert resp.status_code == 200, resp.text
        np.testing.assert_allclose(resp.json()["outputs"][0]["data"], expected, rtol=1e-12)
    wrong = {"inputs": [{"name": "x", "datatype": "FP64", "shape": [1, 2], "data": [1.0, 2.0]}]}
    resp = client.post("/v2/models/ridge/infer", json=wrong)
    assert resp.status_code == 400
    assert resp.json()["problems"][0]["field"] == "x.shape"


def test_v2_shape_and_datatype_problems_all_listed(client: httpx.Client) -> None:
    body = {
        "inputs": [
            {"name": "f64", "datatype": "FP64", "shape": [2], "data": [1.0]},
            {"name": "f32", "datatype": "FP99", "shape": [1], "data": [1.0]},
            {"name": "i64", "datatype": "INT64", "shape": [1], "data": [1.5]},
            {"name": "i32", "datatype": "INT32", "shape": [1], "data": ["a"]},
            {"name": "flag", "datatype": "BOOL", "shape": "x", "data": [True]},
        ]
    }
    resp = client.post("/v2/models/typed/infer", json=body)
    assert resp.status_code == 400
    fields = {p["field"] for p in resp.json()["problems"]}
    assert fields == {"f64.shape", "f32.datatype", "i64.data", "i32.data", "flag.shape"}


# -- MLflow ---------------------------------------------------------------------------------


def test_mlflow_json_formats(client: httpx.Client, models: Models) -> None:
    frame = models.ridge_x.head(3)
    expected = models.ridge.predict(frame).tolist()
    records = frame.to_dict(orient="records")
    bodies = [
        {"dataframe_split": {"columns": list(frame.columns), "data": frame.to_numpy().tolist()}},
        {"dataframe_records": records},
        {"instances": records},
        {"inputs": {c: frame[c].tolist() for c in frame.columns}},
        {"inputs": records, "params": {}},
    ]
    for body in bodies:
        resp = client.post("/invocations?model=ridge", json=body)
        assert resp.status_code == 200, (body, resp.text)
        assert resp.json().keys() == {"predictions"}
        np.testing.assert_allclose(resp.json()["predictions"], expected, rtol=1e-12)
        assert resp.headers["X-Model-Version"] == "1"


def test_mlflow_csv_and_probabilities(client: httpx.Client, models: Models) -> None:
    frame = models.credit_x.head(4)
    csv = frame.to_csv(index=False)
    resp = client.post(
        "/invocations?model=credit", content=csv, headers={"Content-Type": "text/csv"}
    )
    assert resp.status_code == 200, resp.text
    assert resp.json() == {"predictions": models.credit.predict(frame).tolist()}
    proba = client.post(
        "/invocations?model=credit&proba=1", content=csv, headers={"Content-Type": "text/csv"}
    ).json()["predictions"]
    np.testing.assert_allclose(proba, models.credit.predict_proba(frame), rtol=1e-9)
    by_param = client.post(
        "/invocations?model=credit",
        json={
            "dataframe_records": rows_of(frame, 4),
            "params": {"predict_method": "predict_proba"},
        },
    ).json()["predictions"]
    np.testing.assert_allclose(by_param, proba)


def test_mlflow_needs_a_model_name_when_several_are_served(client: httpx.Client) -> None:
    resp = client.post("/invocations", json={"dataframe_records": [{"a": 1, "b": 2, "c": 3}]})
    assert resp.status_code == 400
    body = resp.json()
    assert body["error_code"] == "BAD_REQUEST"
    assert "?model=NAME" in body["message"]
    assert body["problems"][0]["field"] == "model"


# -- plain ----------------------------------------------------------------------------------


def test_plain_rows_and_columns(client: httpx.Client, models: Models) -> None:
    frame = models.credit_x.iloc[10:13]
    expected = models.credit.predict(frame).tolist()
    rows = client.post("/predict/credit", json={"rows": rows_of(models.credit_x, 3, 10)}).json()
    assert rows == {"model": "credit", "version": 1, "predictions": expected}
    table_cols = {c: [r[c] for r in rows_of(models.credit_x, 3, 10)] for c in frame.columns}
    cols = client.post("/predict/credit?proba=1", json={"columns": table_cols}).json()
    assert cols["predictions"] == expected
    assert cols["classes"] == [0, 1]
    np.testing.assert_allclose(cols["probabilities"], models.credit.predict_proba(frame), rtol=1e-9)


def test_probabilities_refused_for_a_regressor(client: httpx.Client) -> None:
    resp = client.post("/predict/ridge?proba=1", json={"rows": [{"a": 1.0, "b": 2.0, "c": 3.0}]})
    assert resp.status_code == 400
    assert resp.json()["problems"][0]["field"] == "probabilities"


# -- validation -----------------------------------------------------------------------------


def test_every_column_problem_is_listed(client: httpx.Client, models: Models) -> None:
    row = rows_of(models.credit_x, 1)[0]
    del row["age"]
    row["shoe_size"] = 44
    row["debt_ratio"] = "high"  # text where a number belongs
    row["late_payments"] = 1.5  # a float is never cast to an integer
    row["loan_amount"] = None  # not nullable
    resp = client.post("/predict/credit", json={"rows": [row]})
    assert resp.status_code == 400
    body = resp.json()
    by_field = {p["field"]: p for p in body["problems"]}
    assert set(by_field) == {"age", "shoe_size", "debt_ratio", "late_payments", "loan_amount"}
    assert by_field["age"]["kind"] == "missing"
    assert by_field["shoe_size"]["kind"] == "unknown"
    assert by_field["late_payments"]["kind"] == "type"
    assert by_field["loan_amount"]["kind"] == "nulls"
    assert resp.headers["X-Model-Version"] == "1"


def test_nan_refused_where_not_allowed_and_accepted_where_allowed(
    client: httpx.Client, models: Models
) -> None:
    frame = models.credit_x.head(2).copy()
    frame.loc[0, "income"] = float("nan")  # income is nullable in the signature
    ok = client.post(
        "/invocations?model=credit",
        content=frame.to_csv(index=False),
        headers={"Content-Type": "text/csv"},
    )
    assert ok.status_code == 200, ok.text
    frame.loc[1, "debt_ratio"] = float("nan")
    bad = client.post(
        "/invocations?model=credit",
        content=frame.to_csv(index=False),
        headers={"Content-Type": "text/csv"},
    )
    assert bad.status_code == 400
    assert [p["field"] for p in bad.json()["problems"]] == ["debt_ratio"]


def test_too_many_rows(client: httpx.Client) -> None:
    rows = [{"a": 1.0, "b": 2.0, "c": 3.0}] * 101  # the server allows 100
    resp = client.post("/predict/ridge", json={"rows": rows})
    assert resp.status_code == 400
    assert resp.json()["problems"] == [
        {
            "field": "rows",
            "problem": "101 rows is more than the 100 allowed per request; split the request",
        }
    ]


def test_malformed_json_wrong_content_type_and_bad_bodies(client: httpx.Client) -> None:
    resp = client.post(
        "/predict/ridge", content=b'{"rows": [', headers={"Content-Type": "application/json"}
    )
    assert resp.status_code == 400
    assert resp.json()["problems"][0]["field"] == "body"
    assert "malformed JSON" in resp.json()["error"]
    form = client.post("/predict/ridge", data={"a": "1"})
    assert form.status_code == 415
    xml = client.post(
        "/invocations?model=ridge", content=b"<a/>", headers={"Content-Type": "application/xml"}
    )
    assert xml.status_code == 415
    assert xml.json()["error_code"]
    for body in ([1, 2], {"rows": "x"}, {"rows": [1]}, {"inputs": 3}, {}):
        for path in ("/predict/ridge", "/v2/models/ridge/infer", "/invocations?model=ridge"):
            r = client.post(path, json=body)
            assert r.status_code == 400, (path, body, r.text)
            assert r.json()["problems"], (path, body)


def test_body_over_the_limit(client: httpx.Client) -> None:
    big = b'{"rows": [' + b'{"a": 1.0, "b": 2.0, "c": 3.0},' * 5000 + b"{}]}"
    resp = client.post("/predict/ridge", content=big, headers={"Content-Type": "application/json"})
    assert resp.status_code == 413
    assert resp.json()["problems"][0]["field"] == "body"

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted while streaming
        for _ in range(200):
            yield b" " * 1000

    streamed = client.post(
        "/predict/ridge", content=chunks(), headers={"Content-Type": "application/json"}
    )
    assert streamed.status_code == 413


def test_unknown_model_and_version(client: httpx.Client) -> None:
    for path in ("/v2/models/nope", "/v2/models/credit/versions/9", "/v2/models/nope/ready"):
        assert client.get(path).status_code == 404, path
    resp = client.post("/v2/models/nope/infer", json={"inputs": []})
    assert resp.status_code == 404
    assert "not served" in resp.json()["error"]
    assert client.post("/predict/nope", json={"rows": [{}]}).status_code == 404
    assert client.post("/invocations?model=nope", json={"instances": [{}]}).status_code == 404


def test_request_id_honoured_or_generated(client: httpx.Client) -> None:
    row = {"rows": [{"a": 1.0, "b": 2.0, "c": 3.0}]}
    given = client.post("/predict/ridge", json=row, headers={"X-Request-ID": "abc-123"})
    assert given.headers["X-Request-ID"] == "abc-123"
    made = client.post("/predict/ridge", json=row)
    assert len(made.headers["X-Request-ID"]) == 32
    # Made ids are UUIDv7 (time first), so the prediction log's request_id index grows at its
    # end instead of at random pages; a later request's id sorts after (to the millisecond).
    first = uuid.UUID(made.headers["X-Request-ID"])
    assert (first.version, first.variant) == (7, uuid.RFC_4122)
    time.sleep(0.002)
    later = client.post("/predict/ridge", json=row).headers["X-Request-ID"]
    assert later[:12] > made.headers["X-Request-ID"][:12]
    assert (
        len({client.post("/predict/ridge", json=row).headers["X-Request-ID"] for _ in range(20)})
        == 20
    )
    hostile = client.post("/predict/ridge", json=row, headers={"X-Request-ID": "a b\tc" * 50})
    assert hostile.headers["X-Request-ID"] != "a b\tc" * 50
    v2 = client.post(
        "/v2/models/ridge/infer",
        json={"inputs": [{"name": "x", "datatype": "FP64", "shape": [1, 3], "data": [1, 2, 3]}]},
        headers={"X-Request-ID": "rid-9"},
    ).json()
    assert v2["id"] == "rid-9"


# -- concurrency and health after abuse -----------------------------------------------------


def test_concurrent_requests_are_micro_batched(client: httpx.Client, models: Models) -> None:
    before = client.get("/metrics").text
    rows = rows_of(models.credit_x, 64)
    expected = models.credit.predict(models.credit_x.head(64)).tolist()

    def one(i: int) -> tuple[int, Any]:
        with httpx.Client(base_url=client.base_url, timeout=60) as c:
            r = c.post("/predict/credit", json={"rows": [rows[i]]})
            return r.status_code, r.json()

    with ThreadPoolExecutor(64) as pool:
        results = list(pool.map(one, range(64)))
    assert all(status == 200 for status, _ in results), results
    assert [body["predictions"][0] for _, body in results] == expected
    after = client.get("/metrics").text
    labels = {"model": "credit", "version": "1"}
    calls = metric(after, "modelcycle_predict_calls_total", **labels) - metric(
        before, "modelcycle_predict_calls_total", **labels
    )
    requests = metric(after, "modelcycle_model_requests_total", **labels) - metric(
        before, "modelcycle_model_requests_total", **labels
    )
    assert requests == 64
    assert 1 <= calls < 64, calls
    assert metric(after, "modelcycle_batch_size_count", **labels) > 0


def test_native_threads_limited_and_still_healthy(client: httpx.Client) -> None:
    # Its own 400 first: the test must not rely on an earlier test having sent one.
    bad = client.post("/predict/ridge?proba=1", json={"rows": [{"a": 1.0, "b": 2.0, "c": 3.0}]})
    assert bad.status_code == 400
    text = client.get("/metrics").text
    assert metric(text, "modelcycle_native_threads", api="openmp") == 1
    assert metric(text, "modelcycle_requests_total", protocol="plain", code="400") > 0
    assert client.get("/v2/health/ready").status_code == 200
    ok = client.post("/predict/ridge", json={"rows": [{"a": 1.0, "b": 2.0, "c": 3.0}]})
    assert ok.status_code == 200
