"""Batch scoring: rows/s and peak memory of the local and Dask engines, against a floor.

Model, rows and floor are the reference harness's (``../shared/bench/batch_peer.sh``): the
model is ``Pipeline(StandardScaler, HistGradientBoostingClassifier(max_iter=100))`` trained on
50,000 rows of ``make_classification(n_features=20, n_informative=10, n_redundant=4,
flip_y=0.02, class_sep=0.8, random_state=42)``; the input is further rows of that generator in
Parquet (row groups of 100,000). The floor is measured in the same run: one process reading the
whole Parquet file with pyarrow, ``model.predict`` on the full array (library defaults: OpenMP
on every core) and the predictions written as Parquet. The local engine runs as a user runs it,
``modelcycle score MODEL --input IN --output OUT --workers N``. Every measurement is a fresh
process timed whole, from start to exit (interpreter, imports, model load included, as a user
running it would wait), and the runs are interleaved and repeated so that the machine's noise
hits each alike; the median is shown.

Memory: ``peak RSS`` is the largest high-water mark (``VmHWM``) of the measurement's own
processes: the floor's one process; for the local engine the coordinating process and each
worker (forked, so their RSS counts the libraries and model they share); for Dask the
submitting process and each cluster worker. ``sum PSS`` samples the proportional set size of
the local engine's whole process tree every 50 ms (shared pages counted once): the memory the
job costs the machine.

    .venv/bin/python bench/bench_batch.py [--rows 1000000] [--workers 2] [--repeat 3] [--no-dask]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import psutil

FEATURES = 20
MB = 1024 * 1024
_WORKER_FLAGS = ("--nthreads", "1", "--no-dashboard", "--no-nanny")

# The process's own high-water mark: ``ru_maxrss`` would also count the bench's memory, which
# Linux carries over into a child across fork and exec.
_HWM = """
def hwm():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0
"""

_FLOOR = (
    _HWM
    + """
import json, sys, warnings
import joblib, numpy as np, pyarrow as pa, pyarrow.parquet as pq
warnings.filterwarnings("ignore", message="X does not have valid feature names")
model = joblib.load(sys.argv[1] + "/model.joblib")
tbl = pq.read_table(sys.argv[2])
X = np.column_stack([tbl.column(i).to_numpy() for i in range(tbl.num_columns)])
del tbl
pred = model.predict(X)
pq.write_table(pa.table({"prediction": pred}), sys.argv[3])
print(json.dumps({"rows": int(len(pred)), "peak": hwm()}))
"""
)

_DASK = (
    _HWM
    + """
import json, sys
from distributed import Client
from modelcycle import Workspace
ws = Workspace(sys.argv[1])
job = ws.batch.score("bench/1", sys.argv[2], sys.argv[3], engine="dask", scheduler=sys.argv[4])
ws.close()
with Client(sys.argv[4], timeout=30, set_as_default=False) as client:
    workers = client.run(hwm)
