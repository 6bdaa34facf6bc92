"""Issue 13 item 5: a run records the git state of the user's code, never modelcycle's own.

The pipeline module's repository for ``pipeline run module:attr``; the working directory's for
the built-in trainer (``modelcycle train``); nothing outside a repository.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

import modelcycle
from _cli import run_cli
from modelcycle import Workspace, init_workspace
from modelcycle.datasets import make_credit

REUSING = """
from modelcycle.pipelines import Pipeline, step
from modelcycle.pipelines.tabular_trainer import load  # a built-in step comes first


@step
def count(table, ctx):
    ctx.log_metric("rows", table.num_rows)
    return table.num_rows


pipe = Pipeline("reuse", [load, count], required=("data",))
"""


def _git(root: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", *args],
        cwd=root,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()


def _in_a_repository(path: Path) -> bool:
    found = subprocess.run(
        ["git", "rev-parse", "--show-toplevel"], cwd=path, capture_output=True, check=False
    )
    return found.returncode == 0


def _modelcycle_commit() -> str | None:
    """The commit of the folder modelcycle runs from, when that is a repository."""
    here = Path(modelcycle.__file__).parent
    found = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, check=False
    )
    return found.stdout.strip() if found.returncode == 0 else None


@pytest.fixture
def ws(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Workspace]:
    """A SQLite workspace (the database plays no part here) with a small data set."""
    monkeypatch.delenv("MODELCYCLE_HOME", raising=False)
    monkeypatch.delenv("MODELCYCLE_DB_URL", raising=False)
    monkeypatch.setenv("MODELCYCLE_ACTOR", "tester")
    workspace, _ = init_workspace(tmp_path / "ws", db_url=f"sqlite:///{tmp_path / 'meta.db'}")
    workspace.datasets.add("credit", make_credit(200, seed=1))
    try:
        yield workspace
    finally:
        workspace.close()


def _commit_all(root: Path) -> str:
    (root / ".gitignore").write_text(".modelcycle/\n__pycache__/\n")
    _git(root, "init", "-q", "-b", "main")
    _git(root, "add", "-A")
    _git(root, "commit", "-q", "-m", "project")
    return _git(root, "rev-parse", "HEAD")


def _last_run(ws: Workspace) -> dict:  # type: ignore[type-arg]
    return ws.pipelines.get_run(ws.pipelines.runs(limit=1)[0].id).as_dict()


def test_pipeline_run_records_the_pipeline_modules_repository(ws: Workspace) -> None:
    root = ws.root
    (root / "mc_reuse.py").write_text(REUSING)
    head = _commit_all(root)
    _git(
        root, "remote", "add", "origin", "https://alice:s3cret-token@git.example.com/team/proj.git"
    )
    run_cli("pipeline", "run", "mc_reuse:pipe", "--data", "credit", cwd=root, check=True)
    code = _last_run(ws)["code"]
    assert code["commit"] == head
    assert code["commit"] != _modelcycle_commit()
    assert Path(code["repository"]).resolve() == root.resolve()
    assert code["source"] == "pipeline module"
    assert Path(code["module_file"]).resolve() == (root / "mc_reuse.py").resolve()
    assert code["branch"] == "main"
    assert code["dirty"] is False
    assert code["remote"] == "https://git.example.com/team/proj.git"  # no user, no token
    shown = run_cli("runs", "show", _last_run(ws)["id"], cwd=root, check=True).stdout
    assert f"{head} on main" in shown
    assert "s3cret" not in shown


def test_train_outside_any_repository_records_no_code_version(ws: Workspace) -> None:
    root = ws.root
    assert not _in_a_repository(root)  # the test means nothing inside a repository
    run_cli("train", "--data", "credit", "--target", "default", cwd=root, check=True)
    run = _last_run(ws)
    code = run["code"]
    assert code["source"] == "working directory"
    assert (code["repository"], code["commit"], code["branch"], code["dirty"]) == (
        None,
        None,
        None,
        None,
    )
    assert code["remote"] is None
    own = _modelcycle_commit()
    assert own is None or own not in json.dumps(run)
    assert ws.registry.lineage("credit/1").code_version is None
    shown = run_cli("runs", "show", run["id"], cwd=root, check=True).stdout
    assert "not in a git repository" in shown


def test_train_records_the_working_directorys_repository(ws: Workspace) -> None:
    root = ws.root
    head = _commit_all(root)
    run_cli("train", "--data", "credit", "--target", "default", cwd=root, check=True)
    code = _last_run(ws)["code"]
    assert code["source"] == "working directory"
    assert code["commit"] == head
    assert Path(code["repository"]).resolve() == root.resolve()
    assert code["dirty"] is False
    assert ws.registry.lineage("credit/1").code_version == head
