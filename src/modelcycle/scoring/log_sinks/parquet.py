"""The Parquet sink: the prediction log as hourly Parquet parts in the object store, with only
aggregates in the database (``[scoring] log_sink = "parquet"``).

A scoring fleet at thousands of requests a second must not write a database row per scored
row. This sink buffers records on the flush thread and writes a part per (model, hour) when
the buffer holds ``log_flush_rows`` rows or its oldest row is ``log_flush_seconds`` old (and on
shutdown), under ``prediction-log/model=NAME/date=YYYY-MM-DD/hour=HH/part-ID.parquet`` next to
the artifact store's blobs (a local folder or ``s3://``; see :mod:`.objects`: never a partial
object under the final name). Then one small transaction records the part in
``prediction_log_parts``: its location and sha256, and per (version, shadow, source) the
counts, a latency sketch and column summaries (:mod:`.aggregates`). A part is part of the log
once that row commits; readers find parts through the table, never by listing the bucket.

When the object store or the database fails, the part goes to ``spill_dir`` as a complete
Parquet file (written to a temporary name, synced, renamed) and both are tried again after
``retry_after`` seconds; spilled parts are ingested after the next success, at the next start,
or by any process running :meth:`ParquetSink.ingest_spill`. Committing a part is idempotent
(same key, same bytes; its aggregate rows replaced by part id), so an ingest that crashes
half-way, or runs twice, counts nothing twice.
"""

from __future__ import annotations

import fcntl
import hashlib
import io
import logging
import os
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from modelcycle.audit import utc_timestamp
from modelcycle.errors import InvalidInput
from modelcycle.scoring._log_rows import LogRecord, record_rows
from modelcycle.scoring.log_sinks.aggregates import part_aggregates
from modelcycle.scoring.log_sinks.base import LogSink, LogStats, SinkOptions, SpillIngest
from modelcycle.scoring.log_sinks.database import SPILL_PREFIX, ingest_spill
from modelcycle.scoring.log_sinks.objects import PREFIX, LogObjects
from modelcycle.scoring.log_sinks.parquet_table import group_records, hour_of, records_table
from modelcycle.store import tables

__all__ = ["ParquetSink", "part_key"]

_log = logging.getLogger("modelcycle.scoring.prediction_log")
PART_SUFFIX = ".parquet"


