"""Bundles: contents and manifest, byte-identical rebuilds, verify, the server from the bundle
alone (no workspace) answering v2 infer."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from importlib import metadata
from pathlib import Path

import pytest
import yaml
from _deploy_helpers import free_port, pid_alive

from _cli import run_cli
from modelcycle import Workspace
from modelcycle.deploy import verify_bundle
from modelcycle.errors import IntegrityError


def _files(root: Path) -> dict[str, bytes]:
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_bundle_contents_and_manifest(dws: Workspace, tmp_path: Path) -> None:
    info = dws.deploy.bundle("credit@latest", tmp_path / "b")
    root = info.path
    manifest = json.loads((root / "bundle.json").read_text())
    assert manifest["model"]["name"] == "credit"
    assert manifest["model"]["version"] == 3  # credit@latest is v3
    assert manifest["model"]["flavor"] == "skops"
    mv = dws.registry.get("credit/3")
    assert manifest["model"]["sha256"] == mv.sha256
    assert hashlib.sha256((root / "model/model.skops").read_bytes()).hexdigest() == mv.sha256
    assert set(manifest["lineage"]) == {"run_id", "datasets", "code_version"}
    # Every file but the manifest is listed with its sha256, and nothing else is there.
    on_disk = _files(root)
    assert set(manifest["files"]) == set(on_disk) - {"bundle.json"}
    for rel, digest in manifest["files"].items():
        assert hashlib.sha256(on_disk[rel]).hexdigest() == digest
    assert info.digest == hashlib.sha256(on_disk["bundle.json"]).hexdigest()
    assert json.loads(on_disk["model/signature.json"]) == mv.signature
    assert "src/modelcycle/deploy/bundle_server.py" in on_disk

    # requirements.lock: exact installed versions of the flavor and the server stack only.
    lock = on_disk["requirements.lock"].decode()
    pins = dict(  # name==version lines; the hashes are on indented continuation lines
        line.removesuffix(" \\").split("==", 1)
        for line in lock.splitlines()
        if line and not line.startswith(("#", " "))
    )
    for dist in ("scikit-learn", "skops", "numpy", "uvicorn", "starlette", "pyarrow"):
        assert pins[dist] == metadata.version(dist), dist
    for absent in ("pytest", "mypy", "dask", "distributed", "plotly", "onnxruntime", "typer"):
        assert absent not in pins, absent
    # A workspace with no lock file: every hash from modelcycle's own lock (tests run in an
    # environment installed from it; tests/evidence/test_hash_pinning.py has the details).
    assert manifest["requirements"]["hashes"] == "all"

    containerfile = on_disk["Containerfile"].decode()
    assert "ARG BASE_IMAGE" in containerfile
    assert containerfile.count("FROM ${BASE_IMAGE}") == 2  # two stages
    assert "USER 10001:10001" in containerfile
    assert "HEALTHCHECK" in containerfile
    assert "/v2/health/ready" in containerfile
    assert "EXPOSE 8080" in containerfile
    assert f'io.modelcycle.model.sha256="{mv.sha256}"' in containerfile
    assert 'org.opencontainers.image.version="3"' in containerfile

    kinds = {}
    for path in sorted((root / "kubernetes").glob("*.yaml")):
        doc = yaml.safe_load(path.read_text())
        kinds[doc["kind"]] = doc
    assert set(kinds) == {"Deployment", "Service", "ServingRuntime", "InferenceService"}
    container = kinds["Deployment"]["spec"]["template"]["spec"]["containers"][0]
    assert container["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready"
    assert container["livenessProbe"]["httpGet"]["path"] == "/v2/health/live"
    assert container["resources"]["requests"]
    assert container["resources"]["limits"]
    isvc = kinds["InferenceService"]["spec"]["predictor"]["model"]
    assert isvc["protocolVersion"] == "v2"
    assert kinds["ServingRuntime"]["spec"]["protocolVersions"] == ["v2"]

    sbom = json.loads(on_disk["sbom.cdx.json"])
    assert sbom["bomFormat"] == "CycloneDX"
    assert sbom["specVersion"] == "1.5"
    names = {c["name"] for c in sbom["components"]}
    assert {"modelcycle", "scikit-learn", "uvicorn"} <= names
    assert len(sbom["components"]) == len(pins) + 1


def test_same_inputs_give_a_byte_identical_bundle(dws: Workspace, tmp_path: Path) -> None:
    first = dws.deploy.bundle("credit/1", tmp_path / "one")
    time.sleep(1.1)  # a clock leaking into any file would now differ
    second = dws.deploy.bundle("credit/1", tmp_path / "two")
    assert _files(first.path) == _files(second.path)
    assert first.digest == second.digest
    # Another version gives another bundle.
    assert dws.deploy.bundle("credit/2", tmp_path / "three").digest != first.digest


def test_hashes_come_from_the_workspace_lock(dws: Workspace, tmp_path: Path) -> None:
    numpy_version = metadata.version("numpy")
    fake = "sha256:" + "ab" * 32
    lock = tmp_path / "requirements.lock"
    lock.write_text(f"numpy=={numpy_version} \\\n    --hash={fake}\n    # via x\nscipy==0.0.1\n")
    info = dws.deploy.bundle("credit/1", tmp_path / "b", lock_file=lock)
    text = (info.path / "requirements.lock").read_text()
    assert f"numpy=={numpy_version} \\\n    --hash={fake}\n" in text
    # The workspace lock pins another scipy: its hashes come from modelcycle's own lock.
    assert f"scipy=={metadata.version('scipy')} \\\n    --hash=sha256:" in text
    assert info.manifest["requirements"]["hashes"] == "all"


def test_verify_catches_a_flipped_byte(dws: Workspace, tmp_path: Path) -> None:
    info = dws.deploy.bundle("credit/1", tmp_path / "b")
    ok = run_cli("bundle", "verify", str(info.path), cwd=tmp_path)
    assert ok.returncode == 0, ok.stderr
    assert "verified" in ok.stdout
    model = info.path / "model/model.skops"
    data = bytearray(model.read_bytes())
    data[len(data) // 2] ^= 0x01
    model.write_bytes(bytes(data))
    bad = run_cli("bundle", "verify", str(info.path), cwd=tmp_path)
    assert bad.returncode == 5  # IntegrityError
    assert "model/model.skops was altered" in bad.stderr
    data[len(data) // 2] ^= 0x01
    model.write_bytes(bytes(data))
    verify_bundle(info.path)
    (info.path / "src/modelcycle/sitecustomize.py").write_text("print('hi')\n")
    with pytest.raises(IntegrityError, match=r"sitecustomize\.py is not part of the bundle"):
        verify_bundle(info.path)


def test_bundle_cli_and_refusals(dws: Workspace, tmp_path: Path) -> None:
    out = tmp_path / "b"
    done = run_cli("bundle", "credit@latest", "--out", str(out), cwd=dws.root)
    assert done.returncode == 0, done.stderr
    assert "Bundled credit/3" in done.stdout
    again = run_cli("bundle", "credit/1", "--out", str(out), cwd=dws.root)
    assert again.returncode == 4
    assert "not empty" in again.stderr
    replaced = run_cli("bundle", "credit/1", "--out", str(out), "--overwrite", cwd=dws.root)
    assert replaced.returncode == 0, replaced.stderr
    assert verify_bundle(out).version == 1


def test_server_from_the_bundle_alone(dws: Workspace, tmp_path: Path) -> None:
    """Copied away from the workspace and run with no modelcycle settings at all."""
    info = dws.deploy.bundle("credit/2", tmp_path / "made")
    alone = tmp_path / "elsewhere" / "bundle"
    shutil.copytree(info.path, alone)
    shutil.rmtree(info.path)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MODELCYCLE_", "PYTHON"))}
    log = open(tmp_path / "server.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen(
        [sys.executable, str(alone / "serve.py"), "--port", str(port)],
        cwd=tmp_path / "elsewhere",
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, (tmp_path / "server.log").read_text()
            try:
                with urllib.request.urlopen(
                    f"http://127.0.0.1:{port}/v2/health/ready", timeout=2
                ) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            assert time.monotonic() < deadline, "not ready in 60 s"
            time.sleep(0.1)
        body = {
            "inputs": [
                {"name": "age", "datatype": "INT64", "shape": [2], "data": [30, 70]},
                {"name": "income", "datatype": "FP64", "shape": [2], "data": [40.0, 60.0]},
            ]
        }
        req = urllib.request.Request(
            f"http://127.0.0.1:{port}/v2/models/credit/infer",
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(req, timeout=10) as r:
            answer = json.loads(r.read())
            assert r.headers["X-Model-Version"] == "2"
        x = __import__("pandas").DataFrame({"age": [30, 70], "income": [40.0, 60.0]})
        expected = dws.registry.load("credit/2").predict(x).tolist()
        assert answer["outputs"][0]["data"] == expected
        # The server loaded modelcycle from the bundle, and nothing wrote into it.
        assert not list(alone.rglob("__pycache__"))
        verify_bundle(alone)
    finally:
        proc.kill()
        proc.wait(10)
        log.close()
    assert not pid_alive(proc.pid)


def test_the_bundle_server_needs_nothing_beyond_its_lock(dws: Workspace, tmp_path: Path) -> None:
    """With every distribution outside requirements.lock made unimportable (as in a clean
    image), the bundle server still loads the model, predicts and builds its app."""
    info = dws.deploy.bundle("credit/1", tmp_path / "b")
    lock = (info.path / "requirements.lock").read_text()
    pinned = [line.split("==")[0] for line in lock.splitlines() if line and line[0] not in "# "]
    probe = f"""
