"""What the S3 backend adds to the contract: multipart, retries, resumed reads, clear errors.

A small HTTP proxy in front of moto answers 503 SlowDown to the first requests or cuts a
response body short, as a throttled or flaky S3 endpoint does.
"""

from __future__ import annotations

import http.client
import os
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from _s3 import S3Server
from modelcycle import InvalidInput, NotReady
from modelcycle.settings import load_settings
from modelcycle.store import open_artifact_store
from modelcycle.store.s3_artifacts import S3ArtifactStore


class _Flaky:
    """A proxy to ``upstream`` that fails the next ``throttle`` requests with 503 SlowDown,
    and cuts the next ``cut`` GET bodies after half their bytes."""

    def __init__(self, upstream: str) -> None:
        self.upstream = urlsplit(upstream)
        self.throttle = 0
        self.cut = 0
        self.throttled = 0
        self.cuts = 0
        self.lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def _forward(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                with proxy.lock:
                    throttle = proxy.throttle > 0
                    proxy.throttle -= throttle
                    proxy.throttled += throttle
                    cut = self.command == "GET" and proxy.cut > 0 and "Range" not in self.headers
                    proxy.cut -= cut
                    proxy.cuts += cut
                if throttle:
                    payload = b"<Error><Code>SlowDown</Code><Message>slow</Message></Error>"
                    self.send_response(503)
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                    return
                conn = http.client.HTTPConnection(proxy.upstream.hostname, proxy.upstream.port)
                headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
                headers["Host"] = proxy.upstream.netloc
                conn.request(self.command, self.path, body=body, headers=headers)
                answer = conn.getresponse()
                data = answer.read()
                self.send_response(answer.status)
                for k, v in answer.getheaders():
                    if k.lower() not in ("transfer-encoding", "connection", "content-length"):
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if cut:
                    self.wfile.write(data[: len(data) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(data)
                conn.close()

            do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = _forward  # noqa: N815

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.endpoint = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def flaky(s3_server: S3Server, monkeypatch: pytest.MonkeyPatch) -> Iterator[_Flaky]:
    proxy = _Flaky(s3_server.endpoint)
    for name, value in s3_server.env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.endpoint)
    try:
        yield proxy
    finally:
        proxy.server.shutdown()


@pytest.fixture
def s3_env(s3_server: S3Server, monkeypatch: pytest.MonkeyPatch) -> S3Server:
    for name, value in s3_server.env.items():
        monkeypatch.setenv(name, value)
    return s3_server


def test_large_blob_goes_up_in_parts_and_streams_back(s3_env: S3Server) -> None:
    bucket = s3_env.new_bucket()
    store = open_artifact_store(f"s3://{bucket}/p")
    payload = os.urandom(17 << 20)  # three 8 MiB parts
    ref = store.put_bytes(payload)
    assert isinstance(store, S3ArtifactStore)
    head = s3_env.client().head_object(Bucket=bucket, Key=store.key(ref.sha256))
    assert head["ETag"].strip('"').endswith("-3")  # a multipart upload of three parts
    with store.open(ref.sha256) as fh:
        first = fh.read(1 << 20)  # read a little at a time: nothing holds the whole blob
        rest = fh.read()
    assert first + rest == payload
    # only the blob: no temporary key, no second copy
    keys = [o["Key"] for o in s3_env.client().list_objects_v2(Bucket=bucket)["Contents"]]
    assert keys == [f"p/objects/{ref.sha256[:2]}/{ref.sha256}"]


def test_throttling_is_retried_with_backoff(flaky: _Flaky, s3_server: S3Server) -> None:
    bucket = s3_server.new_bucket()
    store = open_artifact_store(f"s3://{bucket}")
    flaky.throttle = 3
    ref = store.put_bytes(b"weights" * 1000)
    flaky.throttle = 3
    assert store.get_bytes(ref.sha256) == b"weights" * 1000
    assert flaky.throttled == 6


def test_a_dropped_read_resumes_where_it_stopped(flaky: _Flaky, s3_server: S3Server) -> None:
    bucket = s3_server.new_bucket()
    store = open_artifact_store(f"s3://{bucket}")
    payload = os.urandom(3 << 20)
    ref = store.put_bytes(payload)
    flaky.cut = 1
    assert store.get_bytes(ref.sha256) == payload
    assert flaky.cuts == 1


def test_missing_bucket_is_named(s3_env: S3Server) -> None:
    store = open_artifact_store("s3://no-such-bucket-here/x")
    with pytest.raises(NotReady, match=r"no-such-bucket-here.*create it"):
        store.put_bytes(b"x")


@pytest.mark.parametrize("url", ["s3://", "s3://UPPER/x", "s3://ok-bucket/a//b", "s3://b/../x"])
def test_bad_s3_urls_are_refused(url: str) -> None:
    with pytest.raises(InvalidInput, match="artifacts"):
        open_artifact_store(url)


def test_artifacts_url_from_the_environment(tmp_path: Path) -> None:
    (tmp_path / ".modelcycle").mkdir()
    settings = load_settings(
        tmp_path, environ={"MODELCYCLE_ARTIFACTS_URL": "s3://team-bucket/modelcycle"}
    )
    assert settings.artifacts_url == "s3://team-bucket/modelcycle"
    (tmp_path / "modelcycle.toml").write_text('[store]\nartifacts = "s3://b2/x"\n')
    assert load_settings(tmp_path, environ={}).artifacts_url == "s3://b2/x"
