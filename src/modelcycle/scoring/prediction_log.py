"""The prediction log: every scored row, written in batches off the request path.

A request hands its :class:`LogRecord` (the validated input table or array, by reference, and
the answer) to :meth:`PredictionLog.submit`, which only appends to a bounded in-memory queue. A
background thread turns records into ``prediction_log`` rows (one per scored row, inputs and
outputs as JSON text; see :mod:`._log_rows`) and writes them in bulk with
:meth:`MetadataStore.append_rows` (observations, not audited changes). When the database is
locked, slow or down (a write that does not finish within ``db_timeout``), the rows go to an
append-only JSON-lines *spill file* under the workspace's ``.modelcycle/spill/`` instead, and
the database is tried again after ``retry_after`` seconds. Nothing on the request path waits
for either.

Spill files are ingested later by :func:`ingest_spill` (each server at start, after the
database comes back, and ``modelcycle predictions ingest-spill``). A file is written under a
temporary name, locked (``flock``) and then renamed, and stays locked while its writer has it
open, so an ingester never reads a file that is still growing. Rows ingested from a file carry
its id in ``spill_id``, and ingesting deletes that id's rows first in the same transaction, so
a crash between commit and unlink duplicates nothing.

:meth:`PredictionLog.close` (on SIGTERM, after the in-flight requests) drains the queue: every
row submitted is in the database or in a spill file when it returns.

:func:`read_predictions` is the reader monitoring uses.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import random
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import IO, Any

import orjson
import pyarrow as pa
from sqlalchemy import select

from modelcycle.audit import utc_timestamp
from modelcycle.errors import InvalidInput
from modelcycle.scoring._log_rows import LogRecord, record_rows, to_rows
from modelcycle.store import MetadataStore, tables

__all__ = [
    "LogRecord",
    "LogStats",
    "PredictionLog",
    "SpillIngest",
    "ingest_spill",
    "read_predictions",
]

_log = logging.getLogger("modelcycle.scoring.prediction_log")

SPILL_PREFIX = "predictions-"
SPILL_SUFFIX = ".jsonl"
_RECENT_IDS = 50_000


@dataclass(slots=True)
class LogStats:
    """Counters of one process's log (rows, not requests)."""

    submitted_rows: int = 0
    logged_rows: int = 0
    spilled_rows: int = 0
    dropped_rows: int = 0
    db_failures: int = 0
    ingested_rows: int = 0


@dataclass(frozen=True, slots=True)
class SpillIngest:
    """What :func:`ingest_spill` did."""

    files: int
    rows: int
    bad_lines: int
    busy_files: int


