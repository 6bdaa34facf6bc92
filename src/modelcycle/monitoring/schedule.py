"""Scheduled monitoring: ``[[monitor]]`` entries in modelcycle.toml and the one function a
scheduled check calls (the worker runs it every ``every``).

    [[monitor]]
    model = "credit@champion"
    window = "1h"        # the prediction log of the last hour
    every = "1h"
    performance = true   # also metrics from ground truth (default true)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from modelcycle.errors import InvalidInput
from modelcycle.monitoring.facade import Monitoring
from modelcycle.monitoring.performance import PerformanceReport
from modelcycle.monitoring.results import DriftCheck
from modelcycle.monitoring.windows import parse_duration
from modelcycle.store import MetadataStore

if TYPE_CHECKING:
    from modelcycle.datasets import DatasetCatalog
    from modelcycle.registry import ModelRegistry

__all__ = ["MonitorEntry", "ScheduledResult", "monitor_entries", "run_scheduled_check"]

_KEYS = {"model", "window", "every", "performance", "columns"}


@dataclass(frozen=True)
class MonitorEntry:
    model: str
    window: timedelta
    every: timedelta
    performance: bool = True
    columns: tuple[str, ...] | None = None

    @classmethod
    def from_config(cls, entry: Mapping[str, Any], *, where: str = "[[monitor]]") -> MonitorEntry:
        """Validate one entry; errors name the entry and the key."""
        from modelcycle.registry import parse_model_ref

        if not isinstance(entry, Mapping):
            raise InvalidInput("must be a table with model, window, every", field=where)
        unknown = sorted(set(entry) - _KEYS)
        if unknown:
            raise InvalidInput(
                f"unknown key(s) {', '.join(unknown)}; expected {', '.join(sorted(_KEYS))}",
                field=where,
            )
        for key in ("model", "window", "every"):
            if key not in entry:
                raise InvalidInput(f"is missing {key!r}", field=where)
        model = entry["model"]
        if not isinstance(model, str) or not model:
            raise InvalidInput("must be NAME, NAME@ALIAS or NAME/VERSION", field=f"{where}.model")
        if "/" in model or "@" in model:
            parse_model_ref(model, field=f"{where}.model")
        performance = entry.get("performance", True)
        if not isinstance(performance, bool):
            raise InvalidInput("must be true or false", field=f"{where}.performance")
        columns = entry.get("columns")
        if columns is not None and (
            not isinstance(columns, list) or not all(isinstance(c, str) for c in columns)
        ):
            raise InvalidInput("must be a list of column names", field=f"{where}.columns")
        return cls(
            model=model,
            window=parse_duration(entry["window"], field=f"{where}.window"),
            every=parse_duration(entry["every"], field=f"{where}.every"),
            performance=performance,
            columns=tuple(columns) if columns is not None else None,
        )


def monitor_entries(config: Mapping[str, Any]) -> list[MonitorEntry]:
    """Every ``[[monitor]]`` entry of a parsed modelcycle.toml, validated."""
    entries = config.get("monitor", [])
    if not isinstance(entries, list):
        raise InvalidInput("must be an array of tables: [[monitor]]", field="[[monitor]]")
    return [
        MonitorEntry.from_config(e, where=f"[[monitor]] #{i + 1}") for i, e in enumerate(entries)
    ]


@dataclass(frozen=True)
class ScheduledResult:
    entry: MonitorEntry
    drift: DriftCheck
    performance: PerformanceReport | None


def run_scheduled_check(
    metadata: MetadataStore,
    actor: str,
    registry: ModelRegistry,
    datasets: DatasetCatalog,
    entry: MonitorEntry | Mapping[str, Any],
    *,
    config: Mapping[str, Any] | None = None,
    now: datetime | None = None,
) -> ScheduledResult:
    """One scheduled check: drift over the last ``window`` of the prediction log (stored,
    ``drift.checked`` / ``drift.detected``), then performance over the same window when
    feedback exists (``performance.degraded``)."""
    if not isinstance(entry, MonitorEntry):
        entry = MonitorEntry.from_config(entry)
    monitoring = Monitoring(metadata, actor, registry=registry, datasets=datasets, config=config)
    check = monitoring.drift(
        model=entry.model,
        window=entry.window,
        columns=list(entry.columns) if entry.columns else None,
        now=now,
    )
    perf = (
        monitoring.performance(entry.model, window=entry.window, now=now)
        if entry.performance
        else None
    )
    return ScheduledResult(entry, check, perf)
