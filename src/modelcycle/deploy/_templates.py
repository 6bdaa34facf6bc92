"""The bundle's build and run descriptions: Containerfile and Kubernetes/KServe manifests.

Pure functions of the manifest: the same manifest gives the same bytes.
"""

from __future__ import annotations

import json
import re
from typing import Any

__all__ = [
    "BUNDLE_DIR",
    "CONTAINER_PORT",
    "containerfile",
    "image_name",
    "kubernetes_manifests",
    "with_bundle_fetch",
]

CONTAINER_PORT = 8080
_UID = 10001


def image_name(manifest: dict[str, Any]) -> str:
    """``modelcycle/NAME:vVERSION``, the tag the manifests refer to."""
    model = manifest["model"]
    return f"localhost/modelcycle/{_dns(model['name'])}:v{model['version']}"


def _dns(name: str) -> str:
    """A name Kubernetes accepts (RFC 1123 label: lower case, digits, '-')."""
    label = re.sub(r"[^a-z0-9-]+", "-", name.lower()).strip("-")
    return (label or "model")[:50]


def labels(manifest: dict[str, Any]) -> dict[str, str]:
    """OCI annotation keys plus modelcycle's own, all from the manifest."""
    model = manifest["model"]
    lineage = manifest["lineage"]
    out = {
        "org.opencontainers.image.title": f"{model['name']} scoring server",
        "org.opencontainers.image.description": (
            f"modelcycle bundle of {model['name']}/{model['version']} ({model['flavor']})"
        ),
        "org.opencontainers.image.version": str(model["version"]),
        "org.opencontainers.image.created": model["created_at"],
        "org.opencontainers.image.vendor": "modelcycle",
        "org.opencontainers.image.ref.name": image_name(manifest),
        "io.modelcycle.model.name": model["name"],
        "io.modelcycle.model.version": str(model["version"]),
        "io.modelcycle.model.flavor": model["flavor"],
        "io.modelcycle.model.sha256": model["sha256"],
        "io.modelcycle.run.id": lineage["run_id"] or "",
        "io.modelcycle.datasets": ",".join(lineage["datasets"]),
        "io.modelcycle.code.version": lineage["code_version"] or "",
        "io.modelcycle.version": manifest["modelcycle"]["version"],
    }
    if lineage["code_version"]:
        out["org.opencontainers.image.revision"] = lineage["code_version"]
    return out


# What the scoring server never loads, left out of the image to keep it small: byte code
# (written by nothing at run time: PYTHONDONTWRITEBYTECODE), test suites, C headers and Cython
# sources, and Arrow's Flight RPC and S3 file system libraries (about 50 MB; pyarrow imports
# both only on demand).
_PRUNE = " \\\n    && ".join(
    [
        "find /opt/venv -name __pycache__ -prune -exec rm -rf {} +",
        "find /opt/venv/lib -depth -type d \\( -name tests -o -name include \\)"
        " -path '*/site-packages/*' -exec rm -rf {} +",
        "find /opt/venv/lib \\( -name '*.pyx' -o -name '*.pxd' -o -name '*.pxi'"
        " -o -name '*.h' \\) -delete",
        "cd /opt/venv/lib/python3*/site-packages",
        "rm -rf pyarrow/*flight* pyarrow/*_s3* pyarrow/_pyarrow_cpp_tests*",
    ]
)


