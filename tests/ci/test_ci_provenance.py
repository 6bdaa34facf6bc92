"""CI provenance through the real CLI in a simulated GitHub Actions run: train -> register ->
promote; every audit event names the run, the run records it, and runs show, models show and
audit log print it. Then `ci init` fills its defaults from that workspace."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from _ci_helpers import GITHUB_ENV, GITHUB_RUN_URL, git, git_repo, write_csv

from _cli import run_cli
from modelcycle.workspace import init_workspace

# An empty MODELCYCLE_ACTOR counts as unset: the actor then comes from the CI variables.
CI_ENV = {**GITHUB_ENV, "MODELCYCLE_ACTOR": ""}
EXPECTED = {
    "provider": "github",
    "run_url": GITHUB_RUN_URL,
    "commit": GITHUB_ENV["GITHUB_SHA"],
    "ref": "refs/heads/main",
    "actor": "octocat",
}


@pytest.fixture(scope="module")
def ci_session(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One workspace in a git repository; train and promote inside the simulated CI run."""
    root = git_repo(tmp_path_factory.mktemp("ci") / "repo")
    mp = pytest.MonkeyPatch()
    for name in ("MODELCYCLE_HOME", "MODELCYCLE_DB_URL", *GITHUB_ENV):
        mp.delenv(name, raising=False)
    mp.setenv("MODELCYCLE_ACTOR", "setup")
    try:
        ws, _ = init_workspace(root)
        ws.datasets.add("credit", write_csv(root / "credit.csv"))
        ws.close()
    finally:
        mp.undo()
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "workspace config")
    trained = run_cli(
        "train", "--data", "credit", "--target", "label", "--model", "logreg",
        cwd=root, env=CI_ENV, check=True,
    )  # fmt: skip
    promoted = run_cli("models", "promote", "credit/1", cwd=root, env=CI_ENV, check=True)
    shown = json.loads(
        run_cli("models", "show", "credit/1", "--json", cwd=root, env=CI_ENV, check=True).stdout
    )
    return {"root": root, "trained": trained, "promoted": promoted, "version": shown}


def _events(root: Path) -> list[dict[str, Any]]:
    out = run_cli("audit", "log", "--json", cwd=root, check=True).stdout
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def test_every_event_of_the_ci_run_names_it(ci_session: dict[str, Any]) -> None:
    events = _events(ci_session["root"])
    under_ci = [e for e in events if e["actor"] == "ci:github:octocat"]
    actions = {e["action"] for e in under_ci}
    # The run, the registration and the promotion, each stamped with the same CI run.
    assert {"run.started", "model.version_registered", "model.promoted"} <= actions, actions
    assert all(e["payload"]["ci"] == EXPECTED for e in under_ci)
    # Events written outside the CI run (set-up by "setup") carry no CI record.
    assert all("ci" not in e["payload"] for e in events if e["actor"] == "setup")


def test_the_run_records_ci_and_runs_show_prints_it(ci_session: dict[str, Any]) -> None:
    root, run_id = ci_session["root"], ci_session["version"]["run_id"]
    data = json.loads(run_cli("runs", "show", run_id, "--json", cwd=root, check=True).stdout)
    assert data["code"]["ci"] == EXPECTED
    assert data["created_by"] == "ci:github:octocat"
    assert data["code"]["dirty"] is False
    assert data["code"]["remote"] == "https://github.com/acme/credit-model.git"  # no secret
    text = run_cli("runs", "show", run_id, cwd=root, check=True).stdout
    assert f"github run {GITHUB_RUN_URL}" in text
    assert "triggered by octocat" in text
    commit = data["code"]["commit"]
    assert f"https://github.com/acme/credit-model/commit/{commit}" in text
    (root.parent / "runs_show.txt").write_text(text, encoding="utf-8")  # for the closing note


def test_models_show_names_the_ci_run(ci_session: dict[str, Any]) -> None:
    text = run_cli("models", "show", "credit/1", cwd=ci_session["root"], check=True).stdout
    assert f"ci: github run {GITHUB_RUN_URL}" in text
    assert "ci:github:octocat" in text  # the events table's actor


def test_ci_init_takes_its_defaults_from_the_newest_model(ci_session: dict[str, Any]) -> None:
    root = ci_session["root"]
    proc = run_cli("ci", "init", "--provider", "github", "--json", cwd=root, check=True)
    files = json.loads(proc.stdout)["files"]
    text = (root / files[0]).read_text(encoding="utf-8")
    assert "--target label --register credit" in text
    assert "${DATASET_VERSION:-credit}" in text
