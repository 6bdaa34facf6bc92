"""Data and a model for the batch scoring tests, and a real local Dask cluster."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from _scoring_helpers import credit_frame, credit_model

from modelcycle import Workspace
from modelcycle.datasets import make_credit

DASK = str(Path(sys.executable).with_name("dask"))


def register_credit(ws: Workspace) -> Any:
    x, y = credit_frame()
    model = credit_model(x, y)
    ws.registry.register(model, "credit", input_example=x.head(50))
    ws.registry.set_alias("credit", "champion", 1)
    return model


def input_table(n: int, seed: int = 3) -> pa.Table:
    """Credit features plus an ``id`` column 0..n-1 (and the ``default`` label)."""
    table = make_credit(n, seed=seed)
    return table.append_column("id", pa.array(np.arange(n, dtype=np.int64)))


def write_input(path: Path, n: int) -> pa.Table:
    table = input_table(n)
    pq.write_table(table, path)
    return table


def features(table: pa.Table) -> Any:
    return table.drop(["default", "id"]).to_pandas()


class DaskCluster:
    """``dask scheduler`` and N ``dask worker`` processes on 127.0.0.1, stopped by PID."""

    def __init__(self, tmp: Path, workers: int = 2) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("MODELCYCLE_")}
        self._logs: list[Any] = []
        log = tmp / "scheduler.log"
        self.scheduler = self._spawn(
            [DASK, "scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard"], log, env
        )
        deadline = time.monotonic() + 30
        self.address = ""
        while time.monotonic() < deadline and not self.address:
            match = re.search(r"Scheduler at:\s+(tcp://\S+)", log.read_text(errors="replace"))
            if match:
                self.address = match.group(1)
            else:
                time.sleep(0.1)
        if not self.address:
            self.stop()
            raise AssertionError(f"no scheduler address:\n{log.read_text()}")
        self.workers = [
            self._spawn(
                [
                    DASK,
                    "worker",
                    self.address,
                    "--host",
                    "127.0.0.1",
                    "--nthreads",
                    "1",
                    "--no-dashboard",
                    "--no-nanny",
                ],
                tmp / f"worker{i}.log",
                env,
            )
            for i in range(workers)
        ]
        from distributed import Client

        with Client(self.address, timeout=30, set_as_default=False) as client:
            client.wait_for_workers(workers, timeout=60)

    def _spawn(self, cmd: list[str], log: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
        fh = open(log, "wb")  # noqa: SIM115 - closed in stop()
        self._logs.append(fh)
        return subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, env=env)

    def stop(self) -> None:
        for proc in [*getattr(self, "workers", []), self.scheduler]:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in [*getattr(self, "workers", []), self.scheduler]:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        for fh in self._logs:
            fh.close()
