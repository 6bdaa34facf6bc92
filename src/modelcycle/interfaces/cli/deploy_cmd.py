"""``modelcycle bundle``, ``modelcycle deploy``, ``modelcycle deployments ...``."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import typer
from rich.markup import escape
from rich.table import Table

from modelcycle.errors import InvalidInput
from modelcycle.interfaces.cli._context import console, open_workspace

deployments_app = typer.Typer(
    help="Deployments: list, show, stop, logs, rollback.", no_args_is_help=True
)


def bundle(
    ref: str = typer.Argument(
        ...,
        help="NAME@ALIAS or NAME/VERSION to bundle; or the word `verify` to check a bundle, "
        "or `fetch` to read one from the artifact store.",
    ),
    path: Path | None = typer.Argument(
        None, help="With `verify`: the bundle folder; with `fetch`: the archive's sha256."
    ),
    out: Path | None = typer.Option(None, "--out", help="Folder to write the bundle to."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace a bundle already in --out."),
    lock: Path | None = typer.Option(
        None,
        "--lock",
        help="Hashed lock file to take wheel hashes from (default: the workspace's "
        "requirements.lock, if any).",
    ),
    sign: bool = typer.Option(
        False, "--sign", help="Sign the bundle (model-signing format) into DIR.sig."
    ),
    key: str | None = typer.Option(None, "--key", help="With --sign: the key's name."),
    public_key: Path | None = typer.Option(
        None, "--public-key", help="With `verify`: also check DIR.sig with this PEM public key."
    ),
    artifacts: str | None = typer.Option(
        None,
        "--artifacts",
        help="With `fetch`: the artifact store URL (default: MODELCYCLE_ARTIFACTS_URL, else the "
        "workspace's store).",
    ),
) -> None:
    """Write a deployment bundle (`bundle REF --out DIR`), recheck one (`bundle verify DIR`) or
    fetch one stored by `deploy --target kubernetes` (`bundle fetch SHA256 --out DIR`)."""
    from modelcycle.deploy import verify_bundle

    if ref == "fetch":
        _fetch(path, out, artifacts)
        return

    if ref == "verify":
        if path is None:
            raise InvalidInput("give the bundle folder: modelcycle bundle verify DIR", field="DIR")
        if public_key is not None:
            from modelcycle.deploy.signing import bundle_signature_path, verify_bundle_signature

            fp = verify_bundle_signature(path, public_key)
            console.print(
                f"Signature {escape(str(bundle_signature_path(path)))} verified: signed by key "
                f"{fp}",
                highlight=False,
            )
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
        signing_key = ws.keys.load(key) if sign else None  # fail before building anything
        info = ws.deploy.bundle(ref, out, overwrite=overwrite, lock_file=lock)
        if signing_key is not None:
            from modelcycle.deploy.signing import sign_and_keep

            # Kept in the workspace too: deploy checks it under [deploy] require_signed.
            sig = sign_and_keep(info, ws.keys, signing_key.name, ws.settings.state_dir)
    reqs = info.manifest["requirements"]
    console.print(
        f"Bundled [bold]{escape(info.ref)}[/] ({info.flavor}) in {escape(str(info.path))}: "
        f"{len(info.files)} files, {reqs['packages']} packages pinned (hashes: {reqs['hashes']}), "
        f"digest {info.digest}",
        highlight=False,
    )
    if signing_key is not None:
        console.print(
            f"Signed with key {escape(signing_key.name)} ({signing_key.fingerprint}): "
            f"{escape(str(sig))}\nverify: model_signing verify key {escape(str(info.path))} "
            f"--signature {escape(str(sig))} --public_key KEY.pub",
            highlight=False,
        )


def deploy(
    ref: str = typer.Argument(..., help="NAME@ALIAS or NAME/VERSION to deploy."),
    endpoint: str = typer.Option(..., "--endpoint", help="Endpoint name (stable across versions)."),
    target: str = typer.Option(
        "local", "--target", help="Where to run it: local, container or kubernetes."
    ),
    base_image: str | None = typer.Option(
        None,
        "--base-image",
        help="Container target: the base image (default: localhost/modelcycle-base, made "
        "locally with debootstrap when missing).",
    ),
    export: Path | None = typer.Option(
        None, "--export", help="Container target: also write the image as an OCI archive."
    ),
    port: int | None = typer.Option(
        None,
        "--port",
        min=1,
        max=65535,
        help="The endpoint's stable port (its router), fixed by the first deployment "
        "(default: a free one); each version's server takes a free port behind it.",
    ),
    trust: bool = typer.Option(False, "--trust", help="Load models that need trust (pickle)."),
    ready_timeout: float = typer.Option(
        60.0, "--ready-timeout", min=1.0, help="Seconds the new server has to become ready."
    ),
    watch: str | None = typer.Option(
        None,
        "--watch",
        help="After the switch, keep the old version for this long (e.g. 60s, 2m) and go back "
        "to it if the new one exceeds --max-error-rate or --max-p99-ms.",
    ),
    max_error_rate: float = typer.Option(
        0.05, "--max-error-rate", min=0.0, max=1.0, help="Watch: highest share of 5xx/errors."
    ),
    max_p99_ms: float = typer.Option(
        500.0, "--max-p99-ms", min=0.0, help="Watch: highest p99 latency (ms) at the endpoint."
    ),
    namespace: str | None = typer.Option(
        None, "--namespace", help="Kubernetes target: the namespace to apply to."
    ),
    kserve: bool = typer.Option(
        False, "--kserve", help="Kubernetes target: apply the KServe InferenceService instead."
    ),
    control_plane_image: str | None = typer.Option(
        None,
        "--control-plane-image",
        help="Kubernetes target with artifacts in a bucket: the image with modelcycle installed "
        "(as for `k8s manifests --image`) whose init container fetches the bundle.",
    ),
) -> None:
    """Deploy a model version to an endpoint: blue/green beside the running one, smoke test,
    switch; on failure the old version keeps serving (exit code 1)."""
    watch_seconds = _seconds(watch, field="--watch") if watch is not None else None
    with open_workspace() as ws:
        previous = ws.deploy.active(endpoint)
        dep = ws.deploy.deploy(
            ref,
            endpoint=endpoint,
            target=target,
            port=port,
            trust=trust,
            ready_timeout=ready_timeout,
            base_image=base_image,
            export=export,
            watch=watch_seconds,
            max_error_rate=max_error_rate,
            max_p99_ms=max_p99_ms,
            kserve=kserve,
            namespace=namespace,
            control_plane_image=control_plane_image,
        )
    if dep.target == "kubernetes":
        _print_kubernetes(dep)
        return
    instance = dep.instance
    replaced = f", replacing {escape(previous.model)}" if previous is not None else ""
    console.print(
        f"Deployed [bold]{escape(dep.model)}[/] to endpoint [bold]{escape(dep.endpoint)}[/] "
        f"({dep.target}, {dep.color}){replaced}: {escape(dep.url or '')}"
        + _where(dep.backend_url, instance.pid if instance is not None else None),
        highlight=False,
    )
    _print_watch(dep.details.get("watch"))
    if instance is not None and instance.extra.get("image"):
        extra = instance.extra
        size_mb = int(extra.get("image_size_bytes") or 0) / 1e6
        console.print(
            f"Image {escape(extra['image'])} ({extra.get('image_id', '')[:12]}, {size_mb:.0f} MB, "
            f"built in {extra.get('build_seconds')} s) in container {escape(extra['container'])}"
            + (f"; OCI archive: {escape(extra['export'])}" if extra.get("export") else ""),
            highlight=False,
        )


def _fetch(sha256: Path | None, out: Path | None, artifacts: str | None) -> None:
    """``bundle fetch SHA256 --out DIR``: from the URLs alone when MODELCYCLE_ARTIFACTS_URL (or
    --artifacts) names the store, as in a pod's init container (no database needed)."""
    import os

    from modelcycle.deploy.bundle_store import fetch_bundle
    from modelcycle.store.artifacts import open_artifact_store

    if sha256 is None:
        raise InvalidInput(
            "give the archive's sha256: bundle fetch SHA256 --out DIR", field="SHA256"
        )
    if out is None:
        raise InvalidInput("give the folder to write to with --out DIR", field="--out")
    url = artifacts or os.environ.get("MODELCYCLE_ARTIFACTS_URL")
    if url:
        info = fetch_bundle(open_artifact_store(url), str(sha256), out)
    else:
        with open_workspace() as ws:
            info = fetch_bundle(ws.artifacts, str(sha256), out)
    console.print(
        f"Fetched the bundle of [bold]{escape(info.ref)}[/] into {escape(str(info.path))}: "
        f"{len(info.files)} files verified (digest {info.digest})",
        highlight=False,
    )