print(json.dumps({"rows": job.rows_out, "peak": hwm(), "worker_peak": max(workers.values())}))
"""
)


def _setup(root: Path, sizes: list[int]) -> dict[int, Path]:
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
        n_samples=50_000 + max(sizes), n_features=FEATURES, n_informative=10, n_redundant=4,
        n_classes=2, flip_y=0.02, class_sep=0.8, random_state=42,
    )  # fmt: skip
    train = pd.DataFrame(x[:50_000], columns=names)
    model = Pipeline(
        [("scale", StandardScaler()), ("clf", HistGradientBoostingClassifier(max_iter=100))]
    ).fit(train, y[:50_000].astype(np.int64))
    joblib.dump(model, root / "model.joblib")
    ws, _ = init_workspace(root / "ws")
    ws.registry.register(model, "bench", input_example=train.head(100))
    ws.close()
    paths = {}
    for n in sizes:
        path = root / f"in-{n}.parquet"
        rows = x[50_000 : 50_000 + n]
        table = pa.table({name: rows[:, i] for i, name in enumerate(names)})
        pq.write_table(table, path, row_group_size=100_000)
        paths[n] = path
    return paths


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("MODELCYCLE_")}


class _PssSampler:
    """Peak of the summed PSS of a process and its descendants, sampled from a thread, and
    the largest high-water mark among the descendants (``VmHWM`` only grows: the last
    sample of each is its peak, up to the last 50 ms)."""

    def __init__(self, pid: int) -> None:
        self.peak = 0
        self.children_hwm = 0
        self.root_hwm = 0
        self._root = psutil.Process(pid)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(0.05):
            total = 0
            try:
                procs = [self._root, *self._root.children(recursive=True)]
            except psutil.Error:
                continue
            for proc in procs:
                try:
                    total += proc.memory_full_info().pss
                    if proc is not self._root:
                        self.children_hwm = max(self.children_hwm, _hwm_of(proc.pid))
                    else:
                        self.root_hwm = max(self.root_hwm, _hwm_of(proc.pid))
                except (psutil.Error, OSError):
                    continue
            self.peak = max(self.peak, total)

    def stop(self) -> int:
        self._stop.set()
        self._thread.join()
        return self.peak


def _rows_in(folder: Path) -> int:
    import pyarrow.parquet as pq

    return sum(pq.ParquetFile(p).metadata.num_rows for p in folder.glob("part-*.parquet"))


def _hwm_of(pid: int) -> int:
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return 0


def _run(code: str, *args: str, cwd: str | None = None) -> dict[str, float]:
    """One process (``python -c code``, or the CLI when ``code`` is ``"cli"``) timed whole."""
    started = time.perf_counter()
    argv = [sys.executable, "-m", "modelcycle", *args] if code == "cli" else [
        sys.executable, "-c", code, *args,
    ]  # fmt: skip
    proc = subprocess.Popen(
        argv,
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(),
    )
    sampler = _PssSampler(proc.pid)
    out, err = proc.communicate()
    secs = time.perf_counter() - started
    pss = sampler.stop()
    if proc.returncode != 0:
        raise SystemExit(err)
    result: dict[str, float] = (
        {"rows": _rows_in(Path(args[args.index("--output") + 1])), "peak": sampler.root_hwm}
        if code == "cli"
        else json.loads(out.strip().splitlines()[-1])
    )
    result.setdefault("worker_peak", sampler.children_hwm)
    result.update(secs=secs, pss=pss)
    return result


class _Cluster:
    """``dask scheduler`` and two ``dask worker`` processes (one thread each) on 127.0.0.1."""

    def __init__(self, tmp: Path, workers: int) -> None:
        dask = str(Path(sys.executable).with_name("dask"))
        self._logs: list[Any] = []
        log = tmp / "scheduler.log"
        self.procs = [
            self._spawn(
                [dask, "scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard"], log
            )
        ]
        deadline = time.monotonic() + 30
        self.address = ""
        while time.monotonic() < deadline and not self.address:
            found = re.search(r"Scheduler at:\s+(tcp://\S+)", log.read_text(errors="replace"))
            if found:
                self.address = found.group(1)
            else:
                time.sleep(0.1)
        if not self.address:
            self.stop()
            raise SystemExit(f"the Dask scheduler did not start:\n{log.read_text()}")
        for i in range(workers):
            self.procs.append(
                self._spawn(
                    [dask, "worker", self.address, "--host", "127.0.0.1", *_WORKER_FLAGS],
                    tmp / f"worker{i}.log",
                )
            )
        from distributed import Client

        with Client(self.address, timeout=30, set_as_default=False) as client:
            client.wait_for_workers(workers, timeout=60)

    def _spawn(self, cmd: list[str], log: Path) -> subprocess.Popen[bytes]:
        fh = open(log, "wb")  # noqa: SIM115 - closed in stop()
        self._logs.append(fh)
        return subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, env=_env())

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        for fh in self._logs:
            fh.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", default="1000000")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--no-dask", action="store_true")
    args = parser.parse_args()
    sizes = [int(s) for s in args.rows.split(",")]
    with tempfile.TemporaryDirectory(prefix="bench-batch-") as tmp:
        root = Path(tmp)
        paths = _setup(root, sizes)
        ws = str(root / "ws")
        print(
            f"StandardScaler + HistGradientBoosting (100 trees), {FEATURES} features, row groups "
            f"of 100 000, default chunks; median of {args.repeat}, each process timed whole"
        )
        print(
            f"{'rows':>9} {'what':<26} {'rows/s':>9} {'ratio':>6} {'peak RSS MB':>12} "
            f"{'worker RSS MB':>14} {'sum PSS MB':>11}"
        )
        for n, path in paths.items():
            cluster = None if args.no_dask else _Cluster(root, 2)
            runs: dict[str, list[dict[str, float]]] = {"floor": [], "local": [], "dask": []}
            try:
                for r in range(args.repeat):
                    floor_out = str(root / f"out-floor-{n}-{r}.parquet")
                    runs["floor"].append(_run(_FLOOR, str(root), str(path), floor_out))
                    out = str(root / f"out-local-{n}-{r}")
                    cli = ["score", "bench/1", "--input", str(path), "--output", out]
                    cli += ["--workers", str(args.workers)]
                    runs["local"].append(_run("cli", *cli, cwd=ws))
                    if cluster is not None:
                        out = str(root / f"out-dask-{n}-{r}")
                        runs["dask"].append(_run(_DASK, ws, str(path), out, cluster.address))
            finally:
                if cluster is not None:
                    cluster.stop()
            floor_rate = statistics.median(x["rows"] / x["secs"] for x in runs["floor"])
            for key, label in [
                ("floor", "floor (read, predict, write)"),
                ("local", f"local engine x{args.workers}"),
                ("dask", "dask engine, 2 workers"),
            ]:
                if not runs[key]:
                    continue
                rate = statistics.median(x["rows"] / x["secs"] for x in runs[key])
                peak = max(x["peak"] for x in runs[key]) / MB
                worker = max(x["worker_peak"] for x in runs[key]) / MB
                pss = max(x["pss"] for x in runs[key]) / MB
                print(
                    f"{n:>9} {label:<26} {rate:>9,.0f} {rate / floor_rate:>6.2f} {peak:>12.0f} "
                    f"{(f'{worker:.0f}' if worker else '-'):>14} "
                    f"{(f'{pss:.0f}' if key != 'dask' else '-'):>11}",
                    flush=True,
                )


if __name__ == "__main__":
    main()
