"""Models for the scoring tests, and a real ``modelcycle serve`` subprocess to drive."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pyarrow as pa
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OrdinalEncoder

from modelcycle import Workspace
from modelcycle.datasets import make_credit

CATEGORICAL = ["employment", "home_ownership", "purpose"]


def credit_frame(n: int = 400, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    table = make_credit(n, seed=seed)
    return table.drop(["default"]).to_pandas(), table.column("default").to_numpy()


def credit_model(frame: pd.DataFrame, y: np.ndarray) -> Any:
    """HistGradientBoosting behind an ordinal encoding of the text columns."""
    pre = ColumnTransformer(
        [
            (
                "cat",
                OrdinalEncoder(
                    handle_unknown="use_encoded_value", unknown_value=-1, encoded_missing_value=-1
                ),
                CATEGORICAL,
            )
        ],
        remainder="passthrough",
    )
    # Ordinal codes as plain numbers: categorical_features would store a functools.partial,
    # which skops (rightly) does not trust.
    hgb = HistGradientBoostingClassifier(max_iter=30, random_state=0)
    return make_pipeline(pre, hgb).fit(frame, y)


def typed_frame(n: int = 200, seed: int = 1) -> tuple[pd.DataFrame, np.ndarray]:
    """One column of each numeric v2 datatype the tests use: FP64, FP32, INT64, INT32, BOOL."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "f64": rng.normal(0, 1, n),
            "f32": rng.normal(0, 1, n).astype(np.float32),
            "i64": rng.integers(0, 100, n).astype(np.int64),
            "i32": rng.integers(0, 10, n).astype(np.int32),
            "flag": rng.random(n) < 0.5,
        }
    )
    y = ((frame.f64 + frame.f32 + frame.flag * 0.5 + rng.normal(0, 0.5, n)) > 0.2).astype(np.int64)
    return frame, y.to_numpy()


def ridge_frame(n: int = 100, seed: int = 2) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {"a": rng.normal(size=n), "b": rng.normal(size=n), "c": rng.normal(size=n)}
    )
    return frame, (2 * frame.a - frame.b + 0.5 * frame.c).to_numpy()


@dataclass
class Models:
    """The fitted models (to compare answers against) and the workspace holding them."""

    root: Path
    credit: Any
    typed: Any
    ridge: Any
    credit_x: pd.DataFrame
    typed_x: pd.DataFrame
    ridge_x: pd.DataFrame


def register_models(ws: Workspace) -> Models:
    cx, cy = credit_frame()
    tx, ty = typed_frame()
    rx, ry = ridge_frame()
    credit = credit_model(cx, cy)
    typed = LogisticRegression(max_iter=500).fit(tx, ty)
    ridge = Ridge().fit(rx, ry)
    ws.registry.register(credit, "credit", input_example=cx.head(50))
    ws.registry.set_alias("credit", "champion", 1)
    ws.registry.register(typed, "typed", input_example=tx.head(20))
    ws.registry.register(ridge, "ridge", input_example=rx.head(20))
    return Models(ws.root, credit, typed, ridge, cx, tx, rx)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class ServerProcess:
    """``python -m modelcycle serve ...`` on 127.0.0.1, stopped with SIGTERM then SIGKILL."""

    def __init__(self, root: Path, *args: str, log: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("MODELCYCLE_")}
        env["MODELCYCLE_ACTOR"] = "tester"
        self._log = open(log, "wb")  # noqa: SIM115 - closed in stop()
        self.log_path = log
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "modelcycle", "serve", *args, "--port", str(self.port)],
            cwd=root,
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"server exited {self.proc.returncode}:\n{self.log()}")
            try:
                if httpx.get(f"{self.url}/v2/health/ready", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"server not ready after {timeout} s:\n{self.log()}")

    def log(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors="replace")

    def stop(self) -> int | None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        self._log.close()
        return self.proc.returncode


def metric(text: str, name: str, **labels: str) -> float:
    """The value of one sample in Prometheus text (0 when absent), labels in any order."""
    want = sorted(f'{k}="{v}"' for k, v in labels.items())
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        sample, _, value = line.rpartition(" ")
        found, _, rest = sample.partition("{")
        if found == name and sorted(filter(None, rest.rstrip("}").split(","))) == want:
            return float(value)
    return 0.0


def rows_of(frame: pd.DataFrame, n: int, start: int = 0) -> list[dict[str, Any]]:
    """JSON-ready row objects (NaN as null)."""
    part = frame.iloc[start : start + n]
    table = pa.Table.from_pandas(part, preserve_index=False)
    return table.to_pylist()
