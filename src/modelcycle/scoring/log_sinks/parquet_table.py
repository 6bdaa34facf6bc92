"""Log records into one Arrow table per (model, hour), and a part back into the reader's shape.

Runs on the log's flush thread only: requests hand their validated table (or the fast path's
numpy array) over by reference, and this makes the columns in a few vectorised calls per
flush (no per-row Python objects, no JSON), which is what lets the Parquet sink keep up with
a fleet. A part's columns:

``request_id``, ``row_index``, ``model_name``, ``model_version``, ``source``, ``shadow``,
``at`` (timestamp, microseconds, UTC), ``latency_ms`` (the request's), ``inputs`` (a struct of
the validated input columns, typed as the request's table), ``prediction`` and, when any
request of the part asked for them, ``probabilities`` (a list per row, in class order).
"""

from __future__ import annotations

import functools
from collections import defaultdict
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from modelcycle.scoring._log_rows import LogRecord, record_rows

__all__ = ["AT_TYPE", "flatten_part", "group_records", "hour_of", "records_table"]

AT_TYPE = pa.timestamp("us", tz="UTC")
ISO_FORMAT = "%Y-%m-%dT%H:%M:%SZ"  # Arrow writes the microseconds of a "us" timestamp itself


def _micros(at: str | float) -> int:
    if isinstance(at, str):
        return int(datetime.fromisoformat(at).timestamp() * 1_000_000)
    return int(at * 1_000_000)


