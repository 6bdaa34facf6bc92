"""``[promotion.champion] require_clean_commit = true`` in a real git repository: a version
trained on uncommitted changes is refused, naming its run (and the refusal is audited); one
trained on a clean commit is promoted; a version with no run is refused too."""

from __future__ import annotations

from pathlib import Path

import pytest
from _ci_helpers import git, git_repo, write_csv

from modelcycle.errors import Conflict, InvalidInput
from modelcycle.registry.approval_policy import load_promotion_policies
from modelcycle.workspace import Workspace, init_workspace

POLICY = "\n[promotion.champion]\nrequire_clean_commit = true\n"


@pytest.fixture
def repo_ws(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Workspace:
    for name in ("MODELCYCLE_HOME", "MODELCYCLE_DB_URL", "GITHUB_ACTIONS", "GITLAB_CI", "TF_BUILD"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MODELCYCLE_ACTOR", "tester")
    root = git_repo(tmp_path / "repo")
    ws, _ = init_workspace(root)
    ws.datasets.add("credit", write_csv(root / "credit.csv"))
    ws.close()
    config = root / "modelcycle.toml"
    config.write_text(config.read_text(encoding="utf-8") + POLICY, encoding="utf-8")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "workspace and policy")
    # The built-in trainer's code is the working directory's repository.
    monkeypatch.chdir(root)
    return Workspace(root)


def test_dirty_run_refused_clean_run_promoted(repo_ws: Workspace) -> None:
    root = repo_ws.root
    with repo_ws as ws:
        (root / "train.md").write_text("an edit nobody committed\n", encoding="utf-8")
        dirty = ws.pipelines.train("credit", "label", model="logreg", progress=False)
        assert dirty.code["dirty"] is True
        with pytest.raises(Conflict) as refused:
            ws.registry.promote("credit/1", "champion")
        assert f"run {dirty.id}" in str(refused.value)
        assert "require_clean_commit" in str(refused.value)
        assert "champion" not in ws.registry.get("credit/1").aliases
        event = ws.audit.events()[-1]
        assert event.action == "model.promotion_refused"
        assert event.payload["rule"] == "require_clean_commit"
        assert event.payload["run"] == dirty.id

        git(root, "commit", "-q", "-am", "commit the edit")
        clean = ws.pipelines.train("credit", "label", model="logreg", seed=1, progress=False)
        assert clean.code["dirty"] is False
        assert clean.code["commit"] == git(root, "rev-parse", "HEAD")
        result = ws.registry.promote("credit/2", "champion")
        assert result.moved
        assert ws.registry.get("credit@champion").version == 2
        # Other aliases are not governed by the champion's policy.
        assert ws.registry.promote("credit/1", "staging").moved


def test_a_version_without_a_run_is_refused(repo_ws: Workspace) -> None:
    import pandas as pd
    from sklearn.dummy import DummyClassifier

    with repo_ws as ws:
        rows = pd.DataFrame({"x1": [0.0, 1.0], "x2": [0.0, 1.0]})
        model = DummyClassifier().fit(rows, [0, 1])
        mv = ws.registry.register(model, "plain", input_example=rows)
        with pytest.raises(Conflict, match="without a training run"):
            ws.registry.promote(mv.ref, "champion")


def test_the_option_must_be_a_boolean() -> None:
    config = {"promotion": {"champion": {"require_clean_commit": "yes"}}}
    with pytest.raises(InvalidInput) as bad:
        load_promotion_policies(config)
    assert bad.value.field == "promotion.champion.require_clean_commit"
    assert "true or false" in str(bad.value)
