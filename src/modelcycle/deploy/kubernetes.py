"""The kubernetes target: the bundle's manifests, applied with ``kubectl`` when it is here.

Nothing runs on this machine, so this is not a :class:`~modelcycle.deploy.targets.Target`
(no readiness wait or smoke test from here: the manifests' probes on the v2 health routes do
that job inside the cluster). Without ``kubectl`` on the PATH the manifests are still written
and the command that applies them is returned for the user to run where a cluster is reachable.
The image the manifests name (``localhost/modelcycle/NAME:vV``) must be pushed to a registry
the cluster pulls from: ``deploy --target container --export FILE`` writes it as an OCI archive.
"""

from __future__ import annotations

import shlex
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from modelcycle.deploy.bundle import BundleInfo
from modelcycle.errors import ModelcycleError

__all__ = ["KubernetesApply", "KubernetesError", "apply_manifests"]

_PLAIN = ("deployment.yaml", "service.yaml")
_KSERVE = ("servingruntime.yaml", "inferenceservice.yaml")


class KubernetesError(ModelcycleError):
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
