"""Foundation overheads, each as a ratio against a floor measured in the same run.

1. Artifact put+get (hash on write, atomic rename, hash again on read) against the floor of
   copying the same bytes with shutil and hashing them once with hashlib.
2. An audited write (one change + its chained event in one transaction) against the floor of
   one plain INSERT committed in its own transaction on the same SQLite database.

Run: make bench   (or .venv/bin/python bench/bench_foundation.py)
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sqlite3
import tempfile
import time
from pathlib import Path

from modelcycle import init_workspace


def _best(fn, repeat: int = 3) -> float:  # type: ignore[no-untyped-def]
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def bench_artifacts(tmp: Path) -> None:
    size = 64 * 1024 * 1024
    src = tmp / "blob.bin"
    src.write_bytes(os.urandom(size))
    ws, _ = init_workspace(tmp / "ws")
    store = ws.artifacts

    def floor() -> None:
        dst = tmp / "copy.bin"
        shutil.copyfile(src, dst)
        hashlib.sha256(dst.read_bytes()).hexdigest()
        dst.unlink()

    def ours() -> None:
        ref = store.put_file(src)
        store.get_file(ref.sha256, tmp / "out.bin")
        (tmp / "out.bin").unlink()

    f, o = _best(floor), _best(ours)
    mb = size / 1e6
    print(
        f"artifact put+get 64 MB: floor {mb / f:8.0f} MB/s   modelcycle {mb / o:8.0f} MB/s   "
        f"ratio {o / f:5.2f}x the floor's time"
    )
    ws.close()


def bench_audited_writes(tmp: Path) -> None:
    n = 300
    ws, _ = init_workspace(tmp / "ws2")
    db = tmp / "floor.db"
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, text TEXT)")

    def floor() -> None:
        for i in range(n):
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("INSERT INTO notes (text) VALUES (?)", (f"note {i}",))
            conn.execute("COMMIT")

    def ours() -> None:
        for i in range(n):
            ws.audit.note(f"note {i}")

    f, o = _best(floor), _best(ours)
    print(
        f"audited write (SQLite): floor {n / f:8.0f} tx/s   modelcycle {n / o:8.0f} tx/s   "
        f"ratio {o / f:5.2f}x the floor's time"
    )
    t0 = time.perf_counter()
    report = ws.audit.verify()
    dt = time.perf_counter() - t0
    print(
        f"audit verify: {report.events} events in {dt * 1000:.0f} ms "
        f"({report.events / dt:,.0f} events/s), ok={report.ok}"
    )
    conn.close()
    ws.close()


def main() -> None:
    with tempfile.TemporaryDirectory() as d:
        bench_artifacts(Path(d))
        bench_audited_writes(Path(d))


if __name__ == "__main__":
    main()
