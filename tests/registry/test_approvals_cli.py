"""The approvals commands as a user runs them (SQLite; the SDK tests cover both backends):
promote prints the request id and exits 0, the requester is refused with exit 7 naming the
rule, a second identity approves; then a bad policy is one line with exit 2."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from _registry_helpers import FEATURES

from _cli import run_cli
from modelcycle.workspace import init_workspace


@pytest.fixture
def root(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, frame: pd.DataFrame, pipeline: Any
) -> Path:
    monkeypatch.delenv("MODELCYCLE_HOME", raising=False)
    monkeypatch.delenv("MODELCYCLE_DB_URL", raising=False)
    monkeypatch.setenv("MODELCYCLE_ACTOR", "tester")
    ws, _ = init_workspace(tmp_path / "ws")
    ws.registry.register(pipeline, "credit", input_example=frame[FEATURES].head(20))
    ws.close()
    return ws.root


def _policy(root: Path, text: str) -> None:
    config = root / "modelcycle.toml"
    config.write_text(config.read_text(encoding="utf-8") + "\n" + text, encoding="utf-8")


def test_promote_request_refusal_approval_and_a_bad_policy(root: Path) -> None:
    _policy(root, '[promotion.champion]\napprovals = 1\napprovers = ["alice", "tester"]\n')
    promoted = run_cli("models", "promote", "credit/1", "--to", "champion", cwd=root, check=True)
    assert "promotion request" in promoted.stdout
    request = {"id": promoted.stdout.split("promotion request ")[1].split(":")[0].strip()}
    own = run_cli("approvals", "approve", request["id"], cwd=root)
    assert own.returncode == 7
    assert "promotion.champion.separation_of_duties" in own.stderr
    done = run_cli(
        "approvals", "approve", request["id"][:8], "--comment", "ok", "--json",
        cwd=root, env={"MODELCYCLE_ACTOR": "alice"}, check=True,
    )  # fmt: skip
    assert (json.loads(done.stdout)["state"], json.loads(done.stdout)["decided_by"]) == (
        "approved",
        "alice",
    )

    _policy(root, '[promotion."prod-*"]\napprovers = "alice"\n')
    checked = run_cli("rules", "check", cwd=root)
    assert checked.returncode == 2
    assert checked.stderr.strip().splitlines() == [
        "error: promotion.prod-*.approvers: expected a list of identity names (strings), "
        "got 'alice'"
    ]
