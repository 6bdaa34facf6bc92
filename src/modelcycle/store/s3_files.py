"""Reading files (Parquet parts) straight from S3-compatible storage with pyarrow.

pyarrow reads Parquet by ranged requests (footer, then the column chunks it needs), so a remote
part is profiled, hashed and scored without a local copy. pyarrow's S3 client reads the AWS
credentials and region itself but not ``AWS_ENDPOINT_URL``; it is passed here so that the same
standard variables configure boto3 (the artifact store) and pyarrow (data) alike.
"""

from __future__ import annotations

import fnmatch
import functools
import os
from typing import Any

from modelcycle.errors import InvalidInput, NotReady
from modelcycle.store.s3_artifacts import parse_s3_url

__all__ = ["is_s3_url", "list_s3_files", "s3_filesystem"]


def is_s3_url(text: object) -> bool:
    return isinstance(text, str) and text.startswith("s3://")


def s3_filesystem() -> Any:
    """A pyarrow ``S3FileSystem`` configured from the standard AWS variables."""
    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    return _filesystem(endpoint, region)


@functools.lru_cache(maxsize=4)
def _filesystem(endpoint: str | None, region: str | None) -> Any:
    # One client per configuration: each part of a data set opens a file through it.
    from pyarrow import fs

    options: dict[str, Any] = {"retry_strategy": fs.AwsStandardS3RetryStrategy(max_attempts=8)}
    if region:
        options["region"] = region
    if endpoint:
        scheme, _, host = endpoint.partition("://")
        if not host:
            scheme, host = "https", endpoint
        options["endpoint_override"] = host.rstrip("/")
        options["scheme"] = scheme
    return fs.S3FileSystem(**options)


def list_s3_files(url: str, *, field: str) -> list[str]:
    """``bucket/key`` paths (pyarrow's form) of the objects named by ``url``, sorted.

    ``s3://bucket/path/*.parquet`` is a glob over the keys (``*`` does not cross ``/``, ``**``
    does); ``s3://bucket/folder/`` (or a prefix with no object of that exact name) lists every
    object under it; anything else names one object.
    """
    from pyarrow import fs

    bucket, key = parse_s3_url(url, field=field)
    filesystem = s3_filesystem()
    pattern = any(ch in key for ch in "*?[")
    base = key.split("*")[0].split("?")[0].split("[")[0].rsplit("/", 1)[0] if pattern else key
    try:
        if not pattern:
            info = filesystem.get_file_info(f"{bucket}/{key}")
            if info.type == fs.FileType.File:
                return [f"{bucket}/{key}"]
        infos = filesystem.get_file_info(
            fs.FileSelector(f"{bucket}/{base}".rstrip("/"), recursive=True, allow_not_found=True)
        )
    except OSError as exc:
        raise NotReady(f"cannot list {url}: {exc}") from exc
    files = sorted(i.path for i in infos if i.type == fs.FileType.File)
    files = [f for f in files if not f.rsplit("/", 1)[-1].startswith(("_", "."))]
    if pattern:
        files = [f for f in files if _match(f.split("/", 1)[1], key)]
    if not files:
        raise InvalidInput(f"{url} matches no object", field=field)
    return files


def _match(key: str, pattern: str) -> bool:
    """fnmatch where ``*`` stays within one path segment and ``**`` spans segments."""
    if "**" in pattern:
        return fnmatch.fnmatchcase(key, pattern.replace("**", "*"))
    return len(key.split("/")) == len(pattern.split("/")) and fnmatch.fnmatchcase(key, pattern)
