"""Scoring pods pull their bundle from the bucket: `deploy --target kubernetes` on an s3://
store stores the bundle's tar and adds a `fetch-bundle` init container; `bundle fetch` reads
it back (from the URLs alone), refusing unsafe members and changed bytes.

One SQLite workspace with its artifacts on moto (127.0.0.1) for the module; no cluster runs
here, so kubectl is kept off the PATH and the manifests are only written.
"""

from __future__ import annotations

import io
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from sklearn.tree import DecisionTreeClassifier

from _cli import run_cli
from _s3 import S3Server
from modelcycle import IntegrityError, InvalidInput, Workspace, init_workspace
from modelcycle.datasets import make_credit
from modelcycle.deploy.bundle import verify_bundle
from modelcycle.deploy.bundle_store import fetch_bundle, store_bundle
from modelcycle.deploy.targets import KubernetesTarget
from modelcycle.store.artifacts import open_artifact_store
from modelcycle.store.s3_artifacts import S3ArtifactStore

IMAGE = "registry.example/modelcycle:1"


@pytest.fixture(scope="module")
def deployed(
    s3_server: S3Server, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Workspace, Any, str]]:
    """The workspace, the kubernetes deployment of tree/1, and the artifacts URL."""
    root = tmp_path_factory.mktemp("k8sbundle")
    with pytest.MonkeyPatch.context() as mp:
        for var in ("MODELCYCLE_HOME", "MODELCYCLE_DB_URL", "MODELCYCLE_ARTIFACTS"):
            mp.delenv(var, raising=False)
        for name, value in s3_server.env.items():
            mp.setenv(name, value)
        artifacts = f"s3://{s3_server.new_bucket()}/art"
        mp.setenv("MODELCYCLE_ARTIFACTS_URL", artifacts)
        mp.setenv("MODELCYCLE_ACTOR", "tester")
        (root / "bin").mkdir()
        mp.setenv("PATH", str(root / "bin"))  # no kubectl: the manifests are only written
        ws, _ = init_workspace(root / "ws")
        table = make_credit(400, seed=3)
        x = table.drop(["default"]).to_pandas().select_dtypes("number")
        model = DecisionTreeClassifier(max_depth=3, random_state=0).fit(x, table["default"])
        ws.registry.register(model, "tree", input_example=x.head(5))
        dep = ws.deploy.deploy(
            "tree/1", endpoint="tree", target="kubernetes", control_plane_image=IMAGE
        )
        try:
            yield ws, dep, artifacts
        finally:
            ws.close()


def test_deployment_fetches_its_bundle_and_validates(
    deployed: tuple[Workspace, Any, str],
) -> None:
    ws, dep, artifacts = deployed
    sha256 = dep.details["bundle_archive"]
    assert ws.artifacts.exists(sha256)
    folder = Path(dep.details["manifests"])
    for name in ("deployment.yaml", "service.yaml"):
        kubernetes_validate.validate(
            yaml.safe_load((folder / name).read_text()), "1.30.0", strict=True
        )
    pod = yaml.safe_load((folder / "deployment.yaml").read_text())["spec"]["template"]["spec"]
    (init,) = pod["initContainers"]
    assert init["name"] == "fetch-bundle"
    assert init["image"] == IMAGE
    assert init["command"] == ["modelcycle", "bundle", "fetch", sha256, "--out", "/opt/bundle"]
    env = {e["name"]: e for e in init["env"]}
    assert env["MODELCYCLE_ARTIFACTS_URL"]["value"] == artifacts
    assert env["AWS_SECRET_ACCESS_KEY"]["valueFrom"]["secretKeyRef"]["name"] == "modelcycle-s3"
    assert "MODELCYCLE_DB_URL" not in env  # the fetch reads the bucket only
    assert "testing" not in (folder / "deployment.yaml").read_text()  # no key value written
    assert pod["volumes"] == [{"name": "bundle", "emptyDir": {}}]
    assert pod["containers"][0]["volumeMounts"] == [
        {"name": "bundle", "mountPath": "/opt/bundle", "readOnly": True}
    ]
    # The bundle's own manifests stay as they were (its files name their own sha256).
    own = yaml.safe_load((Path(dep.details["bundle"]) / "kubernetes/deployment.yaml").read_text())
    assert "initContainers" not in own["spec"]["template"]["spec"]
    # The archive is deterministic: storing the same bundle again gives the same object.
    assert store_bundle(dep.details["bundle"], ws.artifacts) == sha256


