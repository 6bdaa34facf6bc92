"""A throw-away S3 server for tests: moto's ThreadedMotoServer on 127.0.0.1, a free port.

moto keeps objects in memory and speaks the S3 REST protocol, so the real boto3 (and pyarrow)
clients talk to it over HTTP exactly as to MinIO or AWS. Production uses MinIO or AWS S3.
"""

from __future__ import annotations

import itertools
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from modelcycle import Workspace

_buckets = itertools.count()


@dataclass
class S3Server:
    endpoint: str

    @property
    def env(self) -> dict[str, str]:
        """The standard AWS variables that point a client (or a subprocess) at this server."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_REGION": "us-east-1",
        }

    def client(self) -> Any:
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            region_name="us-east-1",
        )

    def new_bucket(self) -> str:
        """A fresh, empty bucket with a name unique in this process."""
        name = f"mc-test-{os.getpid()}-{next(_buckets)}"
        self.client().create_bucket(Bucket=name)
        return name


@contextmanager
def moto_server() -> Iterator[S3Server]:
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield S3Server(f"http://{host}:{port}")
    finally:
        server.stop()


@contextmanager
def s3_workspace(server: S3Server, root: Path) -> Iterator[Workspace]:
    """A SQLite workspace initialised in ``root``, its environment pointed at ``server``.

    For module-scoped fixtures (which cannot take ``monkeypatch``): while the block runs, the
    AWS variables name ``server`` (so the workspace, the processes it starts and Dask workers
    started with ``os.environ`` reach the bucket), no ``MODELCYCLE_*`` variable names another
    workspace, and the actor is ``tester``; all undone at the end, and the workspace closed.
    """
    import pytest

    from modelcycle import init_workspace

    with pytest.MonkeyPatch.context() as mp:
        for var in (
            "MODELCYCLE_HOME", "MODELCYCLE_DB_URL", "MODELCYCLE_ARTIFACTS",
            "MODELCYCLE_ARTIFACTS_URL",
        ):  # fmt: skip
            mp.delenv(var, raising=False)
        for name, value in server.env.items():
            mp.setenv(name, value)
        mp.setenv("MODELCYCLE_ACTOR", "tester")
        ws, _ = init_workspace(root)
        try:
            yield ws
        finally:
            ws.close()
