"""Crash and resume through the real CLI: SIGKILL mid-job, then ``--resume`` (SQLite)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from _batch_helpers import register_credit, write_input
from sqlalchemy import func, select

from _cli import run_cli
from modelcycle import Workspace
from modelcycle.store import tables

ROWS, CHUNK = 60_000, 500


@pytest.fixture
def ws(fresh_ws: Workspace) -> Workspace:
    register_credit(fresh_ws)
    return fresh_ws


def _committed(ws: Workspace) -> int:
    with ws.metadata.read() as conn:
        return int(
            conn.execute(select(func.count()).select_from(tables.batch_chunks)).scalar() or 0
        )


def test_sigkill_then_resume_gives_the_uninterrupted_output(ws: Workspace, tmp_path: Path) -> None:
    write_input(tmp_path / "in.parquet", ROWS)
    args = [
        "score",
        "credit/1",
        "--input",
        str(tmp_path / "in.parquet"),
        "--passthrough",
        "id",
        "--proba",
        "--chunk-rows",
        str(CHUNK),
        "--workers",
        "1",
    ]
    full = run_cli(*args, "--output", str(tmp_path / "full"), cwd=ws.root, check=True)
    assert "rows/s" not in full.stdout
    assert "\r" not in full.stdout
    assert full.stdout.startswith("job ")
    before = _committed(ws)

    env = {k: v for k, v in os.environ.items() if not k.startswith("MODELCYCLE_")}
    env["MODELCYCLE_ACTOR"] = "tester"
    proc = subprocess.Popen(
        [sys.executable, "-m", "modelcycle", *args, "--output", str(tmp_path / "out")],
        cwd=ws.root,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + 60
    while _committed(ws) - before < 10 and time.monotonic() < deadline:
        assert proc.poll() is None, "the job ended before it could be killed"
        time.sleep(0.01)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(10)
    done = _committed(ws) - before
    assert 10 <= done < ROWS // CHUNK

    listed = run_cli("score", "list", cwd=ws.root, check=True).stdout
    assert "failed" in listed  # the dead process's job is found stale
    job = next(j for j in ws.batch.list() if j.output == str(tmp_path / "out"))
    assert job.status == "failed"
    assert "stale" in (job.error or "")

    resumed = run_cli("score", "credit/1", "--resume", job.id[:10], cwd=ws.root, check=True)
    assert job.id in resumed.stdout
    again = ws.batch.get(job.id)
    assert again.status == "succeeded"
    assert again.rows_out == ROWS
    assert [c.chunk for c in again.chunks] == list(range(ROWS // CHUNK))
    out, ref = pq.read_table(tmp_path / "out"), pq.read_table(tmp_path / "full")
    assert out.column("id").to_pylist() == list(range(ROWS))
    assert out.equals(ref)
    actions = [e.action for e in ws.audit.events() if e.subject == f"batch:{job.id}"]
    assert actions == ["batch.started", "batch.failed", "batch.resumed", "batch.finished"]
    again_run = run_cli("score", "credit/1", "--resume", job.id, cwd=ws.root)
    assert again_run.returncode == 4  # Conflict: a succeeded job is not resumed
    shown = run_cli("score", "show", job.id, cwd=ws.root, check=True).stdout
    assert '"status": "succeeded"' in shown
