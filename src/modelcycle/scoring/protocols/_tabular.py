"""Decoding helpers shared by the protocol adapters: JSON values straight into Arrow columns.

No pandas here: each column becomes one Arrow array (types inferred from the JSON values, then
checked by the registry's ``enforce`` against the signature), so a one-row request costs a few
microseconds per column.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pyarrow as pa

from modelcycle.errors import InvalidInput

__all__ = [
    "Problem",
    "RequestInvalid",
    "column_array",
    "describe_value",
    "first_misfit",
    "fits_type",
    "jsonable",
    "malformed_json",
    "mixed_values",
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


def column_array(
    values: Any, field: str, problems: list[Problem], expected: str | None = None
) -> pa.Array | None:
    """An Arrow array from a JSON list, type inferred; a problem (not an exception) otherwise.

    ``expected`` (the signature's type of the column) only words the problem.
    """
    if not isinstance(values, list):
        problems.append(problem(field, f"expected a list of values, got {_kind(values)}"))
        return None
    try:
        return pa.array(values)
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError) as exc:
        problems.append(problem(field, mixed_values(values, expected, exc)))
        return None


def mixed_values(values: Sequence[Any], expected: str | None, exc: BaseException) -> str:
    """Which value of a list Arrow could not read as one type, for a person: its row, the value
    and the type the column needs (Arrow's own words name neither). Only on the failure path."""
    first = next((v for v in values if v is not None), None)
    index = None if expected is None else first_misfit(values, expected)
    want = expected or ""
    if index is None:  # no signature type to go by: the first value unlike the first one
        index = next(
            (i for i, v in enumerate(values) if v is not None and _kind(v) != _kind(first)), None
        )
        want = expected or f"{_kind(first)} like the other values"
    if index is None:
        return f"values Arrow cannot read as one type ({exc})"
    return f"row {index}: {describe_value(values[index], want)}; expected {want}"


def describe_value(value: Any, expected: str) -> str:
    """``'high' is a string``, ``36.5 is not a whole number``: one value, for a person."""
    if (
        isinstance(value, float)
        and expected.lower().startswith(("int", "uint"))
        and not value.is_integer()
    ):
        if value != value:
            return "NaN is not a value (send null for a missing one)"
        return f"{value!r} is not a whole number"
    return f"{value!r} is {_kind(value)}"


# A bare NaN or Infinity token where orjson stopped (JSON has neither; Python's json and
# pandas' to_json(default_handler) clients write them).
_NON_FINITE = re.compile(rb"-?(?:NaN|nan|Infinity|inf)")


def malformed_json(body: bytes, exc: ValueError) -> str:
    """The problem for a body orjson refused; a bare NaN/Infinity says what to send instead."""
    pos = getattr(exc, "pos", None)
    if isinstance(pos, int):
        start = pos - 1 if pos > 0 and body[pos - 1 : pos] == b"-" else pos
        match = _NON_FINITE.match(body, start)
        if match is not None:
            token = match.group().decode()
            line = body.count(b"\n", 0, start) + 1
            if token.lstrip("-").lower().startswith("nan"):
                advice = "send null for a missing value"
            else:
                advice = "send a finite number, or null for a missing value"
            return f"a bare {token} (line {line}, character {start + 1}) is not JSON; {advice}"
    return f"malformed JSON ({exc})"


def first_misfit(values: Sequence[Any], expected: str) -> int | None:
    """The position of the first non-null value that is not of the ``expected`` kind."""
    return next(
        (i for i, v in enumerate(values) if v is not None and not fits_type(v, expected)), None
    )


_TEXT_TYPES = ("string", "large_string", "binary", "large_binary", "BYTES")


def fits_type(value: Any, expected: str) -> bool:
    """Whether one JSON value is the kind a column of ``expected`` type (a signature type name
    or a v2 datatype) holds; an integral float fits an integer type, as pandas sends them."""
    name = expected.lower()
    if name == "bool":
        return isinstance(value, bool)
    if isinstance(value, bool):
        return False
    if name.startswith(("int", "uint")):
        return isinstance(value, int) or (isinstance(value, float) and value.is_integer())
    if name.startswith(("float", "double", "halffloat", "fp")):
        return isinstance(value, int | float)
    if expected in _TEXT_TYPES:
        return isinstance(value, str)
    return True  # a type this check has no opinion on


def table_from_columns(
    columns: Mapping[str, Any],
    problems: list[Problem],
    *,
    field: str = "columns",
    types: Mapping[str, str] | None = None,
) -> pa.Table | None:
    """A table from ``{"name": [values...], ...}``; every column must have the same length.

    ``types`` (column -> signature type) only words the problems.
    """
    arrays: dict[str, pa.Array] = {}
    for name, values in columns.items():
        arr = column_array(values, name, problems, types.get(name) if types else None)
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
    rows: Any,
    problems: list[Problem],
    *,
    field: str = "rows",
    order: Sequence[str] = (),
    types: Mapping[str, str] | None = None,
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
    return table_from_columns(columns, problems, field=field, types=types)


def table_from_split(
    columns: Any,
    data: Any,
    problems: list[Problem],
    *,
    field: str,
    types: Mapping[str, str] | None = None,
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
        {name: [row[j] for row in data] for j, name in enumerate(columns)},
        problems,
        field=field,
        types=types,
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
