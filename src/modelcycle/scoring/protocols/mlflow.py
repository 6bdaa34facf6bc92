"""MLflow's scoring protocol: ``POST /invocations`` answering ``{"predictions": [...]}``.

JSON bodies hold exactly one of ``dataframe_split`` (``{"columns", "data"}``),
``dataframe_records`` (a list of row objects), ``instances`` or ``inputs`` (row objects, or an
object of columns), plus optional ``params``; ``text/csv`` bodies are a header line and rows.
Errors keep MLflow's ``error_code``/``message`` keys beside ours, so MLflow clients read them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

from modelcycle.datasets import csv_convert_options
from modelcycle.scoring.engine import ScoreResult
from modelcycle.scoring.protocols._tabular import (
    Problem,
    RequestInvalid,
    jsonable,
    problem,
    table_from_columns,
    table_from_rows,
    table_from_split,
)

__all__ = ["FORMATS", "MlflowRequest", "decode_csv", "decode_json", "encode"]

FORMATS = ("dataframe_split", "dataframe_records", "instances", "inputs")


@dataclass(frozen=True, slots=True)
class MlflowRequest:
    table: pa.Table
    proba: bool


def decode_json(
    body: Any,
    *,
    order: list[str],
    proba_default: bool = False,
    types: Mapping[str, str] | None = None,
) -> MlflowRequest:
    """A table from one of MLflow's JSON input formats (``types``: the signature's column
    types, which only word the problems)."""
    problems: list[Problem] = []
    if not isinstance(body, dict):
        raise RequestInvalid([problem("body", f"expected a JSON object with one of {FORMATS}")])
    given = [k for k in FORMATS if k in body]
    unknown = [k for k in body if k not in (*FORMATS, "params")]
    if len(given) != 1 or unknown:
        what = ", ".join(given + unknown) or "none"
        raise RequestInvalid(
            [problem("body", f"expected exactly one of {', '.join(FORMATS)}, got {what}")]
        )
    proba = proba_default
    params = body.get("params")
    if params is not None:
        if not isinstance(params, dict):
            problems.append(problem("params", "expected an object"))
        else:
            method = params.get("predict_method", "predict")
            if method not in ("predict", "predict_proba"):
                problems.append(
                    problem("params.predict_method", "expected 'predict' or 'predict_proba'")
                )
            proba = proba or method == "predict_proba"
    key = given[0]
    value = body[key]
    table: pa.Table | None
    if key == "dataframe_split":
        if not isinstance(value, dict):
            problems.append(problem(key, "expected an object with 'columns' and 'data'"))
            table = None
        else:
            table = table_from_split(
                value.get("columns"), value.get("data"), problems, field=key, types=types
            )
    elif isinstance(value, dict):
        table = table_from_columns(value, problems, field=key, types=types)
    else:
        table = table_from_rows(value, problems, field=key, order=order, types=types)
    if problems or table is None:
        raise RequestInvalid(problems)
    return MlflowRequest(table, proba)


def decode_csv(body: bytes, *, proba: bool = False) -> MlflowRequest:
    """A table from CSV text with a header line (types inferred per column)."""
    try:
        table = pacsv.read_csv(pa.py_buffer(body), convert_options=csv_convert_options())
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise RequestInvalid([problem("body", f"not readable as CSV ({exc})")]) from None
    return MlflowRequest(table, proba)


def encode(result: ScoreResult) -> dict[str, Any]:
    """``{"predictions": [...]}``: labels, or one list of class probabilities per row."""
    if result.probabilities is not None:
        return {"predictions": jsonable(np.asarray(result.probabilities, dtype=np.float64))}
    assert result.predictions is not None
    return {"predictions": jsonable(result.predictions)}
