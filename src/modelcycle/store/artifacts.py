"""The artifact store: immutable blobs named by the sha256 of their bytes.

:class:`ArtifactStore` does the orchestration (hashing while writing, de-duplication,
verification on every read); a backend supplies five small pieces. Backends are chosen by
URL scheme in :func:`open_artifact_store`, and imported only when chosen.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import tempfile
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from importlib import import_module
from pathlib import Path
from typing import IO, BinaryIO

from modelcycle.entities import ArtifactRef
from modelcycle.errors import IntegrityError, InvalidInput, NotFound

__all__ = ["ArtifactStore", "Upload", "open_artifact_store"]

_CHUNK = 1 << 20
_DIGEST_RE = re.compile(r"^[0-9a-f]{64}$")


def check_digest(sha256: str) -> str:
    """A sha256 as 64 lower-case hex digits; anything else (a path, say) is refused."""
    if not isinstance(sha256, str) or not _DIGEST_RE.match(sha256):
        raise InvalidInput(f"{sha256!r} is not a sha256 (64 lower-case hex digits)", field="sha256")
    return sha256


class Upload(ABC):
    """A blob being written by a backend: bytes go in, then it is published or dropped."""

    @abstractmethod
    def write(self, chunk: bytes) -> None: ...

    @abstractmethod
    def publish(self, sha256: str) -> None:
        """Make the bytes readable under ``sha256``, atomically."""

    @abstractmethod
    def abort(self) -> None:
        """Drop the bytes written so far."""


class ArtifactStore(ABC):
    """Content-addressed blobs. Reads verify the hash; writes are atomic and de-duplicated."""

    url: str

    # -- what a backend supplies ------------------------------------------------------------

    @abstractmethod
    def _begin_upload(self) -> Upload: ...

    @abstractmethod
    def _open_raw(self, sha256: str) -> BinaryIO:
        """Open the stored bytes; raise FileNotFoundError when absent."""

    @abstractmethod
    def _exists(self, sha256: str) -> bool: ...

    @abstractmethod
    def _size(self, sha256: str) -> int:
        """Raise FileNotFoundError when absent."""

    @abstractmethod
    def _list(self) -> Iterator[str]: ...

    # -- the public interface ---------------------------------------------------------------

    def put_stream(self, stream: IO[bytes]) -> ArtifactRef:
        """Store everything read from ``stream``; return its name and size."""
        digest = hashlib.sha256()
        size = 0
        upload = self._begin_upload()
        try:
            while chunk := stream.read(_CHUNK):
                digest.update(chunk)
                size += len(chunk)
                upload.write(chunk)
            sha256 = digest.hexdigest()
            if self._exists(sha256):
                upload.abort()
            else:
                upload.publish(sha256)
        except BaseException:
            upload.abort()
            raise
        return ArtifactRef(sha256=sha256, size=size)

    def put_bytes(self, data: bytes) -> ArtifactRef:
        """Store ``data``."""
        return self.put_stream(io.BytesIO(data))

    def put_file(self, path: Path | str) -> ArtifactRef:
        """Store the content of the file at ``path``."""
        try:
            with open(path, "rb") as fh:
                return self.put_stream(fh)
        except FileNotFoundError as exc:
            raise NotFound(f"no such file: {path}") from exc
        except IsADirectoryError as exc:
            raise InvalidInput("is a folder, expected a file", field=str(path)) from exc

    def open(self, sha256: str) -> BinaryIO:
        """A reader of the blob that raises IntegrityError at the end if the bytes changed."""
        check_digest(sha256)
        try:
            raw = self._open_raw(sha256)
        except FileNotFoundError as exc:
            raise NotFound(f"artifact {sha256} is not in the store {self.url}") from exc
        return io.BufferedReader(_VerifyingReader(raw, sha256, self.url), buffer_size=_CHUNK)

    def get_bytes(self, sha256: str) -> bytes:
        """The blob's bytes, verified."""
        with self.open(sha256) as fh:
            return fh.read()

    def get_file(self, sha256: str, dest: Path | str) -> Path:
        """Copy the blob to ``dest``, verified before it appears there."""
        target = Path(dest)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as out, self.open(sha256) as src:
                while chunk := src.read(_CHUNK):
                    out.write(chunk)
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return target

    def exists(self, sha256: str) -> bool:
        """Whether a blob of that name is stored (its content is checked on read, not here)."""
        return self._exists(check_digest(sha256))

    def size(self, sha256: str) -> int:
        """The blob's size in bytes."""
        try:
            return self._size(check_digest(sha256))
        except FileNotFoundError as exc:
            raise NotFound(f"artifact {sha256} is not in the store {self.url}") from exc

    def verify(self, sha256: str) -> None:
        """Read the whole blob; raise IntegrityError if it no longer matches its name."""
        with self.open(sha256) as fh:
            while fh.read(_CHUNK):
                pass

    def list(self) -> Iterator[str]:
        """Every stored blob's sha256."""
        return self._list()


class _VerifyingReader(io.RawIOBase):
    """Hashes what passes through; at end of file the hash must equal the blob's name."""

    def __init__(self, raw: BinaryIO, sha256: str, where: str) -> None:
        self._raw = raw
        self._sha256 = sha256
        self._where = where
        self._digest = hashlib.sha256()
        self._done = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        n = self._raw.readinto(buffer)  # type: ignore[attr-defined]
        if n:
            self._digest.update(buffer[:n])
        elif not self._done:
            self._done = True
            actual = self._digest.hexdigest()
            if actual != self._sha256:
                raise IntegrityError(
                    f"artifact {self._sha256} in {self._where} is corrupted: its bytes hash to "
                    f"{actual}; restore it from a backup or store it again"
                )
        return int(n or 0)

    def close(self) -> None:
        self._raw.close()
        super().close()


# scheme -> "module:factory"; a factory takes the URL and returns a store.
_BACKENDS: dict[str, str] = {
    "file": "modelcycle.store.local_artifacts:from_url",
    "memory": "modelcycle.store.memory_artifacts:from_url",
    "s3": "modelcycle.store.s3_artifacts:from_url",
}


def open_artifact_store(url: str) -> ArtifactStore:
    """The store for ``url``: a local path or ``file://``, ``s3://bucket/prefix``, or
    ``memory://NAME`` (tests)."""
    scheme = url.split("://", 1)[0] if "://" in url else "file"
    target = _BACKENDS.get(scheme)
    if target is None:
        valid = ", ".join(f"{s}://" for s in sorted(_BACKENDS))
        raise InvalidInput(
            f"scheme {scheme!r} is not supported; expected a local path or one of: {valid}",
            field="artifacts",
        )
    module, _, name = target.partition(":")
    factory: Callable[[str], ArtifactStore] = getattr(import_module(module), name)
    return factory(url)
