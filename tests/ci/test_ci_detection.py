"""Which CI run is acting, from each provider's variables; the actor it gives; and the stamp the
store puts on every event (both backends)."""

from __future__ import annotations

from pathlib import Path

from _ci_helpers import GITHUB_ENV, GITHUB_RUN_URL

from modelcycle.ci_context import CiContext, detect_ci
from modelcycle.settings import load_settings
from modelcycle.workspace import Workspace

GITLAB_ENV = {
    "GITLAB_CI": "true",
    "CI_PIPELINE_URL": "https://gitlab.example.com/acme/credit/-/pipelines/77",
    "CI_COMMIT_SHA": "feedface" * 5,
    "CI_COMMIT_REF_NAME": "main",
    "GITLAB_USER_LOGIN": "jdoe",
}
AZURE_ENV = {
    "TF_BUILD": "True",
    "BUILD_BUILDID": "901",
    "SYSTEM_COLLECTIONURI": "https://dev.azure.com/acme/",
    "SYSTEM_TEAMPROJECT": "credit",
    "BUILD_SOURCEVERSION": "abcdef12" * 5,
    "BUILD_SOURCEBRANCH": "refs/heads/main",
    "BUILD_REQUESTEDFOR": "Jane Doe",
}


def test_github() -> None:
    assert detect_ci(GITHUB_ENV) == CiContext(
        "github", GITHUB_RUN_URL, GITHUB_ENV["GITHUB_SHA"], "refs/heads/main", "octocat"
    )


def test_gitlab() -> None:
    found = detect_ci(GITLAB_ENV)
    assert found == CiContext(
        "gitlab", GITLAB_ENV["CI_PIPELINE_URL"], "feedface" * 5, "main", "jdoe"
    )
    assert found.default_actor == "ci:gitlab:jdoe"


def test_azure() -> None:
    found = detect_ci(AZURE_ENV)
    assert found is not None
    assert found.provider == "azure"
    assert found.run_url == "https://dev.azure.com/acme/credit/_build/results?buildId=901"
    assert (found.commit, found.ref, found.actor) == ("abcdef12" * 5, "refs/heads/main", "Jane Doe")


def test_outside_ci_and_partial_variables() -> None:
    assert detect_ci({}) is None
    assert detect_ci({"GITHUB_ACTIONS": "false", "CI_PIPELINE_URL": "x"}) is None
    # A runner that hides some variables still gives the provider, without a made-up URL.
    found = detect_ci({"GITHUB_ACTIONS": "true", "GITHUB_ACTOR": "bot"})
    assert found == CiContext("github", None, None, None, "bot")


def test_settings_actor_and_ci(tmp_path: Path) -> None:
    (tmp_path / ".modelcycle").mkdir()
    inside = load_settings(tmp_path, environ=GITLAB_ENV)
    assert inside.actor == "ci:gitlab:jdoe"
    assert inside.ci is not None
    assert inside.ci["run_url"] == GITLAB_ENV["CI_PIPELINE_URL"]
    # MODELCYCLE_ACTOR still wins; the CI record stays.
    named = load_settings(tmp_path, environ={**AZURE_ENV, "MODELCYCLE_ACTOR": "release-bot"})
    assert named.actor == "release-bot"
    assert named.ci is not None
    assert named.ci["provider"] == "azure"
    outside = load_settings(tmp_path, environ={"MODELCYCLE_ACTOR": "me"})
    assert outside.ci is None


def test_the_store_stamps_every_event(workspace: Workspace) -> None:
    """One place in the write path: any stage's event (here a note and a data set) gets it."""
    ci = detect_ci(AZURE_ENV)
    assert ci is not None
    stamped = Workspace(settings=workspace.settings.model_copy(update={"ci": ci.as_dict()}))
    try:
        stamped.audit.note("from the pipeline")
        plain = workspace.audit.note("by hand")
    finally:
        stamped.close()
    events = workspace.audit.events()
    note = next(e for e in events if e.payload.get("text") == "from the pipeline")
    assert note.payload["ci"] == ci.as_dict()
    assert "ci" not in plain.payload
    assert workspace.audit.verify().ok
