"""The full loop on processes that share nothing but PostgreSQL and an S3 bucket (issue 18).

Data lands as Parquet objects -> a `modelcycle worker` (its own empty folder) trains and
registers credit/1 -> credit/1 is promoted to champion -> a `modelcycle serve credit@champion`
process started from the URLs alone pulls the model from the bucket and answers -> a
`modelcycle score --engine dask` process (its own empty folder, a local cluster of 2 workers)
scores 200,000 rows from S3 to S3, each row exactly once -> a drift check over the scored
objects -> the drift rule queues retraining, which the worker runs (credit/2). No folder holds
an artifact; the audit chain verifies.

The SIGKILLed worker whose job another worker finishes is in test_scaleout_e2e.py; killed
Dask workers and schedulers in tests/scoring/test_batch_dask.py.
"""

from __future__ import annotations

import io
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import psycopg
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from _pg import PostgresServer
from _s3 import S3Server
from modelcycle import Workspace, init_workspace
from modelcycle.datasets import make_credit
from modelcycle.settings import load_settings
from modelcycle.store.s3_files import s3_filesystem

ROWS = 200_000
CHUNK = 25_000
RULES = """
[automations]
backoff_seconds = 0.5

[monitoring.drift]
drift_share = 0.25   # the data set drifts when a quarter of the model's inputs do

[[rules]]
name = "train-on-new-data"
on = "dataset.version_created"
where = { subject_name = "credit" }
do = "train"
with = { data = "{subject_ref}", target = "default" }

[[rules]]
name = "retrain-on-drift"
on = "drift.detected"
where = { subject_name = "credit" }
do = "train"
with = { data = "credit", target = "default", seed = 1 }
"""


def _database(server: PostgresServer) -> str:
    name = f"mc_loop_{os.getpid()}_{time.monotonic_ns()}"
    with psycopg.connect(
        host=server.host, port=server.port, user=server.user, dbname="postgres", autocommit=True
    ) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return server.url(name)


