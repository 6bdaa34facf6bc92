"""Data sets and batch inputs straight from S3 (moto), in a workspace whose artifacts are in S3."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sklearn.tree import DecisionTreeClassifier

from _s3 import S3Server
from modelcycle import InvalidInput, Workspace, init_workspace
from modelcycle.datasets import make_credit


def _upload(server: S3Server, bucket: str, key: str, table: pa.Table) -> None:
    buf = io.BytesIO()
    pq.write_table(table, buf, row_group_size=250)
    server.client().put_object(Bucket=bucket, Key=key, Body=buf.getvalue())


@pytest.fixture(scope="module")
def s3_workspace(
    s3_server: S3Server, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Workspace, S3Server, str]]:
    with pytest.MonkeyPatch.context() as mp:
        for name, value in s3_server.env.items():
            mp.setenv(name, value)
        mp.delenv("MODELCYCLE_HOME", raising=False)
        mp.delenv("MODELCYCLE_DB_URL", raising=False)
        bucket = s3_server.new_bucket()
        mp.setenv("MODELCYCLE_ARTIFACTS_URL", f"s3://{bucket}/mc")
        root = tmp_path_factory.mktemp("s3ws")
        ws, _ = init_workspace(root / "ws", db_url=f"sqlite:///{root / 'meta.db'}")
        table = make_credit(1200, seed=5)
        for i in range(3):
            _upload(s3_server, bucket, f"raw/credit/part-{i}.parquet", table.slice(i * 400, 400))
        _upload(s3_server, bucket, "raw/other/x.parquet", table.slice(0, 10))
        try:
            yield ws, s3_server, bucket
        finally:
            ws.close()


def test_data_add_reads_parquet_parts_from_s3(
    s3_workspace: tuple[Workspace, S3Server, str],
) -> None:
    ws, server, bucket = s3_workspace
    version = ws.datasets.add("credit", f"s3://{bucket}/raw/credit/*.parquet")
    assert version.num_rows == 1200
    local = ws.datasets.add("credit", make_credit(1200, seed=5))  # the same rows, read locally
    assert local.version == version.version  # same content hash: not a new version
    # the data set's artifact is in the bucket, and nothing under the workspace folder
    keys = [o["Key"] for o in server.client().list_objects_v2(Bucket=bucket)["Contents"]]
    assert any(k.startswith("mc/objects/") for k in keys)
    assert not (ws.root / ".modelcycle" / "artifacts").exists()


def test_a_glob_matching_nothing_is_named(s3_workspace: tuple[Workspace, S3Server, str]) -> None:
    ws, _, bucket = s3_workspace
    with pytest.raises(InvalidInput, match=r"source: .*nothing-here.*matches no object"):
        ws.datasets.add("credit", f"s3://{bucket}/nothing-here/*.parquet")


def test_score_reads_its_input_from_s3(
    s3_workspace: tuple[Workspace, S3Server, str], tmp_path: Path
) -> None:
    ws, _, bucket = s3_workspace
    table = make_credit(1200, seed=5)
    x = table.drop(["default"]).to_pandas()
    y = np.asarray(table.column("default"))
    numeric = x.select_dtypes("number")
    # A tree handles the nulls in the data and uses no OpenMP threads (slow on a busy box).
    model = DecisionTreeClassifier(max_depth=4, random_state=0).fit(numeric, y)
    ws.registry.register(model, "s3credit", input_example=numeric)
    job = ws.batch.score(
        "s3credit/1", f"s3://{bucket}/raw/credit/*.parquet", tmp_path / "out", workers=1
    )
    assert job.status == "succeeded"
    assert job.input == f"s3://{bucket}/raw/credit/*.parquet"
    out = pq.read_table(tmp_path / "out")
    assert out.num_rows == 1200
    expected = model.predict(numeric)
    assert np.array_equal(np.asarray(out.column("prediction")), expected)
