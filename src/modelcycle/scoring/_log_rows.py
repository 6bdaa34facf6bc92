"""Prediction-log records into ``prediction_log`` rows, on the log's flush thread.

Requests hand over their validated rows by reference (an Arrow table, or the fast path's numpy
array with its column names) and a float timestamp; everything per row (Python values, JSON
text, ISO time) is made here, off the request path, in as few calls per record as numpy and
orjson allow.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
import orjson
import pyarrow as pa

__all__ = ["ROW_COLUMNS", "LogRecord", "record_rows", "to_tuples"]


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


def _iso_fast(at: str | float, cache: dict[int, str]) -> str:
    """:func:`_iso`'s text, formatting each whole second once (``strftime`` costs about as
    much as the rest of a row)."""
    if isinstance(at, str):
        return at
    second = int(at // 1)
    head = cache.get(second)
    if head is None:
        head = cache[second] = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
    micros = round((at - second) * 1e6)
    if micros >= 1_000_000:  # rounding up to the next second: the slow path says it right
        return _iso(at)
    return f"{head}.{micros:06d}Z"


def _default(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if isinstance(value, np.generic):
        return value.item()
    return str(value)


# The column order of :func:`to_tuples`' rows (``MetadataStore.append_rows(columns=)``).
ROW_COLUMNS = (
    "request_id",
    "row_index",
    "model_name",
    "model_version",
    "source",
    "job_id",
    "shadow",
    "at",
    "latency_ms",
    "inputs",
    "outputs",
)


def to_tuples(records: list[LogRecord]) -> list[tuple[Any, ...]]:
    """``prediction_log`` rows, one per scored row, as tuples in :data:`ROW_COLUMNS` order:
    no row dictionary, one output JSON text per distinct answer, the time formatted once per
    second."""
    out: list[tuple[Any, ...]] = []
    append = out.append
    seconds: dict[int, str] = {}
    answers: dict[Any, str] = {}
    for rec in records:
        at = _iso_fast(rec.at, seconds)
        outputs = _outputs_json(rec, answers)
        rid, name, version = rec.request_id, rec.model_name, rec.model_version
        source, shadow, latency = rec.source, rec.shadow, rec.latency_ms
        for i, inputs in enumerate(_inputs_json(rec)):
            append((rid, i, name, version, source, None, shadow, at, latency, inputs, outputs[i]))
    return out


def _inputs_json(rec: LogRecord) -> list[str]:
    dumps = orjson.dumps
    if isinstance(rec.inputs, pa.Table):
        return [dumps(row, default=_default).decode() for row in rec.inputs.to_pylist()]
    names = rec.columns or ()
    # Floats only (the fast path's matrix): tolist() makes every Python float in one C call;
    # NaN (a null where allowed) is written as null, as the table path writes a null.
    return [dumps(dict(zip(names, row, strict=True))).decode() for row in rec.inputs.tolist()]


def _outputs_json(rec: LogRecord, answers: dict[Any, str]) -> list[str]:
    dumps = orjson.dumps
    preds = rec.predictions.tolist() if rec.predictions is not None else None
    if rec.probabilities is not None:
        probas = np.asarray(rec.probabilities, dtype=np.float64).tolist()
        if preds is None and rec.classes:
            preds = [rec.classes[int(np.argmax(p))] for p in probas]
        return [
            dumps(
                {"prediction": preds[i] if preds is not None else None, "probabilities": p},
                default=_default,
            ).decode()
            for i, p in enumerate(probas)
        ]
    if preds is None:
        return ['{"prediction":null}'] * record_rows(rec)
    return [_answer(p, answers) for p in preds]


def _answer(prediction: Any, answers: dict[Any, str]) -> str:
    """``{"prediction": ...}`` as JSON, made once per distinct label (a batch has few)."""
    # Keyed by type too: 1, 1.0 and True are one dict key but three different JSON texts.
    key = (type(prediction), prediction)
    try:
        text = answers.get(key)
    except TypeError:  # an unhashable prediction (a list from a multi-output model)
        return orjson.dumps({"prediction": prediction}, default=_default).decode()
    if text is None:
        text = answers[key] = orjson.dumps({"prediction": prediction}, default=_default).decode()
    return text