def containerfile(manifest: dict[str, Any], *, require_hashes: bool) -> str:
    """A two-stage build: wheels installed into a venv in the first stage (binary wheels only,
    no compiler needed or shipped), copied into a clean final stage that runs as a non-root
    user."""
    label_lines = " \\\n      ".join(
        f"{key}={json.dumps(value)}" for key, value in sorted(labels(manifest).items())
    )
    pip_flags = "--no-cache-dir --no-deps --only-binary=:all:"
    if require_hashes:
        pip_flags += " --require-hashes"
    ready = "/v2/health/ready"
    probe = (
        "import sys,urllib.request;"
        f"sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:{CONTAINER_PORT}{ready}',"
        "timeout=3).status==200 else 1)"
    )
    return f"""\
# syntax=docker/dockerfile:1
# Scoring image for {manifest["model"]["name"]}/{manifest["model"]["version"]}, made by
# `modelcycle bundle`.
# Any base with python3 (>= 3.11) and its venv module works, e.g. a Debian minbase made with
# debootstrap (see docs/deploy.md) or python:3.11-slim.
ARG BASE_IMAGE=localhost/modelcycle-base:latest

FROM ${{BASE_IMAGE}} AS build
# Extra pip options, e.g. "--no-index --find-links /wheels" for a wheelhouse mounted into the
# build (what `modelcycle deploy --target container` does), or "--index-url URL".
ARG PIP_OPTIONS=""
RUN python3 -m venv /opt/venv
COPY requirements.lock /tmp/requirements.lock
RUN /opt/venv/bin/pip install {pip_flags} $PIP_OPTIONS -r /tmp/requirements.lock \\
    && /opt/venv/bin/python -m pip uninstall --quiet --yes pip setuptools \\
    && {_PRUNE}

FROM ${{BASE_IMAGE}}
COPY --from=build /opt/venv /opt/venv
COPY . /opt/bundle
ENV PATH=/opt/venv/bin:$PATH \\
    PYTHONDONTWRITEBYTECODE=1 \\
    PYTHONUNBUFFERED=1
LABEL {label_lines}
USER {_UID}:{_UID}
WORKDIR /opt/bundle
EXPOSE {CONTAINER_PORT}
HEALTHCHECK --interval=10s --timeout=4s --start-period=30s --retries=3 \\
  CMD ["python3", "-c", "{probe}"]
STOPSIGNAL SIGTERM
CMD ["python3", "/opt/bundle/serve.py", "--host", "0.0.0.0", "--port", "{CONTAINER_PORT}"]
"""


def kubernetes_manifests(manifest: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """File name -> object: Deployment, Service, KServe ServingRuntime + InferenceService."""
    model = manifest["model"]
    app = _dns(f"{model['name']}-v{model['version']}")
    base = _dns(model["name"])
    image = image_name(manifest)
    meta_labels = {
        "app.kubernetes.io/name": base,
        "app.kubernetes.io/instance": app,
        "app.kubernetes.io/version": str(model["version"]),
        "app.kubernetes.io/managed-by": "modelcycle",
    }
    annotations = {
        "io.modelcycle/model": f"{model['name']}/{model['version']}",
        "io.modelcycle/model-sha256": model["sha256"],
        "io.modelcycle/run-id": manifest["lineage"]["run_id"] or "",
        "io.modelcycle/datasets": ",".join(manifest["lineage"]["datasets"]),
    }
    probes: dict[str, dict[str, Any]] = {
        "readinessProbe": {
            "httpGet": {"path": "/v2/health/ready", "port": "http"},
            "initialDelaySeconds": 2,
            "periodSeconds": 5,
            "failureThreshold": 3,
        },
        "livenessProbe": {
            "httpGet": {"path": "/v2/health/live", "port": "http"},
            "initialDelaySeconds": 5,
            "periodSeconds": 10,
            "failureThreshold": 3,
        },
    }
    resources = {
        "requests": {"cpu": "250m", "memory": "512Mi"},
        "limits": {"cpu": "1", "memory": "1Gi"},
    }
    security = {
        "runAsNonRoot": True,
        "runAsUser": _UID,
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
    }
    # Inside a pod the server must listen on the pod's address, not only on loopback.
    command = ["python3", "/opt/bundle/serve.py", "--host", "0.0.0.0", "--port"]  # noqa: S104
    container = {
        "name": "scoring",
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "command": [*command, str(CONTAINER_PORT)],
        "ports": [{"name": "http", "containerPort": CONTAINER_PORT, "protocol": "TCP"}],
        **probes,
        "resources": resources,
        "securityContext": security,
    }
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": app, "labels": meta_labels, "annotations": annotations},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app.kubernetes.io/instance": app}},
            "template": {
                "metadata": {"labels": meta_labels, "annotations": annotations},
                "spec": {"containers": [container], "terminationGracePeriodSeconds": 30},
            },
        },
    }
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": app, "labels": meta_labels},
        "spec": {
            "type": "ClusterIP",
            "selector": {"app.kubernetes.io/instance": app},
            "ports": [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}],
        },
    }
    runtime_name = f"modelcycle-{app}"
    # KServe names no container port "http": its probes point at the number.
    runtime_probes = {
        key: {**probe, "httpGet": {**probe["httpGet"], "port": CONTAINER_PORT}}
        for key, probe in probes.items()
    }
    serving_runtime = {
        "apiVersion": "serving.kserve.io/v1alpha1",
        "kind": "ServingRuntime",
        "metadata": {"name": runtime_name, "labels": meta_labels},
        "spec": {
            "supportedModelFormats": [{"name": "modelcycle", "version": "1", "autoSelect": False}],
            "protocolVersions": ["v2"],
            "containers": [
                {
                    "name": "kserve-container",
                    "image": image,
                    "command": [*command, str(CONTAINER_PORT)],
                    "ports": [{"containerPort": CONTAINER_PORT, "protocol": "TCP"}],
                    **runtime_probes,
                    "resources": resources,
                    "securityContext": security,
                }
            ],
        },
    }
    inference_service = {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": {"name": base, "labels": meta_labels, "annotations": annotations},
        "spec": {
            "predictor": {
                "model": {
                    "modelFormat": {"name": "modelcycle", "version": "1"},
                    "protocolVersion": "v2",
                    "runtime": runtime_name,
                    "resources": resources,
                }
            }
        },
    }
    return {
        "deployment.yaml": deployment,
        "service.yaml": service,
        "servingruntime.yaml": serving_runtime,
        "inferenceservice.yaml": inference_service,
    }


