"""``modelcycle k8s manifests --out DIR``: Kubernetes manifests for server and worker."""

from __future__ import annotations

import os
from pathlib import Path

import typer

from modelcycle.errors import InvalidInput
from modelcycle.interfaces.cli._context import console

app = typer.Typer(help="Kubernetes manifests for the control plane.", no_args_is_help=True)


@app.command("manifests")
def manifests(
    out: Path = typer.Option(..., "--out", help="Folder to write the YAML files into."),
    image: str = typer.Option(..., "--image", help="Image with modelcycle installed."),
    artifacts: str | None = typer.Option(
        None, "--artifacts", help="s3://bucket/prefix (default: MODELCYCLE_ARTIFACTS_URL)."
    ),
    config: Path | None = typer.Option(
        None, "--config", help="modelcycle.toml for the ConfigMap ([store] is left out)."
    ),
    namespace: str = typer.Option("modelcycle", "--namespace"),
    server_replicas: int = typer.Option(2, "--server-replicas"),
    worker_replicas: int = typer.Option(2, "--worker-replicas"),
    aws_endpoint_url: str | None = typer.Option(
        None, "--aws-endpoint-url", help="MinIO/R2/Ceph endpoint (default: AWS_ENDPOINT_URL)."
    ),
) -> None:
    """Write Deployments (server, worker), a Service, a ConfigMap and a NetworkPolicy.

    The database URL and S3 keys are referenced from the Secrets modelcycle-db (key url) and
    modelcycle-s3 (keys access_key_id, secret_access_key), never written.
    """
    import yaml

    from modelcycle.deploy.control_plane import control_plane_manifests

    url = artifacts or os.environ.get("MODELCYCLE_ARTIFACTS_URL") or ""
    if not url:
        raise InvalidInput("required (or set MODELCYCLE_ARTIFACTS_URL)", field="--artifacts")
    text = ""
    if config is not None:
        try:
            text = config.read_text(encoding="utf-8")
        except OSError as exc:
            raise InvalidInput(f"cannot read {config}: {exc.strerror}", field="--config") from exc
    docs = control_plane_manifests(
        image=image,
        artifacts_url=url,
        config_text=text,
        namespace=namespace,
        server_replicas=server_replicas,
        worker_replicas=worker_replicas,
        aws_endpoint_url=aws_endpoint_url or os.environ.get("AWS_ENDPOINT_URL"),
    )
    out.mkdir(parents=True, exist_ok=True)
    for name, doc in docs.items():
        (out / name).write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    console.print(f"wrote {len(docs)} manifests to {out}: {', '.join(docs)}")
