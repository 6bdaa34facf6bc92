"""``score --output s3://bucket/prefix/``: whole parts; refusals before anything is written.

The local engine here (the Dask engine's S3 runs are in tests/scoring/test_batch_dask.py and
the full loop); a SQLite workspace, moto on 127.0.0.1.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
import pytest
from sklearn.tree import DecisionTreeClassifier

from _cli import run_cli
from _s3 import S3Server, s3_workspace
from modelcycle import Conflict, InvalidInput, NotReady, Workspace
from modelcycle.datasets import make_credit
from modelcycle.store.s3_files import s3_filesystem

ROWS = 3_000


@pytest.fixture(scope="module")
def ws_s3(
    s3_server: S3Server, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Workspace, Any, S3Server, str, pa.Table]]:
    with s3_workspace(s3_server, tmp_path_factory.mktemp("s3out") / "ws") as ws:
        table = make_credit(ROWS, seed=7)
        table = table.append_column("id", pa.array(range(ROWS), type=pa.int64()))
        x = table.drop(["default", "id"]).to_pandas().select_dtypes("number")
        model = DecisionTreeClassifier(max_depth=4, random_state=0).fit(x, table["default"])
        ws.registry.register(model, "tree", input_example=x)
        bucket = s3_server.new_bucket()
        buf = io.BytesIO()
        pq.write_table(table, buf, row_group_size=1_000)
        s3_server.client().put_object(Bucket=bucket, Key="in/a.parquet", Body=buf.getvalue())
        yield ws, model, s3_server, bucket, table


def _keys(server: S3Server, bucket: str, prefix: str) -> list[str]:
    answer = server.client().list_objects_v2(Bucket=bucket, Prefix=prefix)
    return sorted(o["Key"] for o in answer.get("Contents", []))


def test_local_engine_writes_whole_parts_to_s3_and_a_rerun_is_refused(
    ws_s3: tuple[Workspace, Any, S3Server, str, pa.Table],
) -> None:
    ws, model, server, bucket, table = ws_s3
    job = ws.batch.score(
        "tree/1",
        f"s3://{bucket}/in/a.parquet",
        f"s3://{bucket}/scored/run1",  # no trailing slash: recorded with one
        workers=2,
        chunk_rows=700,
        passthrough=["id"],
    )
    assert job.status == "succeeded"
    assert job.rows_out == ROWS
    assert job.output == f"s3://{bucket}/scored/run1/"
    assert _keys(server, bucket, "scored/run1/") == [
        f"scored/run1/part-{i:05d}.parquet" for i in range(5)
    ]
    out = pq.read_table(f"{bucket}/scored/run1/", filesystem=s3_filesystem())
    assert out.column("id").to_pylist() == list(range(ROWS))
    x = table.drop(["default", "id"]).to_pandas().select_dtypes("number")
    assert out.column("prediction").to_pylist() == model.predict(x).tolist()
    # Each committed part's sha256 is that of the object's bytes.
    (chunk,) = [c for c in job.chunks if c.chunk == 0]
    body = server.client().get_object(Bucket=bucket, Key=f"scored/run1/{chunk.part}")["Body"]
    import hashlib

    assert hashlib.sha256(body.read()).hexdigest() == chunk.sha256
    jobs = len(ws.batch.list())
    with pytest.raises(Conflict, match=rf"s3://{bucket}/scored/run1/ already holds objects"):
        ws.batch.score("tree/1", f"s3://{bucket}/in/a.parquet", f"s3://{bucket}/scored/run1/")
    assert len(ws.batch.list()) == jobs  # nothing recorded


def test_bad_outputs_are_refused_before_anything_is_written(
    ws_s3: tuple[Workspace, Any, S3Server, str, pa.Table],
) -> None:
    ws, _, _, bucket, _ = ws_s3
    jobs = len(ws.batch.list())
    with pytest.raises(NotReady, match=r"the bucket 'no-such-bucket-here' does not exist") as err:
        ws.batch.score("tree/1", f"s3://{bucket}/in/a.parquet", "s3://no-such-bucket-here/x/")
    assert "testing" not in str(err.value)  # the (test) secret is never in a message
    with pytest.raises(InvalidInput, match=r"output: gs:// is not an output scheme"):
        ws.batch.score("tree/1", f"s3://{bucket}/in/a.parquet", "gs://b/x/")
    with pytest.raises(InvalidInput, match=r"output: 'A_B' is not a bucket name"):
        ws.batch.score("tree/1", f"s3://{bucket}/in/a.parquet", "s3://A_B/x/")
    assert len(ws.batch.list()) == jobs
    assert not Path("gs:").exists()


def test_cli_scores_a_csv_to_s3_with_rejects_beside_the_parts(
    ws_s3: tuple[Workspace, Any, S3Server, str, pa.Table], tmp_path: Path
) -> None:
    ws, _, server, bucket, table = ws_s3
    csv_path = tmp_path / "in.csv"
    pa_csv.write_csv(table.slice(0, 200), csv_path)
    lines = csv_path.read_text().splitlines()
    lines[5] = "not-a-number" + lines[5][lines[5].index(",") :]  # age, line 6
    csv_path.write_text("\n".join(lines) + "\n")
    proc = run_cli(
        "score", "tree/1", "--input", str(csv_path), "--output", f"s3://{bucket}/cli/",
        "--skip-bad-rows", "--workers", "1",
        cwd=ws.root, env=server.env,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"199 rows scored with tree/1 into s3://{bucket}/cli/ (1 parts)" in proc.stdout
    assert f"1 bad rows left out, listed in s3://{bucket}/cli/_rejects.csv" in proc.stdout
    rejects = server.client().get_object(Bucket=bucket, Key="cli/_rejects.csv")["Body"].read()
    assert rejects.decode().splitlines()[1].startswith("6,")
