"""The kubernetes target: the bundle's manifests, applied with ``kubectl`` when it is here.

Nothing runs on this machine (``runs_here`` is False): the deploy service hands the bundle over
(:meth:`KubernetesTarget.hand_over`) instead of a blue/green rollout, with no readiness wait or
smoke test from here: the manifests' probes on the v2 health routes do that job in the cluster.
Without ``kubectl`` on the PATH the manifests are still written and the command that applies
them is returned for the user to run where a cluster is reachable.
The image the manifests name (``localhost/modelcycle/NAME:vV``) must be pushed to a registry
the cluster pulls from: ``deploy --target container --export FILE`` writes it as an OCI archive.
"""

from __future__ import annotations

import shlex
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from modelcycle.deploy._templates import image_name
from modelcycle.deploy.bundle import BundleInfo
from modelcycle.deploy.targets.base import HandOver, Instance, Target
from modelcycle.errors import Conflict, OperationFailed
from modelcycle.names import validate_name

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
) -> KubernetesApply:
    """Apply the bundle's Deployment + Service (or, with ``kserve``, its ServingRuntime +
    InferenceService) when ``kubectl`` is found; otherwise only say how."""
    folder = bundle.path / "kubernetes"
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
        self, deployments_dir: Path, *, kserve: bool = False, namespace: str | None = None
    ) -> None:
        self.root = Path(deployments_dir)
        self.kserve = kserve
        self.namespace = (
            validate_name(namespace, field="namespace") if namespace is not None else None
        )

    def hand_over(self, bundle: BundleInfo) -> HandOver:
        details: dict[str, Any] = {
            "image": image_name(bundle.manifest),
            "namespace": self.namespace,
            "kserve": self.kserve,
        }
        try:
            result = apply_manifests(bundle, kserve=self.kserve, namespace=self.namespace)
        except KubernetesError as exc:
            return HandOver(taken=False, applied=False, details=details, reason=str(exc))
        details["kubectl"] = {
            "command": result.shell_command,
            "applied": result.applied,
            "output": result.output[-2000:],
        }
        return HandOver(taken=True, applied=result.applied, details=details)

    def stop_hint(self, details: dict[str, Any]) -> str:
        return (
            "runs on a Kubernetes cluster: remove it there with "
            f"`kubectl delete -f {details.get('bundle')}/kubernetes`"
        )

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
