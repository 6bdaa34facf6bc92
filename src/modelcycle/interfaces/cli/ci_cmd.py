"""``modelcycle ci init``: ready-to-commit training and deployment pipelines for a team's CI."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.markup import escape

from modelcycle.errors import Conflict, InvalidInput, ModelcycleError
from modelcycle.interfaces.ci import PROVIDERS, CiOptions, render
from modelcycle.interfaces.cli._context import console, open_workspace

app = typer.Typer(
    help="CI/CD: pipeline definitions for GitHub Actions, GitLab CI, Azure Pipelines."
)


@app.command("init")
def init(
    provider: str = typer.Option(..., "--provider", help=f"One of: {', '.join(PROVIDERS)}."),
    out: Path = typer.Option(Path("."), "--out", help="The repository root to write into."),
    data: str | None = typer.Option(
        None, "--data", help="Data set NAME to train on (default: the newest model's)."
    ),
    target: str | None = typer.Option(
        None, "--target", help="Label column (default: the newest model's)."
    ),
    model: str | None = typer.Option(
        None, "--model", help="Registered model name (default: the newest model's)."
    ),
    alias: str = typer.Option("champion", "--alias", help="The alias training promotes to."),
    test_command: str = typer.Option("make test", "--test-command", help="Runs before training."),
    pipeline: str | None = typer.Option(
        None, "--pipeline", help="module:attribute to `pipeline run` instead of `train`."
    ),
    lock: str = typer.Option("requirements.lock", "--lock", help="The lock file to install."),
    deploy_target: str = typer.Option(
        "kubernetes", "--deploy-target", help="local, container or kubernetes."
    ),
    schedule: str = typer.Option("0 3 * * 1", "--schedule", help="Cron of scheduled training."),
    force: bool = typer.Option(False, "--force", help="Overwrite files that exist."),
    as_json: bool = typer.Option(False, "--json", help="Print the written paths as JSON."),
) -> None:
    """Write the training and deployment workflows for PROVIDER (nothing is written if any
    file exists, unless --force)."""
    if provider not in PROVIDERS:
        raise InvalidInput(
            f"expected one of {', '.join(PROVIDERS)}, got {provider!r}", field="--provider"
        )
    if data is None or target is None or model is None:
        data, target, model = _from_newest_model(data, target, model)
    opts = CiOptions(
        data=data,
        target=target,
        model=model,
        alias=alias,
        test_command=test_command,
        pipeline=pipeline,
        lock=lock,
        deploy_target=deploy_target,
        schedule=schedule,
    )
    files = render(provider, opts)
    root = out.expanduser()
    existing = [p for p in files if (root / p).exists()]
    if existing and not force:
        raise Conflict(
            f"{', '.join(existing)} already exist(s) in {root}; pass --force to overwrite"
        )
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    if as_json:
        typer.echo(
            json.dumps({"provider": provider, "root": str(root.resolve()), "files": list(files)})
        )
        return
    for rel in files:
        console.print(f"wrote {escape(str(root / rel))}", highlight=False)
    console.print("next: configure the secrets and environments listed in docs/ci-cd.md")


def _from_newest_model(
    data: str | None, target: str | None, model: str | None
) -> tuple[str, str, str]:
    """Fill what was not given from the newest registered version and its training run."""
    try:
        with open_workspace() as ws:
            versions = ws.registry.list()
            newest = max(versions, key=lambda v: v.created_at) if versions else None
            params = ws.pipelines.get_run(newest.run_id).params if newest and newest.run_id else {}
    except ModelcycleError:
        newest, params = None, {}
    found_data = str(params.get("data") or "").split("@", 1)[0] or None
    values = {
        "--data": data or found_data,
        "--target": target or params.get("target"),
        "--model": model or (newest.name if newest else None),
    }
    for option, value in values.items():
        if not value:
            raise InvalidInput(
                "no default here (no trained model in this workspace): give it", field=option
            )
    return str(values["--data"]), str(values["--target"]), str(values["--model"])
