"""Prediction-log rows/s into each sink at 1, 8 and 64 concurrent scoring clients.

Run: .venv/bin/python bench/bench_log_sink.py [--requests 8000] [--rows 4] [--rounds 3]

Starts a throw-away PostgreSQL (tests/_pg.py) and moto's S3 server on 127.0.0.1 (tests/_s3.py;
production uses MinIO or AWS S3). C client threads each hand their share of ``--requests``
requests (``--rows`` rows each, the fast path's numpy array) to one ``PredictionLog``, as a
serving worker's requests do; the clock stops when ``close()`` returns, i.e. when every row is
durable (in ``prediction_log``, or in a Parquet part on S3 with its aggregates in PostgreSQL).

Floors, measured in the same round on the same rows:
- database sink: a bare executemany INSERT of the already-made rows (JSON texts ready), 2,000
  a transaction, into a table with ``prediction_log``'s columns;
- parquet sink: a bare ``pyarrow.parquet.write_table`` of the already-made Arrow table plus one
  PUT of the bytes to the same S3 server.
Prints medians over the rounds and the load average.
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))


def _records(n: int, rows: int) -> list[Any]:
    from modelcycle.scoring import LogRecord

    rng = np.random.default_rng(0)
    now = time.time()
    return [
        LogRecord(
            request_id=uuid.uuid4().hex,
            model_name="bench",
            model_version=1,
            inputs=rng.normal(size=(rows, 6)),
            predictions=rng.integers(0, 2, rows),
            probabilities=None,
            classes=[0, 1],
            latency_ms=1.0,
            at=now,
            columns=("a", "b", "c", "d", "e", "f"),
        )
        for _ in range(n)
    ]


def _through_log(log: Any, records: list[Any], clients: int) -> float:
    log.start(ingest_leftovers=False)
    shares = [records[i::clients] for i in range(clients)]
    barrier = threading.Barrier(clients + 1)

    def client(share: list[Any]) -> None:
        barrier.wait()
        for rec in share:
            while not log.submit(rec):  # the queue is full: back off, as a 503 would
                log.stats.dropped_rows -= rec.inputs.shape[0]
                time.sleep(0.001)

    threads = [threading.Thread(target=client, args=(s,)) for s in shares]
    for t in threads:
        t.start()
    barrier.wait()
    start = time.perf_counter()
    for t in threads:
        t.join()
    log.close()
    secs = time.perf_counter() - start
    assert log.stats.dropped_rows == 0, log.stats
    return secs


def _flush_cpu(requests: int, rows: int, rounds: int) -> None:
    """The flush thread's own CPU per sink for the same records (GIL time the requests share).

    ``thread_time`` counts the calling thread only: pyarrow's compression threads and the
    database server are not in it.
    """
    import pyarrow.parquet as pq

    from modelcycle.scoring._log_rows import to_rows
    from modelcycle.scoring.log_sinks.aggregates import part_aggregates
    from modelcycle.scoring.log_sinks.parquet_table import group_records, records_table

    records = _records(requests, rows)
    db, parquet = [], []
    for _ in range(rounds):
        start = time.thread_time()
        to_rows(records)
        db.append(time.thread_time() - start)
        start = time.thread_time()
        for group in group_records(records).values():
            table = records_table(group)
            part_aggregates(table)
            pq.write_table(table, io.BytesIO(), compression="zstd")
        parquet.append(time.thread_time() - start)
    n = requests * rows
    print(f"load average (1 min): {os.getloadavg()[0]:.1f} (2 cores)")
    db_us, pq_us = (statistics.median(x) / n * 1e6 for x in (db, parquet))
    print(f"flush-thread CPU per row, median of {rounds}:")
    print(f"  database sink (rows as JSON text): {db_us:.2f} us")
    print(f"  parquet sink (columns, aggregates, Parquet bytes): {pq_us:.2f} us")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=8000)
    ap.add_argument("--rows", type=int, default=4)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--cpu", action="store_true", help="only the flush thread's CPU per sink")
    args = ap.parse_args()
    if args.cpu:
        _flush_cpu(args.requests, args.rows, args.rounds)
        return
    import psycopg
    import pyarrow.parquet as pq
    from sqlalchemy import Column, MetaData, Table, insert

    from _pg import start_server
    from _s3 import moto_server
    from modelcycle import init_workspace
    from modelcycle.scoring import PredictionLog
    from modelcycle.scoring._log_rows import to_rows
    from modelcycle.scoring.log_sinks import open_log_sink
    from modelcycle.scoring.log_sinks.parquet_table import records_table
    from modelcycle.store import tables

    server = start_server()
    with moto_server() as s3:
        os.environ.update(s3.env)
        bucket = s3.new_bucket()
        try:
            results: dict[tuple[str, int], list[float]] = {}
            floors: dict[str, list[float]] = {"database": [], "parquet": []}
            loads: list[float] = []
            for _round in range(args.rounds):
                name = f"bench_{uuid.uuid4().hex[:8]}"
                with psycopg.connect(
                    host=server.host, port=server.port, user=server.user, dbname="postgres",
                    autocommit=True,
                ) as conn:  # fmt: skip
                    conn.execute(f'CREATE DATABASE "{name}"')
                db_url = server.url(name)
                tmp = tempfile.mkdtemp()
                os.environ["MODELCYCLE_ARTIFACTS_URL"] = f"s3://{bucket}/r{_round}"
                ws, _ = init_workspace(Path(tmp) / "ws", db_url=db_url)
                records = _records(args.requests, args.rows)
                total = args.requests * args.rows
                loads.append(os.getloadavg()[0])
                # Floors on the same rows.
                rows = to_rows(records)
                columns = (Column(c.name, c.type) for c in tables.prediction_log.c)
                plain = Table("bench_rows", MetaData(), *columns)
                plain.create(ws.metadata.engine)
                start = time.perf_counter()
                for i in range(0, len(rows), 2000):
                    with ws.metadata.engine.begin() as conn:
                        conn.execute(insert(plain), rows[i : i + 2000])
                floors["database"].append(total / (time.perf_counter() - start))
                table = records_table(records)
                client = s3.client()
                start = time.perf_counter()
                buf = io.BytesIO()
                pq.write_table(table, buf, compression="zstd")
                client.put_object(Bucket=bucket, Key=f"floor/{_round}.parquet", Body=buf.getvalue())
                floors["parquet"].append(total / (time.perf_counter() - start))
                for sink_name in ("database", "parquet"):
                    for clients in (1, 8, 64):
                        spill = Path(tmp) / f"spill-{sink_name}-{clients}"
                        config = {"scoring": {"log_sink": sink_name, "log_flush_rows": 20_000}}
                        sink = open_log_sink(
                            config, ws.metadata, spill, artifacts_url=ws.settings.artifacts_url
                        )
                        log = PredictionLog(ws.metadata, spill, sink=sink)
                        secs = _through_log(log, records, clients)
                        assert log.stats.logged_rows == total, (sink_name, log.stats)
                        results.setdefault((sink_name, clients), []).append(total / secs)
                ws.close()
            print(
                f"load average (1 min) per round: {', '.join(f'{x:.1f}' for x in loads)} (2 cores)"
            )
            print(f"{args.requests} requests x {args.rows} rows, medians of {args.rounds} rounds")
            print(f"{'sink':<10} {'clients':>7} {'rows/s':>9} {'floor rows/s':>12} {'ratio':>6}")
            for (sink_name, clients), got in results.items():
                ours, floor = statistics.median(got), statistics.median(floors[sink_name])
                print(f"{sink_name:<10} {clients:>7} {ours:9.0f} {floor:12.0f} {ours / floor:6.2f}")
        finally:
            server.stop()


if __name__ == "__main__":
    main()