class PredictionLog:
    """A bounded queue of records flushed by a background thread to the database or a spill file.

    The constructor does no I/O; :meth:`start` starts the thread, :meth:`close` drains and stops.
    ``sample`` is the share of requests logged (decided per request by :meth:`sampled`).
    """

    def __init__(
        self,
        metadata: MetadataStore,
        spill_dir: Path | str,
        *,
        sample: float = 1.0,
        max_queue_rows: int = 200_000,
        batch_rows: int = 2_000,
        flush_interval: float = 0.25,
        db_timeout: float = 1.0,
        retry_after: float = 5.0,
    ) -> None:
        if not 0.0 <= sample <= 1.0:
            raise InvalidInput(f"must be within [0, 1], got {sample!r}", field="log_sample")
        if max_queue_rows < 1 or batch_rows < 1:
            raise InvalidInput("queue and batch sizes must be >= 1", field="log_queue")
        self.metadata = metadata
        self.spill_dir = Path(spill_dir)
        self.sample = sample
        self.max_queue_rows = max_queue_rows
        self.batch_rows = batch_rows
        self.flush_interval = flush_interval
        self.db_timeout = db_timeout
        self.retry_after = retry_after
        self.stats = LogStats()
        self._queue: deque[LogRecord] = deque()
        self._queued_rows = 0
        self._cond = threading.Condition()
        self._closing = False
        self._thread: threading.Thread | None = None
        self._db_retry_at = 0.0
        self._spill: IO[bytes] | None = None
        self._spill_path: Path | None = None
        self._recent: dict[str, str] = {}
        self._ingest_on_recovery = False

    def __repr__(self) -> str:
        return f"PredictionLog(sample={self.sample}, queued_rows={self._queued_rows})"

    # -- request side (event loop): never blocks ---------------------------------------------

    def sampled(self) -> bool:
        return self.sample >= 1.0 or (self.sample > 0.0 and random.random() < self.sample)  # noqa: S311

    @property
    def queue_rows(self) -> int:
        return self._queued_rows

    def submit(self, record: LogRecord) -> bool:
        """Queue ``record``; False (and counted as dropped) only when the queue is full."""
        n = record_rows(record)
        with self._cond:
            self.stats.submitted_rows += n
            if self._queued_rows + n > self.max_queue_rows or self._closing:
                self.stats.dropped_rows += n
                return False
            self._queue.append(record)
            self._queued_rows += n
            if not record.shadow:
                self._recent[record.request_id] = record.model_name
                if len(self._recent) > _RECENT_IDS:
                    del self._recent[next(iter(self._recent))]
            if self._queued_rows >= self.batch_rows:
                self._cond.notify()
        return True

    def recent_model(self, request_id: str) -> str | None:
        """The model that answered ``request_id`` lately in this process (None if not seen)."""
        return self._recent.get(request_id)

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self, *, ingest_leftovers: bool = True) -> None:
        """Start the flush thread; with ``ingest_leftovers`` it first ingests old spill files."""
        if self._thread is not None:
            return
        self._thread = threading.Thread(
            target=self._run,
            args=(ingest_leftovers,),
            name="modelcycle-prediction-log",
            daemon=True,
        )
        self._thread.start()

    def close(self, timeout: float = 60.0) -> None:
        """Stop taking records, write every queued one (database or spill file), stop."""
        with self._cond:
            self._closing = True
            self._cond.notify()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                _log.error("the prediction log did not drain within %.0f s", timeout)
        else:
            self._drain()
        self._close_spill()

    # -- flush thread ------------------------------------------------------------------------

    def _run(self, ingest_leftovers: bool) -> None:
        if ingest_leftovers:
            self._ingest()
        while True:
            with self._cond:
                if not self._closing and self._queued_rows < self.batch_rows:
                    self._cond.wait(self.flush_interval)
                closing = self._closing
            self._drain()
            if closing:
                self._drain()
                return

    def _drain(self) -> None:
        while True:
            batch = self._take()
            if not batch:
                return
            try:
                self._write(to_rows(batch))
            except Exception:  # never let the thread die: count what was lost, go on
                lost = sum(record_rows(r) for r in batch)
                self.stats.dropped_rows += lost
                _log.exception("the prediction log lost %d row(s)", lost)

    def _take(self) -> list[LogRecord]:
        with self._cond:
            batch: list[LogRecord] = []
            rows = 0
            while self._queue and (not batch or rows < self.batch_rows):
                record = self._queue.popleft()
                rows += record_rows(record)
                batch.append(record)
            self._queued_rows -= rows
            return batch

    def _write(self, rows: list[dict[str, Any]]) -> None:
        if time.monotonic() >= self._db_retry_at:
            try:
                self.metadata.append_rows(tables.prediction_log, rows, timeout=self.db_timeout)
            except Exception as exc:
                self.stats.db_failures += 1
                self._db_retry_at = time.monotonic() + self.retry_after
                _log.warning(
                    "prediction log: the database did not take %d row(s) (%s); spilling to %s "
                    "for %.0f s",
                    len(rows),
                    exc,
                    self.spill_dir,
                    self.retry_after,
                )
            else:
                self.stats.logged_rows += len(rows)
                if self._ingest_on_recovery and not self._closing:
                    self._ingest_on_recovery = False
                    self._close_spill()
                    self._ingest()
                return
        self._spill_rows(rows)

    def _spill_rows(self, rows: list[dict[str, Any]]) -> None:
        if self._spill is None:
            self.spill_dir.mkdir(parents=True, exist_ok=True)
            spill_id = uuid.uuid4().hex
            tmp = self.spill_dir / f".{spill_id}.tmp"
            handle = open(tmp, "ab")  # noqa: SIM115 - kept open (and locked) until _close_spill
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
            final = self.spill_dir / f"{SPILL_PREFIX}{spill_id}{SPILL_SUFFIX}"
            os.replace(tmp, final)
            self._spill, self._spill_path = handle, final
        self._spill.write(b"".join(orjson.dumps(row) + b"\n" for row in rows))
        self._spill.flush()
        self.stats.spilled_rows += len(rows)
        self._ingest_on_recovery = True

    def _close_spill(self) -> None:
        if self._spill is not None:
            with contextlib.suppress(OSError):
                os.fsync(self._spill.fileno())
            self._spill.close()  # releases the lock: the file may now be ingested
            self._spill = None
            self._spill_path = None

    def _ingest(self) -> None:
        try:
            done = ingest_spill(self.metadata, self.spill_dir, timeout=self.db_timeout * 5)
        except Exception as exc:
            _log.warning("prediction log: spill files not ingested yet (%s)", exc)
            self._ingest_on_recovery = True
            return
        self.stats.ingested_rows += done.rows
        if done.files:
            _log.info(
                "prediction log: ingested %d row(s) from %d spill file(s)", done.rows, done.files
            )

    # -- metrics -----------------------------------------------------------------------------

    def render_metrics(self) -> str:
        s = self.stats
        samples = [
            ("queue_rows", "gauge", "Rows waiting to be logged.", self._queued_rows),
            ("rows_total", "counter", "Rows written to the database.", s.logged_rows),
            ("spilled_rows_total", "counter", "Rows written to a spill file.", s.spilled_rows),
            ("dropped_rows_total", "counter", "Rows lost (must stay 0).", s.dropped_rows),
            ("db_failures_total", "counter", "Database writes that failed.", s.db_failures),
            ("ingested_rows_total", "counter", "Spilled rows ingested.", s.ingested_rows),
        ]
        lines: list[str] = []
        for short, kind, text, value in samples:
            name = f"modelcycle_prediction_log_{short}"
            lines += [f"# HELP {name} {text}", f"# TYPE {name} {kind}", f"{name} {value}"]
        lines.append(f"modelcycle_prediction_log_sample_rate {self.sample}")
        return "\n".join(lines) + "\n"


