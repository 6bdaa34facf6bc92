"""Deployment bundles: a self-contained, reproducible build context for one model version.

Layout (every file but ``bundle.json`` is listed in it with its sha256)::

    bundle.json              manifest: model, flavor, lineage ids, server, sha256 of every file
    model/model.<ext>        the model artifact, byte for byte the registry's blob
    model/signature.json     the signature the server enforces
    model/input_example.parquet   the registered input example, when there is one
    serve.py                 the entrypoint: the `modelcycle serve` server, built from this folder
    src/modelcycle/...       modelcycle's own source (vendored: it is not on PyPI)
    requirements.lock        exact versions of what this flavor and the server need
    sbom.cdx.json            CycloneDX 1.5 SBOM of those packages
    Containerfile            two-stage image build, non-root, HEALTHCHECK, OCI labels
    kubernetes/*.yaml        Deployment, Service, KServe ServingRuntime + InferenceService

The bundle's digest is the sha256 of ``bundle.json``: it covers every other file. The same
model version, modelcycle source, installed packages and lock file give the same bytes: no
clock, host or path goes into any file (the one timestamp is the version's ``created_at``).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from modelcycle._version import __version__
from modelcycle.entities import ModelVersion
from modelcycle.errors import Conflict, IntegrityError, InvalidInput, NotFound

__all__ = [
    "BUNDLE_FORMAT",
    "MANIFEST",
    "BundleInfo",
    "build_bundle",
    "bundle_digest",
    "read_manifest",
    "verify_bundle",
]

BUNDLE_FORMAT = "modelcycle-bundle/1"
MANIFEST = "bundle.json"
# Written by Python next to the source when it runs; never part of a bundle.
_IGNORED_DIRS = frozenset({"__pycache__"})

_SERVE_PY = '''\
#!/usr/bin/env python3
"""Start this bundle's scoring server (Open Inference Protocol v2, MLflow /invocations, /predict).

    python3 serve.py [--host 127.0.0.1] [--port 8080] [--workers N] [--trust]

Every file's sha256 is checked against bundle.json before the model is loaded; modelcycle
itself is imported from ./src (vendored), its dependencies from requirements.lock.
"""

import os
import sys

sys.dont_write_bytecode = True  # keep the bundle's files exactly as built
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "src"))

from modelcycle.deploy.bundle_server import main  # noqa: E402

sys.exit(main([HERE, *sys.argv[1:]]))
'''


@dataclass(frozen=True, slots=True)
class BundleInfo:
    """A built (or verified) bundle: where it is, what it holds, and its digest."""

    path: Path
    name: str
    version: int
    flavor: str
    digest: str
    manifest: dict[str, Any]

    @property
    def ref(self) -> str:
        return f"{self.name}/{self.version}"

    @property
    def files(self) -> dict[str, str]:
        files: dict[str, str] = self.manifest["files"]
        return files


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _dump_json(value: Any) -> bytes:
    return (json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode()


def _source_files(package_dir: Path) -> Iterator[tuple[str, bytes]]:
    """(relative posix path, bytes) of modelcycle's own files, sorted; caches and dotfiles out."""
    found: list[tuple[str, Path]] = []
    for dirpath, dirnames, filenames in os.walk(package_dir):
        dirnames[:] = sorted(d for d in dirnames if d not in _IGNORED_DIRS and d[0] != ".")
        for fname in filenames:
            if fname.startswith(".") or fname.endswith((".pyc", ".pyo", "~")):
                continue
            full = Path(dirpath) / fname
            found.append((full.relative_to(package_dir).as_posix(), full))
    for rel, full in sorted(found):
        yield rel, full.read_bytes()


