"""Deployment targets behind one small interface; chosen by name from one table, built on
demand (constructors do no I/O)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from modelcycle.deploy.targets.base import HandOver, Instance, Target
from modelcycle.deploy.targets.container import ContainerTarget
from modelcycle.deploy.targets.kubernetes import KubernetesTarget
from modelcycle.deploy.targets.local import LocalTarget
from modelcycle.errors import InvalidInput

if TYPE_CHECKING:
    from modelcycle.store.artifacts import ArtifactStore

__all__ = [
    "TARGETS",
    "ContainerTarget",
    "HandOver",
    "Instance",
    "KubernetesTarget",
    "LocalTarget",
    "Target",
    "open_target",
]


# Each factory takes the deployments folder and the options; it uses the ones that apply.
_FACTORIES: dict[str, Callable[..., Target]] = {
    "local": lambda root, *, log_db, **_: LocalTarget(root, log_db=log_db),
    "container": lambda root, *, log_db, base_image, export, **_: ContainerTarget(
        root, base_image=base_image, export=export, log_db=log_db
    ),
    "kubernetes": lambda root, *, kserve, namespace, artifacts, control_plane_image, **_: (
        KubernetesTarget(
            root,
            kserve=kserve,
            namespace=namespace,
            artifacts=artifacts,
            control_plane_image=control_plane_image,
        )
    ),
}
TARGETS = tuple(_FACTORIES)


def open_target(
    name: str,
    deployments_dir: Path,
    *,
    log_db: str | None = None,
    base_image: str | None = None,
    export: Path | None = None,
    kserve: bool = False,
    namespace: str | None = None,
    artifacts: ArtifactStore | None = None,
    control_plane_image: str | None = None,
) -> Target:
    """The target called ``name``; the error lists the valid names.

    ``log_db``: the workspace database the servers log predictions (and feedback) into.
    ``base_image`` and ``export`` (an OCI archive to write) apply to the container target,
    ``kserve``, ``namespace``, ``artifacts`` (a bucket: the pods fetch the bundle from it)
    and ``control_plane_image`` (the image that fetches it) to the kubernetes one.
    """
    factory = _FACTORIES.get(name)
    if factory is None:
        raise InvalidInput(
            f"unknown target {name!r}; expected one of {', '.join(TARGETS)}", field="target"
        )
    return factory(
        deployments_dir,
        log_db=log_db,
        base_image=base_image,
        export=export,
        kserve=kserve,
        namespace=namespace,
        artifacts=artifacts,
        control_plane_image=control_plane_image,
    )