# -- spill ingestion ------------------------------------------------------------------------


def ingest_spill(
    metadata: MetadataStore, spill_dir: Path | str, *, timeout: float | None = None
) -> SpillIngest:
    """Move the rows of every closed spill file into ``prediction_log``, then delete the file.

    Files still open by a running server (locked) are left alone and counted in
    ``busy_files``. Each file goes in one transaction that first deletes rows already ingested
    from it, so running this twice, or after a crash, never duplicates a row. A torn last line
    (a writer killed mid-write) is counted in ``bad_lines`` and skipped.
    """
    folder = Path(spill_dir)
    files = rows = bad = busy = 0
    if not folder.is_dir():
        return SpillIngest(0, 0, 0, 0)
    for path in sorted(folder.glob(f"{SPILL_PREFIX}*{SPILL_SUFFIX}")):
        spill_id = path.name[len(SPILL_PREFIX) : -len(SPILL_SUFFIX)]
        if len(spill_id) != 32:
            continue
        try:
            handle = open(path, "rb")  # noqa: SIM115 - closed below
        except FileNotFoundError:
            continue  # another ingester took it
        with handle:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                busy += 1
                continue
            if not path.exists():
                continue  # ingested and deleted while we waited for the lock
            parsed: list[dict[str, Any]] = []
            for line in handle.read().splitlines():
                if not line.strip():
                    continue
                try:
                    row = orjson.loads(line)
                except orjson.JSONDecodeError:
                    bad += 1
                    continue
                if not isinstance(row, dict):
                    bad += 1
                    continue
                row["spill_id"] = spill_id
                parsed.append(row)
            t = tables.prediction_log
            metadata.append_rows(t, parsed, timeout=timeout, replace_where=t.c.spill_id == spill_id)
            path.unlink()
            files += 1
            rows += len(parsed)
    return SpillIngest(files, rows, bad, busy)


