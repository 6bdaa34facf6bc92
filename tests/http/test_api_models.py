"""Models over HTTP: the promotion gate (409 with both scores, actor = token name), ETags and
If-Match on aliases (a race: one 200, one 412), archive, and uploads (pickle needs admin+trust,
size limit -> 413)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator

import numpy as np
import pandas as pd
import pytest
import skops.io as sio
from _api import Api, serve
from sklearn.dummy import DummyClassifier
from sklearn.linear_model import LogisticRegression

from modelcycle import Workspace
from modelcycle.interfaces.http import ApiSettings
from modelcycle.store import AuditFilter


def _frame(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = pd.DataFrame({"income": rng.normal(50, 15, n), "age": rng.integers(18, 80, n)})
    x["label"] = (((x.income - 50) / 15 + (x.age - 50) / 20 + rng.normal(0, 0.5, n)) > 0).astype(
        "int64"
    )
    return x


@pytest.fixture
def credit(api: Api) -> Api:
    """credit/1 (good, champion), credit/2 (weak), credit/3 (good): holdout recorded."""
    ws = api.ws
    train = _frame(300, 0)
    holdout = ws.datasets.add("holdout", _frame(200, 1)).ref
    x, y = train[["income", "age"]], train["label"]
    tags = {"holdout": holdout, "target": "label"}
    ws.registry.register(
        LogisticRegression().fit(x, y), "credit", input_example=x.head(5), tags=tags
    )
    ws.registry.register(
        DummyClassifier(strategy="prior").fit(x, y), "credit", input_example=x.head(5), tags=tags
    )
    ws.registry.register(
        LogisticRegression(C=0.5).fit(x, y), "credit", input_example=x.head(5), tags=tags
    )
    ws.registry.promote("credit/1", "champion")
    return api


def test_read_models_and_versions(credit: Api) -> None:
    with credit.client("reader") as c:
        models = c.get("/models").json()["items"]
        assert models == [
            {"name": "credit", "versions": 3, "latest": 3, "aliases": {"champion": 1}}
        ]
        versions = c.get("/models/credit").json()["items"]
        assert [v["version"] for v in versions] == [1, 2, 3]
        r = c.get("/models/credit/versions/1")
        assert r.status_code == 200
        assert r.headers["etag"] == r.json()["etag"]
        detail = r.json()
        assert detail["signature"]["inputs"]
        assert detail["aliases"] == ["champion"]
        assert any(e["action"] == "model.promoted" for e in detail["events"])
        assert c.get("/models/credit/versions/9").status_code == 404
        assert c.get("/models/nope").status_code == 404


def test_refused_promotion_is_409_with_both_scores_and_audited_as_the_token(credit: Api) -> None:
    with credit.client("operator") as c:
        r = c.put("/models/credit/aliases/champion", json={"version": 2, "metric": "roc_auc"})
    assert r.status_code == 409, r.text
    assert r.headers["content-type"] == "application/problem+json"
    body = r.json()
    assert body["metric"] == "roc_auc"
    assert body["dataset"] == "holdout@1"
    assert body["candidate_score"] < body["champion_score"]
    assert f"{body['candidate_score']:.6g}" in body["detail"]
    refused = credit.ws.audit.events(AuditFilter(action="model.promotion_refused"))
    assert [e.actor for e in refused] == ["operator-bot"]
    assert credit.ws.registry.get("credit@champion").version == 1


def test_passing_promotion_moves_the_alias_with_an_etag_and_the_token_as_actor(
    credit: Api,
) -> None:
    with credit.client("operator") as c:
        before = c.get("/models/credit/aliases/champion")
        r = c.put(
            "/models/credit/aliases/champion",
            json={"version": 3, "min_gain": 0.0},
            headers={"If-Match": before.headers["etag"]},
        )
        assert r.status_code == 200, r.text
        moved = r.json()
        assert (moved["previous"], moved["version"], moved["moved"]) == (1, 3, True)
        assert moved["candidate_score"] is not None
        assert moved["champion_score"] is not None
        assert r.headers["etag"] != before.headers["etag"]
        assert c.get("/models/credit/aliases/champion").json()["version"] == 3
        # The stale ETag no longer matches: deleting with it is refused, with the fresh one done.
        stale = c.delete(
            "/models/credit/aliases/champion", headers={"If-Match": before.headers["etag"]}
        )
        assert stale.status_code == 412
        ok = c.delete("/models/credit/aliases/champion", headers={"If-Match": r.headers["etag"]})
        assert ok.status_code == 204
    promoted = credit.ws.audit.events(AuditFilter(action="model.promoted"))
    assert promoted[-1].actor == "operator-bot"
    deleted = credit.ws.audit.events(AuditFilter(action="model.alias_deleted"))
    assert [e.actor for e in deleted] == ["operator-bot"]


def test_force_needs_admin_and_a_reason(credit: Api) -> None:
    body = {"version": 2, "force": True, "reason": "hotfix for INC-42"}
    with credit.client("operator") as c:
        r = c.put("/models/credit/aliases/champion", json=body)
        assert r.status_code == 403
        assert "'admin'" in r.json()["detail"]
    with credit.client("admin") as c:
        r = c.put("/models/credit/aliases/champion", json={"version": 2, "force": True})
        assert r.status_code == 400
        assert r.json()["problems"][0]["field"] == "reason"
        r = c.put("/models/credit/aliases/champion", json=body)
        assert r.status_code == 200
        assert r.json()["forced"] is True
    moved = credit.ws.audit.events(AuditFilter(action="model.alias_moved"))[-1]
    assert moved.actor == "admin-bot"
    assert moved.payload["reason"] == "hotfix for INC-42"


def test_if_match_race_one_200_one_412(credit: Api) -> None:
    with credit.client("admin") as c:
        etag = c.get("/models/credit/aliases/champion").headers["etag"]
    answers: list[int] = []
    barrier = threading.Barrier(2)

    def move(version: int) -> None:
        with credit.client("admin") as c:
            barrier.wait()
            r = c.put(
                "/models/credit/aliases/champion",
                json={"version": version, "force": True, "reason": "race"},
                headers={"If-Match": etag},
            )
            answers.append(r.status_code)

    threads = [threading.Thread(target=move, args=(v,)) for v in (2, 3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert sorted(answers) == [200, 412]
    moves = credit.ws.audit.events(AuditFilter(action="model.alias_moved"))
    assert len([m for m in moves if m.payload["from"] == 1]) == 1


def test_archive(credit: Api) -> None:
    with credit.client("operator") as c:
        r = c.post("/models/credit/versions/2/archive")
        assert r.status_code == 200
        assert r.json()["status"] == "archived"
        again = c.post("/models/credit/versions/2/archive")
        assert again.status_code == 409


SIGNATURE = {
    "inputs": [
        {"name": "income", "type": "double", "nullable": False},
        {"name": "age", "type": "int64", "nullable": False},
    ],
    "outputs": [{"name": "predict", "type": "int64", "shape": [-1]}],
    "task": "binary_classification",
    "classes": [0, 1],
}


def _skops_bytes() -> bytes:
    train = _frame(100, 2)
    model = LogisticRegression().fit(train[["income", "age"]], train["label"])
    return sio.dumps(model)


def test_upload_skops_and_pickle_rules(api: Api) -> None:
    data = _skops_bytes()
    with api.client("operator") as c:
        r = c.post(
            "/models/uploaded/versions",
            files={"file": ("m.skops", data)},
            data={"flavor": "skops", "signature": json.dumps(SIGNATURE)},
        )
        assert r.status_code == 201, r.text
        assert r.json()["ref"] == "uploaded/1"
        r = c.post(
            "/models/uploaded/versions",
            files={"file": ("m.pkl", b"\x80\x04K\x01.")},
            data={"flavor": "pickle", "trust": "true"},
        )
        assert r.status_code == 403
        assert "'admin'" in r.json()["detail"]
    with api.client("admin") as c:
        r = c.post(
            "/models/uploaded/versions",
            files={"file": ("m.pkl", b"\x80\x04K\x01.")},
            data={"flavor": "pickle"},
        )
        assert r.status_code == 400
        assert r.json()["problems"][0]["field"] == "trust"
        r = c.post(
            "/models/../versions", files={"file": ("m.skops", data)}, data={"flavor": "skops"}
        )
        assert 400 <= r.status_code < 500


@pytest.fixture
def small_limit(workspace: Workspace) -> Iterator[Api]:
    with serve(workspace, ApiSettings(max_upload_bytes=10_000)) as running:
        yield running


def test_upload_over_the_limit_is_413(small_limit: Api) -> None:
    with small_limit.client("operator") as c:
        r = c.post(
            "/models/big/versions",
            files={"file": ("m.skops", b"x" * 20_000)},
            data={"flavor": "skops"},
        )
        assert r.status_code == 413
        assert r.headers["content-type"] == "application/problem+json"

        # Chunked (no Content-Length): counted as it arrives.
        def chunks() -> Iterator[bytes]:
            for _ in range(30):
                yield b"y" * 1000

        r = c.post("/models/big/versions", content=chunks(),
                   headers={"content-type": "application/octet-stream"})  # fmt: skip
        assert r.status_code in (413, 422)
        assert c.get("/models").status_code == 200