def build_bundle(
    out: Path | str,
    *,
    version: ModelVersion,
    model_bytes: bytes,
    example_bytes: bytes | None,
    code_version: str | None,
    lock_file: Path | None = None,
    overwrite: bool = False,
) -> BundleInfo:
    """Write the bundle of ``version`` to ``out`` (a new or empty folder; ``overwrite`` replaces
    an existing bundle). Written into a temporary sibling and renamed: never half-made."""
    import yaml

    from modelcycle.deploy import _requirements as reqs
    from modelcycle.deploy import _templates as tpl

    if _sha256(model_bytes) != version.sha256:
        raise IntegrityError(f"the blob of {version.ref} does not match its sha256")
    target = Path(out).expanduser().resolve()
    if target.exists():
        if not target.is_dir():
            raise InvalidInput("exists and is not a folder", field="out")
        if any(target.iterdir()) and (not overwrite or not (target / MANIFEST).is_file()):
            raise Conflict(
                f"{target} is not empty; give a new folder"
                + (" (or --overwrite to replace the bundle there)" if not overwrite else "")
            )
    from modelcycle.registry import get_flavor

    ext = get_flavor(version.flavor).file_extension
    files: dict[str, bytes] = {
        f"model/model.{ext}": model_bytes,
        "model/signature.json": _dump_json(version.signature),
        "serve.py": _SERVE_PY.encode(),
    }
    if example_bytes is not None:
        files["model/input_example.parquet"] = example_bytes
    package_dir = Path(__file__).resolve().parent.parent  # the modelcycle package
    source_hash = hashlib.sha256()
    for rel, data in _source_files(package_dir):
        files[f"src/modelcycle/{rel}"] = data
        source_hash.update(rel.encode() + b"\0" + _sha256(data).encode() + b"\n")

    lock_path = lock_file if lock_file is not None else None
    known = reqs.read_hashes(lock_path)
    roots = [*version.requirements, *reqs.SERVER_STACK]
    packages = reqs.resolve(roots, known, reqs.project_hashes())
    unhashed = [p.name for p in packages if not p.hashes]
    hash_state = "none" if len(unhashed) == len(packages) else "some" if unhashed else "all"
    py = f"{sys.version_info.major}.{sys.version_info.minor}"
    # No model name or version in the file: the same packages give the same bytes, so an image
    # build reuses its cached venv layer for every version (and model) of a flavor.
    header = (
        f"Exact versions for a {version.flavor} model and the modelcycle scoring server,\n"
        f"as installed when the bundle was built (Python {py}). modelcycle itself is vendored in\n"
        "src/ (it is not on PyPI). Install with: pip install --no-deps -r requirements.lock"
        + (" --require-hashes" if hash_state == "all" else "")
        + "\n"
        + {
            "all": "Every package is pinned by sha256: hashes from the workspace's "
            "requirements.lock,\nelse from modelcycle's own lock, where they pin the installed "
            "version.",
            "some": "No hashes: neither the workspace's requirements.lock nor modelcycle's own "
            "lock pins\nthe installed version of "
            + ", ".join(unhashed)
            + ", and pip takes hashes for every\npackage or none (give a hashed lock: "
            "uv pip compile --generate-hashes).",
            "none": "No hashes: no hashed lock pins these versions (hashes are not in installed "
            "metadata).",
        }[hash_state]
    )
    # pip checks hashes for every requirement once one has any: all or none in the file.
    pinned = packages if hash_state == "all" else [p.without_hashes() for p in packages]
    files["requirements.lock"] = reqs.render_lock(pinned, header=header).encode()

    lineage = {
        "run_id": version.run_id,
        "datasets": list(version.datasets),
        "code_version": code_version,
    }
    manifest: dict[str, Any] = {
        "format": BUNDLE_FORMAT,
        "model": {
            "name": version.name,
            "version": version.version,
            "ref": version.ref,
            "flavor": version.flavor,
            "sha256": version.sha256,
            "file": f"model/model.{ext}",
            "signature": "model/signature.json",
            "input_example": "model/input_example.parquet" if example_bytes is not None else None,
            "task": version.signature.get("task", "unknown"),
            "requirements": list(version.requirements),
            "metrics": dict(version.metrics),
            "created_at": version.created_at,
            "created_by": version.created_by,
        },
        "lineage": lineage,
        "modelcycle": {
            "version": __version__,
            "source": "src/modelcycle",
            "source_sha256": source_hash.hexdigest(),
        },
        "python": py,
        "server": {
            "entrypoint": "serve.py",
            "port": tpl.CONTAINER_PORT,
            "health": {"live": "/v2/health/live", "ready": "/v2/health/ready"},
            "image": tpl.image_name({"model": {"name": version.name, "version": version.version}}),
        },
        "requirements": {
            "file": "requirements.lock",
            "packages": len(packages),
            "hashes": hash_state,
            "unhashed": unhashed if hash_state == "some" else [],
        },
    }
    files["Containerfile"] = tpl.containerfile(
        manifest, require_hashes=hash_state == "all"
    ).encode()
    for fname, obj in tpl.kubernetes_manifests(manifest).items():
        text = yaml.safe_dump(obj, sort_keys=True, default_flow_style=False, allow_unicode=True)
        files[f"kubernetes/{fname}"] = text.encode()
    vendored = reqs.LockedPackage("modelcycle", __version__)
    sbom = reqs.cyclonedx_sbom(
        packages,
        subject={"name": version.name, "version": version.version, "sha256": version.sha256},
        vendored=vendored,
        timestamp=version.created_at,
        serial_seed=f"modelcycle-bundle:{version.sha256}:{source_hash.hexdigest()}",
    )
    files["sbom.cdx.json"] = _dump_json(sbom)
    manifest["files"] = {rel: _sha256(data) for rel, data in sorted(files.items())}
    manifest_bytes = _dump_json(manifest)

    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        for rel, data in sorted(files.items()):
            path = staging / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
            path.chmod(0o755 if rel == "serve.py" else 0o644)
        (staging / MANIFEST).write_bytes(manifest_bytes)
        (staging / MANIFEST).chmod(0o644)
        staging.chmod(0o755)
        if target.exists():
            shutil.rmtree(target)
        os.replace(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return BundleInfo(
        target, version.name, version.version, version.flavor, _sha256(manifest_bytes), manifest
    )


def read_manifest(path: Path | str) -> dict[str, Any]:
    """The bundle's ``bundle.json`` (not verified: see :func:`verify_bundle`)."""
    root = Path(path)
    try:
        data = (root / MANIFEST).read_bytes()
    except FileNotFoundError:
        raise NotFound(f"{root} is not a modelcycle bundle (no {MANIFEST})") from None
    try:
        manifest: dict[str, Any] = json.loads(data)
    except ValueError as exc:
        raise IntegrityError(f"bundle: {MANIFEST} is not valid JSON ({exc})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != BUNDLE_FORMAT:
        raise IntegrityError(f"bundle: {MANIFEST} is not a {BUNDLE_FORMAT} manifest")
    return manifest


def bundle_digest(path: Path | str) -> str:
    """The sha256 of the bundle's manifest, which names the sha256 of every other file."""
    return _sha256((Path(path) / MANIFEST).read_bytes())


def verify_bundle(path: Path | str) -> BundleInfo:
    """Recheck every file against ``bundle.json``; IntegrityError names the first altered,
    missing or unexpected file (and how many there are)."""
    root = Path(path).expanduser().resolve()
    if not root.is_dir():
        raise NotFound(f"no bundle folder {root}")
    manifest = read_manifest(root)
    listed: dict[str, str] = manifest.get("files") or {}
    problems: list[str] = []
    for rel, expected in sorted(listed.items()):
        full = root / rel
        if ".." in Path(rel).parts or Path(rel).is_absolute():
            problems.append(f"{rel} is outside the bundle")
            continue
        try:
            actual = _sha256(full.read_bytes())
        except (FileNotFoundError, IsADirectoryError):
            problems.append(f"{rel} is missing")
            continue
        if actual != expected:
            problems.append(f"{rel} was altered (sha256 {actual}, expected {expected})")
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if d not in _IGNORED_DIRS]
        for fname in filenames:
            rel = (Path(dirpath) / fname).relative_to(root).as_posix()
            if rel != MANIFEST and rel not in listed:
                problems.append(f"{rel} is not part of the bundle")
    model = manifest.get("model", {})
    if listed.get(model.get("file", "")) != model.get("sha256"):
        problems.append(f"{MANIFEST}: the model file's sha256 differs from the model's sha256")
    if problems:
        more = f" (and {len(problems) - 1} more problem(s))" if len(problems) > 1 else ""
        raise IntegrityError(f"bundle {root}: {problems[0]}{more}")
    return BundleInfo(
        root,
        str(model["name"]),
        int(model["version"]),
        str(model["flavor"]),
        bundle_digest(root),
        manifest,
    )
