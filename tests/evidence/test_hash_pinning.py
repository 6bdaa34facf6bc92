"""Every package of a bundle pinned by sha256, so a signed bundle pins what its image installs:
hashes from the workspace's lock, else from modelcycle's own lock (shipped in the package);
all or none in the file, because pip checks every requirement once one has a hash."""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from modelcycle import Workspace, init_workspace
from modelcycle.deploy import build_bundle
from modelcycle.deploy._requirements import (
    normalize,
    parse_hashes,
    project_hashes,
    render_project_hashes,
)

REPO_LOCK = Path(__file__).resolve().parents[2] / "requirements.lock"
SHIPPED = Path(__file__).resolve().parents[2] / "src/modelcycle/deploy/project-hashes.txt"


@pytest.fixture(scope="module")
def hws(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Workspace]:
    """A workspace with no requirements.lock of its own and one registered model."""
    root = tmp_path_factory.mktemp("hashes") / "ws"
    mp = pytest.MonkeyPatch()
    for var in ("MODELCYCLE_HOME", "MODELCYCLE_DB_URL", "MODELCYCLE_ARTIFACTS"):
        mp.delenv(var, raising=False)
    ws, _ = init_workspace(root)
    rng = np.random.default_rng(0)
    x = pd.DataFrame({"age": rng.integers(18, 80, 100), "income": rng.normal(50.0, 10.0, 100)})
    model = LogisticRegression().fit(x, (x["age"] > 45).astype(np.int64))
    ws.registry.register(model, "credit", input_example=x.head(5))
    try:
        yield ws
    finally:
        ws.close()
        mp.undo()


def _pins(text: str) -> dict[str, tuple[str, set[str]]]:
    return {name: (version, set(found)) for name, (version, found) in parse_hashes(text).items()}


def test_the_shipped_lock_is_the_repository_lock() -> None:
    """The package's copy must follow requirements.lock; MODELCYCLE_UPDATE_HASHES=1 rewrites it."""
    if not REPO_LOCK.is_file():
        pytest.skip("no requirements.lock (not a source checkout)")
    wanted = render_project_hashes(REPO_LOCK.read_text(encoding="utf-8"))
    if os.environ.get("MODELCYCLE_UPDATE_HASHES") == "1":
        SHIPPED.write_text(wanted, encoding="utf-8")
    assert SHIPPED.read_text(encoding="utf-8") == wanted, (
        "src/modelcycle/deploy/project-hashes.txt is out of date with requirements.lock: "
        "MODELCYCLE_UPDATE_HASHES=1 pytest tests/evidence/test_hash_pinning.py"
    )
    assert {k: (v, set(h)) for k, (v, h) in project_hashes().items()} == _pins(
        REPO_LOCK.read_text(encoding="utf-8")
    )


def test_a_bundle_without_a_workspace_lock_pins_every_package(
    hws: Workspace, tmp_path: Path
) -> None:
    info = hws.deploy.bundle("credit/1", tmp_path / "b")
    lock = (info.path / "requirements.lock").read_text()
    pins = _pins(lock)
    own = project_hashes()
    assert info.manifest["requirements"] == {
        "file": "requirements.lock",
        "packages": len(pins),
        "hashes": "all",
        "unhashed": [],
    }
    for name, (version, found) in pins.items():
        assert found, name
        assert own[name][0] == version
        assert found == set(own[name][1]), name  # the same hashes as the project's own lock
    containerfile = (info.path / "Containerfile").read_text()
    assert "--require-hashes" in containerfile
    assert "Every package is pinned by sha256" in lock
    # The SBOM carries the same digests.
    sbom = json.loads((info.path / "sbom.cdx.json").read_text())
    numpy = next(c for c in sbom["components"] if c["name"] == "numpy")
    assert {f"sha256:{h['content']}" for h in numpy["hashes"]} == pins["numpy"][1]


def test_a_package_no_lock_knows_leaves_the_whole_file_unhashed(
    hws: Workspace, tmp_path: Path
) -> None:
    """tzdata is installed here but in no lock (pandas needs it only on Windows): pip would
    refuse a file where one requirement has no hash, so none has one, and the header says why."""
    from importlib import metadata

    try:
        metadata.distribution("tzdata")
    except metadata.PackageNotFoundError:
        pytest.skip("tzdata is not installed")
    assert "tzdata" not in project_hashes()
    mv = hws.registry.get("credit/1")
    odd = dataclasses.replace(mv, requirements=[*mv.requirements, "tzdata"])
    info = build_bundle(
        tmp_path / "b",
        version=odd,
        model_bytes=hws.artifacts.get_bytes(mv.sha256),
        example_bytes=None,
        code_version=None,
    )
    lock = (info.path / "requirements.lock").read_text()
    assert info.manifest["requirements"]["hashes"] == "some"
    assert info.manifest["requirements"]["unhashed"] == ["tzdata"]
    assert "--hash" not in lock
    assert "the installed version of tzdata" in lock
    assert "--require-hashes" not in (info.path / "Containerfile").read_text()
    assert any(normalize(n) == "tzdata" for n in _pins(lock))