def test_kserve_inference_service_fetches_its_bundle(
    deployed: tuple[Workspace, Any, str],
) -> None:
    """The same fetch in the KServe manifests. kubernetes-validate has no schema for KServe's
    CRDs, so what it checks is the pod KServe makes of them: the predictor's pod fields
    (volumes, init container, fsGroup) around the ServingRuntime's container with the
    model's fields (the bundle mount) merged in."""
    ws, _, artifacts = deployed
    dep = ws.deploy.deploy(
        "tree/1", endpoint="tree-kserve", target="kubernetes", kserve=True,
        control_plane_image=IMAGE,
    )  # fmt: skip
    sha256 = dep.details["bundle_archive"]
    assert ws.artifacts.exists(sha256)
    folder = Path(dep.details["manifests"])
    assert sorted(p.name for p in folder.iterdir()) == [
        "inferenceservice.yaml", "servingruntime.yaml"
    ]  # fmt: skip
    assert "servingruntime.yaml" in dep.details["kubectl"]["command"]
    isvc = yaml.safe_load((folder / "inferenceservice.yaml").read_text())
    runtime = yaml.safe_load((folder / "servingruntime.yaml").read_text())
    own = Path(dep.details["bundle"]) / "kubernetes"
    assert runtime == yaml.safe_load((own / "servingruntime.yaml").read_text())  # unchanged
    assert "initContainers" not in yaml.safe_load((own / "inferenceservice.yaml").read_text())
    assert isvc["metadata"]["annotations"]["io.modelcycle/bundle-archive-sha256"] == sha256
    predictor = isvc["spec"]["predictor"]
    (init,) = predictor["initContainers"]
    assert init["name"] == "fetch-bundle"
    assert init["image"] == IMAGE
    assert init["command"] == ["modelcycle", "bundle", "fetch", sha256, "--out", "/opt/bundle"]
    env = {e["name"]: e for e in init["env"]}
    assert env["MODELCYCLE_ARTIFACTS_URL"]["value"] == artifacts
    assert "MODELCYCLE_DB_URL" not in env
    assert "testing" not in (folder / "inferenceservice.yaml").read_text()
    assert predictor["volumes"] == [{"name": "bundle", "emptyDir": {}}]
    mount = {"name": "bundle", "mountPath": "/opt/bundle", "readOnly": True}
    assert predictor["model"]["volumeMounts"] == [mount]
    assert predictor["model"]["runtime"] == runtime["metadata"]["name"]
    (server,) = runtime["spec"]["containers"]
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "tree-predictor"},
        "spec": {
            "volumes": predictor["volumes"],
            "initContainers": predictor["initContainers"],
            "securityContext": predictor["securityContext"],
            "containers": [{**server, "volumeMounts": predictor["model"]["volumeMounts"]}],
        },
    }
    kubernetes_validate.validate(pod, "1.30.0", strict=True)
    with pytest.raises(kubernetes_validate.SchemaNotFoundError):
        kubernetes_validate.validate(isvc, "1.30.0", strict=True)


def test_cli_fetch_round_trips_from_the_urls_alone(
    deployed: tuple[Workspace, Any, str], s3_server: S3Server, tmp_path: Path
) -> None:
    _, dep, artifacts = deployed
    out = tmp_path / "pod" / "bundle"
    env = {**s3_server.env, "MODELCYCLE_ARTIFACTS_URL": artifacts}  # no database, no workspace
    done = run_cli(
        "bundle", "fetch", dep.details["bundle_archive"], "--out", str(out), cwd=tmp_path, env=env
    )
    assert done.returncode == 0, done.stderr
    assert "Fetched the bundle of tree/1" in done.stdout
    info = verify_bundle(out)
    original = verify_bundle(dep.details["bundle"])
    assert info.digest == original.digest
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pod"]  # nothing beside the folder


