"""Running the real ``modelcycle`` command in a subprocess, as a user would.

A module of its own (not conftest.py): test folders have conftest files of their own, and
``from conftest import`` could pick the wrong one.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def run_cli(
    *args: str, cwd: Path, env: dict[str, str] | None = None, check: bool = False
) -> subprocess.CompletedProcess[str]:
    """Run the real ``modelcycle`` command in a subprocess."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("MODELCYCLE_")}
    full_env.update({"MODELCYCLE_ACTOR": "tester", "COLUMNS": "200"})
    full_env.update(env or {})
    proc = subprocess.run(
        [sys.executable, "-m", "modelcycle", *args],
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"modelcycle {' '.join(args)} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
        )
    return proc
