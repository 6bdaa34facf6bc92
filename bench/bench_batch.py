"""Batch scoring: rows/s and peak memory of the local and Dask engines, against a floor.

The floor is measured in the same run: one process reading the whole Parquet file with
pyarrow and calling the same model's ``predict`` on all of it at once (no signature check, no
output written). Every measurement is a fresh process timed whole, from start to exit
(interpreter, imports, model load included, as a user running it would wait), and the runs
are interleaved and repeated so that the machine's noise hits each alike; the median is shown.

Memory: ``peak RSS`` is the largest high-water mark (``VmHWM``) of the measurement's own
processes: the floor's one process; for the local engine the coordinating process and each
worker (forked, so their RSS counts the libraries and model they share); for Dask the
submitting process and each cluster worker. ``sum PSS`` samples the proportional set size of
the local engine's whole process tree every 50 ms (shared pages counted once): the memory the
job costs the machine.

    .venv/bin/python bench/bench_batch.py [--rows 1000000,5000000] [--workers N] [--repeat 3]
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
import json, sys
import pyarrow.parquet as pq
from modelcycle import Workspace
ws = Workspace(sys.argv[1])
model = ws.registry.load("bench/1").model
rows = len(model.predict(pq.read_table(sys.argv[2]).to_pandas()))
print(json.dumps({"rows": rows, "peak": hwm()}))
"""
)

_LOCAL = (
    _HWM
    + """
import json, sys
from modelcycle import Workspace
ws = Workspace(sys.argv[1])
job = ws.batch.score("bench/1", sys.argv[2], sys.argv[3], workers=int(sys.argv[4]))
ws.close()
print(json.dumps({"rows": job.rows_out, "peak": hwm()}))
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
    import numpy as np
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq
    from sklearn.ensemble import HistGradientBoostingClassifier

    from modelcycle import init_workspace

    ws, _ = init_workspace(root / "ws")
    rng = np.random.default_rng(0)
    x = pd.DataFrame(
        rng.normal(size=(20_000, FEATURES)), columns=[f"f{i}" for i in range(FEATURES)]
    )
    y = (x.f0 + x.f1 * x.f2 + rng.normal(0, 0.5, len(x)) > 0).astype(int)
    model = HistGradientBoostingClassifier(max_iter=100, random_state=0).fit(x, y)
    ws.registry.register(model, "bench", input_example=x.head(20))
    ws.close()
    paths = {}
    for n in sizes:
        path = root / f"in-{n}.parquet"
        with pq.ParquetWriter(
            path, pa.schema([(f"f{i}", pa.float64()) for i in range(FEATURES)])
        ) as w:
            for start in range(0, n, 500_000):
                m = min(500_000, n - start)
                cols = rng.normal(size=(m, FEATURES))
                w.write_table(pa.table({f"f{i}": cols[:, i] for i in range(FEATURES)}))
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
                except (psutil.Error, OSError):
                    continue
            self.peak = max(self.peak, total)

    def stop(self) -> int:
        self._stop.set()
        self._thread.join()
        return self.peak


def _hwm_of(pid: int) -> int:
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return 0


def _run(code: str, *args: str) -> dict[str, float]:
    started = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-c", code, *args],
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
    result: dict[str, float] = json.loads(out.strip().splitlines()[-1])
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
    parser.add_argument("--rows", default="1000000,5000000")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--no-dask", action="store_true")
    args = parser.parse_args()
    sizes = [int(s) for s in args.rows.split(",")]
    with tempfile.TemporaryDirectory(prefix="bench-batch-") as tmp:
        root = Path(tmp)
        paths = _setup(root, sizes)
        ws = str(root / "ws")
        print(
            f"HistGradientBoosting (100 trees), {FEATURES} features, row groups of 500 000, "
            f"default chunks; median of {args.repeat}, each process timed whole"
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
                    runs["floor"].append(_run(_FLOOR, ws, str(path)))
                    out = str(root / f"out-local-{n}-{r}")
                    runs["local"].append(_run(_LOCAL, ws, str(path), out, str(args.workers)))
                    if cluster is not None:
                        out = str(root / f"out-dask-{n}-{r}")
                        runs["dask"].append(_run(_DASK, ws, str(path), out, cluster.address))
            finally:
                if cluster is not None:
                    cluster.stop()
            floor_rate = statistics.median(x["rows"] / x["secs"] for x in runs["floor"])
            for key, label in [
                ("floor", "floor (read all, predict)"),
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
