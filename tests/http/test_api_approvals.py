"""Promotion requests over HTTP (both backends): PUT on a governed alias answers 202 with the
request; the token's name is the identity that separation of duties checks; approve moves the
alias, cancel does not; readers cannot decide."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pandas as pd
import pytest
from _api import Api, serve
from sklearn.linear_model import LogisticRegression

from modelcycle import Workspace
from modelcycle.store import AuditFilter


@pytest.fixture
def governed(workspace: Workspace) -> Iterator[Api]:
    """credit/1 and credit/2 registered by 'tester'; champion needs one approval."""
    rng = np.random.default_rng(0)
    x = pd.DataFrame({"income": rng.normal(50, 15, 100), "age": rng.integers(18, 80, 100)})
    y = (x.income > 50).astype("int64")
    for _ in range(2):
        workspace.registry.register(LogisticRegression().fit(x, y), "credit", input_example=x)
    config = workspace.root / "modelcycle.toml"
    config.write_text(
        config.read_text(encoding="utf-8") + "\n[promotion.champion]\napprovals = 1\n",
        encoding="utf-8",
    )
    ws = Workspace(workspace.root)
    try:
        with serve(ws) as running:
            yield running
    finally:
        ws.close()


def test_put_alias_waits_for_an_approval_by_another_token(governed: Api) -> None:
    operator, admin, reader = (governed.client(r) for r in ("operator", "admin", "reader"))
    put = operator.put("/models/credit/aliases/champion", json={"version": 1})
    assert put.status_code == 202, put.text
    request = put.json()
    assert (request["state"], request["model"], request["origin"]) == (
        "pending",
        "credit/1",
        "http",
    )
    assert request["requested_by"] == "operator-bot"
    assert put.headers["location"] == f"/api/v1/approvals/{request['id']}"
    assert operator.get("/models/credit/aliases/champion").status_code == 404

    listed = reader.get("/approvals", params={"pending": "true"}).json()["items"]
    assert [r["id"] for r in listed] == [request["id"]]
    approve_url = f"/approvals/{request['id']}/approve"
    assert reader.post(approve_url).status_code == 403
    own = operator.post(approve_url, json={"comment": "mine"})
    assert own.status_code == 403
    assert "separation_of_duties" in own.json()["detail"]

    done = admin.post(approve_url, json={"comment": "looks right"})
    assert done.status_code == 200, done.text
    assert (done.json()["state"], done.json()["approvals"][0]["approver"]) == (
        "approved",
        "admin-bot",
    )
    assert operator.get("/models/credit/aliases/champion").json()["version"] == 1
    assert admin.post(approve_url).status_code == 409
    moved = governed.ws.audit.events(AuditFilter(action="model.alias_moved"))
    assert [(e.actor, e.payload["approved_by"]) for e in moved] == [("admin-bot", ["admin-bot"])]
    assert reader.get(f"/approvals/{request['id'][:8]}").json()["state"] == "approved"


def test_cancel_and_reject_move_nothing(governed: Api) -> None:
    operator, admin = governed.client("operator"), governed.client("admin")
    first = operator.put("/models/credit/aliases/champion", json={"version": 1}).json()["id"]
    second = admin.put(
        "/models/credit/aliases/champion", json={"version": 2, "force": True, "reason": "hotfix"}
    ).json()["id"]
    no_comment = admin.post(f"/approvals/{first}/reject", json={})
    assert no_comment.status_code in (400, 422)
    assert admin.post(f"/approvals/{first}/reject", json={"comment": "no"}).json()["state"] == (
        "rejected"
    )
    assert operator.post(f"/approvals/{second}/cancel").json()["state"] == "cancelled"
    assert operator.get("/approvals", params={"pending": "true"}).json()["items"] == []
    assert operator.get("/approvals/ffffffff").status_code == 404
    assert not governed.ws.audit.events(AuditFilter(action="model.alias_moved"))
