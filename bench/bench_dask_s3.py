"""Batch scoring S3 -> S3: rows/s of the Dask engine and of the local engine, against a floor.

An S3 server (``moto_server``, a separate process on 127.0.0.1; production uses MinIO or AWS)
holds the input as 4 Parquet parts (row groups of 50,000). The model is bench_batch's:
``Pipeline(StandardScaler, HistGradientBoostingClassifier(max_iter=100))`` on 20 features of
``make_classification(random_state=42)``. Measured in the same run, interleaved, each a fresh
process timed whole (interpreter, imports, model load, cluster start included):

- floor: one process reading the whole input from S3 with pyarrow, ``model.predict`` on all of
  it, the predictions written back to S3 as one Parquet object;
- local: ``modelcycle score MODEL --input s3://... --output s3://... --workers N``;
- dask: the same with ``--engine dask`` and no ``--scheduler``: the job starts a
  ``LocalCluster`` of N single-thread worker processes, whose tasks read their own row groups
  from S3 and upload their own parts; the submitting process ships task descriptions;
- dask, running cluster: ``--scheduler`` of a cluster (``dask scheduler`` + N ``dask worker``
  processes, one thread each) that the bench starts once and warms with one untimed job, as a
  cluster stays up between jobs: the job pays no cluster start, imports or model load.

    .venv/bin/python bench/bench_dask_s3.py [--rows 400000] [--workers 2] [--repeat 3]
"""

from __future__ import annotations

import argparse
import io
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

FEATURES = 20
PARTS = 4

