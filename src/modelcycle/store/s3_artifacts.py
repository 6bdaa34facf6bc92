"""Blobs in an S3-compatible bucket (AWS S3, MinIO, Ceph RGW, R2): ``s3://bucket/prefix``.

Keys are ``PREFIX/objects/ab/abcdef...``, as the local folder lays them out. Writes are
spooled (memory up to 8 MiB, then a temporary file) while the base class hashes them, and
only then uploaded under the final key: S3 makes an object visible when its PUT or multipart
upload completes, so no partial object is ever readable under its name, and a crash leaves
at most an incomplete multipart upload, which S3 never lists as an object. Reads stream the
body and resume with a ranged GET if the connection drops; the base class re-hashes them.

Endpoint, region and credentials come from the standard AWS variables and files
(``AWS_ENDPOINT_URL``, ``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_REGION``,
``AWS_PROFILE``, ...), read by boto3 itself; nothing here stores or prints them.
boto3 is the client (measured against obstore and pyarrow: docs/decisions/0009).
"""

from __future__ import annotations

import io
import random
import re
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import IO, Any, BinaryIO, TypeVar

from modelcycle.errors import InvalidInput, NotReady
from modelcycle.store.artifacts import ArtifactStore, Upload, check_digest

__all__ = [
    "S3ArtifactStore",
    "from_url",
    "parse_s3_url",
    "s3_client",
    "s3_errors",
    "upload_fileobj",
]

# Spool up to this much in memory; beyond it the bytes go to a temporary file.
_SPOOL = 8 << 20
# Objects above this are uploaded in parts of this size, several at once.
_PART = 8 << 20
_BUCKET_RE = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
# How often a dropped read is resumed before giving up; botocore retries each request itself.
_READ_RESUMES = 5
T = TypeVar("T")


def s3_client() -> Any:
    """A boto3 S3 client configured only by the standard AWS variables and files.

    Retries: botocore's "standard" mode backs off exponentially (with jitter) on throttling
    (SlowDown, 503) and 5xx answers and on connection errors, up to 8 attempts a request.
    """
    try:
        import boto3
        from botocore.config import Config
    except ImportError as exc:  # pragma: no cover - exercised only without the extra
        raise NotReady("an s3:// artifact store needs boto3: pip install 'modelcycle[s3]'") from exc
    config = Config(
        retries={"max_attempts": 8, "mode": "standard"},
        connect_timeout=10,
        read_timeout=60,
        max_pool_connections=16,
    )
    return boto3.client("s3", config=config)


def parse_s3_url(url: str, field: str = "artifacts") -> tuple[str, str]:
    """``s3://bucket/some/prefix`` -> (bucket, "some/prefix"); the prefix may be empty."""
    if not url.startswith("s3://"):
        raise InvalidInput(f"{url!r} is not an s3:// URL", field=field)
    bucket, _, prefix = url[len("s3://") :].partition("/")
    if not _BUCKET_RE.match(bucket):
        raise InvalidInput(
            f"{bucket!r} is not a bucket name (3-63 lower-case letters, digits, dots, hyphens)",
            field=field,
        )
    prefix = prefix.strip("/")
    if any(part in ("", ".", "..") for part in prefix.split("/")) and prefix:
        raise InvalidInput(f"prefix {prefix!r} has an empty, . or .. segment", field=field)
    return bucket, prefix


@contextmanager
def s3_errors(
    bucket: str, key: str, *, missing: type[Exception] | None = None, store: str | None = None
) -> Iterator[None]:
    """S3 client errors as modelcycle errors that name the bucket and key, never a secret.

    Shared by the artifact store and batch scoring's output parts (scoring/batch_outputs).
    ``missing``: the exception a 404 becomes; ``store``: what the bucket is for, in messages.
    """
    from botocore.exceptions import (
        BotoCoreError,
        ClientError,
        EndpointConnectionError,
        NoCredentialsError,
    )

    where = store or f"s3://{bucket}"
    try:
        yield
    except ClientError as exc:
        code = str(exc.response.get("Error", {}).get("Code", ""))
        if missing is not None and code in ("404", "NoSuchKey", "NotFound"):
            raise missing(key) from exc
        if code == "NoSuchBucket":
            raise NotReady(
                f"the bucket {bucket!r} does not exist; create it first ({where})"
            ) from exc
        if code in ("AccessDenied", "403", "InvalidAccessKeyId", "SignatureDoesNotMatch"):
            raise NotReady(
                f"S3 refused access to s3://{bucket}/{key} ({code}); check the "
                "AWS_* credentials this process runs with"
            ) from exc
        raise NotReady(f"S3 error {code} on s3://{bucket}/{key}") from exc
    except NoCredentialsError as exc:
        raise NotReady(
            f"no AWS credentials for {where}; set AWS_ACCESS_KEY_ID and "
            "AWS_SECRET_ACCESS_KEY (or AWS_PROFILE)"
        ) from exc
    except EndpointConnectionError as exc:
        raise NotReady(f"cannot reach the S3 endpoint for {where}: {exc}") from exc
    except BotoCoreError as exc:
        raise NotReady(f"S3 request for s3://{bucket}/{key} failed: {exc}") from exc


