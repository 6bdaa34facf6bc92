"""`modelcycle k8s manifests`: every file validates against the Kubernetes 1.30 schemas."""

from __future__ import annotations

from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from _cli import run_cli
from modelcycle import InvalidInput
from modelcycle.deploy.control_plane import control_plane_manifests

CONFIG = """\
[store]
db_url = "postgresql+psycopg://modelcycle:hunter2@db:5432/modelcycle"

[[schedules]]
name = "drift-credit"
every = "15m"
do = "monitor"
with = { model = "credit@champion", window = "1h" }
"""


def test_cli_writes_manifests_that_validate(tmp_path: Path) -> None:
    (tmp_path / "modelcycle.toml").write_text(CONFIG)
    out = tmp_path / "k8s"
    proc = run_cli(
        "k8s", "manifests", "--out", str(out), "--image", "registry.example/modelcycle:1",
        "--artifacts", "s3://team-models/mc", "--config", str(tmp_path / "modelcycle.toml"),
        "--aws-endpoint-url", "http://minio.storage:9000",
        cwd=tmp_path, env={"MODELCYCLE_DB_URL": ""},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    files = sorted(p.name for p in out.iterdir())
    assert files == [
        "configmap.yaml", "networkpolicy.yaml", "server-deployment.yaml",
        "server-service.yaml", "worker-deployment.yaml",
    ]  # fmt: skip
    kinds = set()
    for path in out.iterdir():
        doc = yaml.safe_load(path.read_text())
        kubernetes_validate.validate(doc, "1.30.0", strict=True)  # raises on any schema error
        kinds.add(doc["kind"])
    assert kinds == {"ConfigMap", "Deployment", "Service", "NetworkPolicy"}
    text = "".join(p.read_text() for p in out.iterdir())
    assert "hunter2" not in text  # the [store] table (and its password) stays out
    assert "drift-credit" in text  # schedules run in the workers, from the ConfigMap
    worker = yaml.safe_load((out / "worker-deployment.yaml").read_text())
    env = {e["name"]: e for e in worker["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["MODELCYCLE_DB_URL"]["valueFrom"]["secretKeyRef"] == {
        "name": "modelcycle-db",
        "key": "url",
    }
    assert "value" not in env["AWS_SECRET_ACCESS_KEY"]
    assert env["MODELCYCLE_ARTIFACTS_URL"]["value"] == "s3://team-models/mc"


def test_a_local_artifact_folder_is_refused() -> None:
    with pytest.raises(InvalidInput, match=r"artifacts: .*expected s3://"):
        control_plane_manifests(image="x", artifacts_url="/srv/artifacts", config_text="")


def test_a_bad_namespace_is_named() -> None:
    with pytest.raises(InvalidInput, match="namespace"):
        control_plane_manifests(
            image="x", artifacts_url="s3://b-1/x", config_text="", namespace="Not_OK"
        )
