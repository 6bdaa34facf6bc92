"""The contract every artifact store backend must pass (local folder, in-memory fake, S3)."""

from __future__ import annotations

import hashlib
import io
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from modelcycle import IntegrityError, InvalidInput, NotFound
from modelcycle.store import ArtifactStore, open_artifact_store
from modelcycle.store.local_artifacts import LocalArtifactStore
from modelcycle.store.memory_artifacts import MemoryArtifactStore
from modelcycle.store.s3_artifacts import S3ArtifactStore


def _corrupt_local(store: ArtifactStore, sha: str) -> None:
    assert isinstance(store, LocalArtifactStore)
    path = store.root / "objects" / sha[:2] / sha
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.chmod(0o644)
    path.write_bytes(bytes(data))


def _corrupt_memory(store: ArtifactStore, sha: str) -> None:
    assert isinstance(store, MemoryArtifactStore)
    data = bytearray(store.blobs[sha])
    data[len(data) // 2] ^= 0x01
    store.blobs[sha] = bytes(data)


def _corrupt_s3(store: ArtifactStore, sha: str) -> None:
    # Rewrites the object in place through the S3 API, as a faulty disk or a careless
    # operator with bucket write access would.
    assert isinstance(store, S3ArtifactStore)
    key = store.key(sha)
    data = bytearray(store.client.get_object(Bucket=store.bucket, Key=key)["Body"].read())
    data[len(data) // 2] ^= 0x01
    store.client.put_object(Bucket=store.bucket, Key=key, Body=bytes(data))


Backend = tuple[ArtifactStore, Callable[[ArtifactStore, str], None]]


@pytest.fixture(params=["local", "memory", "s3"])
def backend(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Backend:
    if request.param == "local":
        return open_artifact_store(str(tmp_path / "blobs")), _corrupt_local
    if request.param == "s3":
        server = request.getfixturevalue("s3_server")
        for name, value in server.env.items():
            monkeypatch.setenv(name, value)
        bucket = server.new_bucket()
        return open_artifact_store(f"s3://{bucket}/team/artifacts"), _corrupt_s3
    return open_artifact_store(f"memory://{tmp_path.name}"), _corrupt_memory


def test_put_returns_sha256_and_size(backend: Backend) -> None:
    store, _ = backend
    ref = store.put_bytes(b"hello")
    assert ref.sha256 == hashlib.sha256(b"hello").hexdigest()
    assert ref.size == 5
    assert store.exists(ref.sha256)
    assert store.size(ref.sha256) == 5
    assert store.get_bytes(ref.sha256) == b"hello"


def test_bytes_file_and_stream_give_the_same_name(backend: Backend, tmp_path: Path) -> None:
    store, _ = backend
    payload = bytes(range(256)) * 9000  # > 2 MiB: several chunks
    f = tmp_path / "payload.bin"
    f.write_bytes(payload)
    a = store.put_bytes(payload)
    b = store.put_file(f)
    c = store.put_stream(io.BytesIO(payload))
    assert a == b == c
    assert list(store.list()).count(a.sha256) == 1
    assert store.get_bytes(a.sha256) == payload


def test_empty_blob(backend: Backend) -> None:
    store, _ = backend
    ref = store.put_bytes(b"")
    assert ref.size == 0
    assert store.get_bytes(ref.sha256) == b""


def test_get_file_writes_verified_copy(backend: Backend, tmp_path: Path) -> None:
    store, _ = backend
    ref = store.put_bytes(b"x" * 1000)
    out = store.get_file(ref.sha256, tmp_path / "out" / "copy.bin")
    assert out.read_bytes() == b"x" * 1000


def test_corrupted_blob_is_refused_by_name(backend: Backend, tmp_path: Path) -> None:
    store, corrupt = backend
    ref = store.put_bytes(b"some model weights" * 100)
    corrupt(store, ref.sha256)
    with pytest.raises(IntegrityError, match=ref.sha256):
        store.get_bytes(ref.sha256)
    with pytest.raises(IntegrityError, match=ref.sha256):
        store.verify(ref.sha256)
    dest = tmp_path / "never.bin"
    with pytest.raises(IntegrityError):
        store.get_file(ref.sha256, dest)
    assert not dest.exists()  # nothing half-written


def test_missing_blob_is_not_found(backend: Backend) -> None:
    store, _ = backend
    missing = "0" * 64
    assert not store.exists(missing)
    with pytest.raises(NotFound, match=missing):
        store.get_bytes(missing)
    with pytest.raises(NotFound):
        store.size(missing)


@pytest.mark.parametrize("bad", ["../../etc/passwd", "ABC", "g" * 64, "0" * 63, ""])
def test_names_that_are_not_sha256_are_refused(backend: Backend, bad: str) -> None:
    store, _ = backend
    with pytest.raises(InvalidInput, match="sha256"):
        store.get_bytes(bad)
    with pytest.raises(InvalidInput):
        store.exists(bad)


def test_failed_stream_leaves_nothing(backend: Backend) -> None:
    store, _ = backend

    class Exploding(io.RawIOBase):
        def __init__(self) -> None:
            self.calls = 0

        def read(self, n: int = -1) -> bytes:
            self.calls += 1
            if self.calls > 2:
                raise OSError("disk gone")
            return b"a" * 1024

    with pytest.raises(OSError, match="disk gone"):
        store.put_stream(Exploding())  # type: ignore[arg-type]
    assert list(store.list()) == []


def test_concurrent_puts_of_the_same_content(backend: Backend) -> None:
    store, _ = backend
    payload = b"same" * 50_000
    refs = []

    def put() -> None:
        refs.append(store.put_bytes(payload))

    threads = [threading.Thread(target=put) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({r.sha256 for r in refs}) == 1
    assert list(store.list()) == [refs[0].sha256]
    assert store.get_bytes(refs[0].sha256) == payload


def test_unknown_scheme_lists_valid_ones() -> None:
    with pytest.raises(InvalidInput, match=r"file://.*memory://.*s3://"):
        open_artifact_store("gopher://host/bucket")


def test_local_store_leaves_no_temp_files(tmp_path: Path) -> None:
    store = open_artifact_store(f"file://{tmp_path / 'blobs'}")
    for i in range(5):
        store.put_bytes(str(i).encode())
    store.put_bytes(b"0")  # a duplicate is dropped, not left behind
    assert list((tmp_path / "blobs" / "tmp").iterdir()) == []
    blob = next((tmp_path / "blobs" / "objects").rglob("*"))
    assert blob.is_dir() or not (blob.stat().st_mode & 0o222)  # blobs are read-only
