"""Concurrent writers in separate processes, and writers killed with SIGKILL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from modelcycle import Workspace

WRITER = str(Path(__file__).with_name("_writer.py"))


def _spawn(*args: str) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODELCYCLE_")}
    return subprocess.Popen([sys.executable, WRITER, *args], env=env)


def test_two_processes_appending_500_each_make_one_chain(workspace: Workspace) -> None:
    root = str(workspace.root)
    procs = [_spawn(root, "500", "alpha"), _spawn(root, "500", "beta")]
    for p in procs:
        assert p.wait(timeout=240) == 0
    events = workspace.audit.events()
    assert len(events) == 1001  # workspace.created + 2 x 500
    assert [e.seq for e in events] == list(range(1, 1002))
    by_writer = {tag: [e for e in events if e.subject == tag] for tag in ("alpha", "beta")}
    for tag, mine in by_writer.items():
        assert [e.payload["text"] for e in mine] == [f"{tag} {i}" for i in range(500)]
    report = workspace.audit.verify()
    assert report.ok, report.problem
    assert report.head.seq == 1001


def _wait_for(path: Path, proc: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert proc.poll() is None, "writer exited early"
        assert time.monotonic() < deadline, "writer never got ready"
        time.sleep(0.05)


def test_writer_killed_mid_transaction_leaves_no_half_event(
    workspace: Workspace, tmp_path: Path
) -> None:
    ready = tmp_path / "ready"
    proc = _spawn(str(workspace.root), "hang", str(ready))
    _wait_for(ready, proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)

    # The store is usable at once (the lock died with the process), and nothing half-written shows.
    deadline = time.monotonic() + 30
    while True:
        try:
            workspace.audit.note("after the crash")
            break
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
    events = workspace.audit.events()
    assert [e.action for e in events] == ["workspace.created", "audit.note"]
    assert workspace.artifact_index() == []
    assert workspace.audit.verify().ok


@pytest.mark.parametrize("kill_after", [0.3, 0.8])
def test_writer_killed_while_appending_keeps_the_chain_whole(
    workspace: Workspace, kill_after: float
) -> None:
    proc = _spawn(str(workspace.root), "100000", "doomed")
    time.sleep(kill_after)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    report = workspace.audit.verify()
    assert report.ok, report.problem
    # Every committed note is whole and in order; the killed one is absent, not half there.
    notes = [e for e in workspace.audit.events() if e.subject == "doomed"]
    assert [e.payload["text"] for e in notes] == [f"doomed {i}" for i in range(len(notes))]
    workspace.audit.note("still writable")
    assert workspace.audit.verify().ok
