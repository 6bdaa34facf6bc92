"""Per-column profiles: the reference that monitoring compares production data against.

A profile is plain JSON-ready data (format ``PROFILE_VERSION`` = 1, described exactly in
docs/datasets.md). It is computed with bounded memory in two streaming passes over record
batches, which :func:`compute_profile` asks for through a ``read(columns)`` callable (the
catalog reads its stored Parquet; monitoring can pass an in-memory table):

1. all columns, batch by batch: counts, nulls, and for numeric columns the mean and M2 merged
   across batches with Chan et al.'s parallel update (numerically stable), min and max; for
   categorical columns exact value counts (turning into a mergeable Misra-Gries summary past
   ``CARDINALITY_CAP`` distinct values).
2. each numeric column alone, now that its exact min and max are known: the histogram
   (``HISTOGRAM_BINS`` equal-width bins) and the quantiles, exact (numpy "linear") when the
   column holds at most ``EXACT_QUANTILE_CAP`` finite values, else read from a
   ``FINE_BINS``-bin histogram to within half a fine bin, (max - min) / (2 * FINE_BINS).

Numeric means integer, floating point and decimal types; string, bool and dictionary columns
are categorical; anything else (dates, timestamps, binary, nested) gets counts only.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

__all__ = [
    "CARDINALITY_CAP",
    "EXACT_QUANTILE_CAP",
    "FINE_BINS",
    "HISTOGRAM_BINS",
    "PROFILE_VERSION",
    "QUANTILES",
    "TOP_K",
    "column_kind",
    "compute_profile",
    "profile_table",
]

PROFILE_VERSION = 1
HISTOGRAM_BINS = 20
FINE_BINS = 1 << 16
EXACT_QUANTILE_CAP = 1_000_000
CARDINALITY_CAP = 100_000
TOP_K = 20
QUANTILES: dict[str, float] = {
    "p01": 0.01,
    "p05": 0.05,
    "p25": 0.25,
    "p50": 0.50,
    "p75": 0.75,
    "p95": 0.95,
    "p99": 0.99,
}

Reader = Callable[[list[str] | None], Iterable[pa.RecordBatch]]
FloatArray = npt.NDArray[np.float64]


def column_kind(data_type: pa.DataType) -> str:
    """``numeric``, ``categorical`` or ``other``: which statistics a column gets."""
    if pa.types.is_dictionary(data_type):
        return "categorical"
    if pa.types.is_integer(data_type) or pa.types.is_floating(data_type):
        return "numeric"
    if pa.types.is_decimal(data_type):
        return "numeric"
    if (
        pa.types.is_string(data_type)
        or pa.types.is_large_string(data_type)
        or pa.types.is_boolean(data_type)
    ):
        return "categorical"
    return "other"


def profile_table(table: pa.Table, **limits: int) -> dict[str, Any]:
    """The profile of an in-memory table (the same numbers as the catalog's)."""

    def read(columns: list[str] | None) -> Iterable[pa.RecordBatch]:
        selected = table.select(columns) if columns else table
        batches: list[pa.RecordBatch] = selected.to_batches(max_chunksize=65_536)
        return batches

    return compute_profile(table.schema, read, **limits)


def compute_profile(
    schema: pa.Schema,
    read: Reader,
    *,
    exact_quantile_cap: int = EXACT_QUANTILE_CAP,
    cardinality_cap: int = CARDINALITY_CAP,
    top_k: int = TOP_K,
) -> dict[str, Any]:
    """The profile of the data ``read`` yields: ``read(None)`` all columns, ``read([c])`` one."""
    accs: dict[str, _Acc] = {}
    for field in schema:
        kind = column_kind(field.type)
        if kind == "numeric":
            accs[field.name] = _NumericAcc()
        elif kind == "categorical":
            accs[field.name] = _CategoricalAcc(cardinality_cap)
        else:
            accs[field.name] = _OtherAcc()
    num_rows = 0
    for batch in read(None):
        num_rows += batch.num_rows
        for name, acc in accs.items():
            acc.update(batch.column(name))
    columns: dict[str, dict[str, Any]] = {}
    for field in schema:
        acc = accs[field.name]
        out = {"kind": column_kind(field.type), "type": str(field.type), **acc.result(top_k)}
        if isinstance(acc, _NumericAcc) and acc.n > 0:
            out.update(_second_pass(acc, read, field.name, exact_quantile_cap))
        columns[field.name] = out
    return {"profile_version": PROFILE_VERSION, "num_rows": num_rows, "columns": columns}


# -- accumulators ------------------------------------------------------------------------------


class _Acc:
    count = 0
    nulls = 0

    def update(self, column: pa.Array) -> None:
        raise NotImplementedError

    def result(self, top_k: int) -> dict[str, Any]:
        raise NotImplementedError


def _finite_values(column: pa.Array) -> tuple[FloatArray, int, int]:
    """The finite values as float64, the non-null count, and the non-finite count."""
    valid = column.drop_null() if column.null_count else column
    if pa.types.is_decimal(valid.type):
        valid = pc.cast(valid, pa.float64())
    values = np.asarray(valid.to_numpy(zero_copy_only=False), dtype=np.float64)
    finite = np.isfinite(values)
    n_finite = int(finite.sum())
    if n_finite != len(values):
        values = values[finite]
    return values, len(finite), len(finite) - n_finite


class _NumericAcc(_Acc):
    def __init__(self) -> None:
        self.n = 0  # finite values
        self.non_finite = 0
        self.mean = 0.0
        self.m2 = 0.0
        self.min = math.inf
        self.max = -math.inf
        self.integral = True
        self.type: pa.DataType | None = None

    def update(self, column: pa.Array) -> None:
        self.type = column.type
        self.integral = pa.types.is_integer(column.type)
        self.nulls += column.null_count
        values, count, non_finite = _finite_values(column)
        self.count += count
        self.non_finite += non_finite
        nb = len(values)
        if nb == 0:
            return
        mean_b = float(values.mean())
        m2_b = float(((values - mean_b) ** 2).sum())
        # Chan, Golub & LeVeque: merge (n, mean, M2) of two parts without cancellation.
        n = self.n + nb
        delta = mean_b - self.mean
        self.mean += delta * nb / n
        self.m2 += m2_b + delta * delta * self.n * nb / n
        self.n = n
        self.min = min(self.min, float(values.min()))
        self.max = max(self.max, float(values.max()))

    def result(self, top_k: int) -> dict[str, Any]:
        out: dict[str, Any] = {
            "count": self.count,
            "nulls": self.nulls,
            "non_finite": self.non_finite,
            "mean": None,
            "std": None,
            "min": None,
            "max": None,
            "quantiles": None,
            "quantiles_exact": None,
            "histogram": None,
        }
        if self.n:
            out["mean"] = self.mean
            out["std"] = math.sqrt(self.m2 / (self.n - 1)) if self.n > 1 else None
            out["min"] = self._scalar(self.min)
            out["max"] = self._scalar(self.max)
        return out

    def _scalar(self, value: float) -> float | int:
        return int(value) if self.integral else value


class _CategoricalAcc(_Acc):
    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.counts: dict[Any, int] = {}
        self.exact = True
        # Misra-Gries: total weight subtracted from every counter once the cap was passed.
        self.decrement = 0

    def update(self, column: pa.Array) -> None:
        self.nulls += column.null_count
        valid = column.drop_null() if column.null_count else column
        if pa.types.is_dictionary(valid.type):
            valid = valid.dictionary_decode()
        self.count += len(valid)
        if len(valid) == 0:
            return
        vc = pc.value_counts(valid)
        counts = self.counts
        for value, n in zip(
            vc.field("values").to_pylist(), vc.field("counts").to_pylist(), strict=True
        ):
            counts[value] = counts.get(value, 0) + n
        if len(counts) > self.cap:
            # Mergeable Misra-Gries (Agarwal et al. 2012): subtract the (cap+1)-th largest
            # count from all and keep the positive ones; each count is then low by at most
            # count / (cap + 1).
            self.exact = False
            cut = sorted(counts.values(), reverse=True)[self.cap]
            self.decrement += cut
            self.counts = {v: c - cut for v, c in counts.items() if c > cut}

    def result(self, top_k: int) -> dict[str, Any]:
        ranked = sorted(self.counts.items(), key=lambda item: (-item[1], str(item[0])))
        top = [{"value": v, "count": c} for v, c in ranked[:top_k]]
        return {
            "count": self.count,
            "nulls": self.nulls,
            # Past the cap only a lower bound is known: more than ``cap`` distinct values.
            "cardinality": len(self.counts) if self.exact else self.cap + 1,
            "cardinality_exact": self.exact,
            "top": top,
            "other_count": self.count - sum(item["count"] for item in top),
        }


class _OtherAcc(_Acc):
    def __init__(self) -> None:
        self.min: Any = None
        self.max: Any = None
        self.ordered = True

    def update(self, column: pa.Array) -> None:
        self.nulls += column.null_count
        self.count += len(column) - column.null_count
        if not self.ordered or len(column) == column.null_count:
            return
        try:
            mm = pc.min_max(column)
        except (pa.ArrowNotImplementedError, pa.ArrowInvalid, pa.ArrowTypeError):
            self.ordered = False
            return
        lo, hi = mm["min"].as_py(), mm["max"].as_py()
        self.min = lo if self.min is None else min(self.min, lo)
        self.max = hi if self.max is None else max(self.max, hi)

    def result(self, top_k: int) -> dict[str, Any]:
        def text(value: Any) -> str | None:
            if value is None:
                return None
            return value.isoformat() if hasattr(value, "isoformat") else str(value)

        out: dict[str, Any] = {"count": self.count, "nulls": self.nulls}
        if self.ordered:
            out["min"] = text(self.min)
            out["max"] = text(self.max)
        return out


# -- the second pass: histogram and quantiles --------------------------------------------------


def histogram_edges(lo: float, hi: float, bins: int = HISTOGRAM_BINS) -> FloatArray:
    """Equal-width edges over [lo, hi]; one bin [lo, hi] when all values are equal."""
    if lo == hi:
        return np.array([lo, hi], dtype=np.float64)
    return np.linspace(lo, hi, bins + 1, dtype=np.float64)


def _bin_index(values: FloatArray, lo: float, hi: float, bins: int) -> npt.NDArray[np.int64]:
    """The bin of each value in ``bins`` equal-width bins over [lo, hi], last bin closed."""
    if hi == lo:
        return np.zeros(len(values), dtype=np.int64)
    idx = np.floor((values - lo) / (hi - lo) * bins).astype(np.int64)
    return np.clip(idx, 0, bins - 1)


def _second_pass(acc: _NumericAcc, read: Reader, name: str, cap: int) -> dict[str, Any]:
    lo, hi = acc.min, acc.max
    edges = histogram_edges(lo, hi)
    n_bins = len(edges) - 1
    counts = np.zeros(n_bins, dtype=np.int64)
    exact = acc.n <= cap
    kept: list[FloatArray] = []
    fine = np.zeros(FINE_BINS, dtype=np.int64)
    for batch in read([name]):
        values, _, _ = _finite_values(batch.column(0))
        if not len(values):
            continue
        # np.histogram's rule: half-open bins, the last one closed.
        counts += np.histogram(values, bins=edges)[0].astype(np.int64)
        if exact:
            kept.append(values)
        else:
            fine += np.bincount(_bin_index(values, lo, hi, FINE_BINS), minlength=FINE_BINS)
    if exact:
        everything = np.concatenate(kept) if kept else np.empty(0)
        qs = np.quantile(everything, list(QUANTILES.values()))
        quantiles = {k: float(v) for k, v in zip(QUANTILES, qs, strict=True)}
    else:
        quantiles = _quantiles_from_fine(fine, lo, hi, acc.n)
    return {
        "quantiles": quantiles,
        "quantiles_exact": exact,
        "histogram": {"edges": [float(e) for e in edges], "counts": [int(c) for c in counts]},
    }


def _quantiles_from_fine(
    fine: npt.NDArray[np.int64], lo: float, hi: float, n: int
) -> dict[str, float]:
    """The order statistic of rank floor((n-1) q), as the midpoint of the fine bin holding it."""
    cum = np.cumsum(fine)
    width = (hi - lo) / FINE_BINS
    out: dict[str, float] = {}
    for key, q in QUANTILES.items():
        rank = math.floor((n - 1) * q)  # 0-based
        b = int(np.searchsorted(cum, rank + 1))
        out[key] = float(min(max(lo + (b + 0.5) * width, lo), hi))
    return out
