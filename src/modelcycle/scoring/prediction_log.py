"""The prediction log: every scored row, written in batches off the request path.

A request hands its :class:`LogRecord` (the validated input table or array, by reference, and
the answer) to :meth:`PredictionLog.submit`, which only appends to a bounded in-memory queue. A
background thread takes batches off the queue and hands them to the log's *sink*
(:mod:`modelcycle.scoring.log_sinks`): the database sink (the default) writes one
``prediction_log`` row per scored row; the Parquet sink (``[scoring] log_sink = "parquet"``)
writes hourly Parquet parts to the object store and only aggregates to the database. Either
spills to local files under ``spill_dir`` when its destination fails and ingests them later
(at start and after the destination comes back). Nothing on the request path waits for any of
it, and all conversion happens on the flush thread.

:meth:`PredictionLog.close` (on SIGTERM, after the in-flight requests) drains the queue and
closes the sink: every row submitted is at its destination or in a spill file when it returns.

:func:`read_predictions` is the reader monitoring uses: it reads the window from both sinks
(the database's rows and the Parquet parts the database indexes), whichever holds it.
"""

from __future__ import annotations

import logging
import random
import threading
from collections import deque
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.compute
from sqlalchemy import select

from modelcycle.audit import utc_timestamp
from modelcycle.errors import InvalidInput
from modelcycle.scoring._log_rows import LogRecord, record_rows
from modelcycle.scoring.log_sinks.base import (
    LogSink,
    LogStats,
    SinkOptions,
    SpillIngest,
    open_log_sink,
)
from modelcycle.scoring.log_sinks.database import DatabaseSink, ingest_spill
from modelcycle.scoring.log_sinks.reader import read_parts
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

_RECENT_IDS = 50_000


class PredictionLog:
    """A bounded queue of records flushed by a background thread to a sink.

    The constructor does no I/O; :meth:`start` starts the thread, :meth:`close` drains and stops.
    ``sample`` is the share of requests logged (decided per request by :meth:`sampled`).
    ``sink`` defaults to the database sink; :meth:`from_config` builds the one
    ``[scoring] log_sink`` names.
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
        sink: LogSink | None = None,
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
        self.stats = LogStats()
        if sink is None:
            options = SinkOptions(
                metadata, self.spill_dir, db_timeout=db_timeout, retry_after=retry_after
            )
            sink = DatabaseSink(options)
        sink.stats = self.stats  # one set of counters, whichever sink
        self.sink = sink
        self._queue: deque[LogRecord] = deque()
        self._queued_rows = 0
        self._cond = threading.Condition()
        self._closing = False
        self._thread: threading.Thread | None = None
        self._recent: dict[str, str] = {}

    @classmethod
    def from_config(
        cls,
        config: Mapping[str, Any],
        metadata: MetadataStore,
        spill_dir: Path | str,
        *,
        artifacts_url: str,
        sample: float = 1.0,
    ) -> PredictionLog:
        """The log with the sink ``[scoring] log_sink`` of ``config`` names (InvalidInput
        naming ``scoring.KEY`` for a bad value)."""
        sink = open_log_sink(config, metadata, spill_dir, artifacts_url=artifacts_url)
        return cls(metadata, spill_dir, sample=sample, sink=sink)

    def __repr__(self) -> str:
        return (
            f"PredictionLog(sink={self.sink.name!r}, sample={self.sample}, "
            f"queued_rows={self._queued_rows})"
        )

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
        """Stop taking records, write every queued one (sink or spill file), stop."""
        with self._cond:
            self._closing = True
            self.sink.closing = True
            self._cond.notify()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                _log.error("the prediction log did not drain within %.0f s", timeout)
                return
        else:
            self._drain()
        self._close_sink()

    # -- flush thread ------------------------------------------------------------------------

    def _run(self, ingest_leftovers: bool) -> None:
        if ingest_leftovers:
            self.sink.ingest_leftovers()
        while True:
            with self._cond:
                if not self._closing and self._queued_rows < self.batch_rows:
                    self._cond.wait(self.flush_interval)
                closing = self._closing
            self._drain()
            if closing:
                self._drain()
                return
            try:
                self.sink.tick()
            except Exception:  # never let the thread die
                _log.exception("the prediction log's sink failed to flush")

    def _drain(self) -> None:
        while True:
            batch = self._take()
            if not batch:
                return
            try:
                self.sink.write(batch)
            except Exception:  # never let the thread die: count what was lost, go on
                lost = sum(record_rows(r) for r in batch)
                self.stats.dropped_rows += lost
                _log.exception("the prediction log lost %d row(s)", lost)

    def _close_sink(self) -> None:
        try:
            self.sink.close()
        except Exception:
            _log.exception("the prediction log's sink failed to close")

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

    # -- metrics -----------------------------------------------------------------------------

    def render_metrics(self) -> str:
        s = self.stats
        samples = [
            ("queue_rows", "gauge", "Rows waiting to be logged.", self._queued_rows),
            ("rows_total", "counter", "Rows written to the sink.", s.logged_rows),
            ("spilled_rows_total", "counter", "Rows written to a spill file.", s.spilled_rows),
            ("dropped_rows_total", "counter", "Rows lost (must stay 0).", s.dropped_rows),
            ("db_failures_total", "counter", "Sink writes that failed.", s.db_failures),
            ("ingested_rows_total", "counter", "Spilled rows ingested.", s.ingested_rows),
        ]
        lines: list[str] = []
        for short, kind, text, value in samples:
            name = f"modelcycle_prediction_log_{short}"
            lines += [f"# HELP {name} {text}", f"# TYPE {name} {kind}", f"{name} {value}"]
        lines.append(f"modelcycle_prediction_log_sample_rate {self.sample}")
        return "\n".join(lines) + "\n"


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

    Both sinks are read: the database's rows and the Parquet parts ``prediction_log_parts``
    indexes for the window (a workspace that switched sinks, or batch scoring's rows, which
    always go to the database, are then one log).
    """
    lo, hi = _when(since, "since"), _when(until, "until")
    table = _read_database(metadata, model_name, lo, hi, version, include_shadow, limit)
    parts = read_parts(
        metadata, model_name, since=lo, until=hi, version=version, include_shadow=include_shadow
    )
    if parts is None:
        return table
    if table.num_rows:
        parts = pa.concat_tables([table, parts], promote_options="permissive")
    # Oldest first, as the database orders its rows; then the log's columns last.
    parts = parts.take(pa.compute.sort_indices(parts, [("at", "ascending")]))
    trailing = [c for c in _TRAILING if c in parts.column_names]
    parts = parts.select([c for c in parts.column_names if c not in trailing] + trailing)
    return parts.slice(0, limit) if limit is not None else parts


_TRAILING = ("prediction", "probabilities", "model_version", "request_id", "row_index", "at")


def _read_database(
    metadata: MetadataStore,
    model_name: str,
    lo: str | None,
    hi: str | None,
    version: int | None,
    include_shadow: bool,
    limit: int | None,
) -> pa.Table:
    t = tables.prediction_log
    query = select(
        t.c.inputs, t.c.outputs, t.c.model_version, t.c.request_id, t.c.row_index, t.c.at
    ).where(t.c.model_name == model_name)
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
