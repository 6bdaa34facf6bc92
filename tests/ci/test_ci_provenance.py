"""CI provenance through the real CLI in a simulated GitHub Actions run: train -> register ->
promote; every audit event names the run, the run records it, and runs show, models show and
audit log print it. The steps are the generated workflow's own scripts, run by bash with stdin
closed and no TTY. Then `ci init` fills its defaults from that workspace."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
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


def _run_step(script: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """One workflow step's script under bash, as a runner runs it: no TTY, stdin closed."""
    full = {k: v for k, v in os.environ.items() if not k.startswith("MODELCYCLE_")}
    full.update({"PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}", **env})
    return subprocess.run(
        ["bash", "-e", "-o", "pipefail", "-c", script],
        cwd=cwd,
        env=full,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


@pytest.fixture(scope="module")
def ci_session(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One workspace in a git repository; the generated GitHub training job's modelcycle steps
    run in it, under the simulated Actions variables, with stdin closed and no TTY."""
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
    flows = root.parent / "flows"
    run_cli(
        "ci", "init", "--provider", "github", "--out", str(flows), "--data", "credit",
        "--target", "label", "--model", "credit", cwd=root, check=True,
    )  # fmt: skip
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "workspace config")
    workflow = yaml.safe_load((flows / ".github/workflows/modelcycle-training.yml").read_text())
    outputs = root.parent / "github_output"
    outputs.touch()
    ran: dict[str, subprocess.CompletedProcess[str]] = {}
    for step in workflow["jobs"]["train"]["steps"]:
        if "modelcycle " not in step.get("run", ""):
            continue  # checkout, set-up, install and the project's own tests
        given = dict(step.get("env", {}))
        if "REF" in given:  # ${{ steps.version.outputs.ref }}, from the file the step wrote
            given["REF"] = outputs.read_text().split("ref=", 1)[1].strip()
        if "DATASET_VERSION" in given:  # a push or schedule: the input is empty
            given["DATASET_VERSION"] = ""
        env = {**CI_ENV, **given, "GITHUB_OUTPUT": str(outputs)}
        proc = _run_step(step["run"], env, root)
        assert proc.returncode == 0, f"{step['name']}: {proc.stdout}{proc.stderr}"
        ran[step["name"]] = proc
    assert len(ran) == 3, list(ran)  # train, read the version, promote
    shown = json.loads((root / "version.json").read_text())
    return {"root": root, "ran": ran, "version": shown}


def test_workflow_steps_never_wait_for_input_or_print_colour(ci_session: dict[str, Any]) -> None:
    for name, proc in ci_session["ran"].items():
        assert "\x1b[" not in proc.stdout + proc.stderr, name
    assert ci_session["version"]["model"] == "credit/1"
    # The deployment job's read of a result, against an endpoint not deployed: one line, exit 3.
    shown = _run_step(
        "modelcycle deployments show credit-staging --json", CI_ENV, ci_session["root"]
    )
    assert shown.returncode == 3
    assert shown.stderr.startswith("error: ")


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
