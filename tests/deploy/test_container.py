"""The container target for real: podman builds the bundle's image on a locally made Debian
minbase, runs it on 127.0.0.1, blue/green to the next version, exports an OCI archive.

`make test` installs podman, buildah, runc and debootstrap when they are missing
(scripts/container-tools.sh), then makes the base image and warms the wheelhouse and the build
cache before pytest (scripts/prepare-containers.py, with a time budget of its own). A test
that builds never makes the base image itself (a minute or more on a new machine, which its
timeout is not sized for): without it, it skips and says why, as it does without podman.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from _deploy_helpers import frame

from _cli import run_cli
from modelcycle import Workspace
from modelcycle.deploy.targets.container import DEFAULT_BASE_IMAGE, user_cache_dir

# Only the tests that use the ``containers`` fixture need podman: the no-engine test must run
# (and can fail) on a machine without one, which is exactly where it matters.
pytestmark = [pytest.mark.container]


def _podman(ws: Workspace, *args: str) -> subprocess.CompletedProcess[str]:
    """podman with the containers.conf the target wrote into the workspace's cache."""
    env = dict(os.environ)
    env.setdefault("CONTAINERS_CONF", str(ws.root / ".modelcycle/cache/containers.conf"))
    return subprocess.run(
        ["podman", *args], capture_output=True, text=True, env=env, timeout=120, check=False
    )


def _base_image_missing() -> str | None:
    """Why the base image is not there (the preparation's own message when it ran), or None."""
    probe = subprocess.run(
        ["podman", "image", "exists", DEFAULT_BASE_IMAGE], capture_output=True, timeout=60
    )
    if probe.returncode == 0:
        return None
    why = "scripts/prepare-containers.py has not run on this machine"
    status = user_cache_dir() / "container-prep.json"
    if status.is_file():
        with contextlib.suppress(ValueError, KeyError, OSError):
            why = f"the last preparation said: {json.loads(status.read_text())['message']}"
    return (
        f"the base image {DEFAULT_BASE_IMAGE} is not in podman's store ({why}); make it first "
        "with `make container-prep` (`make pytest` runs it)"
    )


@pytest.fixture
def containers(dws: Workspace) -> Iterator[Workspace]:
    if shutil.which("podman") is None:
        pytest.skip("podman is not installed (`make test` installs it: scripts/container-tools.sh)")
    missing = _base_image_missing()
    if missing is not None:
        pytest.skip(missing)
    try:
        yield dws
    finally:
        names = _podman(dws, "ps", "--all", "--format", "{{.Names}}").stdout.split()
        for name in names:
            if name.startswith("modelcycle-ctr-"):
                _podman(dws, "rm", "--force", name)


def _infer(url: str) -> tuple[str, list[int]]:
    import urllib.request

    x, _ = frame()
    body = {
        "inputs": [
            {"name": "age", "datatype": "INT64", "shape": [5], "data": x["age"][:5].tolist()},
            {
                "name": "income",
                "datatype": "FP64",
                "shape": [5],
                "data": x["income"][:5].tolist(),
            },
        ]
    }
    req = urllib.request.Request(
        f"{url}/v2/models/credit/infer",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=10) as r:
        return r.headers["X-Model-Version"], json.loads(r.read())["outputs"][0]["data"]


def test_container_build_run_switch_export_stop(containers: Workspace, tmp_path: Path) -> None:
    ws = containers
    cli = lambda *a: run_cli(*a, cwd=ws.root)  # noqa: E731
    archive = tmp_path / "credit-v1.oci.tar"
    done = cli(
        "deploy", "credit/1", "--target", "container", "--endpoint", "ctr", "--export", str(archive)
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Image localhost/modelcycle/credit:v1" in done.stdout
    shown = json.loads(cli("deployments", "show", "ctr", "--json").stdout)
    assert shown["target"] == "container"
    assert shown["running"] is True
    extra = shown["details"]["instance"]["extra"]
    assert extra["engine"] == "podman"
    assert extra["image"] == "localhost/modelcycle/credit:v1"
    # Scored through the container, the answers are the registry's own.
    x, _ = frame()
    expected = ws.registry.load("credit/1").predict(x.head(5)).tolist()
    assert _infer(shown["url"]) == ("1", expected)

    # The image: the manifest's ids as OCI labels, a non-root user, the health check.
    inspected = json.loads(_podman(ws, "image", "inspect", extra["image_id"]).stdout)[0]
    labels = inspected["Labels"] if "Labels" in inspected else inspected["Config"]["Labels"]
    assert labels["io.modelcycle.model.name"] == "credit"
    assert labels["io.modelcycle.model.version"] == "1"
    assert labels["org.opencontainers.image.version"] == "1"
    assert labels["io.modelcycle.model.sha256"] == ws.registry.get("credit/1").sha256
    assert inspected["Config"]["User"] == "10001:10001"
    assert "/v2/health/ready" in " ".join(inspected["Healthcheck"]["Test"])
    assert inspected["Size"] == extra["image_size_bytes"]

    # The OCI archive is a complete image layout.
    with tarfile.open(archive) as tar:
        members = set(tar.getnames())
    assert {"oci-layout", "index.json"} <= members
    assert any(m.startswith("blobs/sha256/") for m in members)

    # Blue/green to version 2: a new image and container; the old container is gone.
    switched = cli("deploy", "credit/2", "--target", "container", "--endpoint", "ctr")
    assert switched.returncode == 0, switched.stdout + switched.stderr
    shown2 = json.loads(cli("deployments", "show", "ctr", "--json").stdout)
    assert shown2["model"] == "credit/2"
    lineage = json.loads(cli("models", "show", "credit/2", "--json").stdout)
    assert [d["endpoint"] for d in lineage["deployments"]] == ["ctr"]
    assert _infer(shown2["url"])[0] == "2"
    old = extra["container"]
    assert _podman(ws, "container", "exists", old).returncode == 1
    new = shown2["details"]["instance"]["extra"]["container"]
    assert _podman(ws, "container", "exists", new).returncode == 0

    shown_text = cli("deployments", "show", "ctr").stdout
    assert "image      localhost/modelcycle/credit:v2" in shown_text
    assert f"container  {new} (podman)" in shown_text
    logs = cli("deployments", "logs", "ctr")
    assert "ready: credit/2" in logs.stdout
    stopped = cli("deployments", "stop", "ctr")
    assert stopped.returncode == 0, stopped.stderr
    assert _podman(ws, "container", "exists", new).returncode == 1
    # The log outlives the container.
    assert "ready: credit/2" in cli("deployments", "logs", "ctr").stdout


def test_no_container_engine_says_what_to_install(dws: Workspace, tmp_path: Path) -> None:
    bare = tmp_path / "bin"
    bare.mkdir()
    env = {"PATH": str(bare)}
    # The interpreter is run by its full path, so an empty PATH hides only the engines.
    failed = run_cli(
        "deploy",
        "credit/1",
        "--target",
        "container",
        "--endpoint",
        "noengine",
        cwd=dws.root,
        env=env,
    )
    assert failed.returncode != 0
    assert "no container engine found" in failed.stderr
    assert "apt-get install podman" in failed.stderr
    assert "Traceback" not in failed.stderr
    # The bundle still works without one.
    out = tmp_path / "bundle"
    bundled = run_cli("bundle", "credit/1", "--out", str(out), cwd=dws.root, env=env)
    assert bundled.returncode == 0, bundled.stderr
    assert (out / "Containerfile").is_file()
