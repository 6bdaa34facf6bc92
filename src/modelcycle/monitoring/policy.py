"""Which test each column gets, with which threshold, and when the data set counts as drifted.

Defaults follow Evidently 0.7 so results are comparable:

- column type: strings, booleans and dictionaries are categorical; integers with at most 10
  distinct values (reference and current together) are categorical; other numbers numerical;
- 'large' means the reference has more than 1,000 rows (after missing values are removed);
- distinct values are counted over reference and current together, NaN and infinities left out;

| column | reference <= 1,000 rows | reference > 1,000 rows |
| --- | --- | --- |
| numerical, > 5 distinct values | ks | wasserstein |
| numerical <= 5 distinct, or categorical, > 2 distinct | chisquare | jensenshannon |
| numerical <= 5 distinct, or categorical, <= 2 distinct | z | jensenshannon |

The data set is drifted when the share of drifted columns reaches ``drift_share`` (0.5).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from modelcycle.errors import InvalidInput
from modelcycle.monitoring.drift_tests import DRIFT_TESTS, get_drift_test

__all__ = ["DriftPolicy", "default_method", "infer_column_type"]

LARGE_REFERENCE_ROWS = 1000
CATEGORICAL_INT_MAX_DISTINCT = 10


@dataclass(frozen=True)
class DriftPolicy:
    """How to test: per-column and global method choices, thresholds, the data set rule.

    ``robust`` adds effect-size intervals and a false-discovery correction (see ``robust.py``).
    """

    method: str | None = None  # one method for every column, instead of the defaults
    per_column: Mapping[str, str] = field(default_factory=dict)
    thresholds: Mapping[str, float] = field(default_factory=dict)  # per method name
    column_thresholds: Mapping[str, float] = field(default_factory=dict)
    column_types: Mapping[str, str] = field(default_factory=dict)  # overrides the inference
    drift_share: float = 0.5
    robust: bool = False
    alpha: float = 0.05  # robust mode: false discovery rate
    bootstrap: int = 200  # robust mode: resamples for the effect interval
    seed: int = 0

    def __post_init__(self) -> None:
        for name in [self.method, *self.per_column.values(), *self.thresholds]:
            if name is not None:
                get_drift_test(name)
        for column, kind in self.column_types.items():
            if kind not in ("numerical", "categorical"):
                raise InvalidInput(
                    f"{kind!r} is not a column type; expected numerical or categorical",
                    field=f"column_types.{column}",
                )
        if not 0 < self.drift_share <= 1:
            raise InvalidInput("must be in (0, 1]", field="drift_share")
        if not 0 < self.alpha < 1:
            raise InvalidInput("must be in (0, 1)", field="alpha")

    @classmethod
    def from_config(cls, section: Mapping[str, Any], **overrides: Any) -> DriftPolicy:
        """Build from ``[monitoring.drift]`` in modelcycle.toml, then per-call overrides."""
        known = {f for f in cls.__dataclass_fields__}
        values = {k: v for k, v in section.items() if k in known}
        unknown = sorted(set(section) - known)
        if unknown:
            raise InvalidInput(
                f"unknown setting(s) {', '.join(unknown)}; expected {', '.join(sorted(known))}",
                field="[monitoring.drift]",
            )
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)

    def method_for(self, column: str, column_type: str, reference_rows: int, distinct: int) -> str:
        """The method name for one column."""
        return (
            self.per_column.get(column)
            or self.method
            or default_method(column_type, reference_rows, distinct)
        )

    def threshold_for(self, column: str, method: str) -> float:
        """Column override, else method override, else the test's default."""
        if column in self.column_thresholds:
            return float(self.column_thresholds[column])
        if method in self.thresholds:
            return float(self.thresholds[method])
        return DRIFT_TESTS[method].default_threshold


def default_method(column_type: str, reference_rows: int, distinct: int) -> str:
    """Evidently 0.7's default test for a column (see the module's table)."""
    large = reference_rows > LARGE_REFERENCE_ROWS
    if column_type == "numerical" and distinct > 5:
        return "wasserstein" if large else "ks"
    if large:
        return "jensenshannon"
    return "chisquare" if distinct > 2 else "z"


def infer_column_type(arrow_kind: str, is_integer: bool, distinct: int) -> str:
    """``numerical`` or ``categorical`` from the column's Arrow kind and distinct count."""
    if arrow_kind != "numeric":
        return "categorical"
    if is_integer and distinct <= CATEGORICAL_INT_MAX_DISTINCT:
        return "categorical"
    return "numerical"
