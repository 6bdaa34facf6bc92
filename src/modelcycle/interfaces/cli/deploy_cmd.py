"""``modelcycle bundle``, ``modelcycle deploy``, ``modelcycle deployments ...``."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.markup import escape
from rich.table import Table

from modelcycle.errors import InvalidInput
from modelcycle.interfaces.cli._context import console, open_workspace

deployments_app = typer.Typer(help="Deployments: list, show, stop, logs.", no_args_is_help=True)


def bundle(
    ref: str = typer.Argument(
        ..., help="NAME@ALIAS or NAME/VERSION to bundle; or the word `verify` to check a bundle."
    ),
    path: Path | None = typer.Argument(None, help="With `verify`: the bundle folder."),
    out: Path | None = typer.Option(None, "--out", help="Folder to write the bundle to."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace a bundle already in --out."),
    lock: Path | None = typer.Option(
        None,
        "--lock",
        help="Hashed lock file to take wheel hashes from (default: the workspace's "
        "requirements.lock, if any).",
    ),
) -> None:
    """Write a deployment bundle (`bundle REF --out DIR`) or recheck one (`bundle verify DIR`)."""
    from modelcycle.deploy import verify_bundle

    if ref == "verify":
        if path is None:
            raise InvalidInput("give the bundle folder: modelcycle bundle verify DIR", field="DIR")
        info = verify_bundle(path)
        console.print(
            f"Bundle of [bold]{escape(info.ref)}[/] verified: {len(info.files)} files match "
            f"bundle.json (digest {info.digest})",
            highlight=False,
        )
        return
    if path is not None:
        raise InvalidInput(f"unexpected argument {str(path)!r}; give the folder with --out")
    if out is None:
        raise InvalidInput("give the folder to write to with --out DIR", field="--out")
    with open_workspace() as ws:
        info = ws.deploy.bundle(ref, out, overwrite=overwrite, lock_file=lock)
    reqs = info.manifest["requirements"]
    console.print(
        f"Bundled [bold]{escape(info.ref)}[/] ({info.flavor}) in {escape(str(info.path))}: "
        f"{len(info.files)} files, {reqs['packages']} packages pinned (hashes: {reqs['hashes']}), "
        f"digest {info.digest}",
        highlight=False,
    )


def deploy(
    ref: str = typer.Argument(..., help="NAME@ALIAS or NAME/VERSION to deploy."),
    endpoint: str = typer.Option(..., "--endpoint", help="Endpoint name (stable across versions)."),
    target: str = typer.Option("local", "--target", help="Where to run it: local."),
    port: int | None = typer.Option(
        None, "--port", min=1, max=65535, help="Port for the new server (default: a free one)."
    ),
    trust: bool = typer.Option(False, "--trust", help="Load models that need trust (pickle)."),
    ready_timeout: float = typer.Option(
        60.0, "--ready-timeout", min=1.0, help="Seconds the new server has to become ready."
    ),
) -> None:
    """Deploy a model version to an endpoint: blue/green beside the running one, smoke test,
    switch; on failure the old version keeps serving (exit code 1)."""
    with open_workspace() as ws:
        previous = ws.deploy.active(endpoint)
        dep = ws.deploy.deploy(
            ref,
            endpoint=endpoint,
            target=target,
            port=port,
            trust=trust,
            ready_timeout=ready_timeout,
        )
    instance = dep.instance
    replaced = f", replacing {escape(previous.model)}" if previous is not None else ""
    console.print(
        f"Deployed [bold]{escape(dep.model)}[/] to endpoint [bold]{escape(dep.endpoint)}[/] "
        f"({dep.target}, {dep.color}){replaced}: {escape(dep.url or '')}"
        + (f" (pid {instance.pid})" if instance is not None and instance.pid else ""),
        highlight=False,
    )


@deployments_app.command("list")
def list_(
    endpoint: str | None = typer.Option(None, "--endpoint", help="Only this endpoint."),
    all_: bool = typer.Option(False, "--all", help="Every attempt, not only active ones."),
) -> None:
    """List deployments (active ones unless --all)."""
    with open_workspace() as ws:
        rows = ws.deploy.list(endpoint, all=all_)
        running = {d.id: ws.deploy.is_running(d) for d in rows if d.status == "active"}
    table = Table("endpoint", "model", "target", "status", "color", "url", "id", "created (UTC)")
    for d in rows:
        status = d.status
        if d.status == "active" and not running.get(d.id, False):
            status = "active (not running)"
        table.add_row(
            escape(d.endpoint),
            escape(d.model),
            d.target,
            status,
            d.color or "",
            escape(d.url or ""),
            d.id[:12],
            d.created_at,
        )
    console.print(table)


@deployments_app.command("show")
def show(
    endpoint: str = typer.Argument(..., help="Endpoint name."),
    as_json: bool = typer.Option(False, "--json", help="Print the record as JSON."),
) -> None:
    """The endpoint's active deployment (else its latest attempt), with its URL."""
    with open_workspace() as ws:
        d = ws.deploy.show(endpoint)
        running = ws.deploy.is_running(d)
    if as_json:
        typer.echo(json.dumps({**d.as_dict(), "running": running}, indent=2, sort_keys=True))
        return
    inst = d.instance
    lines = [
        f"endpoint   {d.endpoint}",
        f"model      {d.model}",
        f"status     {d.status}{'' if running or d.status != 'active' else ' (not running)'}",
        f"url        {d.url or '-'}",
        f"target     {d.target} ({d.color or '-'})",
        f"pid        {inst.pid if inst is not None and inst.pid else '-'}",
        f"bundle     {d.details.get('bundle', '-')} (digest {d.bundle_sha256})",
        f"id         {d.id}",
        f"created    {d.created_at} by {d.created_by}",
    ]
    if d.reason:
        lines.append(f"reason     {d.reason}")
    if d.details.get("previous_model"):
        lines.append(f"previous   {d.details['previous_model']}")
    console.print(escape("\n".join(lines)), highlight=False)


@deployments_app.command("stop")
def stop(endpoint: str = typer.Argument(..., help="Endpoint name.")) -> None:
    """Stop the endpoint's server."""
    with open_workspace() as ws:
        d = ws.deploy.stop(endpoint)
    console.print(f"Stopped endpoint [bold]{escape(d.endpoint)}[/] ({escape(d.model)})")


@deployments_app.command("logs")
def logs(
    endpoint: str = typer.Argument(..., help="Endpoint name."),
    tail: int | None = typer.Option(None, "--tail", min=1, help="Only the last N lines."),
) -> None:
    """Print the server log of the endpoint's active deployment (else its latest attempt)."""
    with open_workspace() as ws:
        text = ws.deploy.logs(endpoint, tail=tail)
    typer.echo(text, nl=False)
