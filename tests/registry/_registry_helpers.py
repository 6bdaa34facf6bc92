"""Data and subprocess helpers of the registry tests.

A module of its own (not conftest.py) so ``import`` never picks another folder's conftest.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd


def make_frame(n: int = 300, seed: int = 0) -> pd.DataFrame:
    """Numeric, integer and categorical features and a binary label that depends on them."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "income": rng.normal(50.0, 15.0, n),
            "age": rng.integers(18, 80, n),
            "region": rng.choice(["north", "south", "east"], n),
        }
    )
    score = (frame.income - 50) / 15 + (frame.age - 50) / 20 + (frame.region == "north") * 0.8
    frame["label"] = (score + rng.normal(0, 0.7, n) > 0).astype("int64")
    return frame


FEATURES = ["income", "age", "region"]
NUMERIC = ["income", "age"]


def run_script(code: str, *args: str, cwd: Path) -> subprocess.Popen[str]:
    """Start ``python -c code args...`` in the workspace folder (finds it like the CLI does)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODELCYCLE_")}
    env["MODELCYCLE_ACTOR"] = "worker"
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_all(procs: list[subprocess.Popen[str]]) -> None:
    for proc in procs:
        out, err = proc.communicate(timeout=180)
        assert proc.returncode == 0, f"worker failed:\n{out}\n{err}"
