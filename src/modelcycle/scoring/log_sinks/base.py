"""Where the prediction log's records go: one small base class, a table of sinks by name.

:class:`~modelcycle.scoring.PredictionLog` owns the request side (a bounded queue that requests
append to by reference) and the flush thread; a sink owns what happens to a batch on that
thread: the database sink writes one ``prediction_log`` row per scored row, the Parquet sink
buffers rows into hourly Parquet parts in the object store with aggregates in the database.
Both spill to local files when their destination fails and ingest those files later, and
both are read back by :func:`modelcycle.scoring.read_predictions` (monitoring's entry point),
whichever of them holds a window.

``[scoring] log_sink`` in ``modelcycle.toml`` chooses one (default ``database``).
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from importlib import import_module
from pathlib import Path
from typing import Any, ClassVar

from pydantic import Field, field_validator

from modelcycle.scoring._log_rows import LogRecord
from modelcycle.settings import SectionModel, parse_section
from modelcycle.store import MetadataStore

__all__ = [
    "SINKS",
    "LogSink",
    "LogStats",
    "ScoringSection",
    "SinkOptions",
    "SpillIngest",
    "check_log_sink",
    "open_log_sink",
    "scoring_section",
]

_log = logging.getLogger("modelcycle.scoring.prediction_log")


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
    """What an ingest of spill files did."""

    files: int
    rows: int
    bad_lines: int
    busy_files: int


@dataclass(frozen=True, slots=True)
class SinkOptions:
    """What every sink is built from (``[scoring]`` plus where the process keeps its files)."""

    metadata: MetadataStore
    spill_dir: Path
    artifacts_url: str = ""
    db_timeout: float = 1.0
    retry_after: float = 5.0
    flush_rows: int = 50_000
    flush_seconds: float = 60.0


class LogSink(ABC):
    """Takes batches of records on the flush thread; never raises out of :meth:`write`.

    Every row given to :meth:`write` is, once :meth:`close` returns, at its destination or in
    a spill file under ``spill_dir`` that :meth:`ingest_spill` moves there later. Buffered
    sinks flush on :meth:`tick` (called on every wake-up of the flush thread) when their
    oldest buffered row is older than ``flush_seconds``. Constructors do no I/O.
    """

    name: ClassVar[str]

    def __init__(self, options: SinkOptions, stats: LogStats | None = None) -> None:
        self.options = options
        self.stats = stats or LogStats()
        # Set by the log when it stops taking records: no spill ingest then (shutdown is
        # for draining; the next start ingests).
        self.closing = False
        self._ingest_on_recovery = False

    @abstractmethod
    def write(self, records: list[LogRecord]) -> None:
        """Take a batch (the flush thread's; already off the request path)."""

    def tick(self) -> None:  # noqa: B027 - a no-op for sinks that write at once
        """Flush what has waited long enough (buffered sinks)."""

    @abstractmethod
    def close(self) -> None:
        """Write or spill everything taken; after this no row is only in memory."""

    @abstractmethod
    def ingest_spill(self) -> SpillIngest:
        """Move closed spill files to the destination (idempotent; raises if it is down)."""

    def ingest_leftovers(self) -> None:
        """:meth:`ingest_spill`, logged and counted; a failure is retried after a recovery."""
        try:
            done = self.ingest_spill()
        except Exception as exc:
            _log.warning("prediction log: spill files not ingested yet (%s)", exc)
            self._ingest_on_recovery = True
            return
        self.stats.ingested_rows += done.rows
        if done.files:
            _log.info(
                "prediction log: ingested %d row(s) from %d spill file(s)", done.rows, done.files
            )

    def recovered(self) -> None:
        """Called after a write reached the destination: ingest what was spilled meanwhile."""
        if self._ingest_on_recovery and not self.closing:
            self._ingest_on_recovery = False
            self.ingest_leftovers()


# name -> "module:class"; imported only when chosen.
SINKS: dict[str, str] = {
    "database": "modelcycle.scoring.log_sinks.database:DatabaseSink",
    "parquet": "modelcycle.scoring.log_sinks.parquet:ParquetSink",
}


class ScoringSection(SectionModel):
    """``[scoring]``: where the prediction log goes and how the Parquet sink batches it;
    whether batch jobs compile tree ensembles (``compiled_trees``, registry/compiled_trees.py)."""

    log_sink: str = "database"
    log_flush_rows: int = Field(default=50_000, ge=1)
    log_flush_seconds: float = Field(default=60.0, gt=0)
    compiled_trees: bool = True
    # A build takes seconds: jobs from this many rows build one, smaller ones use it if built.
    compiled_trees_min_rows: int = Field(default=1_000_000, ge=0)

    @field_validator("log_sink")
    @classmethod
    def _known(cls, value: str) -> str:
        if value not in SINKS:
            raise ValueError(f"one of: {', '.join(sorted(SINKS))}, got {value!r}")
        return value


def scoring_section(config: Mapping[str, Any]) -> ScoringSection:
    """``[scoring]`` validated; a bad value raises InvalidInput naming ``scoring.KEY``."""
    return parse_section(config, "scoring", ScoringSection)


def check_log_sink(config: Mapping[str, Any], artifacts_url: str) -> ScoringSection:
    """``[scoring]`` validated, and the chosen sink's destination usable by URL (no I/O): what
    ``modelcycle serve`` checks before it starts any worker."""
    section = scoring_section(config)
    if section.log_sink == "parquet":
        from modelcycle.scoring.log_sinks.objects import LogObjects

        LogObjects(artifacts_url)  # InvalidInput for a store it cannot write parts to
    return section


def open_log_sink(
    config: Mapping[str, Any],
    metadata: MetadataStore,
    spill_dir: Path | str,
    *,
    artifacts_url: str = "",
    stats: LogStats | None = None,
) -> LogSink:
    """The sink ``[scoring] log_sink`` names, built (no I/O yet)."""
    section = scoring_section(config)
    options = SinkOptions(
        metadata=metadata,
        spill_dir=Path(spill_dir),
        artifacts_url=artifacts_url,
        flush_rows=section.log_flush_rows,
        flush_seconds=section.log_flush_seconds,
    )
    return sink_class(section.log_sink)(options, stats)


def sink_class(name: str) -> Callable[[SinkOptions, LogStats | None], LogSink]:
    module, _, attr = SINKS[name].partition(":")
    cls: Callable[[SinkOptions, LogStats | None], LogSink] = getattr(import_module(module), attr)
    return cls
