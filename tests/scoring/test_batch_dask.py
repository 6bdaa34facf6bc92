"""The Dask engine on real clusters, input and output in S3 (moto): tasks read their own rows.

- a worker SIGKILLed mid-job: the scheduler re-runs its tasks; then the scheduler SIGKILLed:
  the job fails, and ``resume`` on another cluster finishes it; every row once;
- what the submitting process sends: task descriptions of a few hundred bytes, measured on
  the scheduler (a CSV input, whose chunks must travel, shows the measure sees rows).
"""

from __future__ import annotations

import io
import pickle
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
import pytest
from _batch_helpers import DaskCluster, features, input_table, register_credit
from distributed.diagnostics.plugin import SchedulerPlugin

from _s3 import S3Server, s3_workspace
from modelcycle import IntegrityError, Workspace
from modelcycle.scoring.batch import BatchJob
from modelcycle.store.s3_files import s3_filesystem

ROWS, CHUNK = 20_000, 500


@pytest.fixture(scope="module")
def s3_ws(
    s3_server: S3Server, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Workspace, Any, S3Server, str, pa.Table]]:
    """A SQLite workspace with credit/1, and a bucket holding the input as 4 Parquet parts."""
    with s3_workspace(s3_server, tmp_path_factory.mktemp("dask") / "ws") as ws:
        model = register_credit(ws)
        bucket = s3_server.new_bucket()
        table = input_table(ROWS)
        client = s3_server.client()
        for i in range(4):
            buf = io.BytesIO()
            part = table.slice(i * ROWS // 4, ROWS // 4)
            pq.write_table(part, buf, row_group_size=1_000)
            client.put_object(Bucket=bucket, Key=f"in/part-{i}.parquet", Body=buf.getvalue())
        yield ws, model, s3_server, bucket, table


def _read_output(url: str) -> pa.Table:
    return pq.read_table(url.removeprefix("s3://"), filesystem=s3_filesystem())


def _part_keys(server: S3Server, bucket: str, prefix: str) -> list[str]:
    answer = server.client().list_objects_v2(Bucket=bucket, Prefix=prefix)
    return sorted(o["Key"] for o in answer.get("Contents", []))


def _score_in_thread(
    ws: Workspace, inp: str, out: str, scheduler: str
) -> tuple[threading.Thread, list[int], dict[str, BatchJob | BaseException]]:
    seen: list[int] = []
    result: dict[str, BatchJob | BaseException] = {}

    def run() -> None:
        try:
            result["job"] = ws.batch.score(
                "credit/1",
                inp,
                out,
                engine="dask",
                scheduler=scheduler,
                chunk_rows=CHUNK,
                passthrough=["id"],
                progress=lambda done, total: seen.append(done),
            )
        except BaseException as exc:
            result["job"] = exc

    thread = threading.Thread(target=run)
    thread.start()
    return thread, seen, result


def _wait_for(seen: list[int], rows: int, thread: threading.Thread, result: dict[str, Any]) -> None:
    # Generous: on a loaded 2-core machine the workers' first import takes tens of seconds.
    deadline = time.monotonic() + 150
    while (not seen or seen[-1] < rows) and time.monotonic() < deadline and thread.is_alive():
        time.sleep(0.01)
    assert seen, f"no progress: {result.get('job')!r}"
    assert seen[-1] < ROWS, "the job ended before anything could be killed"


def _check_once(ws: Workspace, model: Any, table: pa.Table, job: BatchJob) -> None:
    assert job.status == "succeeded", job.error
    assert job.rows_out == ROWS
    assert len(job.chunks) == ROWS // CHUNK
    out = _read_output(job.output)
    assert out.column("id").to_pylist() == list(range(ROWS))  # every row exactly once, in order
    np.testing.assert_array_equal(
        out.column("prediction").to_numpy(), model.predict(features(table))
    )


class _PayloadMeter(SchedulerPlugin):
    """A scheduler plugin: the pickled size of each task the scheduler is given, by key."""

    name = "modelcycle-payload-meter"

    def __init__(self) -> None:
        super().__init__()
        self.sizes: dict[str, int] = {}

    def update_graph(self, scheduler: Any, *, keys: set[Any], **kwargs: Any) -> None:
        for key in keys:
            ts = scheduler.tasks.get(key)
            if ts is not None and str(key).startswith("modelcycle-batch-") and ts.run_spec:
                self.sizes[str(key)] = len(pickle.dumps(ts.run_spec, protocol=5))


@pytest.fixture(scope="module")
def metered_cluster() -> Iterator[tuple[str, _PayloadMeter]]:
    """A local cluster whose scheduler runs in this process, so a plugin can measure it."""
    from distributed import LocalCluster

    cluster = LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        dashboard_address=None,
        silence_logs=40,
    )
    meter = _PayloadMeter()
    cluster.scheduler.add_plugin(meter)
    try:
        yield cluster.scheduler_address, meter
    finally:
        cluster.close()


