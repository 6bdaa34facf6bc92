"""A signed bundle deployed to a container: the image carries the signature beside the bundle
(/opt/bundle.sig) and the signer's key fingerprint as a label, the signature verifies over the
image's own /opt/bundle, and the image's packages were installed with --require-hashes.

One image build (the venv layer comes from the build cache the container preparation and
test_container.py warm: same lock file); a model name of its own, so its tag never collides
with test_container.py's images when both files run at once.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from _deploy_helpers import frame, kill_servers
from sklearn.linear_model import LogisticRegression

from _cli import run_cli
from modelcycle import Workspace, init_workspace
from modelcycle.audit.keys import fingerprint as key_fingerprint
from modelcycle.audit.keys import load_public_key
from modelcycle.deploy.signing import IMAGE_SIGNATURE, SIGNER_LABEL, verify_bundle_signature
from modelcycle.deploy.targets.container import DEFAULT_BASE_IMAGE

pytestmark = [pytest.mark.container]


def _podman(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env.setdefault("CONTAINERS_CONF", str(root / ".modelcycle/cache/containers.conf"))
    return subprocess.run(
        ["podman", *args], capture_output=True, text=True, env=env, timeout=120, check=False
    )


@pytest.fixture(scope="module")
def signed_ws(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Workspace]:
    if shutil.which("podman") is None:
        pytest.skip("podman is not installed (`make test` installs it: scripts/container-tools.sh)")
    probe = subprocess.run(
        ["podman", "image", "exists", DEFAULT_BASE_IMAGE], capture_output=True, timeout=60
    )
    if probe.returncode != 0:
        pytest.skip(f"the base image {DEFAULT_BASE_IMAGE} is missing: `make container-prep`")
    root = tmp_path_factory.mktemp("signed-container") / "ws"
    mp = pytest.MonkeyPatch()
    for key in ("MODELCYCLE_HOME", "MODELCYCLE_DB_URL", "MODELCYCLE_ARTIFACTS"):
        mp.delenv(key, raising=False)
    mp.setenv("MODELCYCLE_ACTOR", "tester")
    ws, _ = init_workspace(root)
    ws.keys.create()
    x, y = frame()
    ws.registry.register(LogisticRegression().fit(x, y), "sigcredit", input_example=x.head(5))
    config = root / "modelcycle.toml"
    config.write_text(config.read_text() + "\n[deploy]\nrequire_signed = true\n")
    try:
        yield ws
    finally:
        for name in _podman(root, "ps", "--all", "--format", "{{.Names}}").stdout.split():
            if name.startswith("modelcycle-sigctr-"):
                _podman(root, "rm", "--force", name)
        kill_servers(root)
        ws.close()
        mp.undo()


def test_the_image_of_a_signed_bundle_carries_its_signature_and_signer(
    signed_ws: Workspace, tmp_path: Path
) -> None:
    ws = signed_ws
    cli = lambda *a: run_cli(*a, cwd=ws.root)  # noqa: E731
    signed = cli("bundle", "sigcredit/1", "--out", str(tmp_path / "b"), "--sign")
    assert signed.returncode == 0, signed.stdout + signed.stderr
    done = cli("deploy", "sigcredit/1", "--target", "container", "--endpoint", "sigctr")
    assert done.returncode == 0, done.stdout + done.stderr
    shown = json.loads(cli("deployments", "show", "sigctr", "--json").stdout)
    extra = shown["details"]["instance"]["extra"]
    public = tmp_path / "default.pub"
    public.write_bytes(ws.keys.public_pem("default"))
    fingerprint = key_fingerprint(load_public_key(public.read_bytes()))
    assert extra["signer"] == fingerprint

    # The label, read back from the built image.
    inspected = json.loads(_podman(ws.root, "image", "inspect", extra["image_id"]).stdout)[0]
    labels = inspected["Labels"] if "Labels" in inspected else inspected["Config"]["Labels"]
    assert labels[SIGNER_LABEL] == fingerprint
    assert labels["io.modelcycle.bundle.sha256"] == shown["bundle_sha256"]
    assert labels["io.modelcycle.model.name"] == "sigcredit"  # the bundle's own labels stay
    assert inspected["Config"]["User"] == "10001:10001"

    # The image's own files verify against the signature it carries, with the public key.
    box = _podman(ws.root, "create", extra["image_id"])
    assert box.returncode == 0, box.stderr
    try:
        for path in ("/opt/bundle", IMAGE_SIGNATURE):
            copied = _podman(ws.root, "cp", f"{box.stdout.strip()}:{path}", str(tmp_path / "img"))
            assert copied.returncode == 0, copied.stderr
            (tmp_path / "img").rename(tmp_path / Path(path).name)
    finally:
        _podman(ws.root, "rm", "--force", box.stdout.strip())
    beside = Path(f"{shown['details']['bundle']}.sig")  # where deploy put it after verifying
    assert (tmp_path / "bundle.sig").read_bytes() == beside.read_bytes()
    assert (
        verify_bundle_signature(tmp_path / "bundle", public, signature=tmp_path / "bundle.sig")
        == fingerprint
    )
    # What the signature covers built the image: every package pinned by sha256 and installed
    # with --require-hashes (the build stage's own history is not in the final image).
    assert "--require-hashes" in (tmp_path / "bundle" / "Containerfile").read_text()
    lock = (tmp_path / "bundle" / "requirements.lock").read_text()
    pins = [line for line in lock.splitlines() if line and line[0] not in "# "]
    assert pins
    assert all(line.endswith(" \\") for line in pins)  # each followed by its --hash lines
    assert cli("deployments", "stop", "sigctr").returncode == 0
