"""Deployment targets behind one small interface; chosen by name, built on demand."""

from __future__ import annotations

from pathlib import Path

from modelcycle.deploy.targets.base import Instance, Target
from modelcycle.deploy.targets.local import LocalTarget
from modelcycle.errors import InvalidInput

__all__ = ["TARGETS", "Instance", "LocalTarget", "Target", "open_target"]

TARGETS = ("local",)


def open_target(name: str, deployments_dir: Path, *, log_db: str | None = None) -> Target:
    """The target called ``name``; the error lists the valid names.

    ``log_db``: the workspace database the servers log predictions (and feedback) into.
    """
    if name == "local":
        return LocalTarget(deployments_dir, log_db=log_db)
    raise InvalidInput(
        f"unknown target {name!r}; expected one of {', '.join(TARGETS)} "
        "(container and kubernetes are not built yet)",
        field="target",
    )
