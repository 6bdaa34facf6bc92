"""Prediction-log records into ``prediction_log`` rows, on the log's flush thread.

Requests hand over their validated rows by reference (an Arrow table, or the fast path's numpy
array with its column names) and a float timestamp; everything per row (Python values, JSON
text, ISO time) is made here, off the request path, in as few calls per record as numpy and
orjson allow.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
import orjson
import pyarrow as pa

__all__ = ["LogRecord", "record_rows", "to_rows"]


@dataclass(frozen=True, slots=True)
class LogRecord:
    """One request's scored rows and its answer (shadow answers included, flagged).

    ``inputs`` is the validated Arrow table, or a 2-D numpy array whose columns are
    ``columns`` (the fast path's). ``at`` is ISO 8601 UTC text or a ``time.time()`` value.
    """

    request_id: str
    model_name: str
    model_version: int
    inputs: pa.Table | np.ndarray
    predictions: np.ndarray | None
    probabilities: np.ndarray | None
    classes: list[Any] | None
    latency_ms: float | None
    at: str | float
    shadow: bool = False
    source: str = "online"
    columns: tuple[str, ...] | None = None


def record_rows(record: LogRecord) -> int:
    """How many scored rows ``record`` holds."""
    inputs = record.inputs
    return inputs.num_rows if isinstance(inputs, pa.Table) else len(inputs)


def _iso(at: str | float) -> str:
    if isinstance(at, str):
        return at
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _input_dicts(rec: LogRecord) -> list[dict[str, Any]]:
    if isinstance(rec.inputs, pa.Table):
        rows: list[dict[str, Any]] = rec.inputs.to_pylist()
        return rows
    names = rec.columns or ()
    # tolist() makes every Python float in one C call; NaN (a null where allowed) stays NaN,
    # which orjson writes as null, as the table path writes a null.
    return [dict(zip(names, row, strict=True)) for row in rec.inputs.tolist()]


def to_rows(records: list[LogRecord]) -> list[dict[str, Any]]:
    """``prediction_log`` rows: one per scored row."""
    out: list[dict[str, Any]] = []
    dumps = orjson.dumps
    for rec in records:
        inputs = _input_dicts(rec)
        preds = rec.predictions.tolist() if rec.predictions is not None else None
        probas = (
            np.asarray(rec.probabilities, dtype=np.float64).tolist()
            if rec.probabilities is not None
            else None
        )
        if preds is None and probas is not None and rec.classes:
            preds = [rec.classes[int(np.argmax(p))] for p in probas]
        at = _iso(rec.at)
        for i, row in enumerate(inputs):
            outputs: dict[str, Any] = {"prediction": preds[i] if preds is not None else None}
            if probas is not None:
                outputs["probabilities"] = probas[i]
            out.append(
                {
                    "request_id": rec.request_id,
                    "row_index": i,
                    "model_name": rec.model_name,
                    "model_version": rec.model_version,
                    "source": rec.source,
                    "job_id": None,
                    "shadow": rec.shadow,
                    "at": at,
                    "latency_ms": rec.latency_ms,
                    "inputs": dumps(row, default=_default).decode(),
                    "outputs": dumps(outputs, default=_default).decode(),
                }
            )
    return out


def _default(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if isinstance(value, np.generic):
        return value.item()
    return str(value)
