"""Issue 18's proof: the whole loop on processes that share nothing but PostgreSQL and S3.

On 127.0.0.1: the suite's PostgreSQL, an S3 server (moto; production uses MinIO or AWS S3),
two `modelcycle worker` processes, a Dask scheduler with two Dask workers, a deploying process
and a batch process, each in its own empty folder and configured by URLs alone. An admin
initialises the workspace once (that folder is then deleted).

Data lands as Parquet objects -> the rule queues training; the worker holding the job is
SIGKILLed mid-training, its lease (2 s) expires and the other worker trains and registers
credit/1, exactly once -> credit/1 is promoted to champion -> `modelcycle deploy credit@champion
--target local` from a stateless folder starts its scoring server -> `modelcycle score --engine
dask --scheduler ...` scores 200,000 rows from S3 to S3, each row exactly once -> the deployed
server answers as the batch did -> a drift check over the scored objects -> the drift rule
queues retraining, which the surviving worker runs (credit/2). No folder holds an artifact
(the deploying host's cache holds only a bundle rebuilt from the bucket); the audit chain
verifies.

The test prints a timestamped log of each stage (the issue's closing note quotes it). Killed
Dask workers and schedulers are in tests/scoring/test_batch_dask.py.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import re
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from _pg import PostgresServer, new_database
from _s3 import S3Server
from modelcycle import Workspace, init_workspace
from modelcycle.datasets import make_credit
from modelcycle.settings import load_settings
from modelcycle.store.s3_files import s3_filesystem

ROWS = 200_000
CHUNK = 25_000
DASK = str(Path(sys.executable).with_name("dask"))
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
T = TypeVar("T")


def _wait(predicate: Callable[[], T], what: str, timeout: float = 120.0) -> T:
    """Poll until ``predicate`` returns something truthy (returned); generous bounded waits,
    as the machine running the suite may be busy."""
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        assert time.monotonic() < deadline, f"timed out after {timeout:.0f} s waiting for {what}"
        time.sleep(0.05)
    return value


def _put_parquet(client: Any, bucket: str, key: str, table: pa.Table, groups: int) -> None:
    buf = io.BytesIO()
    pq.write_table(table, buf, row_group_size=groups)
    client.put_object(Bucket=bucket, Key=key, Body=buf.getvalue())


class Processes:
    """The test's long-running processes, each with its output in a log file outside every
    host folder; stopped (SIGTERM, then SIGKILL) and their logs' tails printed at the end."""

    def __init__(self, logs: Path) -> None:
        self.logs = logs
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, name: str, cmd: list[str], *, cwd: Path, env: dict[str, str]) -> None:
        with open(self.logs / f"{name}.log", "wb") as fh:
            self.procs[name] = subprocess.Popen(
                cmd, cwd=cwd, env=env, stdout=fh, stderr=subprocess.STDOUT
            )

    def text(self, name: str) -> str:
        return (self.logs / f"{name}.log").read_text(errors="replace")

    def stop(self) -> None:
        """Last started, first stopped: the Dask workers before their scheduler (a worker told
        to stop while its scheduler closes can hang), then the modelcycle workers."""
        for proc in reversed(self.procs.values()):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
        for name, proc in self.procs.items():
            print(f"--- {name} (exit {proc.returncode}) ---\n{self.text(name)[-1500:]}")


@contextlib.contextmanager
def _deployed_servers(folder: Path) -> Iterator[None]:
    """On the way out, SIGKILL what a failed test left running from ``folder``'s deploy cache
    (routers and servers are detached: they outlive the command that started them)."""
    try:
        yield
    finally:
        for pid_file in folder.glob("modelcycle-deploy/deployments/*/*/server.pid"):
            with contextlib.suppress(ValueError, OSError):
                pid = int(pid_file.read_text().strip())
                if str(pid_file.parent).encode() in Path(f"/proc/{pid}/cmdline").read_bytes():
                    os.kill(pid, signal.SIGKILL)