import sys, importlib.metadata as md
allowed = set(sys.stdlib_module_names) | {{"modelcycle", "_distutils_hack"}}
for dist in {pinned!r}:
    files = md.distribution(dist).files or []
    allowed |= {{f.parts[0].removesuffix(".py") for f in files if f.parts and "." not in
                f.parts[0].removesuffix(".py")}}
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] not in allowed and not name.startswith("_"):
            raise ModuleNotFoundError(f"blocked: {{name}}")
        return None
sys.meta_path.insert(0, Block())
sys.path.insert(0, {str(info.path / "src")!r})
import pyarrow as pa
import modelcycle.deploy.bundle_server as bs, uvicorn, httptools, uvloop
import modelcycle
assert modelcycle.__file__.startswith(sys.path[0]), modelcycle.__file__
model = bs.load_bundle_model({str(info.path)!r})
print(model.predict(pa.table({{"age": [30, 70], "income": [40.0, 60.0]}})).tolist())
from modelcycle.scoring import create_app
create_app(bs._engine({str(info.path)!r}, trust=False, max_batch=8, max_wait_ms=1.0,
                      max_rows=10, threads=1))
print("ok")
"""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODELCYCLE_")}
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, env=env, timeout=60
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.split()[-1] == "ok"


def test_versions_of_one_flavor_share_the_lock_file_byte_for_byte(
    dws: Workspace, tmp_path: Path
) -> None:
    """The image build caches its venv layer by the lock file's bytes: a lock that named the
    model version made every version (and the container test's two images) a cold build."""
    one = dws.deploy.bundle("credit/1", tmp_path / "one")
    two = dws.deploy.bundle("credit/2", tmp_path / "two")
    lock_one = (one.path / "requirements.lock").read_bytes()
    assert lock_one == (two.path / "requirements.lock").read_bytes()
    assert b"credit" not in lock_one
    assert lock_one.startswith(b"# Exact versions for a skops model")