def test_dask_worker_then_scheduler_killed_resume_every_row_once(
    s3_ws: tuple[Workspace, Any, S3Server, str, pa.Table],
    metered_cluster: tuple[str, _PayloadMeter],
    tmp_path: Path,
) -> None:
    ws, model, server, bucket, table = s3_ws
    out = f"s3://{bucket}/out-k/"
    first = DaskCluster(tmp_path)
    try:
        thread, seen, result = _score_in_thread(
            ws, f"s3://{bucket}/in/*.parquet", out, first.address
        )
        _wait_for(seen, ROWS // 8, thread, result)
        first.workers[0].kill()  # SIGKILL: the scheduler re-runs its tasks on the other
        first.workers[0].wait(10)
        _wait_for(seen, ROWS // 2, thread, result)
        first.scheduler.kill()  # SIGKILL: every task's state is gone with it
        first.scheduler.wait(10)
        thread.join(120)
        assert not thread.is_alive(), "the job did not notice the scheduler's death"
    finally:
        first.stop()
    assert isinstance(result["job"], BaseException), result["job"]
    (stuck,) = [j for j in ws.batch.list() if j.output == out]
    partial = ws.batch.get(stuck.id)
    assert partial.status == "failed"
    assert ROWS // 2 // CHUNK <= len(partial.chunks) < ROWS // CHUNK
    # Finished on another cluster: only the chunks without a row are scored.
    address, meter = metered_cluster
    meter.sizes.clear()
    job = ws.batch.resume(stuck.id, scheduler=address)
    _check_once(ws, model, table, job)
    assert len(_part_keys(server, bucket, "out-k/")) == ROWS // CHUNK  # no stray object
    resumed = [k for k in meter.sizes if job.id in k]
    assert 0 < len(resumed) < ROWS // CHUNK  # only what was missing was submitted
    # A committed part altered in the bucket: the job can no longer be resumed, and says where.
    key = f"out-k/{job.chunks[0].part}"
    server.client().put_object(Bucket=bucket, Key=key, Body=b"not the part")
    ws.batch.records.failed(job.id, "test: pretend it failed")
    with pytest.raises(IntegrityError, match=rf"s3://{bucket}/{key} is missing or changed"):
        ws.batch.resume(job.id, scheduler="tcp://127.0.0.1:1")


def test_tasks_carry_descriptions_not_rows(
    s3_ws: tuple[Workspace, Any, S3Server, str, pa.Table],
    metered_cluster: tuple[str, _PayloadMeter],
    tmp_path: Path,
) -> None:
    ws, _, _, bucket, table = s3_ws
    address, meter = metered_cluster
    chunk_bytes = table.slice(0, 4 * CHUNK).nbytes

    def job_sizes(run: Callable[[], BatchJob]) -> list[int]:
        meter.sizes.clear()
        job = run()
        assert job.status == "succeeded", job.error
        return [size for key, size in meter.sizes.items() if job.id in key]

    parquet = job_sizes(
        lambda: ws.batch.score(
            "credit/1",
            f"s3://{bucket}/in/*.parquet",
            f"s3://{bucket}/out-p/",
            engine="dask",
            scheduler=address,
            chunk_rows=4 * CHUNK,
            passthrough=["id"],
        )
    )
    out = _read_output(f"s3://{bucket}/out-p/")
    assert out.column("id").to_pylist() == list(range(ROWS))
    assert parquet, "no task measured"
    print(
        f"Parquet tasks: {len(parquet)}, pickled {min(parquet)}-{max(parquet)} B; "
        f"a chunk's rows {chunk_bytes} B"
    )
    # A task names a run of chunks and its row groups; a chunk's rows are ~200 KB.
    assert max(parquet) < 4_000 < chunk_bytes, (max(parquet), chunk_bytes)
    # The measure sees rows when they travel: a CSV cannot be entered mid-way.
    csv_path = tmp_path / "in.csv"
    pa_csv.write_csv(table.slice(0, 8 * CHUNK), csv_path)
    csv = job_sizes(
        lambda: ws.batch.score(
            "credit/1",
            csv_path,
            f"s3://{bucket}/out-c/",
            engine="dask",
            scheduler=address,
            chunk_rows=4 * CHUNK,
            passthrough=["id"],
        )
    )
    print(f"CSV tasks: {len(csv)}, pickled {min(csv)}-{max(csv)} B")
    assert min(csv) > chunk_bytes // 2, (min(csv), chunk_bytes)
