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
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import AfterValidator, StrictBool, StrictStr

from modelcycle.errors import InvalidInput
from modelcycle.monitoring.facade import Monitoring
from modelcycle.monitoring.performance import PerformanceReport
from modelcycle.monitoring.results import DriftCheck
from modelcycle.monitoring.windows import parse_duration
from modelcycle.settings import SectionModel, parse_section
from modelcycle.store import MetadataStore

if TYPE_CHECKING:
    from modelcycle.datasets import DatasetCatalog
    from modelcycle.registry import ModelRegistry

__all__ = [
    "MonitorEntry",
    "MonitorSection",
    "ScheduledResult",
    "monitor_entries",
    "run_scheduled_check",
]


def _ref(value: str) -> str:
    """A validator: NAME, NAME@ALIAS or NAME/VERSION (pydantic says ``expected ...``)."""
    from modelcycle.registry import parse_model_ref

    try:
        if not value or "/" in value or "@" in value:
            parse_model_ref(value, field="model")
    except InvalidInput:
        raise ValueError(f"NAME, NAME@ALIAS or NAME/VERSION, got {value!r}") from None
    return value


def _duration(value: str) -> str:
    try:
        parse_duration(value)
    except InvalidInput:
        raise ValueError(
            f"a positive number and a unit, e.g. 30m, 1h, 1d, 2w, got {value!r}"
        ) from None
    return value


class MonitorSection(SectionModel):
    """One ``[[monitor]]`` table as written."""

    model: Annotated[str, AfterValidator(_ref)]
    window: Annotated[str, AfterValidator(_duration)]
    every: Annotated[str, AfterValidator(_duration)]
    performance: StrictBool = True
    columns: list[StrictStr] | None = None


@dataclass(frozen=True)
class MonitorEntry:
    model: str
    window: timedelta
    every: timedelta
    performance: bool = True
    columns: tuple[str, ...] | None = None

    @classmethod
    def from_config(cls, entry: Mapping[str, Any], *, section: str = "monitor") -> MonitorEntry:
        """Validate one entry; a problem is one line naming ``section.key``."""
        return cls._of(parse_section({section: entry}, section, MonitorSection))

    @classmethod
    def _of(cls, m: MonitorSection) -> MonitorEntry:
        return cls(
            model=m.model,
            window=parse_duration(m.window),
            every=parse_duration(m.every),
            performance=m.performance,
            columns=tuple(m.columns) if m.columns is not None else None,
        )


def monitor_entries(config: Mapping[str, Any]) -> list[MonitorEntry]:
    """Every ``[[monitor]]`` entry of a parsed modelcycle.toml, validated; a problem is one
    line naming ``monitor[INDEX].KEY``."""
    return [MonitorEntry._of(m) for m in parse_section(config, "monitor", list[MonitorSection])]


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
