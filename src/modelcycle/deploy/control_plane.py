"""Kubernetes manifests for the control plane: `modelcycle server` and `modelcycle worker`.

Both run stateless (docs/store.md): the database URL and the S3 credentials come from Secrets
the operator creates (referenced here by name, never written), the bucket URL and the AWS
endpoint from plain environment values, the rules and schedules from a ConfigMap holding
``modelcycle.toml`` without its ``[store]`` table (which may hold a database password).
Schedules need no CronJob: every worker ticks the ``[[schedules]]`` and a schedule's slot is
queued once however many workers tick (docs/automations.md).
"""

from __future__ import annotations

import re
from typing import Any

from modelcycle.errors import InvalidInput

__all__ = ["control_plane_manifests", "store_env", "strip_store_table"]

_NAME_RE = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
SERVER_PORT = 8765


def strip_store_table(toml_text: str) -> str:
    """The configuration without its ``[store]`` table (a database URL may carry a password)."""
    out: list[str] = []
    skipping = False
    for line in toml_text.splitlines():
        stripped = line.strip()
        if stripped.startswith("["):
            skipping = stripped.replace(" ", "") in ("[store]",)
        if not skipping:
            out.append(line)
    return "\n".join(out).strip() + "\n"


def store_env(
    artifacts_url: str,
    *,
    db_secret: str | None = "modelcycle-db",  # noqa: S107 (the name of a Secret, not a value)
    s3_secret: str = "modelcycle-s3",  # noqa: S107 (the name of a Secret, not a value)
    aws_endpoint_url: str | None = None,
) -> list[dict[str, Any]]:
    """The container environment that reaches the workspace's stores: the bucket URL and AWS
    endpoint as values, the database URL and S3 keys as Secret references (``db_secret``
    None: no database, for a container that only reads the bucket)."""
    env: list[dict[str, Any]] = []
    if db_secret is not None:
        env.append({"name": "MODELCYCLE_DB_URL", "valueFrom": _secret(db_secret, "url")})
    env += [
        {"name": "MODELCYCLE_ARTIFACTS_URL", "value": artifacts_url},
        {"name": "AWS_ACCESS_KEY_ID", "valueFrom": _secret(s3_secret, "access_key_id")},
        {"name": "AWS_SECRET_ACCESS_KEY", "valueFrom": _secret(s3_secret, "secret_access_key")},
    ]
    if aws_endpoint_url:
        env.append({"name": "AWS_ENDPOINT_URL", "value": aws_endpoint_url})
    return env