def upload_fileobj(client: Any, bucket: str, key: str, fileobj: IO[bytes]) -> None:
    """Upload ``fileobj`` (from its current position) under ``key``, visible only when complete.

    Multipart above one part's size; s3transfer aborts the upload if a part fails, and an
    incomplete multipart upload is never visible as an object.
    """
    from boto3.s3.transfer import TransferConfig

    config = TransferConfig(multipart_threshold=_PART, multipart_chunksize=_PART, max_concurrency=4)
    with s3_errors(bucket, key):
        client.upload_fileobj(fileobj, bucket, key, Config=config)


class S3ArtifactStore(ArtifactStore):
    """Content-addressed blobs under ``s3://bucket/prefix``. Creating it sends no request."""

    def __init__(self, bucket: str, prefix: str = "", client: Any | None = None) -> None:
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.url = f"s3://{bucket}/{self.prefix}".rstrip("/")
        self._client = client

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = s3_client()
        return self._client

    def key(self, sha256: str) -> str:
        """The object key of a blob."""
        base = f"{self.prefix}/objects" if self.prefix else "objects"
        return f"{base}/{sha256[:2]}/{sha256}"

    def _begin_upload(self) -> Upload:
        return _S3Upload(self)

    def _open_raw(self, sha256: str) -> BinaryIO:
        key = self.key(sha256)
        with self._errors(key, missing=FileNotFoundError):
            answer = self.client.get_object(Bucket=self.bucket, Key=key)
        return _ResumingReader(self, key, answer)  # type: ignore[return-value]

    def _exists(self, sha256: str) -> bool:
        try:
            self._size(sha256)
        except FileNotFoundError:
            return False
        return True

    def _size(self, sha256: str) -> int:
        key = self.key(sha256)
        with self._errors(key, missing=FileNotFoundError):
            head = self.client.head_object(Bucket=self.bucket, Key=key)
        return int(head["ContentLength"])

    def _list(self) -> Iterator[str]:
        base = f"{self.prefix}/objects/" if self.prefix else "objects/"
        pages = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=base
        )
        with self._errors(base):
            for page in pages:
                for item in page.get("Contents", []):
                    name = str(item["Key"]).rsplit("/", 1)[-1]
                    if len(name) == 64:
                        yield name

    def _errors(self, key: str, missing: type[Exception] | None = None) -> Any:
        return s3_errors(self.bucket, key, missing=missing, store=self.url)

    def _call(self, key: str, fn: Callable[[], T]) -> T:
        with self._errors(key):
            return fn()


class _S3Upload(Upload):
    """Bytes spooled locally until their name is known; then one upload under that name."""

    def __init__(self, store: S3ArtifactStore) -> None:
        self._store = store
        # Closed by publish or abort, which the base class always calls.
        self._spool: IO[bytes] = tempfile.SpooledTemporaryFile(  # noqa: SIM115
            max_size=_SPOOL, suffix=".part"
        )

    def write(self, chunk: bytes) -> None:
        self._spool.write(chunk)

    def publish(self, sha256: str) -> None:
        store = self._store
        key = store.key(check_digest(sha256))
        self._spool.seek(0)
        try:
            upload_fileobj(store.client, store.bucket, key, self._spool)
        finally:
            self._spool.close()

    def abort(self) -> None:
        self._spool.close()


class _ResumingReader(io.RawIOBase):
    """An object's body, streamed; a dropped connection resumes from the byte it reached."""

    def __init__(self, store: S3ArtifactStore, key: str, answer: dict[str, Any]) -> None:
        self._store = store
        self._key = key
        self._body = answer["Body"]
        self._etag = answer.get("ETag")
        self._pos = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        from botocore.exceptions import ConnectionError as BotoConnectionError
        from botocore.exceptions import (
            IncompleteReadError,
            ReadTimeoutError,
            ResponseStreamingError,
        )
        from urllib3.exceptions import ProtocolError

        transient = (
            BotoConnectionError,
            IncompleteReadError,
            ReadTimeoutError,
            ResponseStreamingError,
            ProtocolError,
        )
        for attempt in range(_READ_RESUMES + 1):
            try:
                data = self._body.read(len(buffer))
                break
            except transient:
                if attempt == _READ_RESUMES:
                    raise
                time.sleep(min(2.0, 0.1 * 2**attempt) * random.uniform(0.5, 1.0))  # noqa: S311 (jitter)
                self._reopen()
        n = len(data)
        buffer[:n] = data
        self._pos += n
        return n

    def _reopen(self) -> None:
        store = self._store
        extra = {"IfMatch": self._etag} if self._etag else {}
        answer = store._call(
            self._key,
            lambda: store.client.get_object(
                Bucket=store.bucket, Key=self._key, Range=f"bytes={self._pos}-", **extra
            ),
        )
        self._body.close()
        self._body = answer["Body"]

    def close(self) -> None:
        self._body.close()
        super().close()


def from_url(url: str) -> S3ArtifactStore:
    """``s3://bucket[/prefix]``."""
    bucket, prefix = parse_s3_url(url)
    return S3ArtifactStore(bucket, prefix)
