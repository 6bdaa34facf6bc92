"""The plain protocol: ``POST /predict`` with ``{"rows": [{...}, ...]}`` or ``{"columns": {...}}``.

The answer names the model and version and holds ``predictions`` (and ``probabilities`` with
``classes`` when asked for).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from modelcycle.scoring.engine import ScoreResult
from modelcycle.scoring.protocols._tabular import (
    Problem,
    RequestInvalid,
    jsonable,
    problem,
    table_from_columns,
    table_from_rows,
)

__all__ = ["PlainRequest", "decode", "encode"]


@dataclass(frozen=True, slots=True)
class PlainRequest:
    table: pa.Table
    proba: bool


def decode(
    body: Any,
    *,
    order: list[str],
    proba_default: bool = False,
    types: Mapping[str, str] | None = None,
) -> PlainRequest:
    """A table from ``rows`` or ``columns``; ``"probabilities": true`` asks for probabilities.

    ``types`` (the signature's column types) only words the problems."""
    problems: list[Problem] = []
    if not isinstance(body, dict) or ("rows" in body) == ("columns" in body):
        raise RequestInvalid(
            [problem("body", "expected an object with either 'rows' or 'columns'")]
        )
    unknown = sorted(set(body) - {"rows", "columns", "probabilities"})
    if unknown:
        problems.append(problem("body", f"unknown key(s): {', '.join(unknown)}"))
    proba = body.get("probabilities", proba_default)
    if not isinstance(proba, bool):
        problems.append(problem("probabilities", "expected true or false"))
    table: pa.Table | None = None
    if "rows" in body:
        table = table_from_rows(body["rows"], problems, order=order, types=types)
    elif isinstance(body["columns"], dict):
        table = table_from_columns(body["columns"], problems, types=types)
    else:
        problems.append(problem("columns", "expected an object of column name -> list of values"))
    if problems or table is None:
        raise RequestInvalid(problems)
    return PlainRequest(table, bool(proba))


def encode(result: ScoreResult) -> dict[str, Any]:
    out: dict[str, Any] = {"model": result.model_name, "version": result.model_version}
    if result.predictions is not None:
        out["predictions"] = jsonable(result.predictions)
    if result.probabilities is not None:
        out["probabilities"] = jsonable(np.asarray(result.probabilities, dtype=np.float64))
        out["classes"] = result.classes
    return out
