"""Blobs in a local folder: ``objects/ab/abcdef...``, written to ``tmp/`` then renamed in."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from modelcycle.store.artifacts import ArtifactStore, Upload, check_digest

__all__ = ["LocalArtifactStore", "from_url"]


class LocalArtifactStore(ArtifactStore):
    """The embedded default. Creating it touches no file; the first write makes the folders."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)
        self.url = str(self.root)

    def _path(self, sha256: str) -> Path:
        return self.root / "objects" / sha256[:2] / sha256

    def _begin_upload(self) -> Upload:
        tmp_dir = self.root / "tmp"
        tmp_dir.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=tmp_dir, suffix=".part")
        return _LocalUpload(self, os.fdopen(fd, "wb"), Path(name))

    def _open_raw(self, sha256: str) -> BinaryIO:
        return open(self._path(sha256), "rb")

    def _exists(self, sha256: str) -> bool:
        return self._path(sha256).is_file()

    def _size(self, sha256: str) -> int:
        return self._path(sha256).stat().st_size

    def _list(self) -> Iterator[str]:
        objects = self.root / "objects"
        if not objects.is_dir():
            return
        for shard in sorted(objects.iterdir()):
            for blob in sorted(shard.iterdir()):
                yield blob.name


class _LocalUpload(Upload):
    def __init__(self, store: LocalArtifactStore, fh: BinaryIO, tmp: Path) -> None:
        self._store = store
        self._fh = fh
        self._tmp = tmp

    def write(self, chunk: bytes) -> None:
        self._fh.write(chunk)

    def publish(self, sha256: str) -> None:
        self._fh.flush()
        os.fsync(self._fh.fileno())
        self._fh.close()
        final = self._store._path(check_digest(sha256))
        final.parent.mkdir(parents=True, exist_ok=True)
        os.chmod(self._tmp, 0o444)  # immutable by convention: blobs are never rewritten
        os.replace(self._tmp, final)

    def abort(self) -> None:
        if not self._fh.closed:
            self._fh.close()
        self._tmp.unlink(missing_ok=True)


def from_url(url: str) -> LocalArtifactStore:
    """``file:///abs/path`` or a plain path."""
    path = url[len("file://") :] if url.startswith("file://") else url
    return LocalArtifactStore(Path(path).expanduser())