def part_key(model: str, hour: str, part_id: str) -> str:
    """``prediction-log/model=NAME/date=YYYY-MM-DD/hour=HH/part-ID.parquet`` (Hive-style)."""
    date, _, hh = hour.partition("T")
    return f"{PREFIX}/model={model}/date={date}/hour={hh}/part-{part_id}{PART_SUFFIX}"


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class ParquetSink(LogSink):
    """Hourly Parquet parts in the object store; aggregates and the parts' index in the database."""

    name = "parquet"

    def __init__(self, options: SinkOptions, stats: LogStats | None = None) -> None:
        super().__init__(options, stats)
        if not options.artifacts_url:
            raise InvalidInput(
                "the parquet sink needs the artifact store's URL", field="scoring.log_sink"
            )
        self.objects = LogObjects(options.artifacts_url)
        self._buffer: list[LogRecord] = []
        self._rows = 0
        self._oldest = 0.0
        self._retry_at = 0.0

    # -- flush thread ------------------------------------------------------------------------

    def write(self, records: list[LogRecord]) -> None:
        if not self._buffer:
            self._oldest = time.monotonic()
        self._buffer.extend(records)
        self._rows += sum(record_rows(r) for r in records)
        if self._rows >= self.options.flush_rows:
            self.flush()

    def tick(self) -> None:
        if self._buffer and time.monotonic() - self._oldest >= self.options.flush_seconds:
            self.flush()

    def close(self) -> None:
        self.flush()

    @property
    def buffered_rows(self) -> int:
        return self._rows

    def flush(self) -> None:
        """Write the buffer as one part per (model, hour), or spill it."""
        records, self._buffer, self._rows = self._buffer, [], 0
        for (model, hour), group in group_records(records).items():
            part_id = uuid.uuid4().hex
            try:
                table = records_table(group)
                data = _parquet_bytes(table)
            except Exception:  # a record this code cannot convert: count it, keep the rest
                lost = sum(record_rows(r) for r in group)
                self.stats.dropped_rows += lost
                _log.exception(
                    "prediction log: %d row(s) of %s could not be converted", lost, model
                )
                continue
            if time.monotonic() >= self._retry_at:
                try:
                    self._commit(part_id, model, hour, table, data)
                except Exception as exc:
                    self.stats.db_failures += 1
                    self._retry_at = time.monotonic() + self.options.retry_after
                    _log.warning(
                        "prediction log: part of %d row(s) not stored (%s); spilling to %s for "
                        "%.0f s",
                        table.num_rows,
                        exc,
                        self.options.spill_dir,
                        self.options.retry_after,
                    )
                else:
                    self.stats.logged_rows += table.num_rows
                    self.recovered()
                    continue
            self._spill(part_id, data, table.num_rows)

    def _commit(self, part_id: str, model: str, hour: str, table: pa.Table, data: bytes) -> None:
        location = self.objects.put(part_key(model, hour, part_id), data)
        digest = hashlib.sha256(data).hexdigest()
        now = utc_timestamp()
        rows: list[dict[str, Any]] = []
        for agg in part_aggregates(table):
            rows.append(
                agg
                | {
                    "part_id": part_id,
                    "location": location,
                    "sha256": digest,
                    "model_name": model,
                    "hour": hour,
                    "first_at": _iso(agg["first_at"]),
                    "last_at": _iso(agg["last_at"]),
                    "created_at": now,
                }
            )
        t = tables.prediction_log_parts
        self.options.metadata.append_rows(
            t, rows, timeout=self.options.db_timeout * 5, replace_where=t.c.part_id == part_id
        )

    def _spill(self, part_id: str, data: bytes, rows: int) -> None:
        folder = self.options.spill_dir
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / f".{part_id}.tmp"
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, folder / f"{SPILL_PREFIX}{part_id}{PART_SUFFIX}")  # complete, or absent
        self.stats.spilled_rows += rows
        self._ingest_on_recovery = True

    # -- spill ingestion ---------------------------------------------------------------------

    def ingest_spill(self) -> SpillIngest:
        """Commit every spilled part (and ingest the database sink's leftovers), then delete."""
        folder = self.options.spill_dir
        earlier = ingest_spill(self.options.metadata, folder, timeout=self.options.db_timeout * 5)
        files, rows, busy = earlier.files, earlier.rows, earlier.busy_files
        if not folder.is_dir():
            return earlier
        for path in sorted(folder.glob(f"{SPILL_PREFIX}*{PART_SUFFIX}")):
            part_id = path.name[len(SPILL_PREFIX) : -len(PART_SUFFIX)]
            if len(part_id) != 32:
                continue
            try:
                handle = open(path, "rb")  # noqa: SIM115 - closed below
            except FileNotFoundError:
                continue
            with handle:
                try:  # another process ingesting the same folder skips it meanwhile
                    fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    busy += 1
                    continue
                if not path.exists():
                    continue
                data = handle.read()
                table = pq.read_table(io.BytesIO(data))
                if table.num_rows:
                    model = str(table.column("model_name")[0].as_py())
                    first = table.column("at")[0].as_py()
                    hour = hour_of(int(first.timestamp() * 1_000_000))
                    self._commit(part_id, model, hour, table, data)
                path.unlink()
                files += 1
                rows += table.num_rows
        return SpillIngest(files, rows, earlier.bad_lines, busy)


def _parquet_bytes(table: pa.Table) -> bytes:
    sink = io.BytesIO()
    pq.write_table(table, sink, compression="zstd")
    return sink.getvalue()
