"""What a column's drift is and how a column is made ready for a test: the types
:mod:`modelcycle.monitoring.drift` and :mod:`modelcycle.monitoring.robust` share.

The "what" (:class:`DriftReport`, :class:`ColumnDrift`) is plain, serialisable data;
:func:`prepare_column` counts and removes missing values and encodes categories to shared
integer codes, once per column, for whichever test runs on it.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from numpy.typing import NDArray

from modelcycle.datasets import column_kind
from modelcycle.errors import InvalidInput
from modelcycle.monitoring.policy import infer_column_type

__all__ = [
    "ColumnDrift",
    "DriftReport",
    "PreparedColumn",
    "column_from_dict",
    "prepare_column",
]


@dataclass(frozen=True)
class ColumnDrift:
    """The verdict for one column."""

    name: str
    type: str
    method: str
    statistic: float | None
    p_value: float | None
    threshold: float
    drifted: bool
    status: str  # "ok" or "not_enough_data"
    reference_rows: int
    current_rows: int
    distinct: int
    missing_share_reference: float
    missing_share_current: float
    missing_drifted: bool
    robust: dict[str, Any] | None = None

    @property
    def decided_by(self) -> str:
        """``robust`` when the robust rule gave the verdict, else the test's name."""
        return "robust" if self.robust is not None else self.method

    def explain(self) -> str:
        """One line: the figures the verdict came from, against their thresholds."""
        if self.status != "ok":
            return "not enough data to test"
        r = self.robust
        if r is not None:
            low, high = r["effect_interval"]
            p_sign = "<" if r["p_adjusted"] < r["alpha"] else "≥"
            e_sign = "≥" if low >= r["effect_threshold"] else "<"
            return (
                f"{r['test']}: adjusted p = {_g(r['p_adjusted'], '.3g')} {p_sign} {r['alpha']:g}; "
                f"{r['effect']} = {_g(r['effect_size'], '.3g')} "
                f"[{_g(low, '.3g')}, {_g(high, '.3g')}], lower end {e_sign} "
                f"{r['effect_threshold']:g}"
            )
        if self.p_value is not None:
            sign = "<" if self.drifted else "≥"
            return f"{self.method}: p = {_g(self.p_value, '.3g')} {sign} {self.threshold:g}"
        sign = "≥" if self.drifted else "<"
        return f"{self.method}: {_g(self.statistic, '.3g')} {sign} {self.threshold:g}"

    @property
    def score(self) -> float:
        """How far over (>0) or under its threshold the column is, for sorting reports."""
        if self.statistic is None:
            return -math.inf
        if self.robust is not None:  # the verdict's own figure: the effect's lower end
            return float(self.robust["effect_interval"][0]) - float(self.robust["effect_threshold"])
        if self.p_value is not None:
            return -math.log10(max(self.p_value, 1e-300)) + math.log10(self.threshold)
        return self.statistic - self.threshold


@dataclass(frozen=True)
class DriftReport:
    """The data set's verdict and every column's."""

    dataset_drift: bool
    share_drifted: float
    drift_share: float
    number_of_columns: int
    number_of_drifted_columns: int
    reference: dict[str, Any]
    current: dict[str, Any]
    columns: list[ColumnDrift] = field(default_factory=list)
    status: str = "ok"  # "not_enough_data" when no column could be tested
    robust: bool = False

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready data (the ``--json`` output). Each column says what its verdict came
        from (``decided_by``: the test's name, or ``robust`` with the figures under
        ``robust``) and ``explanation``; in robust mode ``method``, ``statistic`` and
        ``threshold`` are the column's default test, computed but not deciding."""
        data = asdict(self)
        data["columns"] = [
            _json_safe({**asdict(c), "decided_by": c.decided_by, "explanation": c.explain()})
            for c in self.columns
        ]
        return data

    def column(self, name: str) -> ColumnDrift:
        for col in self.columns:
            if col.name == name:
                return col
        raise KeyError(name)


def column_from_dict(data: dict[str, Any]) -> ColumnDrift:
    """A column's verdict from its stored JSON (``DriftReport.as_dict``); extra keys ignored."""
    known = {f.name for f in fields(ColumnDrift)}
    values = {k: v for k, v in data.items() if k in known}
    if values.get("threshold") is None:
        values["threshold"] = math.nan  # stored as null when it was not finite
    return ColumnDrift(**values)


def _g(value: float | None, spec: str) -> str:
    if value is None or not math.isfinite(value):
        return "–"
    return format(value, spec)


def _json_safe(values: dict[str, Any]) -> dict[str, Any]:
    return {
        k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in values.items()
    }


@dataclass(frozen=True)
class PreparedColumn:
    """One column's two samples, cleaned and in comparable form."""

    column_type: str
    reference: NDArray[Any]
    current: NDArray[Any]
    distinct: int
    missing_reference: int
    missing_current: int


def prepare_column(
    reference: pa.ChunkedArray, current: pa.ChunkedArray, column_type: str | None = None
) -> PreparedColumn:
    """Remove missing values (null, NaN, infinities), count them, and type the column."""
    ref: NDArray[Any]
    cur: NDArray[Any]
    kind = column_kind(reference.type)
    if kind == "other" or column_kind(current.type) != kind:
        raise InvalidInput(
            f"types {reference.type} (reference) and {current.type} (current) cannot be compared",
            field="columns",
        )
    if kind == "numeric":
        # Sorted once here: every numerical test is order-free, and sorted runs make the
        # distinct count and the Wasserstein merge linear passes.
        ref = np.sort(_finite(reference))
        cur = np.sort(_finite(current))
        both = np.sort(np.concatenate([ref, cur]), kind="stable")
        distinct = int(np.count_nonzero(np.diff(both))) + 1 if len(both) else 0
        is_int = pa.types.is_integer(reference.type) and pa.types.is_integer(current.type)
        ctype = column_type or infer_column_type("numeric", is_int, distinct)
    else:
        ref, cur, distinct = _codes(reference, current)
        ctype = column_type or "categorical"
    return PreparedColumn(
        ctype, ref, cur, distinct, len(reference) - len(ref), len(current) - len(cur)
    )


def _finite(column: pa.ChunkedArray) -> NDArray[np.float64]:
    values: NDArray[np.float64] = column.to_numpy().astype(np.float64, copy=False)
    return values[np.isfinite(values)]


def _codes(
    reference: pa.ChunkedArray, current: pa.ChunkedArray
) -> tuple[NDArray[np.int64], NDArray[np.int64], int]:
    """Categories as integer codes shared by both samples (equality is all the tests use)."""
    ref = pc.drop_null(reference.cast(pa.string()))
    cur = pc.drop_null(current.cast(pa.string()))
    both = pa.chunked_array(ref.chunks + cur.chunks, type=pa.string())
    encoded = pc.dictionary_encode(both).combine_chunks()
    codes = encoded.indices.to_numpy().astype(np.int64)
    return codes[: len(ref)], codes[len(ref) :], len(encoded.dictionary)