@pytest.mark.postgres
@pytest.mark.timeout(600)  # ~50-90 s on 2 shared cores; every wait inside is bounded too
def test_the_loop_runs_on_processes_sharing_only_postgres_and_s3(
    pg_server: PostgresServer,
    s3_server: S3Server,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    t0 = time.monotonic()

    def log(stage: str, text: str) -> None:
        print(f"[{time.monotonic() - t0:5.1f} s] {stage}: {text}", flush=True)

    db_url = new_database(pg_server, "mc_loop")
    bucket = s3_server.new_bucket()
    base = {
        **{k: v for k, v in os.environ.items() if not k.startswith("MODELCYCLE_")},
        **s3_server.env,
        # One core per process, as a pod's CPU request would say: OpenMP's default of a thread
        # per core makes gradient boosting spin many times slower on a busy 2-core machine.
        "OMP_NUM_THREADS": "1",
        "PYTHONUNBUFFERED": "1",
    }
    env = {
        **base,
        "MODELCYCLE_DB_URL": db_url,
        "MODELCYCLE_ARTIFACTS_URL": f"s3://{bucket}/modelcycle",
        "MODELCYCLE_CONFIG": str(tmp_path / "configmap" / "modelcycle.toml"),
    }
    (tmp_path / "configmap").mkdir()
    Path(env["MODELCYCLE_CONFIG"]).write_text(textwrap.dedent(RULES))
    for name in list(os.environ):
        if name.startswith("MODELCYCLE_"):
            monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    admin, _ = init_workspace(tmp_path / "admin", db_url=db_url)  # an admin's one-off init
    admin.close()
    shutil.rmtree(tmp_path / "admin")

    names = ("worker-a", "worker-b", "dask-scheduler", "dask-0", "dask-1", "deploy", "batch")
    hosts = {n: tmp_path / "hosts" / n for n in (*names, "sdk")}
    for folder in hosts.values():
        folder.mkdir(parents=True)
    (tmp_path / "logs").mkdir()
    procs = Processes(tmp_path / "logs")
    monkeypatch.chdir(hosts["sdk"])
    ws = Workspace(settings=load_settings())
    client = s3_server.client()
    try:
        with _deployed_servers(hosts["deploy"]):
            _loop(ws, procs, hosts, env, base, client, bucket, log)
    finally:
        procs.stop()
        ws.close()


def _loop(
    ws: Workspace,
    procs: Processes,
    hosts: dict[str, Path],
    env: dict[str, str],
    base: dict[str, str],
    client: Any,
    bucket: str,
    log: Callable[[str, str], None],
) -> None:
    assert ws.settings.stateless
    # Two workers with 2-second leases (renewed every 2/3 s while a job runs), and a Dask
    # cluster, all starting together.
    workers = ("worker-a", "worker-b")
    for name in workers:
        procs.start(
            name,
            [sys.executable, "-m", "modelcycle", "worker", "--name", name,
             "--lease", "2", "--poll", "0.1"],
            cwd=hosts[name], env={**env, "MODELCYCLE_ACTOR": name},
        )  # fmt: skip
    procs.start(
        "dask-scheduler",
        [DASK, "scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard"],
        cwd=hosts["dask-scheduler"], env=base,
    )  # fmt: skip
    scheduler = _wait(
        lambda: "".join(re.findall(r"Scheduler at:\s+(tcp://\S+)", procs.text("dask-scheduler"))),
        "the Dask scheduler's address",
    )
    for i in range(2):
        procs.start(
            f"dask-{i}",
            [DASK, "worker", scheduler, "--host", "127.0.0.1", "--nthreads", "1",
             "--no-dashboard", "--no-nanny"],
            cwd=hosts[f"dask-{i}"], env=base,
        )  # fmt: skip
    _wait(
        lambda: any(e.action == "rules.registered" for e in ws.audit.events()),
        "the workers to register the rules",
    )
    log("start", f"workers {', '.join(workers)} (lease 2 s); Dask scheduler {scheduler}")

    # 1. Data lands as Parquet objects in the bucket and is added from there.
    train = make_credit(4_000, seed=11)
    for i in range(2):
        _put_parquet(client, bucket, f"landing/credit/part-{i}.parquet",
                     train.slice(i * 2_000, 2_000), 1_000)  # fmt: skip
    version = ws.datasets.add("credit", f"s3://{bucket}/landing/credit/*.parquet")
    log("data", f"credit@{version.version}: {version.num_rows} rows from s3://{bucket}/landing")

    # 2. The rule queues training; the worker that claims it is SIGKILLed in the middle.
    _wait(
        lambda: ws.pipelines.runs(pipeline="tabular-trainer", status="running"),
        "a worker to start training",
    )
    (job,) = ws.automations.queue.list()
    doomed = str(job.lease_owner)
    survivor = next(n for n in workers if n != doomed)
    log("train", f"job {job.id} (rule {job.rule}) claimed by {doomed}: attempt {job.attempts}, "
                 f"training, lease until {job.lease_expires_at}")  # fmt: skip
    procs.procs[doomed].send_signal(signal.SIGKILL)  # no goodbye, no lease released
    procs.procs[doomed].wait(timeout=30)
    killed_at = time.monotonic()
    assert not ws.pipelines.runs(pipeline="tabular-trainer", status="succeeded")
    lease = ws.automations.queue.get(job.id)
    log("kill", f"{doomed} SIGKILLed (exit {procs.procs[doomed].returncode}) mid-training; job "
                f"{job.id} {lease.state}, lease held by {lease.lease_owner} until "
                f"{lease.lease_expires_at}")  # fmt: skip

    def started() -> list[Any]:
        return [
            e for e in ws.audit.events()
            if e.subject == f"job:{job.id}" and e.action == "job.started"
        ]  # fmt: skip

    taken = _wait(lambda: started()[1:], "the lease to expire and the other worker to take the job")
    log("lease", f"{doomed}'s lease expired at {lease.lease_expires_at}; "
                 f"{taken[0].payload['worker']} took job {job.id} at {taken[0].at}, "
                 f"{time.monotonic() - killed_at:.1f} s after the kill (attempt "
                 f"{taken[0].payload.get('attempt')}, reclaimed_from="
                 f"{taken[0].payload.get('reclaimed_from')})")  # fmt: skip
    # Taken over only once the lease had run out, not before.
    assert datetime.fromisoformat(taken[0].at) >= datetime.fromisoformat(
        str(lease.lease_expires_at)
    )
    (done,) = _wait(
        lambda: [j for j in [ws.automations.queue.get(job.id)] if j.state in ("succeeded", "dead")],
        "the other worker to finish the training job",
        timeout=240,
    )
    log("train", f"job {job.id} {done.state} by {survivor} after {done.attempts} attempts: "
                 f"{done.result}")  # fmt: skip
    events = started()
    assert [e.payload["worker"] for e in events] == [doomed, survivor]
    assert events[1].payload["reclaimed_from"] == doomed
    assert (done.state, done.attempts) == ("succeeded", 2)
    # The model is registered exactly once, and its bytes come back from the bucket.
    assert [v.version for v in ws.registry.list("credit")] == [1]
    registered = [e for e in ws.audit.events() if e.action == "model.version_registered"]
    assert len(registered) == 1
    model_sha = ws.registry.get("credit/1").sha256
    # (loading it here would only repeat, at 7 s of imports, what the deploy's smoke test does)
    assert hashlib.sha256(ws.artifacts.get_bytes(model_sha)).hexdigest() == model_sha
    log("exactly-once", f"credit versions {[v.version for v in ws.registry.list('credit')]}, "
                        f"{len(registered)} model.version_registered event")  # fmt: skip

    # 3. credit/1 passes the promotion gate (no champion yet) and becomes champion; a stateless
    # process deploys the champion to a local endpoint (bundle built from the bucket's model).
    promoted = ws.registry.promote("credit/1", "champion")
    log("promote", f"credit/{promoted.version} is champion (first holder: {promoted.first})")
    assert (promoted.moved, ws.registry.get("credit@champion").version) == (True, 1)
    deploy_started, deployed_at = time.monotonic(), []
    procs.start(
        "deploy",
        [sys.executable, "-m", "modelcycle", "deploy", "credit@champion", "--endpoint", "credit",
         "--target", "local", "--ready-timeout", "180"],
        cwd=hosts["deploy"], env={**env, "MODELCYCLE_ACTOR": "deployer"},
    )  # fmt: skip

    def deployed() -> None:  # when the command returned, while the batch runs
        procs.procs["deploy"].wait()
        deployed_at.append(time.monotonic())

    threading.Thread(target=deployed, daemon=True).start()

    # 4. Meanwhile the new applicants land, and the Dask cluster scores 200,000 rows S3 -> S3.
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
    started_batch = time.monotonic()
    scored = subprocess.run(
        [sys.executable, "-m", "modelcycle", "score", "credit@champion",
         "--input", f"s3://{bucket}/incoming/*.parquet",
         "--output", f"s3://{bucket}/scored/credit-1/",
         "--engine", "dask", "--scheduler", scheduler, "--chunk-rows", str(CHUNK),
         "--passthrough", ",".join(["id", *features])],
        cwd=hosts["batch"], env={**env, "MODELCYCLE_ACTOR": "batch"},
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert scored.returncode == 0, scored.stdout + scored.stderr
    log("batch", f"{scored.stdout.strip()} in {time.monotonic() - started_batch:.1f} s")
    (batch,) = ws.batch.list()
    batch = ws.batch.get(batch.id)
    out = pq.read_table(f"{bucket}/scored/credit-1/", filesystem=s3_filesystem())
    ids = out.column("id").to_numpy()
    parts = sorted(
        o["Key"] for o in client.list_objects_v2(Bucket=bucket, Prefix="scored/")["Contents"]
    )
    log(
        "exactly-once",
        f"job {batch.id} ({batch.engine}) {batch.status}: rows_in={batch.rows_in} "
        f"rows_out={batch.rows_out} chunks={len(batch.chunks)}/{batch.chunks_total}; output "
        f"{out.num_rows} rows, {len(set(ids.tolist()))} distinct ids, ids == 0..{ROWS - 1} "
        f"in order: {ids.tolist() == list(range(ROWS))}; {len(parts)} objects",
    )
    assert batch.status == "succeeded"
    assert batch.rows_in == batch.rows_out == out.num_rows == ROWS
    assert ids.tolist() == list(range(ROWS))  # every row exactly once, in input order
    assert parts == [f"scored/credit-1/part-{i:05d}.parquet" for i in range(ROWS // CHUNK)]
    assert [c.chunk for c in batch.chunks] == list(range(ROWS // CHUNK))

    # The deployed endpoint answers with the model it was built from: the batch's predictions.
    _wait(lambda: deployed_at, "the deploy command", timeout=300)
    said = procs.text("deploy")
    assert procs.procs["deploy"].returncode == 0, said
    active = ws.deploy.active("credit")
    assert active is not None
    assert active.instance is not None
    log("deploy", f"from a stateless folder, alongside the batch, in "
                  f"{deployed_at[0] - deploy_started:.1f} s: {said.strip()}; record "
                  f"{active.id} {active.status} by {active.created_by}")  # fmt: skip
    rows = current.slice(0, 5).select(features).to_pylist()
    answer = httpx.post(f"{active.url}/predict", json={"rows": rows}, timeout=60).json()
    log("serve", f"{active.url} answered {answer}")
    assert answer["predictions"] == out.column("prediction").to_pylist()[:5]

    # 5. A drift check over the scored objects; the rule queues retraining.
    check = ws.monitoring.drift(
        model="credit/1", current=f"s3://{bucket}/scored/credit-1/", window=None
    )
    drifted = [c.name for c in check.report.columns if c.drifted]
    log("drift", f"check {check.id}: detected={check.detected}, drifted columns {drifted}")
    assert check.detected
    assert {"age", "income", "loan_amount"} <= set(drifted)

    def retrain() -> list[Any]:
        return [j for j in ws.automations.queue.list() if j.rule == "retrain-on-drift"]

    (queued,) = _wait(retrain, "the drift rule to queue retraining")
    log("retrain", f"job {queued.id} queued by rule {queued.rule} ({queued.state})")
    (retrained,) = _wait(
        lambda: [j for j in retrain() if j.state in ("succeeded", "dead")],
        "the retraining job",
        timeout=240,
    )
    assert retrained.state == "succeeded", retrained.error
    assert [v.version for v in ws.registry.list("credit")] == [1, 2]
    log("retrain", f"job {queued.id} succeeded on {survivor}: {retrained.result}")

    # 6. The endpoint stops from the folder it was deployed from.
    stopped = subprocess.run(
        [sys.executable, "-m", "modelcycle", "deployments", "stop", "credit"],
        cwd=hosts["deploy"], env={**env, "MODELCYCLE_ACTOR": "deployer"},
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert stopped.returncode == 0, stopped.stdout + stopped.stderr
    assert ws.deploy.show("credit").status == "stopped"

    # No host holds an artifact: the deploying host's cache (modelcycle-deploy/, deletable)
    # holds the bundle it rebuilt, whose model is byte for byte an object in the bucket; no
    # other file anywhere. The chain verifies.
    keys = [
        o["Key"]
        for page in client.get_paginator("list_objects_v2").paginate(
            Bucket=bucket, Prefix="modelcycle/"
        )
        for o in page.get("Contents", [])
    ]
    assert any(model_sha in k for k in keys), "credit/1's blob is not in the bucket"
    for name, folder in hosts.items():
        files = [p.relative_to(folder) for p in folder.rglob("*") if p.is_file()]
        if name != "deploy":
            assert files == [], f"{folder} holds files: {files}"
            continue
        assert all(f.parts[0] == "modelcycle-deploy" for f in files), files
        models = [folder / f for f in files if f.parent.name == "model" and f.stem == "model"]
        assert models, files
        for model in models:
            assert hashlib.sha256(model.read_bytes()).hexdigest() == model_sha
    report = ws.audit.verify()
    assert report.problem is None, report.problem
    log("done", f"endpoint stopped; audit chain verifies ({report.events} events); "
                f"{len(keys)} objects in the bucket; no host folder holds a file but the "
                f"deploying host's bundle cache")  # fmt: skip
