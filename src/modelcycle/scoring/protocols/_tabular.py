"""Decoding helpers shared by the protocol adapters: JSON values straight into Arrow columns.

No pandas here: each column becomes one Arrow array (types inferred from the JSON values, then
checked by the registry's ``enforce`` against the signature), so a one-row request costs a few
microseconds per column.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pyarrow as pa

from modelcycle.errors import InvalidInput

__all__ = [
    "Problem",
    "RequestInvalid",
    "column_array",
    "jsonable",
    "table_from_columns",
    "table_from_rows",
]

Problem = dict[str, str]


class RequestInvalid(InvalidInput):
    """The request body cannot be read as a table; ``problems`` lists each (field, problem)."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        listed = "; ".join(f"{p['field']}: {p['problem']}" for p in problems)
        super().__init__(f"the request is not valid ({len(problems)} problem(s)): {listed}")
        self.problems = list(problems)


def problem(field: str, text: str) -> Problem:
    return {"field": field, "problem": text}


def column_array(values: Any, field: str, problems: list[Problem]) -> pa.Array | None:
    """An Arrow array from a JSON list, type inferred; a problem (not an exception) otherwise."""
    if not isinstance(values, list):
        problems.append(problem(field, f"expected a list of values, got {_kind(values)}"))
        return None
    try:
        return pa.array(values)
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError) as exc:
        problems.append(problem(field, f"values of mixed or unsupported types ({exc})"))
        return None


def table_from_columns(
    columns: Mapping[str, Any], problems: list[Problem], *, field: str = "columns"
) -> pa.Table | None:
    """A table from ``{"name": [values...], ...}``; every column must have the same length."""
    arrays: dict[str, pa.Array] = {}
    for name, values in columns.items():
        arr = column_array(values, name, problems)
        if arr is not None:
            arrays[name] = arr
    lengths = {len(a) for a in arrays.values()}
    if len(lengths) > 1:
        detail = ", ".join(f"{n}={len(a)}" for n, a in arrays.items())
        problems.append(problem(field, f"columns differ in length ({detail})"))
    if problems:
        return None
    if not arrays:
        problems.append(problem(field, "no columns given"))
        return None
    return pa.table(arrays)


def table_from_rows(
    rows: Any, problems: list[Problem], *, field: str = "rows", order: Sequence[str] = ()
) -> pa.Table | None:
    """A table from ``[{"col": value, ...}, ...]``; a key absent from a row is a null there."""
    if not isinstance(rows, list):
        problems.append(problem(field, f"expected a list of objects, got {_kind(rows)}"))
        return None
    names: dict[str, None] = dict.fromkeys(order)
    present: set[str] = set()
    for i, row in enumerate(rows):
        if not isinstance(row, dict):
            problems.append(problem(f"{field}[{i}]", f"expected an object, got {_kind(row)}"))
            if len(problems) >= 20:
                break
            continue
        present.update(row)
    if problems:
        return None
    for key in present:
        names.setdefault(key, None)
    columns = {n: [row.get(n) for row in rows] for n in names if n in present}
    if not rows:
        problems.append(problem(field, "no rows given"))
        return None
    return table_from_columns(columns, problems, field=field)


def table_from_split(
    columns: Any, data: Any, problems: list[Problem], *, field: str
) -> pa.Table | None:
    """A table from pandas' ``split`` orientation: column names and row-major data."""
    if not isinstance(columns, list) or not all(isinstance(c, str) for c in columns):
        problems.append(problem(f"{field}.columns", "expected a list of column names"))
        return None
    if not isinstance(data, list):
        problems.append(problem(f"{field}.data", f"expected a list of rows, got {_kind(data)}"))
        return None
    width = len(columns)
    for i, row in enumerate(data):
        if not isinstance(row, list) or len(row) != width:
            problems.append(
                problem(f"{field}.data[{i}]", f"expected a list of {width} values (one per column)")
            )
            return None
    if len(set(columns)) != width:
        problems.append(problem(f"{field}.columns", "column names must be unique"))
        return None
    if not data:
        problems.append(problem(f"{field}.data", "no rows given"))
        return None
    return table_from_columns(
        {name: [row[j] for row in data] for j, name in enumerate(columns)}, problems, field=field
    )


def jsonable(values: np.ndarray) -> list[Any]:
    """Plain Python values for JSON (``tolist`` turns numpy scalars into int/float/str)."""
    out: list[Any] = values.tolist()
    return out


def _kind(value: Any) -> str:
    return {
        dict: "an object",
        list: "a list",
        str: "a string",
        bool: "a boolean",
        int: "a number",
        float: "a number",
        type(None): "null",
    }.get(type(value), type(value).__name__)