# -- reading (monitoring's entry point) -------------------------------------------------------


def _when(value: str | datetime | None, field: str) -> str | None:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise InvalidInput("give a timezone-aware datetime (UTC)", field=field)
        return utc_timestamp(value)
    raise InvalidInput(f"expected a datetime or an ISO 8601 UTC text, got {value!r}", field=field)


def read_predictions(
    metadata: MetadataStore,
    model_name: str,
    *,
    since: str | datetime | None = None,
    until: str | datetime | None = None,
    version: int | None = None,
    include_shadow: bool = False,
    limit: int | None = None,
) -> pa.Table:
    """The logged rows of ``model_name`` as one Arrow table, oldest first.

    Columns: the model's input columns (as logged: the validated request values, types
    inferred from them), then ``prediction`` (the label or value answered; for requests that
    asked only for probabilities, the most probable class), ``probabilities`` (only when some
    row in the result logged them: one list per row in the signature's class order, null for
    rows without), ``model_version``, ``request_id``, ``row_index`` (the row's position in its
    request) and ``at`` (ISO 8601 UTC text).

    ``since`` (inclusive) and ``until`` (exclusive) are timezone-aware datetimes or UTC texts
    as the log stores them (``2026-11-29T10:00:00.000000Z``). ``version`` keeps one version.
    Shadow answers (a mirrored version's, never returned to callers) are left out unless
    ``include_shadow``. With no rows, the table has the five trailing columns only.
    """
    t = tables.prediction_log
    query = select(
        t.c.inputs, t.c.outputs, t.c.model_version, t.c.request_id, t.c.row_index, t.c.at
    ).where(t.c.model_name == model_name)
    lo, hi = _when(since, "since"), _when(until, "until")
    if lo is not None:
        query = query.where(t.c.at >= lo)
    if hi is not None:
        query = query.where(t.c.at < hi)
    if version is not None:
        query = query.where(t.c.model_version == int(version))
    if not include_shadow:
        query = query.where(t.c.shadow.is_(False))
    query = query.order_by(t.c.at, t.c.id)
    if limit is not None:
        query = query.limit(int(limit))
    with metadata.read() as conn:
        rows = conn.execute(query).all()
    inputs = [orjson.loads(r.inputs) for r in rows]
    table = pa.Table.from_pylist(inputs) if inputs else pa.table({})
    outputs = [orjson.loads(r.outputs) for r in rows]
    extra = {"prediction": pa.array([o.get("prediction") for o in outputs])}
    if any("probabilities" in o for o in outputs):
        extra["probabilities"] = pa.array(
            [o.get("probabilities") for o in outputs], pa.list_(pa.float64())
        )
    extra |= {
        "model_version": pa.array([int(r.model_version) for r in rows], pa.int64()),
        "request_id": pa.array([r.request_id for r in rows], pa.string()),
        "row_index": pa.array([int(r.row_index) for r in rows], pa.int64()),
        "at": pa.array([r.at for r in rows], pa.string()),
    }
    if not inputs:
        return pa.table(extra)
    for name, column in extra.items():
        if name in table.column_names:  # an input column of that name: keep the log's
            table = table.drop([name])
        table = table.append_column(name, column)
    return table
