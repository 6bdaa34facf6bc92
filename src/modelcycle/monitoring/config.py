"""``[monitoring]`` (and its ``[monitoring.drift]`` table) of ``modelcycle.toml``, validated once
when ``ws.monitoring`` is built: a bad value names ``monitoring.KEY`` and what was expected."""

from __future__ import annotations

from typing import Any

from pydantic import Field, field_validator

from modelcycle.monitoring.policy import DriftPolicy
from modelcycle.monitoring.results import Debounce
from modelcycle.settings import SectionModel

__all__ = ["MIN_WINDOW_ROWS", "MonitoringSection"]

MIN_WINDOW_ROWS = 100  # predictions a model-mode window needs before it is tested


class MonitoringSection(SectionModel):
    """``[monitoring]``: defaults of drift checks and performance windows."""

    # [monitoring.drift]: DriftPolicy's own keys, checked by DriftPolicy (it names them).
    drift: dict[str, Any] = Field(default_factory=dict)
    # [K, M] or "K/M": drift.detected only when K of the last M checks drifted.
    debounce: list[int] | str | None = None
    drift_min_rows: int = Field(default=MIN_WINDOW_ROWS, ge=1)
    degradation: float = 0.05
    min_rows: int = 30

    @field_validator("drift")
    @classmethod
    def _drift_policy(cls, value: dict[str, Any]) -> dict[str, Any]:
        DriftPolicy.from_config(value)  # raises InvalidInput naming [monitoring.drift]
        return value

    @field_validator("debounce")
    @classmethod
    def _debounce(cls, value: list[int] | str | None) -> list[int] | str | None:
        Debounce.from_config(value)  # raises InvalidInput naming [monitoring] debounce
        return value

    @property
    def debounce_rule(self) -> Debounce:
        return Debounce.from_config(self.debounce)
