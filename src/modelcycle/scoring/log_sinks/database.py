"""The database sink: one ``prediction_log`` row per scored row (the default, for a laptop).

Rows (inputs and outputs as JSON text; see :mod:`modelcycle.scoring._log_rows`) are written in
bulk with :meth:`MetadataStore.append_rows` (observations, not audited changes), as tuples in
:data:`~modelcycle.scoring._log_rows.ROW_COLUMNS` order: the flush thread builds no per-row
dictionary and SQLAlchemy processes no per-row parameters. When the
database is locked, slow or down (a write that does not finish within ``db_timeout``), the
rows go to an append-only JSON-lines *spill file* under ``spill_dir`` instead, and the
database is tried again after ``retry_after`` seconds.

Spill files are ingested by :func:`ingest_spill` (each server at start, after the database
comes back, and ``modelcycle predictions ingest-spill``). A file is written under a temporary
name, locked (``flock``) and then renamed, and stays locked while its writer has it open, so
an ingester never reads a file that is still growing. Rows ingested from a file carry its id
in ``spill_id``, and ingesting deletes that id's rows first in the same transaction, so a
crash between commit and unlink duplicates nothing.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import time
import uuid
from pathlib import Path
from typing import IO, Any

import orjson

from modelcycle.scoring._log_rows import ROW_COLUMNS, LogRecord, to_tuples
from modelcycle.scoring.log_sinks.base import LogSink, LogStats, SinkOptions, SpillIngest
from modelcycle.store import MetadataStore, tables

__all__ = ["SPILL_PREFIX", "DatabaseSink", "ingest_spill"]

_log = logging.getLogger("modelcycle.scoring.prediction_log")

SPILL_PREFIX = "predictions-"
SPILL_SUFFIX = ".jsonl"


class DatabaseSink(LogSink):
    """``prediction_log`` rows, or a locked JSON-lines spill file while the database fails."""

    name = "database"

    def __init__(self, options: SinkOptions, stats: LogStats | None = None) -> None:
        super().__init__(options, stats)
        self._db_retry_at = 0.0
        self._spill: IO[bytes] | None = None

    def write(self, records: list[LogRecord]) -> None:
        self._write(to_tuples(records))

    def close(self) -> None:
        self._close_spill()

    def ingest_spill(self) -> SpillIngest:
        return ingest_spill(
            self.options.metadata, self.options.spill_dir, timeout=self.options.db_timeout * 5
        )

    def _write(self, rows: list[tuple[Any, ...]]) -> None:
        opts = self.options
        if time.monotonic() >= self._db_retry_at:
            try:
                opts.metadata.append_rows(
                    tables.prediction_log, rows, columns=ROW_COLUMNS, timeout=opts.db_timeout
                )
            except Exception as exc:
                self.stats.db_failures += 1
                self._db_retry_at = time.monotonic() + opts.retry_after
                _log.warning(
                    "prediction log: the database did not take %d row(s) (%s); spilling to %s "
                    "for %.0f s",
                    len(rows),
                    exc,
                    opts.spill_dir,
                    opts.retry_after,
                )
            else:
                self.stats.logged_rows += len(rows)
                if self._ingest_on_recovery and not self.closing:
                    self._close_spill()  # its lock held: the ingest would skip it
                self.recovered()
                return
        self._spill_rows(rows)

    def _spill_rows(self, rows: list[tuple[Any, ...]]) -> None:
        if self._spill is None:
            folder = self.options.spill_dir
            folder.mkdir(parents=True, exist_ok=True)
            spill_id = uuid.uuid4().hex
            tmp = folder / f".{spill_id}.tmp"
            handle = open(tmp, "ab")  # noqa: SIM115 - kept open (and locked) until _close_spill
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
            os.replace(tmp, folder / f"{SPILL_PREFIX}{spill_id}{SPILL_SUFFIX}")
            self._spill = handle
        # Spill lines stay objects (what ingest_spill reads, whichever version wrote them).
        self._spill.write(
            b"".join(orjson.dumps(dict(zip(ROW_COLUMNS, row, strict=True))) + b"\n" for row in rows)
        )
        self._spill.flush()
        self.stats.spilled_rows += len(rows)
        self._ingest_on_recovery = True

    def _close_spill(self) -> None:
        if self._spill is not None:
            with contextlib.suppress(OSError):
                os.fsync(self._spill.fileno())
            self._spill.close()  # releases the lock: the file may now be ingested
            self._spill = None


def ingest_spill(
    metadata: MetadataStore, spill_dir: Path | str, *, timeout: float | None = None
) -> SpillIngest:
    """Move the rows of every closed JSON-lines spill file into ``prediction_log``, then delete
    the file.

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
