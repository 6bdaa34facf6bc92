"""Concurrent writers to one data set name: every version number is taken exactly once."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from sqlalchemy import insert, text

from modelcycle import Workspace
from modelcycle.audit import canonical_json, utc_timestamp
from modelcycle.store import tables

_WRITER = """
import sys, time
from pathlib import Path
from modelcycle import Workspace
from modelcycle.datasets import make_credit

root, seed, go = sys.argv[1], int(sys.argv[2]), Path(sys.argv[3])
table = make_credit(3000, seed=seed)
with Workspace(root) as ws:
    ws.metadata  # connect and check the schema before the start line
    Path(f"{go}.ready{seed}").touch()
    while not go.exists():
        time.sleep(0.005)
    print(ws.datasets.add("shared", table).version)
"""


def _start(script: Path, root: Path, seed: int, go: Path) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODELCYCLE_")}
    env["MODELCYCLE_ACTOR"] = "tester"
    return subprocess.Popen(
        [sys.executable, str(script), str(root), str(seed), str(go)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_for(paths: list[Path]) -> None:
    deadline = time.monotonic() + 60
    while not all(p.exists() for p in paths):
        assert time.monotonic() < deadline, "the writers did not start"
        time.sleep(0.01)


def _finish(procs: list[subprocess.Popen[str]]) -> list[int]:
    outs = [p.communicate(timeout=120) for p in procs]
    for proc, (_, err) in zip(procs, outs, strict=True):
        assert proc.returncode == 0, err
    return sorted(int(out.strip()) for out, _ in outs)


def test_two_processes_at_once_get_versions_one_and_two(
    workspace: Workspace, tmp_path: Path
) -> None:
    script = tmp_path / "writer.py"
    script.write_text(_WRITER)
    go = tmp_path / "go"
    procs = [_start(script, workspace.root, seed, go) for seed in (1, 2)]
    _wait_for([Path(f"{go}.ready{seed}") for seed in (1, 2)])
    go.touch()  # both are waiting at the start line
    assert _finish(procs) == [1, 2]
    versions = workspace.datasets.list("shared")
    assert [v.version for v in versions] == [1, 2]
    assert versions[0].sha256 != versions[1].sha256
    events = [e for e in workspace.audit.events() if e.action == "dataset.version_created"]
    assert sorted(e.subject for e in events) == ["dataset:shared@1", "dataset:shared@2"]
    assert workspace.audit.verify().ok


def test_a_writer_behind_an_uncommitted_version_takes_the_next_number(
    workspace: Workspace, tmp_path: Path
) -> None:
    """Version 1 is inserted but not committed while another process adds: the other writer
    waits for the write lock (the chain's head row on PostgreSQL, the database on SQLite) and
    then takes version 2."""
    script = tmp_path / "writer.py"
    script.write_text(_WRITER)
    go = tmp_path / "go"
    go.touch()
    meta = workspace.metadata
    with meta.write(
        actor="tester", action="dataset.version_created", subject="dataset:shared@1"
    ) as tx:
        tx.conn.execute(
            insert(tables.dataset_versions).values(
                name="shared", version=1, sha256="0" * 64, num_rows=1, size_bytes=1,
                schema=canonical_json([]), profile=canonical_json({}), source="test",
                created_at=utc_timestamp(), created_by="tester", artifact_sha256="0" * 64,
            )
        )  # fmt: skip
        proc = _start(script, workspace.root, 7, go)
        _wait_for([Path(f"{go}.ready7")])
        _wait_until_blocked(workspace, proc)
    assert _finish([proc]) == [2]
    assert [v.version for v in workspace.datasets.list("shared")] == [1, 2]
    assert workspace.audit.verify().ok


def _wait_until_blocked(workspace: Workspace, proc: subprocess.Popen[str]) -> None:
    if workspace.metadata.dialect != "postgresql":
        time.sleep(1.0)  # SQLite: the writer queues on the database lock
        return
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        with workspace.metadata.engine.connect() as conn:
            waiting = conn.execute(text("SELECT count(*) FROM pg_locks WHERE NOT granted")).scalar()
        if waiting:
            return
        time.sleep(0.02)
    raise AssertionError("the second writer never waited on the first")
