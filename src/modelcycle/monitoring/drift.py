"""Data drift between a reference and a current table: per column, then for the data set.

The "what" (:class:`DriftReport`, :class:`ColumnDrift`) is plain, serialisable data; the "how"
is :func:`compute_drift`, which prepares each column once (missing values counted and removed,
categories encoded to shared integer codes) and hands the arrays to the chosen test. The
types live in :mod:`modelcycle.monitoring.drift_columns`, below this module and the robust one.
"""

from __future__ import annotations

import math
import os
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pyarrow as pa

from modelcycle.errors import InvalidInput
from modelcycle.monitoring.drift_columns import (
    ColumnDrift,
    DriftReport,
    column_from_dict,
    prepare_column,
)
from modelcycle.monitoring.drift_tests import DRIFT_TESTS
from modelcycle.monitoring.policy import DriftPolicy

__all__ = ["ColumnDrift", "DriftReport", "column_from_dict", "compute_drift", "prepare_column"]

_PARALLEL_ROWS = 100_000
MIN_ROWS = 2  # fewer non-missing values on either side: "not enough data", never drift
MISSING_SHARE_ALPHA = 0.05
MISSING_SHARE_MIN_DIFF = 0.01


def compute_drift(
    reference: pa.Table,
    current: pa.Table,
    *,
    columns: list[str] | None = None,
    policy: DriftPolicy | None = None,
    reference_name: str = "reference",
    current_name: str = "current",
) -> DriftReport:
    """Test every shared (or every given) column of ``current`` against ``reference``."""
    policy = policy or DriftPolicy()
    names = columns if columns is not None else _shared_columns(reference, current)
    missing = [c for c in names if c not in reference.column_names or c not in current.column_names]
    if missing:
        raise InvalidInput(
            f"not in both tables: {', '.join(missing)}; shared columns are "
            f"{', '.join(_shared_columns(reference, current)) or 'none'}",
            field="columns",
        )
    if not names:
        raise InvalidInput("the reference and current data share no column", field="columns")

    def one(name: str) -> ColumnDrift:
        return _column_drift(name, reference.column(name), current.column(name), policy)

    if reference.num_rows + current.num_rows >= _PARALLEL_ROWS and len(names) > 1:
        # Sorting and counting release the GIL: columns run side by side on every core.
        with ThreadPoolExecutor(max_workers=min(len(names), os.cpu_count() or 1)) as pool:
            results = list(pool.map(one, names))
    else:
        results = [one(name) for name in names]
    if policy.robust:
        from modelcycle.monitoring.robust import apply_robust

        results = apply_robust(results, reference, current, policy)
    tested = [c for c in results if c.status == "ok"]
    drifted = sum(c.drifted for c in tested)
    share = drifted / len(tested) if tested else 0.0
    return DriftReport(
        dataset_drift=bool(tested) and share >= policy.drift_share,
        share_drifted=share,
        drift_share=policy.drift_share,
        number_of_columns=len(results),
        number_of_drifted_columns=drifted,
        reference={"name": reference_name, "rows": reference.num_rows},
        current={"name": current_name, "rows": current.num_rows},
        columns=results,
        status="ok" if tested else "not_enough_data",
        robust=policy.robust,
    )


def _shared_columns(reference: pa.Table, current: pa.Table) -> list[str]:
    theirs = set(current.column_names)
    return [c for c in reference.column_names if c in theirs]


def _column_drift(
    name: str, reference: pa.ChunkedArray, current: pa.ChunkedArray, policy: DriftPolicy
) -> ColumnDrift:
    prepared = prepare_column(reference, current, policy.column_types.get(name))
    n_ref, n_cur = len(prepared.reference), len(prepared.current)
    method = policy.method_for(name, prepared.column_type, n_ref, prepared.distinct)
    threshold = policy.threshold_for(name, method)
    miss_ref = prepared.missing_reference / len(reference) if len(reference) else 0.0
    miss_cur = prepared.missing_current / len(current) if len(current) else 0.0
    common: dict[str, Any] = {
        "name": name,
        "type": prepared.column_type,
        "method": method,
        "threshold": threshold,
        "reference_rows": n_ref,
        "current_rows": n_cur,
        "distinct": prepared.distinct,
        "missing_share_reference": miss_ref,
        "missing_share_current": miss_cur,
        "missing_drifted": _missing_drifted(
            prepared.missing_reference, len(reference), prepared.missing_current, len(current)
        ),
    }
    if n_ref < MIN_ROWS or n_cur < MIN_ROWS:
        return ColumnDrift(
            statistic=None, p_value=None, drifted=False, status="not_enough_data", **common
        )
    outcome = DRIFT_TESTS[method].run(
        prepared.reference, prepared.current, prepared.column_type, threshold
    )
    return ColumnDrift(
        statistic=outcome.statistic,
        p_value=outcome.p_value,
        drifted=outcome.drifted,
        status="ok",
        **common,
    )


def _missing_drifted(miss_ref: int, n_ref: int, miss_cur: int, n_cur: int) -> bool:
    """The share of missing values changed: significantly, and by at least one point."""
    if not n_ref or not n_cur:
        return False
    p1, p2 = miss_ref / n_ref, miss_cur / n_cur
    if abs(p1 - p2) < MISSING_SHARE_MIN_DIFF:
        return False
    pooled = (miss_ref + miss_cur) / (n_ref + n_cur)
    spread = math.sqrt(pooled * (1 - pooled) * (1 / n_ref + 1 / n_cur))
    if spread == 0:
        return True
    z = abs(p1 - p2) / spread
    return math.erfc(z / math.sqrt(2)) < MISSING_SHARE_ALPHA
