"""Acknowledging a broken audit chain, verify with acknowledged breaks, the gate's rows in a
promotion's answer, a stored check's HTML report, and monitoring performance, over HTTP."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pyarrow as pa
from _api import Api
from sqlalchemy import insert, text, update
from test_api_models import credit  # noqa: F401  (the fixture)

from modelcycle.audit import utc_timestamp
from modelcycle.store import tables


def test_acknowledge_a_tampered_chain_over_http(api: Api) -> None:
    for i in range(3):
        api.ws.audit.note(f"note {i}")
    with api.ws.metadata.engine.begin() as conn:
        conn.execute(
            text("""UPDATE audit_events SET payload = '{"text":"forged"}' WHERE seq = 3""")
        )
    with api.client("reader") as c:
        found = c.get("/audit/verify").json()
    assert found["ok"] is False
    assert "event 3 altered" in found["problem"]
    assert [(p["seq"], p["kind"]) for p in found["problems"]] == [(3, "altered")]
    assert found["acknowledged"] == []
    with api.client("operator") as c:
        refused = c.post("/audit/acknowledge", json={"note": "restored from backup"})
    assert refused.status_code == 403
    assert "'admin'" in refused.json()["detail"]
    with api.client("admin") as c:
        assert c.post("/audit/acknowledge", json={"note": ""}).status_code == 422
        assert c.post("/audit/acknowledge", json={"note": "x", "force": 1}).status_code == 422
        done = c.post("/audit/acknowledge", json={"note": "restored from backup"})
        assert done.status_code == 201, done.text
        event = done.json()
        assert (event["action"], event["actor"]) == ("audit.acknowledged", "admin-bot")
        assert event["payload"]["note"] == "restored from backup"
        assert [b["seq"] for b in event["payload"]["breaks"]] == [3]
        after = c.get("/audit/verify").json()
        assert after["ok"] is True
        assert after["problem"] is None
        assert after["problems"] == []
        assert [(p["seq"], p["kind"]) for p in after["acknowledged"]] == [(3, "altered")]
        # Nothing left to acknowledge: a conflict, as the CLI says.
        again = c.post("/audit/acknowledge", json={"note": "twice"})
        assert again.status_code == 409
    # Writes resume: the workspace is no longer marked compromised.
    assert api.ws.audit.compromised() is None
    api.ws.audit.note("after")


def test_promotion_answer_and_refusal_carry_the_gates_rows(credit: Api) -> None:  # noqa: F811
    with credit.client("operator") as c:
        refused = c.put("/models/credit/aliases/champion", json={"version": 2})
        assert refused.status_code == 409
        assert refused.json()["rows"]["evaluated"] > 0
        moved = c.put("/models/credit/aliases/champion", json={"version": 3, "min_gain": 0.0})
    assert moved.status_code == 200, moved.text
    body = moved.json()
    assert body["rows"]["evaluated"] > 0
    assert body["rows"]["holdout"] == 200
    assert isinstance(body["warnings"], list)


def _drift_frames() -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(4)
    ref = pd.DataFrame({"x": rng.normal(0, 1, 400), "kind": rng.choice(["a", "b"], 400)})
    cur = pd.DataFrame({"x": rng.normal(3, 1, 400), "kind": rng.choice(["a", "b"], 400)})
    return ref, cur


def test_stored_check_report_is_html_with_charts_recomputed_or_said_missing(api: Api) -> None:
    ref, cur = _drift_frames()
    api.ws.datasets.add("ref", ref)
    api.ws.datasets.add("cur", cur)
    with api.client("operator") as c:
        posted = c.post(
            "/monitoring/drift", json={"reference": "data:ref@1", "current": "data:cur@1"}
        )
    stored = posted.json()["id"]
    # A check on in-memory tables: its data cannot be read again.
    unreachable = api.ws.monitoring.drift(pa.Table.from_pandas(ref), pa.Table.from_pandas(cur)).id
    with api.client("reader") as c:
        r = c.get(f"/monitoring/checks/{stored}/report")
        assert r.status_code == 200, r.text
        assert r.headers["content-type"].startswith("text/html")
        page = r.text
        assert "chart-0" in page
        assert '"x"' in page
        assert "Plotly" in page
        assert "Charts are not shown" not in page
        r = c.get(f"/monitoring/checks/{unreachable}/report")
        assert r.status_code == 200, r.text
        assert (
            "Charts are not shown: the reference data (reference) is not a stored data set"
            in r.text
        )
        assert "drift" in r.text.lower()
        missing = c.get("/monitoring/checks/9999/report")
        assert missing.status_code == 404
        assert missing.headers["content-type"] == "application/problem+json"
        # A check stored without per-column results cannot be shown: 404 saying why.
        with api.ws.metadata.engine.begin() as conn:
            conn.execute(
                update(tables.drift_results)
                .where(tables.drift_results.c.id == unreachable)
                .values(result="{}")
            )
        gone = c.get(f"/monitoring/checks/{unreachable}/report")
        assert gone.status_code == 404
        assert "without its per-column results" in gone.json()["detail"]
        assert c.get("/monitoring/checks/0/report").status_code == 422


def test_monitoring_performance_matches_the_sdk(credit: Api) -> None:  # noqa: F811
    ws = credit.ws
    rows = pd.DataFrame({"income": np.linspace(20, 80, 60), "age": np.tile([20, 40, 60, 75], 15)})
    labels = ((rows.income - 50) / 15 + (rows.age - 50) / 20 > 0).astype(int).tolist()
    model = ws.registry.load("credit/1")
    predicted = model.predict(rows)
    start = datetime.now(UTC) - timedelta(hours=1)
    log = [
        {
            "request_id": f"r{i}", "model_name": "credit", "model_version": 1,
            "source": "online", "job_id": None, "shadow": False,
            "at": utc_timestamp(start + timedelta(seconds=i)), "latency_ms": 1.0,
            "inputs": json.dumps({"income": float(row.income), "age": int(row.age)}),
            "outputs": json.dumps({"prediction": int(predicted[i])}),
            **({"row_index": 0} if "row_index" in tables.prediction_log.c else {}),
        }
        for i, row in enumerate(rows.itertuples())
    ]  # fmt: skip
    feedback = [
        {"request_id": f"r{i}", "model_name": None, "label": str(y), "at": utc_timestamp()}
        for i, y in enumerate(labels)
    ]
    with ws.metadata.engine.begin() as conn:
        conn.execute(insert(tables.prediction_log), log)
        conn.execute(insert(tables.feedback), feedback)
    with credit.client("reader") as c:
        r = c.get("/monitoring/performance", params={"model": "credit/1", "window": "1d"})
        assert r.status_code == 200, r.text
        body = r.json()
        bad = c.get("/monitoring/performance", params={"model": "credit/1", "window": "soon"})
        assert bad.status_code == 400
        assert bad.json()["problems"][0]["field"] == "window"
        assert c.get("/monitoring/performance", params={"model": "nope/1"}).status_code == 404
        assert c.get("/monitoring/performance").status_code == 422
    (window,) = body["windows"]
    assert (window["predictions"], window["labelled"], window["status"]) == (60, 60, "ok")
    sdk = ws.monitoring.performance("credit/1", window="1d").as_dict()
    assert window["metrics"] == sdk["windows"][0]["metrics"]
    assert window["metrics"]["accuracy"] > 0.5
