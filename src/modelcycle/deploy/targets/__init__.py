"""Deployment targets behind one small interface; chosen by name, built on demand."""

from __future__ import annotations

from pathlib import Path

from modelcycle.deploy.targets.base import Instance, Target
from modelcycle.deploy.targets.container import ContainerTarget
from modelcycle.deploy.targets.local import LocalTarget
from modelcycle.errors import InvalidInput

__all__ = ["TARGETS", "ContainerTarget", "Instance", "LocalTarget", "Target", "open_target"]

# kubernetes is not a Target: nothing runs here, the manifests are applied (deploy/kubernetes.py).
TARGETS = ("local", "container", "kubernetes")


def open_target(
    name: str,
    deployments_dir: Path,
    *,
    log_db: str | None = None,
    base_image: str | None = None,
    export: Path | None = None,
) -> Target:
    """The target called ``name``; the error lists the valid names.

    ``log_db``: the workspace database the servers log predictions (and feedback) into.
    ``base_image`` and ``export`` (an OCI archive to write) apply to the container target.
    """
    if name == "local":
        return LocalTarget(deployments_dir, log_db=log_db)
    if name == "container":
        return ContainerTarget(deployments_dir, base_image=base_image, export=export, log_db=log_db)
    raise InvalidInput(
        f"unknown target {name!r}; expected one of {', '.join(TARGETS)}", field="target"
    )
