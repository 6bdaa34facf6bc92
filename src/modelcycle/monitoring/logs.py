"""Turning the scoring stage's prediction log (``modelcycle.scoring.read_predictions``) into
the tables monitoring compares.

The log comes flattened: the model's input columns (types inferred from the logged values),
then ``prediction``, ``model_version``, ``request_id``, ``row_index``, ``at``. A
``probabilities`` column (a list per row, in the signature's class order) is used when the
reader provides one (ROC AUC needs it).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

__all__ = ["LogRows", "split_log"]


@dataclass(frozen=True)
class LogRows:
    """Log rows unpacked: the inputs as a table, the predictions, probabilities when logged."""

    features: pa.Table
    predictions: list[Any]
    probabilities: np.ndarray | None  # rows x classes, in the signature's class order
    request_ids: list[str]
    row_indexes: list[int]
    at: list[str]


def split_log(log: pa.Table, columns: list[str], *, schema: pa.Schema | None = None) -> LogRows:
    """The ``columns`` of the log, each cast to the reference ``schema``'s type where the
    values allow it (a float column whose logged values were whole numbers stays float)."""
    arrays: dict[str, pa.ChunkedArray | pa.Array] = {}
    for name in columns:
        wanted = schema.field(name).type if schema is not None and name in schema.names else None
        if name not in log.column_names:
            arrays[name] = pa.nulls(log.num_rows, wanted or pa.null())
            continue
        column = log.column(name)
        if wanted is not None and column.type != wanted:
            with contextlib.suppress(
                pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError
            ):
                column = column.cast(wanted)
        arrays[name] = column
    return LogRows(
        features=pa.table(arrays) if arrays else pa.table({}),
        predictions=_column(log, "prediction"),
        probabilities=_probabilities(log),
        request_ids=[str(r) for r in _column(log, "request_id")],
        row_indexes=[int(i or 0) for i in _column(log, "row_index")],
        at=[str(a) for a in _column(log, "at")],
    )


def _column(log: pa.Table, name: str) -> list[Any]:
    return log.column(name).to_pylist() if name in log.column_names else [None] * log.num_rows


def _probabilities(log: pa.Table) -> np.ndarray | None:
    if "probabilities" not in log.column_names or not log.num_rows:
        return None
    rows = log.column("probabilities").to_pylist()
    if any(not isinstance(r, list) or not r for r in rows) or len({len(r) for r in rows}) != 1:
        return None
    return np.asarray(rows, dtype=np.float64)
