"""Where a batch job writes its parts: a local folder or an S3 prefix, one small interface.

:func:`open_output` picks the location by URL scheme (``s3://bucket/prefix/`` or a path).
Every location keeps the same promise, which the job's exactly-once ledger
(``batch_chunks``) relies on: a part is visible under its final name only when complete, and
a re-run of the same chunk writes the same bytes under the same name, replacing the first, so
a crash, a retried task or a resumed job never leaves a duplicate or half part.

- :class:`LocalOutput`: temp name, fsync, rename, fsync of the folder (``batch_io.write_part``).
- :class:`S3Output`: the part is serialised in memory (a part is one chunk: a few MB) and
  uploaded under its final key with one PUT, or a multipart upload above 8 MiB; S3 makes an
  object visible only when its PUT or multipart upload completes. The client, its retries,
  endpoint and credentials are the artifact store's (``store.s3_artifacts``), and errors name
  the bucket and key, never a secret.

Locations are built on the workers too (from the ``TaskSpec``'s output URL), so building one
does no I/O; the S3 client is made once per process.
"""

from __future__ import annotations

import functools
import hashlib
import io
import os
import re
from contextlib import suppress
from pathlib import Path
from typing import IO, Any

import pyarrow as pa
import pyarrow.parquet as pq

from modelcycle.errors import Conflict, IntegrityError, InvalidInput

__all__ = ["LocalOutput", "OutputLocation", "S3Output", "open_output", "output_text"]

_PART_PREFIX = "part-"


class OutputLocation:
    """A job's output: a set of named parts, each put in place atomically."""

    url: str

    def check_new(self) -> None:
        """Refuse (Conflict) an output that already holds anything: a job starts on a new one."""
        raise NotImplementedError

    def prepare(self) -> None:
        """Make the location ready for parts (called once the job's checks have passed)."""

    def write_part(self, chunk: int, table: pa.Table) -> tuple[str, str]:
        """Put ``table`` in place as chunk ``chunk``'s part; returns (name, sha256 of its bytes)."""
        raise NotImplementedError

    def part_sha256(self, name: str) -> str | None:
        """The sha256 of the part ``name`` as stored now, or None when it is missing."""
        raise NotImplementedError

    def verify_parts(self, parts: list[tuple[str, str]]) -> None:
        """IntegrityError unless each committed (name, sha256) part is there, unchanged."""
        for name, sha in parts:
            if self.part_sha256(name) != sha:
                raise IntegrityError(
                    f"the committed part {self.describe(name)} is missing or changed; the job "
                    "cannot be resumed"
                )

    def clean(self) -> None:
        """Drop what an interrupted writer may have left that is not a part (temp files)."""

    def open_text(self, name: str) -> IO[str]:
        """A text file ``name`` beside the parts (the CSV rejects), in place when closed."""
        raise NotImplementedError

    def read_text(self, name: str) -> str | None:
        raise NotImplementedError

    def describe(self, name: str) -> str:
        """Where part ``name`` is, for messages."""
        return f"{self.url.rstrip('/')}/{name}"


def output_text(text: str | os.PathLike[str]) -> str:
    """The output as recorded on the job: ``s3://bucket/prefix/`` as given, or an absolute path."""
    value = os.fspath(text)
    if value.startswith("s3://"):
        return value.rstrip("/") + "/"
    _refuse_scheme(value)
    return str(Path(value).expanduser().resolve())


def open_output(text: str) -> OutputLocation:
    """The location for an output URL or path (no I/O)."""
    if text.startswith("s3://"):
        from modelcycle.store.s3_artifacts import parse_s3_url

        bucket, prefix = parse_s3_url(text, field="output")
        return S3Output(bucket, prefix)
    _refuse_scheme(text)
    return LocalOutput(Path(text))


def _refuse_scheme(text: str) -> None:
    scheme = re.match(r"^([A-Za-z][A-Za-z0-9+.-]*)://", text)
    if scheme:
        raise InvalidInput(
            f"{scheme.group(1)}:// is not an output scheme; expected a folder or "
            "s3://bucket/prefix/",
            field="output",
        )


