"""The Dask engine on a real local cluster: a worker SIGKILLed mid-job (SQLite)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from _batch_helpers import DaskCluster, features, register_credit, write_input

from modelcycle import init_workspace
from modelcycle.scoring.batch import BatchJob
from modelcycle.scoring.batch_dask import model_loads

ROWS, CHUNK = 40_000, 500


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[DaskCluster]:
    c = DaskCluster(tmp_path)
    try:
        yield c
    finally:
        c.stop()


def test_dask_worker_killed_mid_job_every_row_once(
    cluster: DaskCluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for var in ("MODELCYCLE_HOME", "MODELCYCLE_DB_URL", "MODELCYCLE_ARTIFACTS"):
        monkeypatch.delenv(var, raising=False)
    ws, _ = init_workspace(tmp_path / "ws")
    model = register_credit(ws)
    table = write_input(tmp_path / "in.parquet", ROWS)
    seen: list[int] = []
    result: dict[str, BatchJob | BaseException] = {}

    def progress(done: int, total: int | None) -> None:
        seen.append(done)

    def run() -> None:
        try:
            result["job"] = ws.batch.score(
                "credit/1",
                tmp_path / "in.parquet",
                tmp_path / "out",
                engine="dask",
                scheduler=cluster.address,
                chunk_rows=CHUNK,
                passthrough=["id"],
                progress=progress,
            )
        except BaseException as exc:
            result["job"] = exc

    thread = threading.Thread(target=run)
    thread.start()
    deadline = time.monotonic() + 60
    while (not seen or seen[-1] < 10 * CHUNK) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert seen, "no progress"
    assert seen[-1] < ROWS, "the job ended before a worker could be killed"
    victim = cluster.workers[0]
    victim.kill()  # SIGKILL
    victim.wait(10)
    thread.join(120)
    job = result["job"]
    assert isinstance(job, BatchJob), job
    assert job.status == "succeeded"
    assert job.rows_out == ROWS
    out = pq.read_table(tmp_path / "out")
    assert out.column("id").to_pylist() == list(range(ROWS))  # every row exactly once, in order
    np.testing.assert_array_equal(
        out.column("prediction").to_numpy(), model.predict(features(table))
    )
    from distributed import Client

    with Client(cluster.address, timeout=30, set_as_default=False) as client:
        loads = client.run(model_loads, job.params["model_sha256"])
    assert list(loads.values()) == [1]  # the surviving worker loaded the model once
