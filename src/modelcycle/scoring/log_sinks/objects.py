"""Named objects (the prediction log's Parquet parts) next to the artifact store's blobs.

The artifact store names blobs by their sha256; a log part needs a readable, partitioned name
(``prediction-log/model=NAME/date=YYYY-MM-DD/hour=HH/part-ID.parquet``) so that other tools
(DuckDB, Spark, Athena) can read the log by hour. The same rule as for blobs holds: no partial
object is ever visible under its final name. A local folder writes to a temporary file and
renames it in; S3 makes an object visible only when its single PUT completes.

A part's *location* (the full URL, or the absolute path in a local folder) is what the
aggregates table stores, so any process that can reach the database and the bucket reads the
log without knowing which workspace wrote it. Endpoint and credentials come from the standard
AWS variables, as for the artifact store (:func:`modelcycle.store.s3_artifacts.s3_client`).
"""

from __future__ import annotations

import functools
import os
import tempfile
from pathlib import Path
from typing import Any

from modelcycle.errors import InvalidInput, NotReady

__all__ = ["PREFIX", "LogObjects", "read_location"]

PREFIX = "prediction-log"


class LogObjects:
    """Where a sink puts its parts: the artifact store's root (a folder or ``s3://bucket/prefix``).

    Creating it does no I/O.
    """

    def __init__(self, artifacts_url: str) -> None:
        url = artifacts_url.removeprefix("file://")
        if "://" in url and not url.startswith("s3://"):
            raise InvalidInput(
                f"the parquet prediction log needs a local folder or an s3:// artifact store, "
                f"not {artifacts_url!r}",
                field="scoring.log_sink",
            )
        self.url = url.rstrip("/")

    def location(self, key: str) -> str:
        return f"{self.url}/{key}" if self.url.startswith("s3://") else str(Path(self.url) / key)

    def put(self, key: str, data: bytes) -> str:
        """Write ``data`` under ``key`` all at once; returns its location."""
        where = self.location(key)
        if where.startswith("s3://"):
            bucket, name = _split(where)
            _s3_call(where, lambda c: c.put_object(Bucket=bucket, Key=name, Body=data))
            return where
        final = Path(where)
        final.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=final.parent, prefix=".", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, final)  # atomic: readers see the whole file or none
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return where


def read_location(location: str) -> bytes:
    """The bytes of a part, by the location the aggregates table recorded."""
    if location.startswith("s3://"):
        bucket, name = _split(location)
        answer = _s3_call(location, lambda c: c.get_object(Bucket=bucket, Key=name))
        data: bytes = answer["Body"].read()
        return data
    try:
        return Path(location).read_bytes()
    except OSError as exc:
        raise NotReady(f"cannot read the prediction-log part {location}: {exc}") from exc


def _split(location: str) -> tuple[str, str]:
    bucket, _, key = location[len("s3://") :].partition("/")
    return bucket, key


@functools.lru_cache(maxsize=4)
def _client(endpoint: str | None) -> Any:
    # One client per endpoint and process: boto3 clients are thread-safe and costly to make.
    from modelcycle.store.s3_artifacts import s3_client

    return s3_client()


def _s3_call(where: str, fn: Any) -> Any:
    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    try:
        return fn(_client(endpoint))
    except Exception as exc:  # botocore's many error types: one answer, naming the object
        code = getattr(exc, "response", {}).get("Error", {}).get("Code", type(exc).__name__)
        raise NotReady(f"S3 request for {where} failed ({code})") from exc
