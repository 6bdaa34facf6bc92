"""Prediction-log sinks: the database (default) and hourly Parquet parts in the object store.

See :mod:`.base` for the plug-in point; ``[scoring] log_sink`` chooses one.
"""

from modelcycle.scoring.log_sinks.base import (
    SINKS,
    LogSink,
    LogStats,
    ScoringSection,
    SinkOptions,
    SpillIngest,
    check_log_sink,
    open_log_sink,
    scoring_section,
    sink_class,
)
from modelcycle.scoring.log_sinks.reader import read_hourly

__all__ = [
    "SINKS",
    "LogSink",
    "LogStats",
    "ScoringSection",
    "SinkOptions",
    "SpillIngest",
    "check_log_sink",
    "open_log_sink",
    "read_hourly",
    "scoring_section",
    "sink_class",
]
