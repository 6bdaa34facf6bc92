"""Blobs in a dictionary: the in-memory fake that the contract suite also runs against."""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import BinaryIO

from modelcycle.store.artifacts import ArtifactStore, Upload

__all__ = ["MemoryArtifactStore", "from_url"]

# Stores opened by URL share their blobs per name within one process, like a real server would.
_SHARED: dict[str, dict[str, bytes]] = {}


class MemoryArtifactStore(ArtifactStore):
    """Blobs held in a dict. ``blobs`` is exposed so tests can corrupt one on purpose."""

    def __init__(self, blobs: dict[str, bytes] | None = None, url: str = "memory://") -> None:
        self.blobs: dict[str, bytes] = {} if blobs is None else blobs
        self.url = url

    def _begin_upload(self) -> Upload:
        return _MemoryUpload(self.blobs)

    def _open_raw(self, sha256: str) -> BinaryIO:
        try:
            return io.BytesIO(self.blobs[sha256])
        except KeyError:
            raise FileNotFoundError(sha256) from None

    def _exists(self, sha256: str) -> bool:
        return sha256 in self.blobs

    def _size(self, sha256: str) -> int:
        try:
            return len(self.blobs[sha256])
        except KeyError:
            raise FileNotFoundError(sha256) from None

    def _list(self) -> Iterator[str]:
        yield from sorted(self.blobs)


class _MemoryUpload(Upload):
    def __init__(self, blobs: dict[str, bytes]) -> None:
        self._blobs = blobs
        self._buffer = io.BytesIO()

    def write(self, chunk: bytes) -> None:
        self._buffer.write(chunk)

    def publish(self, sha256: str) -> None:
        self._blobs[sha256] = self._buffer.getvalue()

    def abort(self) -> None:
        self._buffer = io.BytesIO()


def from_url(url: str) -> MemoryArtifactStore:
    """``memory://NAME``: one shared store per name in this process."""
    return MemoryArtifactStore(_SHARED.setdefault(url, {}), url=url)
