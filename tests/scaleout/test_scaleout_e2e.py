"""The scale-out proof: processes that share nothing but PostgreSQL and an S3 bucket.

An admin initialises the workspace once (then its folder is deleted); two `modelcycle worker`
processes run from URLs alone, each in its own empty folder. Data lands as Parquet objects in
the bucket and is added from there; the rule queues a training job; the worker holding it is
SIGKILLed mid-training; its lease expires and the other worker trains and registers the model,
exactly once. No folder holds an artifact, and the audit chain verifies.

Smaller than issue 18's full loop (no Dask batch of 200,000 rows, no deploy or drift here): this
test proves the stateless, shared-nothing part; the data size is what keeps training running
long enough to be killed in the middle (a few seconds) and the test under a minute.
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

import psycopg
import pyarrow.parquet as pq
import pytest

from _pg import PostgresServer
from _s3 import S3Server
from modelcycle import Workspace, init_workspace
from modelcycle.datasets import make_credit
from modelcycle.settings import load_settings

RULES = """
[automations]
backoff_seconds = 0.5

[[rules]]
name = "train-on-new-data"
on = "dataset.version_created"
where = { subject_name = "credit" }
do = "train"
with = { data = "{subject_ref}", target = "default" }
"""


def _database(server: PostgresServer) -> str:
    name = f"mc_scaleout_{os.getpid()}_{time.monotonic_ns()}"
    with psycopg.connect(
        host=server.host, port=server.port, user=server.user, dbname="postgres", autocommit=True
    ) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return server.url(name)


def _wait(predicate: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def _files(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.is_file()]


@pytest.mark.postgres
def test_a_killed_workers_training_job_is_finished_by_the_other_once(
    pg_server: PostgresServer,
    s3_server: S3Server,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    db_url = _database(pg_server)
    bucket = s3_server.new_bucket()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("MODELCYCLE_")},
        **s3_server.env,
        "MODELCYCLE_DB_URL": db_url,
        "MODELCYCLE_ARTIFACTS_URL": f"s3://{bucket}/modelcycle",
        "MODELCYCLE_CONFIG": str(tmp_path / "configmap" / "modelcycle.toml"),
        # One core per worker, as a pod's CPU request would say: OpenMP's default of a thread
        # per core makes gradient boosting spin 50x slower on a busy 2-core machine.
        "OMP_NUM_THREADS": "1",
    }
    (tmp_path / "configmap").mkdir()
    Path(env["MODELCYCLE_CONFIG"]).write_text(textwrap.dedent(RULES))
    for name in list(os.environ):
        if name.startswith("MODELCYCLE_"):
            monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)

    # An admin's one-off `init`; afterwards nothing depends on that folder.
    admin, _ = init_workspace(tmp_path / "admin", db_url=db_url)
    admin.close()
    shutil.rmtree(tmp_path / "admin")

    hosts = {n: tmp_path / n for n in ("host-a", "host-b", "sdk")}
    workers: dict[str, subprocess.Popen[str]] = {}
    for name in ("host-a", "host-b"):
        hosts[name].mkdir()
        workers[name] = subprocess.Popen(
            [sys.executable, "-m", "modelcycle", "worker", "--name", name,
             "--lease", "2", "--poll", "0.1"],
            cwd=hosts[name], env={**env, "MODELCYCLE_ACTOR": name},
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
    hosts["sdk"].mkdir()
    monkeypatch.chdir(hosts["sdk"])
    ws = Workspace(settings=load_settings())
    try:
        assert ws.settings.stateless
        # Each worker registers the rule on start; events after that trigger it.
        _wait(
            lambda: any(e.action == "rules.registered" for e in ws.audit.events()),
            "the workers to register the rule",
        )
        # Data lands as Parquet objects in the bucket and is added from there.
        table = make_credit(6_000, seed=11)
        client = s3_server.client()
        for i in range(3):
            buf = io.BytesIO()
            pq.write_table(table.slice(i * 2_000, 2_000), buf)
            client.put_object(
                Bucket=bucket, Key=f"landing/credit/part-{i}.parquet", Body=buf.getvalue()
            )
        version = ws.datasets.add("credit", f"s3://{bucket}/landing/credit/*.parquet")
        assert version.num_rows == 6_000

        def training() -> bool:
            return bool(ws.pipelines.runs(pipeline="tabular-trainer", status="running"))

        t0 = time.monotonic()
        _wait(training, "a worker to start training")
        print(f"training started {time.monotonic() - t0:.1f} s after the data set was added")
        job = ws.automations.queue.list()[0]
        doomed = str(job.lease_owner)
        assert doomed in workers
        workers[doomed].send_signal(signal.SIGKILL)  # mid-training: no goodbye, no lease release
        workers[doomed].wait(timeout=10)
        assert not ws.pipelines.runs(pipeline="tabular-trainer", status="succeeded")
        survivor = next(n for n in workers if n != doomed)
        _wait(
            lambda: ws.automations.queue.list()[0].state == "succeeded",
            "the other worker to finish the job",
            timeout=90,
        )
        print(f"job finished {time.monotonic() - t0:.1f} s after the data set was added")
        job = ws.automations.queue.list()[0]
        started = [
            e for e in ws.audit.events()
            if e.subject == f"job:{job.id}" and e.action == "job.started"
        ]  # fmt: skip
        # The log the issue asks for: the killed worker's job finished by the other.
        for e in started:
            print(f"event {e.seq} {e.at} {e.action} job {job.id} by {e.payload['worker']}"
                  f" attempt {e.payload.get('attempt')}"
                  f" reclaimed_from={e.payload.get('reclaimed_from')}")  # fmt: skip
        print(f"job {job.id}: {job.state} after {job.attempts} attempts, result {job.result}")
        assert [e.payload["worker"] for e in started] == [doomed, survivor]
        assert started[1].payload["reclaimed_from"] == doomed
        assert job.attempts == 2
        # The model is registered exactly once.
        versions = ws.registry.list("credit")
        assert [v.version for v in versions] == [1]
        registered = [e for e in ws.audit.events() if e.action == "model.version_registered"]
        assert len(registered) == 1
        assert ws.registry.load("credit/1") is not None  # its bytes come back from the bucket
        # Nothing on any host: every artifact is an object in the bucket.
        for folder in hosts.values():
            assert _files(folder) == [], f"{folder} holds files"
        keys = [
            o["Key"]
            for page in client.get_paginator("list_objects_v2").paginate(
                Bucket=bucket, Prefix="modelcycle/objects/"
            )
            for o in page.get("Contents", [])
        ]
        assert len(keys) >= 2  # the data set and the model, at least
        report = ws.audit.verify()
        assert report.problem is None, report.problem
    finally:
        for proc in workers.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for name, proc in workers.items():
            try:
                out, _ = proc.communicate(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                out, _ = proc.communicate(timeout=10)
            print(f"--- worker {name} (exit {proc.returncode}) ---\n{out}")
        ws.close()