def control_plane_manifests(
    *,
    image: str,
    artifacts_url: str,
    config_text: str,
    namespace: str = "modelcycle",
    server_replicas: int = 2,
    worker_replicas: int = 2,
    aws_endpoint_url: str | None = None,
    db_secret: str = "modelcycle-db",  # noqa: S107 (the name of a Secret, not a value)
    s3_secret: str = "modelcycle-s3",  # noqa: S107 (the name of a Secret, not a value)
) -> dict[str, dict[str, Any]]:
    """File name -> manifest. Names are checked; secrets are referenced, never included."""
    for field, value in (("namespace", namespace), ("db_secret", db_secret),
                         ("s3_secret", s3_secret)):  # fmt: skip
        if not _NAME_RE.match(value):
            raise InvalidInput("must be a DNS label (lower-case letters, digits, -)", field=field)
    if not artifacts_url.startswith("s3://"):
        raise InvalidInput(
            f"{artifacts_url!r}: pods share nothing but the database and a bucket; "
            "expected s3://bucket/prefix",
            field="artifacts",
        )
    for field, count in (("server_replicas", server_replicas),
                         ("worker_replicas", worker_replicas)):  # fmt: skip
        if count < 1:
            raise InvalidInput(f"must be at least 1, got {count}", field=field)
    labels = {"app.kubernetes.io/part-of": "modelcycle"}
    env = [
        *store_env(artifacts_url, db_secret=db_secret, s3_secret=s3_secret,
                   aws_endpoint_url=aws_endpoint_url),
        {"name": "MODELCYCLE_CONFIG", "value": "/etc/modelcycle/modelcycle.toml"},
        {"name": "MODELCYCLE_CACHE_DIR", "value": "/cache"},
        {"name": "OMP_NUM_THREADS", "value": "1"},
    ]  # fmt: skip

    def meta(name: str, component: str) -> dict[str, Any]:
        return {"name": name, "namespace": namespace,
                "labels": {**labels, "app.kubernetes.io/component": component}}  # fmt: skip

    def pod(component: str, args: list[str], extra: dict[str, Any]) -> dict[str, Any]:
        container = {
            "name": component,
            "image": image,
            "args": args,
            "env": env,
            "resources": {
                "requests": {"cpu": "500m", "memory": "512Mi"},
                "limits": {"memory": "2Gi"},
            },
            "volumeMounts": [
                {"name": "config", "mountPath": "/etc/modelcycle", "readOnly": True},
                {"name": "cache", "mountPath": "/cache"},
            ],
            "securityContext": {"allowPrivilegeEscalation": False, "runAsNonRoot": True},
            **extra,
        }
        return {
            "metadata": {"labels": {**labels, "app.kubernetes.io/component": component}},
            "spec": {
                "containers": [container],
                "volumes": [
                    {"name": "config", "configMap": {"name": "modelcycle-config"}},
                    {"name": "cache", "emptyDir": {}},  # the deletable cache, nothing more
                ],
            },
        }

    def deployment(component: str, replicas: int, args: list[str], extra: dict[str, Any]):  # type: ignore[no-untyped-def]
        selector = {**labels, "app.kubernetes.io/component": component}
        return {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": meta(f"modelcycle-{component}", component),
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": selector},
                "template": pod(component, args, extra),
            },
        }

    server_probes = {
        "ports": [{"name": "http", "containerPort": SERVER_PORT}],
        "livenessProbe": {"tcpSocket": {"port": "http"}, "periodSeconds": 10},
        "readinessProbe": {
            "httpGet": {"path": "/api/v1/openapi.json", "port": "http"},
            "periodSeconds": 10,
        },
    }
    # A worker has no port: alive while it can still reach the database and list jobs.
    worker_probes = {
        "livenessProbe": {
            "exec": {"command": ["modelcycle", "jobs", "list", "--state", "running"]},
            "periodSeconds": 60,
            "timeoutSeconds": 30,
        },
        "readinessProbe": {
            "exec": {"command": ["modelcycle", "rules", "check"]},
            "periodSeconds": 60,
            "timeoutSeconds": 30,
        },
        # finish the job in hand on SIGTERM (docs/automations.md): give it time
        "terminationMessagePolicy": "FallbackToLogsOnError",
    }
    server = deployment(
        "server",
        server_replicas,
        ["server", "--host", "0.0.0.0", "--port", str(SERVER_PORT), "--workers", "2"],  # noqa: S104
        server_probes,
    )
    worker = deployment("worker", worker_replicas, ["worker", "--lease", "60"], worker_probes)
    worker["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] = 600
    return {
        "configmap.yaml": {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": meta("modelcycle-config", "config"),
            "data": {"modelcycle.toml": strip_store_table(config_text)},
        },
        "server-deployment.yaml": server,
        "server-service.yaml": {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": meta("modelcycle-server", "server"),
            "spec": {
                "selector": {**labels, "app.kubernetes.io/component": "server"},
                "ports": [{"name": "http", "port": SERVER_PORT, "targetPort": "http"}],
            },
        },
        "worker-deployment.yaml": worker,
        "networkpolicy.yaml": {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": meta("modelcycle-control-plane", "network"),
            "spec": {
                # Workers accept no connections; the server only on its API port.
                "podSelector": {"matchLabels": labels},
                "policyTypes": ["Ingress"],
                "ingress": [
                    {
                        "from": [{"podSelector": {}}],
                        "ports": [{"protocol": "TCP", "port": SERVER_PORT}],
                    }
                ],
            },
        },
    }


def _secret(name: str, key: str) -> dict[str, Any]:
    return {"secretKeyRef": {"name": name, "key": key}}
