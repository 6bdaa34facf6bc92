"""The prediction log's tuple rows (``to_tuples`` + ``append_rows(columns=)``) store exactly what
the dictionary rows the log wrote before them (``_reference_rows`` below, the former
``to_rows``, + ``append_rows``) stored, on both backends: values, NULLs and the JSON texts, for
table and fast-path records, labels and probabilities, odd values."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import orjson
import pyarrow as pa
import pytest
from sqlalchemy import select

from modelcycle import Workspace
from modelcycle.errors import InvalidInput
from modelcycle.scoring._log_rows import ROW_COLUMNS, LogRecord, _default, _iso, to_tuples
from modelcycle.store import tables


def _records() -> list[LogRecord]:
    rng = np.random.default_rng(7)
    now = time.time()
    out = []
    for i in range(40):
        kind = i % 8
        n = 1 + i % 3
        if kind in (0, 1, 2, 3):  # the fast path: a float matrix, NaN where a null was sent
            matrix = rng.normal(size=(n, 3)) * 10.0 ** rng.integers(-300, 300, size=(n, 3))
            matrix[0, 1] = np.nan if kind == 1 else matrix[0, 1]
            matrix[-1, 2] = -0.0 if kind == 2 else matrix[-1, 2]
            inputs: pa.Table | np.ndarray = matrix
            columns: tuple[str, ...] | None = ("x", "y", 'z "quoted"')
        else:  # the general path: mixed types, nulls, unicode, ints, bools
            inputs = pa.table(
                {
                    "x": pa.array([float(j) if j != 1 else None for j in range(n)]),
                    "k": [f"é{j}\n" if j else None for j in range(n)],
                    "i": pa.array([2**40 + j for j in range(n)], pa.int64()),
                    "b": [j % 2 == 0 for j in range(n)],
                }
            )
            columns = None
        predictions: np.ndarray | None
        probabilities: np.ndarray | None = None
        classes: list[Any] | None = [0, 1]
        if kind in (0, 4):
            predictions = np.array([j % 2 for j in range(n)])
        elif kind == 1:
            predictions, classes = np.array(["yes", "no", "yes"][:n]), ["no", "yes"]
        elif kind == 2:  # a regressor: floats, a NaN among them
            predictions, classes = np.array([1.5, np.nan, 1e300][:n]), None
        elif kind in (3, 5):  # probabilities only: the likelier class is the prediction
            predictions, probabilities = None, rng.dirichlet([1, 1], size=n)
        elif kind == 6:  # both
            predictions, probabilities = np.array([1] * n), np.tile([[0.0, 1.0]], (n, 1))
        else:  # neither
            predictions = None
        out.append(
            LogRecord(
                request_id=f"req-{i}",
                model_name="m",
                model_version=1 + i % 2,
                inputs=inputs,
                predictions=predictions,
                probabilities=probabilities,
                classes=classes,
                latency_ms=None if i % 4 == 0 else 0.1 * i,
                # float times from the request path (fractions that round either way), or text
                at=now + rng.random() if i % 5 else "2026-01-01T00:00:00.000001Z",
                shadow=i % 7 == 0,
                source="online" if i % 2 else "replay",
                columns=columns,
            )
        )
    # A time whose microseconds round up to the next second.
    out.append(LogRecord(**{**_fields(out[4]), "at": 1_700_000_000.9999996}))
    return out


def _fields(rec: LogRecord) -> dict[str, Any]:
    return {f: getattr(rec, f) for f in rec.__slots__}


def _reference_rows(records: list[LogRecord]) -> list[dict[str, Any]]:
    """The rows as the log built them before ``to_tuples``: one dictionary per scored row,
    every value made the plain way (the reference the faster path must match)."""
    out: list[dict[str, Any]] = []
    for rec in records:
        if isinstance(rec.inputs, pa.Table):
            inputs = rec.inputs.to_pylist()
        else:
            names = rec.columns or ()
            inputs = [dict(zip(names, row, strict=True)) for row in rec.inputs.tolist()]
        preds = rec.predictions.tolist() if rec.predictions is not None else None
        probas = (
            np.asarray(rec.probabilities, dtype=np.float64).tolist()
            if rec.probabilities is not None
            else None
        )
        if preds is None and probas is not None and rec.classes:
            preds = [rec.classes[int(np.argmax(p))] for p in probas]
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
                    "at": _iso(rec.at),
                    "latency_ms": rec.latency_ms,
                    "inputs": orjson.dumps(row, default=_default).decode(),
                    "outputs": orjson.dumps(outputs, default=_default).decode(),
                }
            )
    return out


def test_tuples_are_the_dictionary_rows_in_column_order() -> None:
    records = _records()
    tuples = [dict(zip(ROW_COLUMNS, t, strict=True)) for t in to_tuples(records)]
    assert tuples == _reference_rows(records)
    assert to_tuples([]) == []


def _stored(workspace: Workspace, prefix: str) -> list[tuple[Any, ...]]:
    t = tables.prediction_log
    names = [c for c in t.c if c.name != "id"]
    with workspace.metadata.read() as conn:
        rows = conn.execute(
            select(*names).where(t.c.model_name == prefix).order_by(t.c.request_id, t.c.row_index)
        ).all()
    return [tuple(r) for r in rows]


def test_both_paths_store_the_same_rows(workspace: Workspace) -> None:
    meta = workspace.metadata
    records = _records()
    by_dicts = [{**r, "model_name": "dicts"} for r in _reference_rows(records)]
    name_at = ROW_COLUMNS.index("model_name")
    by_tuples = [(*t[:name_at], "tuples", *t[name_at + 1 :]) for t in to_tuples(records)]
    assert meta.append_rows(tables.prediction_log, by_dicts) == len(by_dicts)
    got = meta.append_rows(tables.prediction_log, by_tuples, columns=ROW_COLUMNS, timeout=5.0)
    assert got == len(by_tuples) == len(by_dicts)
    names = [c.name for c in tables.prediction_log.c if c.name != "id"]
    dicts, tuples = _stored(workspace, "dicts"), _stored(workspace, "tuples")
    assert len(dicts) == len(by_dicts)
    for a, b in zip(dicts, tuples, strict=True):
        assert {**dict(zip(names, a, strict=True)), "model_name": ""} == {
            **dict(zip(names, b, strict=True)),
            "model_name": "",
        }
    # The NULLs are NULLs (not the text "None"), the JSON texts are JSON.
    first = dict(zip(names, tuples[0], strict=True))
    assert first["job_id"] is None
    assert first["latency_ms"] is None
    assert first["spill_id"] is None
    assert first["shadow"] is True
    assert '"y":null' in dict(zip(names, tuples[1], strict=True))["inputs"]


def test_append_rows_with_unknown_columns_is_refused(workspace: Workspace) -> None:
    with pytest.raises(InvalidInput, match="nope"):
        workspace.metadata.append_rows(
            tables.prediction_log, [("a", 1)], columns=("request_id", "nope")
        )