def _wait(predicate: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _put_parquet(client: object, bucket: str, key: str, table: pa.Table, groups: int) -> None:
    buf = io.BytesIO()
    pq.write_table(table, buf, row_group_size=groups)
    client.put_object(Bucket=bucket, Key=key, Body=buf.getvalue())  # type: ignore[attr-defined]


@pytest.mark.postgres
def test_the_loop_runs_on_processes_sharing_only_postgres_and_s3(
    pg_server: PostgresServer,
    s3_server: S3Server,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    t0 = time.monotonic()

    def log(stage: str, text: str) -> None:
        print(f"[{time.monotonic() - t0:5.1f} s] {stage}: {text}")

    db_url = _database(pg_server)
    bucket = s3_server.new_bucket()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("MODELCYCLE_")},
        **s3_server.env,
        "MODELCYCLE_DB_URL": db_url,
        "MODELCYCLE_ARTIFACTS_URL": f"s3://{bucket}/modelcycle",
        "MODELCYCLE_CONFIG": str(tmp_path / "configmap" / "modelcycle.toml"),
        "OMP_NUM_THREADS": "1",  # one core per process, as a pod's CPU request would say
    }
    (tmp_path / "configmap").mkdir()
    Path(env["MODELCYCLE_CONFIG"]).write_text(textwrap.dedent(RULES))
    for name in list(os.environ):
        if name.startswith("MODELCYCLE_"):
            monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    admin, _ = init_workspace(tmp_path / "admin", db_url=db_url)  # a one-off init
    admin.close()
    shutil.rmtree(tmp_path / "admin")

    hosts = {n: tmp_path / n for n in ("worker", "server", "batch", "sdk")}
    for folder in hosts.values():
        folder.mkdir()
    procs: dict[str, subprocess.Popen[str]] = {}
    procs["worker"] = subprocess.Popen(
        [sys.executable, "-m", "modelcycle", "worker", "--name", "worker-a", "--poll", "0.1"],
        cwd=hosts["worker"], env={**env, "MODELCYCLE_ACTOR": "worker-a"},
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    monkeypatch.chdir(hosts["sdk"])
    ws = Workspace(settings=load_settings())
    client = s3_server.client()
    try:
        assert ws.settings.stateless
        _wait(
            lambda: any(e.action == "rules.registered" for e in ws.audit.events()),
            "the worker to register the rules",
        )
        # 1. Data lands as Parquet objects in the bucket and is added from there.
        train = make_credit(4_000, seed=11)
        for i in range(2):
            _put_parquet(client, bucket, f"landing/credit/part-{i}.parquet",
                         train.slice(i * 2_000, 2_000), 1_000)  # fmt: skip
        version = ws.datasets.add("credit", f"s3://{bucket}/landing/credit/*.parquet")
        log("data", f"credit@{version.version}: {version.num_rows} rows from s3://{bucket}/landing")

        # 2. The worker trains and registers.
        _wait(lambda: _has_model(ws, "credit"), "the worker to register credit/1", 90)
        _wait(lambda: ws.automations.queue.list()[0].state == "succeeded", "the training job")
        (first_job,) = ws.automations.queue.list()
        by = [
            e.payload["worker"]
            for e in ws.audit.events()
            if e.subject == f"job:{first_job.id}" and e.action == "job.started"
        ]
        log("train", f"job {first_job.id} (rule {first_job.rule}) by {by}: {first_job.result}")

        # 3. credit/1 passes the promotion gate (no champion yet) and becomes champion; a
        # scoring process started from the URLs alone serves the champion, pulling its model
        # from the bucket.
        promoted = ws.registry.promote("credit/1", "champion")
        log("promote", f"credit/{promoted.version} is champion (first holder: {promoted.first})")
        assert (promoted.moved, ws.registry.get("credit@champion").version) == (True, 1)
        port = _free_port()
        procs["server"] = subprocess.Popen(
            [sys.executable, "-m", "modelcycle", "serve", "credit@champion", "--port", str(port)],
            cwd=hosts["server"], env={**env, "MODELCYCLE_ACTOR": "server"},
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
        )  # fmt: skip

        # 4. A Dask batch job (local cluster, 2 workers) scores 200,000 rows S3 -> S3.
        current = make_credit(ROWS, seed=12)
        # The applicants changed: older, richer, borrowing more than those trained on.
        current = current.set_column(0, "age", pc.add(current.column("age"), 15))
        for i, name in [(1, "income"), (5, "loan_amount")]:
            current = current.set_column(i, name, pc.multiply(current.column(name), 1.8))
        current = current.append_column("id", pa.array(range(ROWS), type=pa.int64()))
        for i in range(4):
            part = current.slice(i * ROWS // 4, ROWS // 4)
            _put_parquet(client, bucket, f"incoming/part-{i}.parquet", part, CHUNK)
        features = [f for f in train.column_names if f != "default"]
        started = time.monotonic()
        scored = subprocess.run(
            [sys.executable, "-m", "modelcycle", "score", "credit@champion",
             "--input", f"s3://{bucket}/incoming/*.parquet",
             "--output", f"s3://{bucket}/scored/credit-1/",
             "--engine", "dask", "--workers", "2", "--chunk-rows", str(CHUNK),
             "--passthrough", ",".join(["id", *features])],
            cwd=hosts["batch"], env={**env, "MODELCYCLE_ACTOR": "batch"},
            capture_output=True, text=True, timeout=180,
        )  # fmt: skip
        assert scored.returncode == 0, scored.stdout + scored.stderr
        log("batch", f"{scored.stdout.strip()} in {time.monotonic() - started:.1f} s")
        (job,) = ws.batch.list()
        job = ws.batch.get(job.id)
        out = pq.read_table(f"{bucket}/scored/credit-1/", filesystem=s3_filesystem())
        ids = out.column("id").to_numpy()
        parts = sorted(
            o["Key"]
            for o in client.list_objects_v2(Bucket=bucket, Prefix="scored/credit-1/")["Contents"]
        )
        log(
            "exactly-once",
            f"job {job.id} ({job.engine}) {job.status}: rows_in={job.rows_in} "
            f"rows_out={job.rows_out} chunks={len(job.chunks)}/{job.chunks_total}; output "
            f"{out.num_rows} rows, {len(set(ids.tolist()))} distinct ids, ids == 0..{ROWS - 1} "
            f"in order: {ids.tolist() == list(range(ROWS))}; {len(parts)} objects",
        )
        assert job.status == "succeeded"
        assert job.rows_in == job.rows_out == out.num_rows == ROWS
        assert ids.tolist() == list(range(ROWS))  # every row exactly once, in input order
        assert parts == [f"scored/credit-1/part-{i:05d}.parquet" for i in range(ROWS // CHUNK)]
        assert [c.chunk for c in job.chunks] == list(range(ROWS // CHUNK))

        # The server answers with the model it pulled from the bucket: the batch's predictions.
        url = f"http://127.0.0.1:{port}"
        _wait(lambda: _ready(url), "the scoring server", 90)
        rows = current.slice(0, 5).select(features).to_pylist()
        answer = httpx.post(f"{url}/predict", json={"rows": rows}, timeout=30).json()
        log("serve", f"{url} answered {answer}")
        assert answer["predictions"] == out.column("prediction").to_pylist()[:5]

        # 5. A drift check over the scored objects; the rule queues retraining.
        check = ws.monitoring.drift(
            model="credit/1", current=f"s3://{bucket}/scored/credit-1/", window=None
        )
        drifted = [c.name for c in check.report.columns if c.drifted]
        log("drift", f"check {check.id}: detected={check.detected}, drifted columns {drifted}")
        assert check.detected
        assert {"age", "income", "loan_amount"} <= set(drifted)

        def retrain() -> list[object]:
            return [j for j in ws.automations.queue.list() if j.rule == "retrain-on-drift"]

        _wait(lambda: bool(retrain()), "the drift rule to queue retraining")
        (queued,) = retrain()
        log("retrain", f"job {queued.id} queued by rule {queued.rule} ({queued.state})")
        _wait(lambda: retrain()[0].state == "succeeded", "the retraining job", 90)  # type: ignore[attr-defined]
        assert [v.version for v in ws.registry.list("credit")] == [1, 2]
        log("retrain", f"job {queued.id} succeeded: {retrain()[0].result}")  # type: ignore[attr-defined]

        # No host holds an artifact or data file (the live server's Prometheus counters, in
        # modelcycle-run/ of its deletable cache, are not kept state); the chain verifies.
        for folder in hosts.values():
            kept = [
                p.relative_to(folder)
                for p in folder.rglob("*")
                if p.is_file() and p.relative_to(folder).parts[0] != "modelcycle-run"
            ]
            assert kept == [], f"{folder} holds files"
        report = ws.audit.verify()
        assert report.problem is None, report.problem
        log("done", f"audit chain verifies ({report.events} events); no host folder holds a file")
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for name, proc in procs.items():
            try:
                text, _ = proc.communicate(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                text, _ = proc.communicate(timeout=10)
            print(f"--- {name} (exit {proc.returncode}) ---\n{text[-3000:]}")
        ws.close()


def _has_model(ws: Workspace, name: str) -> bool:
    from modelcycle import NotFound

    try:
        return bool(ws.registry.list(name))
    except NotFound:
        return False


def _ready(url: str) -> bool:
    try:
        return httpx.get(f"{url}/v2/health/ready", timeout=1).status_code == 200
    except httpx.TransportError:
        return False