def hour_of(micros: int) -> str:
    """The partition hour of a time: ``YYYY-MM-DDTHH`` (UTC)."""
    return _hour_text(micros // 3_600_000_000)


@functools.lru_cache(maxsize=64)
def _hour_text(hour: int) -> str:
    return datetime.fromtimestamp(hour * 3600, UTC).strftime("%Y-%m-%dT%H")


def group_records(records: list[LogRecord]) -> dict[tuple[str, str], list[LogRecord]]:
    """Records by (model name, hour): one Parquet part each."""
    groups: dict[tuple[str, int], list[LogRecord]] = defaultdict(list)
    for rec in records:
        at = rec.at
        hour = int(at // 3600) if isinstance(at, float) else _micros(at) // 3_600_000_000
        groups[(rec.model_name, hour)].append(rec)
    return {(name, _hour_text(hour)): group for (name, hour), group in groups.items()}


def _inputs(records: list[LogRecord]) -> pa.Table:
    arrays = [r for r in records if not isinstance(r.inputs, pa.Table)]
    if len(arrays) == len(records) and len({r.columns for r in records}) == 1:
        # The fast path's case: one vstack, one table.
        stacked = np.vstack([np.asarray(r.inputs) for r in records])
        names = records[0].columns or ()
        return _matrix_table(stacked, names)
    tables = []
    for rec in records:
        if isinstance(rec.inputs, pa.Table):
            tables.append(rec.inputs)
        else:
            tables.append(_matrix_table(np.asarray(rec.inputs), rec.columns or ()))
    return pa.concat_tables(tables, promote_options="permissive")


def _matrix_table(matrix: np.ndarray, names: tuple[str, ...]) -> pa.Table:
    # NaN in the fast path's float matrix is a null the request sent: stored as a null, as
    # the database sink's JSON stores it, so both sinks give monitoring the same values.
    return pa.table({n: pa.array(matrix[:, i], from_pandas=True) for i, n in enumerate(names)})


def _answers(rec: LogRecord, n: int) -> pa.Array:
    if rec.predictions is not None:
        preds = np.asarray(rec.predictions)
        return pa.array(preds.tolist() if preds.ndim > 1 or preds.dtype == object else preds)
    if rec.probabilities is not None and rec.classes:
        best = np.argmax(np.asarray(rec.probabilities), axis=1)
        return pa.array([rec.classes[int(i)] for i in best])
    return pa.nulls(n)


def _probabilities(rec: LogRecord, n: int) -> pa.Array:
    if rec.probabilities is None:
        return pa.nulls(n, pa.list_(pa.float64()))
    matrix = np.asarray(rec.probabilities, dtype=np.float64)
    flat = pa.array(matrix.reshape(-1))
    offsets = pa.array(np.arange(0, matrix.size + 1, max(matrix.shape[1], 1), dtype=np.int32))
    return pa.ListArray.from_arrays(offsets, flat)


def _predictions(records: list[LogRecord], counts: np.ndarray) -> pa.Array:
    preds = [r.predictions for r in records]
    if all(p is not None and p.ndim == 1 and p.dtype.kind in "biuf" for p in preds):
        # The common case (numeric labels or values): one concatenation, one Arrow array.
        return pa.array(np.concatenate(preds))  # type: ignore[arg-type]
    return _concat([_answers(r, int(n)) for r, n in zip(records, counts, strict=True)])


def _concat(arrays: list[pa.Array]) -> pa.Array:
    try:
        return pa.concat_arrays(arrays)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        # Mixed types (an int label here, a float there): one permissive table concatenation.
        tables = [pa.table({"v": a}) for a in arrays]
        return pa.concat_tables(tables, promote_options="permissive").column("v").combine_chunks()


def records_table(records: list[LogRecord]) -> pa.Table:
    """One Arrow table of ``records`` (all of one model), one row per scored row."""
    counts = np.array([record_rows(r) for r in records], dtype=np.int64)
    total = int(counts.sum())
    inputs = _inputs(records)
    struct: pa.Array
    if inputs.num_columns:
        struct = pa.StructArray.from_arrays(
            [c.combine_chunks() for c in inputs.columns], names=inputs.column_names
        )
    else:
        struct = pa.array([{}] * total, pa.struct([]))
    starts = np.repeat(np.cumsum(counts) - counts, counts)
    columns: dict[str, Any] = {
        "request_id": pa.array(np.repeat(np.array([r.request_id for r in records]), counts)),
        "row_index": pa.array((np.arange(total) - starts).astype(np.int32)),
        "model_name": pa.array(np.repeat(np.array([r.model_name for r in records]), counts)),
        "model_version": pa.array(
            np.repeat(np.array([r.model_version for r in records], dtype=np.int32), counts)
        ),
        "source": pa.array(np.repeat(np.array([r.source for r in records]), counts)),
        "shadow": pa.array(np.repeat(np.array([r.shadow for r in records]), counts)),
        "at": pa.array(
            np.repeat(np.array([_micros(r.at) for r in records], dtype=np.int64), counts)
        ).cast(AT_TYPE),
        "latency_ms": pa.array(
            np.repeat(
                np.array(
                    [np.nan if r.latency_ms is None else r.latency_ms for r in records],
                    dtype=np.float64,
                ),
                counts,
            ),
            from_pandas=True,  # NaN (no latency known) as null
        ),
        "inputs": struct,
        "prediction": _predictions(records, counts),
    }
    if any(r.probabilities is not None for r in records):
        columns["probabilities"] = pa.concat_arrays(
            [_probabilities(r, int(n)) for r, n in zip(records, counts, strict=True)]
        )
    return pa.table(columns)


def flatten_part(part: pa.Table) -> pa.Table:
    """A part in :func:`modelcycle.scoring.read_predictions`' shape: the input columns, then
    ``prediction``, ``probabilities`` (when logged), ``model_version``, ``request_id``,
    ``row_index``, ``at`` (ISO 8601 UTC text, as the database sink stores it)."""
    inputs = part.column("inputs").combine_chunks()
    names = [inputs.type.field(i).name for i in range(inputs.type.num_fields)]
    out: dict[str, Any] = {name: inputs.field(name) for name in names}
    for name in ("prediction", "probabilities"):
        if name in part.column_names:
            out.pop(name, None)  # an input column of that name: the log's wins
            out[name] = part.column(name)
    for name in ("model_version", "request_id", "row_index"):
        out.pop(name, None)
        out[name] = part.column(name).cast(pa.int64() if name != "request_id" else pa.string())
    out.pop("at", None)
    out["at"] = pc.strftime(part.column("at"), format=ISO_FORMAT)
    return pa.table(out)
