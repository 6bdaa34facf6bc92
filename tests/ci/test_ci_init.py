"""``modelcycle ci init``: the files each provider gets are valid for that provider (its schema,
checked offline by check-jsonschema) and carry the expected triggers, jobs and commands."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from _cli import run_cli
from modelcycle.errors import InvalidInput
from modelcycle.interfaces.ci import CiOptions, render

SCHEMAS = {
    "github": "vendor.github-workflows",
    "gitlab": "vendor.gitlab-ci",
    "azure": "vendor.azure-pipelines",
}
OPTIONS = ("--data", "credit", "--target", "default", "--model", "credit")
CHECK = str(Path(sys.executable).parent / "check-jsonschema")


def _validate(provider: str, paths: list[Path]) -> subprocess.CompletedProcess[str]:
    # Azure's schema uses patterns the default (ECMAScript) engine rejects: Python's reads them.
    return subprocess.run(
        [
            CHECK,
            "--regex-variant",
            "python",
            "--builtin-schema",
            SCHEMAS[provider],
            *map(str, paths),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _init(provider: str, out: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return run_cli(
        "ci", "init", "--provider", provider, "--out", str(out), *OPTIONS, *extra, cwd=out
    )


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    """Each provider's files, checked by its schema: {provider: {path: parsed YAML}}.

    GitHub's come from the real command; GitLab's and Azure's from the renderer it calls (one
    CLI start-up fewer each, on a machine where the suite's time is counted).
    """
    found: dict[str, dict[str, Any]] = {}
    for provider in SCHEMAS:
        out = tmp_path_factory.mktemp(provider)
        if provider == "github":
            proc = _init(provider, out, "--json")
            assert proc.returncode == 0, proc.stderr
            written = json.loads(proc.stdout)["files"]
        else:
            opts = CiOptions(data="credit", target="default", model="credit")
            for rel, text in render(provider, opts).items():
                (out / rel).parent.mkdir(parents=True, exist_ok=True)
                (out / rel).write_text(text, encoding="utf-8")
            written = list(render(provider, opts))
        checked = _validate(provider, [out / p for p in written])
        assert checked.returncode == 0, checked.stdout + checked.stderr
        found[provider] = {p: yaml.safe_load((out / p).read_text()) for p in written}
        found[provider]["_root"] = out
    return found


def _steps_text(doc: Any) -> str:
    return json.dumps(doc)


def test_github_training_and_deployment(generated: dict[str, dict[str, Any]]) -> None:
    files = generated["github"]
    train = files[".github/workflows/modelcycle-training.yml"]
    on = train[True]  # YAML 1.1 reads the key `on` as True
    assert set(on) == {"push", "schedule", "workflow_dispatch"}
    assert "modelcycle.toml" in on["push"]["paths"]
    assert "dataset_version" in on["workflow_dispatch"]["inputs"]
    runs = [s.get("run", "") for s in train["jobs"]["train"]["steps"]]
    assert any("pip install --no-deps -r requirements.lock" in r for r in runs)
    assert "make test" in runs
    assert any(r.startswith("modelcycle train --data") for r in runs)
    assert any('models show "credit@latest" --json' in r for r in runs)
    assert any('models promote "$REF" --to champion' in r for r in runs)

    deploy = files[".github/workflows/modelcycle-deployment.yml"]
    on = deploy[True]
    assert on["repository_dispatch"]["types"] == ["model.promoted"]
    assert "model_ref" in on["workflow_dispatch"]["inputs"]
    jobs = deploy["jobs"]
    assert jobs["staging"]["environment"] == "staging"
    assert jobs["production"]["environment"] == "production"
    assert jobs["production"]["needs"] == "staging"
    staging = _steps_text(jobs["staging"]["steps"])
    assert "deployments show credit-staging --json" in staging
    assert "health/ready" in staging
    # Secrets come from the provider's store, never written into the file.
    assert "secrets.MODELCYCLE_DB_URL" in deploy["env"]["MODELCYCLE_DB_URL"]


def test_gitlab_training_and_deployment(generated: dict[str, dict[str, Any]]) -> None:
    files = generated["gitlab"]
    root = files[".gitlab-ci.yml"]
    assert {i["local"] for i in root["include"]} == {
        ".gitlab/modelcycle-training.yml",
        ".gitlab/modelcycle-deployment.yml",
    }
    train = files[".gitlab/modelcycle-training.yml"]
    rules = _steps_text(train[".modelcycle-training-rules"]["rules"])
    assert "schedule" in rules
    assert "push" in rules
    assert "modelcycle.toml" in rules
    assert train["modelcycle-test"]["script"] == ["make test"]
    assert any("modelcycle train" in line for line in train["modelcycle-train"]["script"])
    assert any("models promote" in line for line in train["modelcycle-promote"]["script"])
    deploy = files[".gitlab/modelcycle-deployment.yml"]
    assert "trigger" in _steps_text(deploy[".modelcycle-deployment-rules"])
    assert deploy["modelcycle-staging"]["environment"]["name"] == "staging"
    assert deploy["modelcycle-production"]["environment"]["name"] == "production"
    assert deploy["modelcycle-production"]["needs"] == ["modelcycle-staging"]


def test_azure_training_and_deployment(generated: dict[str, dict[str, Any]]) -> None:
    files = generated["azure"]
    train = files["azure-pipelines/modelcycle-training.yml"]
    assert "modelcycle.toml" in train["trigger"]["paths"]["include"]
    assert train["schedules"][0]["cron"] == "0 3 * * 1"
    assert train["parameters"][0]["name"] == "datasetVersion"
    steps = _steps_text(train["jobs"][0]["steps"])
    assert "modelcycle train" in steps
    assert "models promote" in steps
    deploy = files["azure-pipelines/modelcycle-deployment.yml"]
    assert deploy["trigger"] == "none"
    assert deploy["parameters"][0]["name"] == "modelRef"
    stages = {s["stage"]: s for s in deploy["stages"]}
    assert stages["production"]["dependsOn"] == "staging"
    assert stages["production"]["jobs"][0]["environment"] == "production"
    assert "$(MODELCYCLE_DB_URL)" in _steps_text(stages["production"])


def test_the_validator_rejects_a_broken_file(
    generated: dict[str, dict[str, Any]], tmp_path: Path
) -> None:
    """The schema check above can fail: a workflow without jobs is refused."""
    text = (generated["github"]["_root"] / ".github/workflows/modelcycle-training.yml").read_text()
    broken = tmp_path / "broken.yml"
    broken.write_text(text.split("\njobs:")[0] + "\n", encoding="utf-8")
    assert _validate("github", [broken]).returncode != 0


def test_existing_files_are_kept_and_bad_input_is_named(
    generated: dict[str, dict[str, Any]], tmp_path: Path
) -> None:
    out = generated["github"]["_root"]
    path = out / ".github/workflows/modelcycle-deployment.yml"
    before = path.read_text()
    again = _init("github", out, "--model", "other")
    assert again.returncode == 4, again.stderr
    assert "--force" in again.stderr
    assert path.read_text() == before
    bad = run_cli("ci", "init", "--provider", "jenkins", "--out", str(tmp_path), cwd=tmp_path)
    assert bad.returncode == 2
    assert "--provider" in bad.stderr
    assert not any(tmp_path.iterdir())


def test_any_test_command_and_a_pipeline_module() -> None:
    """A test command with YAML-special characters stays one string; --pipeline runs it."""
    command = 'pytest -q -k "not slow" # x: y'
    opts = CiOptions(
        data="credit", target="default", model="credit", test_command=command,
        pipeline="pipelines.credit:pipeline",
    )  # fmt: skip
    for provider in SCHEMAS:
        texts = render(provider, opts)
        joined = json.dumps([yaml.safe_load(t) for t in texts.values()])
        assert json.dumps(command)[1:-1] in joined, provider
        assert "modelcycle pipeline run pipelines.credit:pipeline --data" in joined, provider
    with pytest.raises(InvalidInput) as bad:
        render("github", CiOptions(data="credit; rm -rf /", target="y", model="m"))
    assert bad.value.field == "--data"
