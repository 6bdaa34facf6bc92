"""Bundles in the artifact store: a deterministic tar in, a checked folder out.

A scoring pod on Kubernetes whose workspace keeps its artifacts in a bucket pulls its bundle
at start (an init container running ``modelcycle bundle fetch SHA256 --out /opt/bundle``)
instead of carrying it in the image. The archive is content-addressed like every artifact, so
the store re-checks its sha256 on read; the extraction then refuses anything a bundle never
holds (absolute paths, ``..``, links, devices) before writing a byte, and ``verify_bundle``
rechecks every file against ``bundle.json``.
"""

from __future__ import annotations

import io
import os
import shutil
import tarfile
import tempfile
from pathlib import Path, PurePosixPath

from modelcycle.deploy.bundle import MANIFEST, BundleInfo, read_manifest, verify_bundle
from modelcycle.errors import Conflict, IntegrityError
from modelcycle.store.artifacts import ArtifactStore, check_digest

__all__ = ["bundle_archive", "fetch_bundle", "store_bundle"]

_TMP_NAME = ".bundle-fetch.tar"


def bundle_archive(folder: Path | str, dest: Path) -> None:
    """Write the bundle at ``folder`` as a tar to ``dest``: only the files ``bundle.json``
    lists plus itself, sorted, with fixed owner, mode and time, so the same bundle always
    gives the same bytes (and the same sha256 in the store)."""
    root = Path(folder)
    names = sorted([*read_manifest(root).get("files", {}), MANIFEST])
    with tarfile.open(dest, "w", format=tarfile.PAX_FORMAT) as tar:
        for rel in names:
            data = (root / rel).read_bytes()
            member = tarfile.TarInfo(rel)
            member.size = len(data)
            member.mode = 0o755 if rel == "serve.py" else 0o644
            member.mtime = 0
            member.uid = member.gid = 0
            member.uname = member.gname = ""
            tar.addfile(member, io.BytesIO(data))


def store_bundle(folder: Path | str, artifacts: ArtifactStore) -> str:
    """Store the bundle's archive; its sha256 (what ``bundle fetch`` takes)."""
    fd, tmp = tempfile.mkstemp(prefix=".bundle-", suffix=".tar")
    os.close(fd)
    try:
        bundle_archive(folder, Path(tmp))
        return artifacts.put_file(tmp).sha256
    finally:
        Path(tmp).unlink(missing_ok=True)


def _check_member(sha256: str, member: tarfile.TarInfo) -> None:
    path = PurePosixPath(member.name)
    why = None
    if path.is_absolute() or member.name.startswith("/"):
        why = "is an absolute path"
    elif ".." in path.parts:
        why = "leaves the folder (..)"
    elif member.issym() or member.islnk():
        why = "is a link"
    elif not (member.isfile() or member.isdir()):
        why = "is not a regular file or folder"
    if why is not None:
        raise IntegrityError(f"bundle archive {sha256}: member {member.name!r} {why}; refused")


def _open_tar(path: Path, sha256: str) -> tarfile.TarFile:
    try:
        return tarfile.open(path, "r:")
    except tarfile.TarError as exc:
        raise IntegrityError(f"bundle archive {sha256}: not a tar file ({exc})") from None


def fetch_bundle(artifacts: ArtifactStore, sha256: str, out: Path | str) -> BundleInfo:
    """Read the archive ``sha256`` from ``artifacts`` into the folder ``out`` (absent or empty)
    and verify it. On any refusal ``out`` is left as it was found; nothing is written
    outside it."""
    sha256 = check_digest(sha256)
    target = Path(out)
    existed = target.is_dir()
    if target.exists() and not existed:
        raise Conflict(f"{target} exists and is not a folder")
    if existed and any(target.iterdir()):
        raise Conflict(f"{target} is not empty: fetch a bundle into an empty or new folder")
    target.mkdir(parents=True, exist_ok=True)
    tmp = target / _TMP_NAME
    try:
        artifacts.get_file(sha256, tmp)  # the store re-checks the sha256 before it appears
        with _open_tar(tmp, sha256) as tar:
            members = tar.getmembers()
            for member in members:  # every member checked before anything is extracted
                _check_member(sha256, member)
            for member in members:
                dest = target / member.name
                if member.isdir():
                    dest.mkdir(parents=True, exist_ok=True)
                    continue
                dest.parent.mkdir(parents=True, exist_ok=True)
                src = tar.extractfile(member)
                assert src is not None  # a regular file always has content
                with src, open(dest, "wb") as fh:
                    shutil.copyfileobj(src, fh)
                dest.chmod(0o755 if member.mode & 0o100 else 0o644)
        tmp.unlink()
        return verify_bundle(target)
    except BaseException:
        if existed:
            for child in target.iterdir():
                shutil.rmtree(child) if child.is_dir() else child.unlink()
        else:
            shutil.rmtree(target, ignore_errors=True)
        raise