BUNDLE_DIR = "/opt/bundle"


def _fetch_bundle_container(sha256: str, image: str, env: list[dict[str, Any]]) -> dict[str, Any]:
    """The init container that runs ``modelcycle bundle fetch`` into the bundle volume."""
    return {
        "name": "fetch-bundle",
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "command": ["modelcycle", "bundle", "fetch", sha256, "--out", BUNDLE_DIR],
        "env": env,
        "volumeMounts": [{"name": "bundle", "mountPath": BUNDLE_DIR}],
        "resources": {
            "requests": {"cpu": "100m", "memory": "256Mi"},
            "limits": {"memory": "512Mi"},
        },
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": _UID,
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,  # writes only into the emptyDir
            "capabilities": {"drop": ["ALL"]},
        },
    }


def _add_bundle_fetch(
    pod: dict[str, Any], servers: list[dict[str, Any]], sha256: str, image: str, env: list[Any]
) -> None:
    """Into ``pod`` (a pod spec): the bundle's ``emptyDir``, the init container filling it,
    and ``fsGroup`` (the volume is writable by the init container's user and readable by the
    server); into each of ``servers``: the volume mounted read-only over the image's own
    ``/opt/bundle``."""
    pod["volumes"] = [{"name": "bundle", "emptyDir": {}}]
    pod["initContainers"] = [_fetch_bundle_container(sha256, image, env)]
    pod["securityContext"] = {"fsGroup": _UID}
    for container in servers:
        container["volumeMounts"] = [{"name": "bundle", "mountPath": BUNDLE_DIR, "readOnly": True}]


def with_bundle_fetch(
    deployment: dict[str, Any], *, sha256: str, image: str, env: list[dict[str, Any]]
) -> dict[str, Any]:
    """A copy of the scoring Deployment that pulls its bundle from the artifact store: an
    init container (``image``: one with modelcycle installed, the control plane's) runs
    ``modelcycle bundle fetch`` into an ``emptyDir`` the scoring container mounts read-only
    over the image's own ``/opt/bundle``. ``env`` reaches the bucket (Secret references)."""
    out: dict[str, Any] = json.loads(json.dumps(deployment))  # a deep copy of plain data
    pod = out["spec"]["template"]["spec"]
    _add_bundle_fetch(pod, pod["containers"], sha256, image, env)
    out["metadata"]["annotations"]["io.modelcycle/bundle-archive-sha256"] = sha256
    out["spec"]["template"]["metadata"]["annotations"]["io.modelcycle/bundle-archive-sha256"] = (
        sha256
    )
    return out


def inference_service_with_bundle_fetch(
    inference_service: dict[str, Any], *, sha256: str, image: str, env: list[dict[str, Any]]
) -> dict[str, Any]:
    """The KServe InferenceService that pulls its bundle as :func:`with_bundle_fetch` does.

    A ServingRuntime's pod template takes containers and volumes but no init containers; the
    InferenceService's ``predictor`` is a pod spec (volumes, initContainers, securityContext)
    and its ``model`` a container KServe merges into the runtime's ``kserve-container``: the
    fetch goes there, and the ServingRuntime stays as the bundle wrote it."""
    out: dict[str, Any] = json.loads(json.dumps(inference_service))
    predictor = out["spec"]["predictor"]
    _add_bundle_fetch(predictor, [predictor["model"]], sha256, image, env)
    out["metadata"]["annotations"]["io.modelcycle/bundle-archive-sha256"] = sha256
    return out
