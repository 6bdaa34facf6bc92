"""Capacity of the shared parts on this machine: the job queue and audited writes on PostgreSQL.

Run: .venv/bin/python bench/bench_scale.py [--jobs 300] [--writes 300]

Starts a throw-away PostgreSQL (tests/_pg.py) and measures, with 1, 2 and 4 worker processes:
- jobs/s through the queue (claim + complete, as `modelcycle worker` does, without an action),
  against a floor of the same claim/complete SQL issued directly (no audit event);
- audited writes/s (`ws.audit.note`), against a floor of a bare INSERT + COMMIT.
Each process opens the workspace from URLs alone, as a stateless worker does. Artifact put/get
on S3 is measured by bench/bench_s3_clients.py.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))


def _settings(db_url: str) -> Any:
    from modelcycle.settings import Settings

    return Settings(
        root=Path(tempfile.gettempdir()),
        db_url=db_url,
        artifacts_url="memory://bench",
        actor="bench",
        stateless=True,
    )


def _queue_worker(db_url: str, name: str, out: Any) -> None:
    from modelcycle import Workspace

    ws = Workspace(settings=_settings(db_url))
    queue = ws.automations.queue
    queue.list(limit=1)  # connect before the clock starts
    done = 0
    start = time.time()
    while (job := queue.claim(name, lease_seconds=60)) is not None:
        queue.complete(job, name, {"ok": True})
        done += 1
    out.put((done, start, time.time()))
    ws.close()


def _raw_queue_worker(db_url: str, name: str, out: Any) -> None:
    from sqlalchemy import create_engine, text

    engine = create_engine(db_url)
    engine.connect().close()
    done = 0
    start = time.time()
    while True:
        with engine.begin() as conn:
            row = conn.execute(
                text(
                    "SELECT id FROM bench_jobs WHERE state = 'queued' ORDER BY id "
                    "LIMIT 1 FOR UPDATE SKIP LOCKED"
                )
            ).first()
            if row is None:
                break
            conn.execute(
                text("UPDATE bench_jobs SET state = 'running', owner = :o WHERE id = :i"),
                {"o": name, "i": row.id},
            )
        with engine.begin() as conn:
            conn.execute(
                text("UPDATE bench_jobs SET state = 'succeeded' WHERE id = :i AND owner = :o"),
                {"o": name, "i": row.id},
            )
        done += 1
    out.put((done, start, time.time()))
    engine.dispose()


def _note_writer(db_url: str, n: int, out: Any) -> None:
    from modelcycle import Workspace

    ws = Workspace(settings=_settings(db_url))
    ws.audit.head()
    start = time.time()
    for i in range(n):
        ws.audit.note(f"bench {i}")
    out.put((n, start, time.time()))
    ws.close()


def _raw_writer(db_url: str, n: int, out: Any) -> None:
    from sqlalchemy import create_engine, text

    engine = create_engine(db_url)
    engine.connect().close()
    start = time.time()
    for i in range(n):
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO bench_rows (payload) VALUES (:p)"), {"p": f"bench {i}"})
    out.put((n, start, time.time()))
    engine.dispose()


def _run(target: Any, args_list: list[tuple[Any, ...]]) -> tuple[int, float]:
    """Total count and the seconds from the first process's start of work to the last's end
    (process start-up and connecting are left out)."""
    out: Any = mp.Queue()
    procs = [mp.Process(target=target, args=(*a, out)) for a in args_list]
    for p in procs:
        p.start()
    results = [out.get() for _ in procs]
    for p in procs:
        p.join()
    total = sum(r[0] for r in results)
    return total, max(r[2] for r in results) - min(r[1] for r in results)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--jobs", type=int, default=300)
    ap.add_argument("--writes", type=int, default=300)
    args = ap.parse_args()
    from sqlalchemy import create_engine, text

    from _pg import start_server
    from modelcycle import init_workspace

    server = start_server()
    try:
        import psycopg

        def new_db() -> str:
            name = f"bench_{uuid.uuid4().hex[:8]}"
            with psycopg.connect(
                host=server.host, port=server.port, user=server.user, dbname="postgres",
                autocommit=True,
            ) as conn:  # fmt: skip
                conn.execute(f'CREATE DATABASE "{name}"')
            return server.url(name)

        print(f"load average at start: {os.getloadavg()[0]:.1f} (2 cores)")
        print(f"{'measure':<36} {'procs':>5} {'per s':>8} {'floor/s':>8} {'ratio':>6}")
        for procs in (1, 2, 4):
            db_url = new_db()
            with tempfile.TemporaryDirectory() as tmp:
                os.environ["MODELCYCLE_ARTIFACTS_URL"] = "memory://bench"
                ws, _ = init_workspace(Path(tmp) / "ws", db_url=db_url)
                for i in range(args.jobs):
                    ws.automations.queue.enqueue("note", {"text": str(i)}, key=f"bench:{i}")
                ws.close()
            engine = create_engine(db_url)
            with engine.begin() as conn:
                conn.execute(
                    text("CREATE TABLE bench_jobs (id serial PRIMARY KEY, state text, owner text)")
                )
                conn.execute(
                    text(
                        "INSERT INTO bench_jobs (state) SELECT 'queued' FROM generate_series(1, :n)"
                    ),
                    {"n": args.jobs},
                )
                conn.execute(text("CREATE TABLE bench_rows (id serial PRIMARY KEY, payload text)"))
            engine.dispose()
            done, secs = _run(_queue_worker, [(db_url, f"w{i}") for i in range(procs)])
            raw_done, raw_secs = _run(_raw_queue_worker, [(db_url, f"r{i}") for i in range(procs)])
            assert done == raw_done == args.jobs, (done, raw_done)
            ours, floor = done / secs, raw_done / raw_secs
            print(f"{'jobs (claim + complete)':<36} {procs:>5} {ours:8.1f} {floor:8.1f} "
                  f"{ours / floor:6.2f}")  # fmt: skip
            per = args.writes // procs
            n, secs = _run(_note_writer, [(db_url, per) for _ in range(procs)])
            rn, rsecs = _run(_raw_writer, [(db_url, per) for _ in range(procs)])
            ours, floor = n / secs, rn / rsecs
            print(f"{'audited writes (audit.note)':<36} {procs:>5} {ours:8.1f} {floor:8.1f} "
                  f"{ours / floor:6.2f}")  # fmt: skip
        print(f"load average at end: {os.getloadavg()[0]:.1f}")
    finally:
        server.stop()


if __name__ == "__main__":
    main()