_FLOOR = """
import io, sys, warnings
import joblib, numpy as np, pyarrow as pa, pyarrow.parquet as pq
from pyarrow import fs
warnings.filterwarnings("ignore", message="X does not have valid feature names")
s3 = fs.S3FileSystem(endpoint_override=sys.argv[2], scheme="http", region="us-east-1")
model = joblib.load(sys.argv[1])
tbl = pq.read_table(sys.argv[3], filesystem=s3)
X = np.column_stack([tbl.column(i).to_numpy() for i in range(tbl.num_columns)])
del tbl
pred = model.predict(X)
pq.write_table(pa.table({"prediction": pred}), sys.argv[4], filesystem=s3)
print(len(pred))
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _env(endpoint: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODELCYCLE_")}
    env.update(
        AWS_ENDPOINT_URL=endpoint,
        AWS_ACCESS_KEY_ID="bench",
        AWS_SECRET_ACCESS_KEY="bench",
        AWS_REGION="us-east-1",
        AWS_DEFAULT_REGION="us-east-1",
    )
    return env


def _setup(root: Path, rows: int, endpoint: str) -> None:
    import boto3
    import joblib
    import numpy as np
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq
    from sklearn.datasets import make_classification
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    from modelcycle import init_workspace

    names = [f"f{i}" for i in range(FEATURES)]
    x, y = make_classification(
        n_samples=50_000 + rows,
        n_features=FEATURES,
        n_informative=10,
        n_redundant=4,
        n_classes=2,
        flip_y=0.02,
        class_sep=0.8,
        random_state=42,
    )
    train = pd.DataFrame(x[:50_000], columns=names)
    model = Pipeline(
        [("scale", StandardScaler()), ("clf", HistGradientBoostingClassifier(max_iter=100))]
    ).fit(train, y[:50_000].astype(np.int64))
    joblib.dump(model, root / "model.joblib")
    ws, _ = init_workspace(root / "ws")
    ws.registry.register(model, "bench", input_example=train.head(100))
    ws.close()
    client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
    client.create_bucket(Bucket="bench")
    data = x[50_000:]
    per = rows // PARTS
    for i in range(PARTS):
        part = data[i * per : (i + 1) * per if i < PARTS - 1 else rows]
        buf = io.BytesIO()
        table = pa.table({name: part[:, j] for j, name in enumerate(names)})
        pq.write_table(table, buf, row_group_size=50_000)
        client.put_object(Bucket="bench", Key=f"in/part-{i}.parquet", Body=buf.getvalue())


def _cluster(
    root: Path, workers: int, env: dict[str, str]
) -> tuple[str, list[subprocess.Popen[bytes]]]:
    dask = str(Path(sys.executable).with_name("dask"))
    log = root / "scheduler.log"
    with open(log, "wb") as fh:
        procs = [
            subprocess.Popen(
                [dask, "scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard"],
                stdout=fh,
                stderr=subprocess.STDOUT,
                env=env,
            )
        ]
    deadline = time.monotonic() + 60
    address = ""
    while not address:
        found = re.search(r"Scheduler at:\s+(tcp://\S+)", log.read_text(errors="replace"))
        if found:
            address = found.group(1)
        elif time.monotonic() > deadline:
            raise SystemExit(f"no scheduler address:\n{log.read_text()}")
        else:
            time.sleep(0.1)
    for _ in range(workers):
        procs.append(
            subprocess.Popen(
                [
                    dask,
                    "worker",
                    address,
                    "--host",
                    "127.0.0.1",
                    "--nthreads",
                    "1",
                    "--no-dashboard",
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                env=env,
            )
        )
    from distributed import Client

    with Client(address, timeout=60, set_as_default=False) as client:
        client.wait_for_workers(workers, timeout=180)
    return address, procs


def _run(argv: list[str], cwd: Path, env: dict[str, str]) -> float:
    started = time.perf_counter()
    proc = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(argv)}\n{proc.stdout}\n{proc.stderr}")
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=400_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    port = _free_port()
    endpoint = f"http://127.0.0.1:{port}"
    cluster: list[subprocess.Popen[bytes]] = []
    moto = subprocess.Popen(
        [str(Path(sys.executable).with_name("moto_server")), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise SystemExit("moto_server did not start") from None
                time.sleep(0.1)
        with tempfile.TemporaryDirectory(prefix="bench-dask-s3-") as tmp:
            root = Path(tmp)
            env = _env(endpoint)
            os.environ.update(env)
            _setup(root, args.rows, endpoint)
            src = "s3://bench/in/*.parquet"
            address, cluster = _cluster(root, args.workers, env)
            score = [sys.executable, "-m", "modelcycle", "score", "bench/1", "--input", src]
            warm = ["--output", "s3://bench/warm/", "--engine", "dask", "--scheduler", address]
            _run([*score, *warm], root / "ws", env)  # imports and model load on the workers
            times: dict[str, list[float]] = {"floor": [], "local": [], "dask": [], "running": []}
            load = [open("/proc/loadavg").read().split()[0]]  # noqa: SIM115
            for r in range(args.repeat):
                times["floor"].append(
                    _run(
                        [
                            sys.executable,
                            "-c",
                            _FLOOR,
                            str(root / "model.joblib"),
                            f"127.0.0.1:{port}",
                            "bench/in",
                            f"bench/floor-{r}.parquet",
                        ],
                        root,
                        env,
                    )
                )
                for engine in ("local", "dask", "running"):
                    extra = {
                        "local": [],
                        "dask": ["--engine", "dask"],
                        "running": ["--engine", "dask", "--scheduler", address],
                    }[engine]
                    times[engine].append(
                        _run(
                            [
                                sys.executable,
                                "-m",
                                "modelcycle",
                                "score",
                                "bench/1",
                                "--input",
                                src,
                                "--output",
                                f"s3://bench/out-{engine}-{r}/",
                                "--workers",
                                str(args.workers),
                                *extra,
                            ],
                            root / "ws",
                            env,
                        )
                    )
                print(
                    f"round {r + 1}: " + ", ".join(f"{k} {v[-1]:.1f} s" for k, v in times.items()),
                    flush=True,
                )
            load.append(open("/proc/loadavg").read().split()[0])  # noqa: SIM115
    finally:
        for proc in [*cluster, moto]:
            proc.terminate()
        for proc in [*cluster, moto]:
            proc.wait(20)
    floor = statistics.median(times["floor"])
    print(f"\n{args.rows:,} rows S3 -> S3, {args.workers} workers, median of {args.repeat}, ")
    print(f"load average {load[0]} before, {load[1]} after (2 cores)\n")
    print("| what | seconds | rows/s | ratio to floor |")
    print("| --- | ---: | ---: | ---: |")
    for name, label in [
        ("floor", "floor: one process, read all, predict all, write"),
        ("local", f"local engine x{args.workers}"),
        ("dask", f"Dask engine, local cluster of {args.workers} started by the job"),
        ("running", f"Dask engine, running cluster of {args.workers}"),
    ]:
        secs = statistics.median(times[name])
        print(f"| {label} | {secs:.1f} | {args.rows / secs:,.0f} | {floor / secs:.2f} |")


if __name__ == "__main__":
    main()