def _print_kubernetes(dep: Any) -> None:
    kubectl = dep.details.get("kubectl") or {}
    if kubectl.get("applied"):
        console.print(
            f"Applied [bold]{escape(dep.model)}[/] to endpoint [bold]{escape(dep.endpoint)}[/] "
            f"(kubernetes): {escape(kubectl['command'])}",
            highlight=False,
        )
        typer.echo(kubectl.get("output", ""))
    else:
        console.print(
            f"Wrote the manifests of [bold]{escape(dep.model)}[/] "
            f"({escape(kubectl.get('output', ''))}); apply them where a cluster is reachable:",
            highlight=False,
        )
        typer.echo(kubectl.get("command", ""))
    if dep.details.get("bundle_archive"):
        console.print(
            f"The bundle is stored as {dep.details['bundle_archive']}: an init container "
            f"({escape(dep.details['control_plane_image'])}) fetches it into each pod.",
            highlight=False,
        )
    console.print(
        f"The image they name, {escape(dep.details['image'])}, must be in a registry the cluster "
        "pulls from (deploy --target container --export FILE writes it as an OCI archive).",
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
        router = ws.deploy.router(d.endpoint)
        router_pid = router.pid() if router.is_running() else None
    if as_json:
        typer.echo(
            json.dumps(
                {**d.as_dict(), "running": running, "router_pid": router_pid},
                indent=2,
                sort_keys=True,
            )
        )
        return
    inst = d.instance
    lines = [
        f"endpoint   {d.endpoint}",
        f"model      {d.model}",
        f"ref        {d.details.get('ref') or d.model}",
        f"status     {d.status}{'' if running or d.status != 'active' else ' (not running)'}",
        f"url        {d.url or '-'} (stable: the endpoint's router)",
        f"backend    {d.backend_url or '-'}",
        f"router     {f'pid {router_pid}' if router_pid else 'not running'}",
        f"target     {d.target} ({d.color or '-'})",
        f"pid        {inst.pid if inst is not None and inst.pid else '-'}",
        f"bundle     {d.details.get('bundle', '-')} (digest {d.bundle_sha256})",
        f"id         {d.id}",
        f"created    {d.created_at} by {d.created_by}",
    ]
    extra = inst.extra if inst is not None else {}
    if extra.get("container"):
        size_mb = int(extra.get("image_size_bytes") or 0) / 1e6
        lines.append(
            f"image      {extra.get('image')} ({str(extra.get('image_id', ''))[:12]}, "
            f"{size_mb:.0f} MB, built in {extra.get('build_seconds')} s)"
        )
        lines.append(f"container  {extra['container']} ({extra.get('engine')})")
    if d.target == "kubernetes":
        lines.append(f"image      {d.details.get('image')}")
        kubectl = d.details.get("kubectl") or {}
        lines.append(f"kubectl    {kubectl.get('command', '-')}")
    if d.reason:
        lines.append(f"reason     {d.reason}")
    if d.details.get("previous_model"):
        lines.append(f"previous   {d.details['previous_model']}")
    moved = d.details.get("alias_moved")
    if moved:
        lines.append(f"alias      {_alias_line(moved)}")
    watched = d.details.get("watch")
    if watched:
        lines.append(f"watch      {_watch_line(watched)}")
    console.print(escape("\n".join(lines)), highlight=False)


@deployments_app.command("rollback")
def rollback(
    endpoint: str = typer.Argument(..., help="Endpoint name."),
    ready_timeout: float = typer.Option(
        60.0, "--ready-timeout", min=1.0, help="Seconds the old version has to become ready."
    ),
) -> None:
    """Go back to the version the endpoint served before (blue/green, smoke-tested)."""
    with open_workspace() as ws:
        current = ws.deploy.active(endpoint)
        dep = ws.deploy.rollback(endpoint, ready_timeout=ready_timeout)
    was = f" from {escape(current.model)}" if current is not None else ""
    console.print(
        f"Rolled back endpoint [bold]{escape(dep.endpoint)}[/]{was} to [bold]"
        f"{escape(dep.model)}[/]: {escape(dep.url or '')} "
        f"(backend {escape(dep.backend_url or '')})",
        highlight=False,
    )
    moved = dep.details.get("alias_moved")
    if moved:
        console.print(escape(_alias_line(moved)), highlight=False)


def _alias_line(moved: dict[str, object]) -> str:
    """The alias a rollback carried back with the traffic (decision 0004)."""
    name = str(moved["alias"]).partition("@")[0]
    return (
        f"{moved['alias']} moved back to {name}/{moved['to']} (was {name}/{moved['from']}; "
        f"reason: {moved.get('reason', 'rollback')})"
    )


def _seconds(text: str, *, field: str) -> float:
    """``60``, ``60s``, ``2m``, ``1h`` -> seconds."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smh]?)\s*", text)
    if match is None or float(match.group(1)) <= 0:
        raise InvalidInput(f"{text!r} is not a duration; expected e.g. 60, 60s, 2m", field=field)
    return float(match.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600}[match.group(2)]


def _where(backend: str | None, pid: int | None) -> str:
    parts = ([f"backend {escape(backend)}"] if backend else []) + ([f"pid {pid}"] if pid else [])
    return f" ({', '.join(parts)})" if parts else ""


def _watch_line(watched: dict[str, Any]) -> str:
    p99 = watched.get("p99_ms")
    verdict = "passed" if watched.get("ok") else "failed"
    return (
        f"{verdict} after {watched.get('seconds')} s: {watched.get('requests')} requests, "
        f"error rate {watched.get('error_rate')}, p99 {'-' if p99 is None else f'{p99} ms'}"
    )


def _print_watch(watched: dict[str, Any] | None) -> None:
    if watched:
        console.print(f"Watch {escape(_watch_line(watched))}", highlight=False)


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
