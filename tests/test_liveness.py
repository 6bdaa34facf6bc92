"""The one heartbeat helper behind runs, batch jobs and job leases."""

from __future__ import annotations

import os
import subprocess
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from modelcycle.audit import utc_timestamp
from modelcycle.liveness import Heartbeat, StaleSweep, hostname, last_line


def test_beats_while_the_block_runs_and_stops_after_it() -> None:
    beats: list[float] = []
    with Heartbeat(lambda: beats.append(time.monotonic()), 0.01, name="t"):
        time.sleep(0.2)
    seen = len(beats)
    assert seen >= 3
    time.sleep(0.05)
    assert len(beats) == seen  # nothing after the block


def test_a_failing_beat_is_retried_and_false_ends_the_beats() -> None:
    calls = 0
    ended = threading.Event()

    def beat() -> bool:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise OSError("database away")  # retried at the next interval
        if calls == 3:
            ended.set()
            return False  # the lease was lost: no more renewals
        return True

    with Heartbeat(beat, 0.01, name="t"):
        assert ended.wait(5)
        time.sleep(0.1)
    assert calls == 3


@dataclass(frozen=True)
class _Record:
    id: str
    hostname: str | None
    pid: int | None
    heartbeat_at: str | None
    started_at: str


def test_the_sweep_ends_records_whose_process_is_gone_and_counts_only_its_own() -> None:
    gone = subprocess.Popen(["true"])
    gone.wait()  # a pid on this host that no longer runs
    now = utc_timestamp()
    old = utc_timestamp(datetime.now(UTC) - timedelta(seconds=60))
    records = [
        _Record("alive", hostname(), os.getpid(), now, now),
        _Record("dead-pid", hostname(), gone.pid, now, now),
        _Record("silent", "elsewhere", 1, old, old),  # another host: only the heartbeat tells
        _Record("ended-by-another", "elsewhere", 1, None, old),
    ]
    marked: dict[str, str] = {}

    def mark(record: _Record, reason: str) -> bool:
        if record.id == "ended-by-another":
            return False  # someone else marked it first
        marked[record.id] = reason
        return True

    limit = [30.0]
    sweep: StaleSweep[_Record] = StaleSweep(mark, lambda: limit[0])
    assert sweep.sweep(records) == 2
    assert set(marked) == {"dead-pid", "silent"}
    assert f"process {gone.pid}" in marked["dead-pid"]
    assert "no heartbeat" in marked["silent"]
    limit[0] = 3600.0  # read at each check
    assert sweep.reason(records[2]) is None


def test_last_line_is_the_exception_of_a_traceback() -> None:
    text = "Traceback (most recent call last):\n  File 'x', line 1\nValueError: bad\n\n"
    assert last_line(text) == "ValueError: bad"
    assert last_line("x" * 900) == "x" * 500
    assert last_line("  \n") == ""


def test_start_and_stop_outside_a_with_block() -> None:
    beats = threading.Event()
    beat = Heartbeat(beats.set, 0.01, name="test")
    beat.start()
    assert beats.wait(5)
    beat.stop()
    beat.stop()  # again: a no-op