def _tar(members: dict[str, str | bytes]) -> bytes:
    """A tar of regular files; a str value makes the member a symlink to that target."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, value in members.items():
            info = tarfile.TarInfo(name)
            if isinstance(value, str):
                info.type, info.linkname = tarfile.SYMTYPE, value
                tar.addfile(info)
            else:
                info.size = len(value)
                tar.addfile(info, io.BytesIO(value))
    return buf.getvalue()


def test_unsafe_members_are_refused_before_anything_is_written(
    deployed: tuple[Workspace, Any, str], s3_server: S3Server, tmp_path: Path
) -> None:
    ws, _, artifacts = deployed
    dotdot = ws.artifacts.put_bytes(_tar({"bundle.json": b"{}", "../x": b"owned"})).sha256
    env = {**s3_server.env, "MODELCYCLE_ARTIFACTS_URL": artifacts}
    done = run_cli("bundle", "fetch", dotdot, "--out", str(tmp_path / "b"), cwd=tmp_path, env=env)
    assert done.returncode == 5, done.stdout + done.stderr
    assert "member '../x' leaves the folder" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "x").exists()
    assert not (tmp_path / "b").exists()
    link = ws.artifacts.put_bytes(_tar({"bundle.json": b"{}", "serve.py": "/etc/passwd"}))
    with pytest.raises(IntegrityError, match=r"member 'serve\.py' is a link"):
        fetch_bundle(ws.artifacts, link.sha256, tmp_path / "c")
    assert not (tmp_path / "c").exists()
    absolute = ws.artifacts.put_bytes(_tar({"/tmp/evil": b"x"}))
    with pytest.raises(IntegrityError, match="is an absolute path"):
        fetch_bundle(ws.artifacts, absolute.sha256, tmp_path / "d")


def test_a_changed_byte_in_the_bucket_is_refused(
    deployed: tuple[Workspace, Any, str], s3_server: S3Server, tmp_path: Path
) -> None:
    ws, dep, artifacts = deployed
    # A copy of the real archive under a key of its own, so the module's other tests keep theirs.
    data = ws.artifacts.get_bytes(dep.details["bundle_archive"])
    sha256 = ws.artifacts.put_bytes(data + b"\0" * 512).sha256  # tar ignores a trailing block
    store = open_artifact_store(artifacts)
    assert isinstance(store, S3ArtifactStore)
    client = s3_server.client()
    client.head_object(Bucket=store.bucket, Key=store.key(sha256))  # the object we change
    changed = bytearray(data + b"\0" * 512)
    changed[len(changed) // 3] ^= 0x01
    client.put_object(Bucket=store.bucket, Key=store.key(sha256), Body=bytes(changed))
    with pytest.raises(IntegrityError, match=f"artifact {sha256} .* is corrupted"):
        fetch_bundle(store, sha256, tmp_path / "b")
    assert not (tmp_path / "b").exists()


def test_bucket_needs_the_image_and_local_stores_keep_todays_manifests(tmp_path: Path) -> None:
    local = open_artifact_store(str(tmp_path / "artifacts"))
    assert KubernetesTarget(tmp_path, artifacts=local).artifacts is None
    bucket = open_artifact_store("s3://some-bucket/prefix")
    with pytest.raises(InvalidInput, match="control_plane_image"):
        KubernetesTarget(tmp_path, artifacts=bucket)
    with pytest.raises(InvalidInput, match="control_plane_image"):
        KubernetesTarget(tmp_path, artifacts=bucket, kserve=True)  # KServe pods fetch it too
    assert KubernetesTarget(tmp_path, artifacts=bucket, control_plane_image=IMAGE).artifacts