class LocalOutput(OutputLocation):
    """Parts in a local folder (reachable at the same path from every worker)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.url = str(folder)

    def check_new(self) -> None:
        out = self.folder
        if out.exists() and (not out.is_dir() or any(out.iterdir())):
            raise Conflict(f"the output {out} exists and is not an empty folder; choose a new one")

    def prepare(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)

    def write_part(self, chunk: int, table: pa.Table) -> tuple[str, str]:
        from modelcycle.scoring import batch_io

        return batch_io.write_part(self.folder, chunk, table)

    def part_sha256(self, name: str) -> str | None:
        from modelcycle.scoring import batch_io

        path = self.folder / name
        return batch_io.file_sha256(path) if path.is_file() else None

    def clean(self) -> None:
        for tmp in self.folder.glob(".part-*.tmp"):
            tmp.unlink(missing_ok=True)

    def open_text(self, name: str) -> IO[str]:
        return open(self.folder / name, "w", newline="", encoding="utf-8")

    def read_text(self, name: str) -> str | None:
        path = self.folder / name
        return path.read_text(encoding="utf-8") if path.is_file() else None


@functools.lru_cache(maxsize=4)
def _client(pid: int) -> Any:
    # One client per process (boto3 clients are thread-safe, not fork-safe: keyed by pid).
    from modelcycle.store.s3_artifacts import s3_client

    return s3_client()


class S3Output(OutputLocation):
    """Parts under ``s3://bucket/prefix/``, each uploaded whole under its final key."""

    def __init__(self, bucket: str, prefix: str) -> None:
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.url = f"s3://{bucket}/{self.prefix}/" if self.prefix else f"s3://{bucket}/"

    @property
    def client(self) -> Any:
        return _client(os.getpid())

    def key(self, name: str) -> str:
        return f"{self.prefix}/{name}" if self.prefix else name

    def check_new(self) -> None:
        from modelcycle.store.s3_artifacts import s3_errors

        base = self.key("")
        with s3_errors(self.bucket, base or "/", store=self.url):
            answer = self.client.list_objects_v2(Bucket=self.bucket, Prefix=base, MaxKeys=1)
        if answer.get("KeyCount", 0):
            raise Conflict(f"the output {self.url} already holds objects; choose a new prefix")

    def write_part(self, chunk: int, table: pa.Table) -> tuple[str, str]:
        from modelcycle.scoring import batch_io
        from modelcycle.store.s3_artifacts import upload_fileobj

        name = batch_io.part_name(chunk)
        buf = io.BytesIO()
        # The local parts' writer options: a chunk gives the same bytes wherever it is written.
        pq.write_table(table, buf, **batch_io._PARQUET_OPTIONS)
        digest = hashlib.sha256(buf.getbuffer()).hexdigest()
        buf.seek(0)
        upload_fileobj(self.client, self.bucket, self.key(name), buf)
        return name, digest

    def part_sha256(self, name: str) -> str | None:
        from modelcycle.store.s3_artifacts import s3_errors

        key = self.key(name)
        try:
            with s3_errors(self.bucket, key, missing=FileNotFoundError, store=self.url):
                body = self.client.get_object(Bucket=self.bucket, Key=key)["Body"]
                digest = hashlib.sha256()
                for block in iter(lambda: body.read(1 << 20), b""):
                    digest.update(block)
        except FileNotFoundError:
            return None
        return digest.hexdigest()

    def clean(self) -> None:
        """Abort multipart uploads a killed writer left (never visible as parts, but billed)."""
        base = self.key(_PART_PREFIX)
        with suppress(Exception):  # housekeeping only: the parts themselves are whole
            answer = self.client.list_multipart_uploads(Bucket=self.bucket, Prefix=base)
            for upload in answer.get("Uploads", []):
                self.client.abort_multipart_upload(
                    Bucket=self.bucket, Key=upload["Key"], UploadId=upload["UploadId"]
                )

    def open_text(self, name: str) -> IO[str]:
        return _S3TextFile(self, name)

    def read_text(self, name: str) -> str | None:
        from modelcycle.store.s3_artifacts import s3_errors

        key = self.key(name)
        try:
            with s3_errors(self.bucket, key, missing=FileNotFoundError, store=self.url):
                data: bytes = self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read()
        except FileNotFoundError:
            return None
        return data.decode("utf-8")


class _S3TextFile(io.StringIO):
    """Text held in memory and uploaded under its key on close (the rejects list: small)."""

    def __init__(self, output: S3Output, name: str) -> None:
        super().__init__(newline="")
        self._output = output
        self._name = name

    def close(self) -> None:
        if not self.closed:
            from modelcycle.store.s3_artifacts import upload_fileobj

            data = io.BytesIO(self.getvalue().encode("utf-8"))
            out = self._output
            upload_fileobj(out.client, out.bucket, out.key(self._name), data)
        super().close()
