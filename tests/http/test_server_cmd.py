"""``modelcycle server`` starts the API on the given port over the current workspace."""

from __future__ import annotations

import httpx

from _servers import modelcycle_server
from modelcycle import Workspace
from modelcycle.store.tokens import TokenStore


def test_modelcycle_server_serves_the_workspace(workspace: Workspace) -> None:
    _, token = TokenStore(workspace.metadata, "tester").create("cli-check", "reader")
    with modelcycle_server(workspace.root) as base:
        r = httpx.get(f"{base}/audit/events", headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 200
        assert r.json()["items"][0]["action"] in ("workspace.created", "workspace.attached")
        assert httpx.get(f"{base}/models").status_code == 401
