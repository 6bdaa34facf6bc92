"""The kubernetes target: the bundle's manifests, applied with ``kubectl`` when it is here.

Nothing runs on this machine (``runs_here`` is False): the deploy service hands the bundle over
(:meth:`KubernetesTarget.hand_over`) instead of a blue/green rollout, with no readiness wait or
smoke test from here: the manifests' probes on the v2 health routes do that job in the cluster.
Without ``kubectl`` on the PATH the manifests are still written and the command that applies
them is returned for the user to run where a cluster is reachable.
The image the manifests name (``localhost/modelcycle/NAME:vV``) must be pushed to a registry
the cluster pulls from: ``deploy --target container --export FILE`` writes it as an OCI archive.

When the workspace's artifacts are in a bucket (``s3://``), the bundle is also stored there as
a tar and the Deployment applied is the bundle's own plus an init container that fetches it
(:func:`modelcycle.deploy._templates.with_bundle_fetch`; with ``kserve``, the InferenceService
gets it: :func:`~modelcycle.deploy._templates.inference_service_with_bundle_fetch`), written
beside the bundle in ``kubernetes/``: the bundle's files name their own sha256, so they cannot
name the archive's.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from modelcycle.deploy._templates import image_name
from modelcycle.deploy.bundle import BundleInfo
from modelcycle.deploy.targets.base import HandOver, Instance, Target
from modelcycle.errors import Conflict, InvalidInput, ModelcycleError, OperationFailed
from modelcycle.names import validate_name

if TYPE_CHECKING:  # the bundle's own server imports this package with a minimal lock (no yaml)
    from modelcycle.store.artifacts import ArtifactStore

__all__ = ["KubernetesApply", "KubernetesError", "KubernetesTarget", "apply_manifests"]

_PLAIN = ("deployment.yaml", "service.yaml")
_KSERVE = ("servingruntime.yaml", "inferenceservice.yaml")


class KubernetesError(OperationFailed):
    """``kubectl apply`` failed; the message ends with what it printed."""


@dataclass(frozen=True, slots=True)
class KubernetesApply:
    """What was (or is to be) applied, and whether ``kubectl`` did it."""

    files: tuple[Path, ...]
    command: tuple[str, ...]
    applied: bool
    output: str

    @property
    def shell_command(self) -> str:
        return shlex.join(self.command)


def apply_manifests(
    bundle: BundleInfo,
    *,
    kserve: bool = False,
    namespace: str | None = None,
    kubectl: str | None = None,
    folder: Path | None = None,
) -> KubernetesApply:
    """Apply the bundle's Deployment + Service (or, with ``kserve``, its ServingRuntime +
    InferenceService) when ``kubectl`` is found; otherwise only say how. ``folder``: other
    manifests of the same names to apply instead (the bundle-fetching ones)."""
    folder = folder or bundle.path / "kubernetes"
    files = tuple(folder / name for name in (_KSERVE if kserve else _PLAIN))
    args = ["apply", *(["--namespace", namespace] if namespace else [])]
    for path in files:
        args += ["-f", str(path)]
    exe = kubectl or shutil.which("kubectl")
    if exe is None:
        return KubernetesApply(files, ("kubectl", *args), False, "kubectl is not on the PATH")
    proc = subprocess.run([exe, *args], capture_output=True, text=True, timeout=300, check=False)
    output = (proc.stdout + proc.stderr).strip()
    if proc.returncode != 0:
        tail = "\n".join(output.splitlines()[-12:])
        raise KubernetesError(f"kubectl apply failed (exit {proc.returncode}):\n{tail}")
    return KubernetesApply(files, ("kubectl", *args), True, output)


class KubernetesTarget(Target):
    """Writes the bundle's manifests and applies them with ``kubectl`` (when on the PATH)."""

    name: ClassVar[str] = "kubernetes"
    runs_here: ClassVar[bool] = False

    def __init__(
        self,
        deployments_dir: Path,
        *,
        kserve: bool = False,
        namespace: str | None = None,
        artifacts: ArtifactStore | None = None,
        control_plane_image: str | None = None,
    ) -> None:
        self.root = Path(deployments_dir)
        self.kserve = kserve
        self.namespace = (
            validate_name(namespace, field="namespace") if namespace is not None else None
        )
        # The store to put the bundle's archive in: only a bucket the pods can reach too.
        self.artifacts = (
            artifacts if artifacts is not None and artifacts.url.startswith("s3://") else None
        )
        if self.artifacts is not None and not control_plane_image:
            raise InvalidInput(
                f"required when the artifacts are in a bucket ({self.artifacts.url}): an image "
                "with modelcycle installed (the one `modelcycle k8s manifests --image` takes) "
                "fetches the bundle in the pod",
                field="control_plane_image",
            )
        self.control_plane_image = control_plane_image

    def hand_over(self, bundle: BundleInfo) -> HandOver:
        details: dict[str, Any] = {
            "image": image_name(bundle.manifest),
            "namespace": self.namespace,
            "kserve": self.kserve,
        }
        folder = None
        try:
            if self.artifacts is not None:
                folder = self._fetching_manifests(bundle, details)
            result = apply_manifests(
                bundle, kserve=self.kserve, namespace=self.namespace, folder=folder
            )
        except ModelcycleError as exc:
            return HandOver(taken=False, applied=False, details=details, reason=str(exc))
        details["kubectl"] = {
            "command": result.shell_command,
            "applied": result.applied,
            "output": result.output[-2000:],
        }
        return HandOver(taken=True, applied=result.applied, details=details)

    def _fetching_manifests(self, bundle: BundleInfo, details: dict[str, Any]) -> Path:
        """Store the bundle's archive; write the Deployment that fetches it (and the Service),
        or with ``kserve`` the InferenceService that does (and the ServingRuntime), beside the
        bundle."""
        import yaml

        from modelcycle.deploy._templates import (
            inference_service_with_bundle_fetch,
            with_bundle_fetch,
        )
        from modelcycle.deploy.bundle_store import store_bundle
        from modelcycle.deploy.control_plane import store_env

        assert self.artifacts is not None
        assert self.control_plane_image is not None
        sha256 = store_bundle(bundle.path, self.artifacts)
        env = store_env(
            self.artifacts.url,
            db_secret=None,  # the fetch reads the bucket only: no database password in the pod
            aws_endpoint_url=os.environ.get("AWS_ENDPOINT_URL"),
        )
        source = bundle.path / "kubernetes"
        # (the manifest that runs the server, its fetching variant, the one copied unchanged)
        main, add_fetch, other = (
            ("inferenceservice.yaml", inference_service_with_bundle_fetch, "servingruntime.yaml")
            if self.kserve
            else ("deployment.yaml", with_bundle_fetch, "service.yaml")
        )
        manifest = yaml.safe_load((source / main).read_text(encoding="utf-8"))
        fetching = add_fetch(manifest, sha256=sha256, image=self.control_plane_image, env=env)
        folder = bundle.path.parent / "kubernetes"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / main).write_text(
            yaml.safe_dump(fetching, sort_keys=True, default_flow_style=False), encoding="utf-8"
        )
        (folder / other).write_bytes((source / other).read_bytes())
        details.update(
            bundle_archive=sha256,
            control_plane_image=self.control_plane_image,
            manifests=str(folder),
        )
        return folder

    def stop_hint(self, details: dict[str, Any]) -> str:
        folder = details.get("manifests") or f"{details.get('bundle')}/kubernetes"
        return f"runs on a Kubernetes cluster: remove it there with `kubectl delete -f {folder}`"

    # Nothing of this target runs on this machine: there is no instance to start, poll or stop.
    def start(
        self,
        bundle: BundleInfo,
        *,
        endpoint: str,
        workdir: Path,
        port: int | None,
        trust: bool = False,
    ) -> Instance:
        raise Conflict("the kubernetes target starts nothing here: the cluster runs the bundle")

    def is_running(self, instance: Instance) -> bool:
        return False

    def stop(self, instance: Instance, *, timeout: float = 10.0) -> bool:
        return False
