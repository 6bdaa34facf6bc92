"""The one heartbeat helper behind runs, batch jobs and job leases."""

from __future__ import annotations

import threading
import time

from modelcycle.liveness import Heartbeat


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
