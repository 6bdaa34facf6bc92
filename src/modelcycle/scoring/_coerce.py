"""What serving does after the signature check refused a request, and only then.

Two things, both off the hot path (a request that passes :func:`enforce` never comes here):

- pandas clients send integer columns as floats (``2007.0``: a frame with a NaN anywhere, or
  after arithmetic). A float column whose values are all whole numbers is cast to the integer
  type the signature wants (Arrow's safe cast refuses ``2007.5``, NaN and overflow), and the
  request checked again;
- a type problem is reworded to name the first row that does not fit, its value and the type
  expected, instead of only the column's two type names.
"""

from __future__ import annotations

import pyarrow as pa

from modelcycle.datasets import arrow_type
from modelcycle.registry import ColumnProblem, Signature, SignatureMismatch, enforce
from modelcycle.scoring.protocols._tabular import describe_value

__all__ = ["recover"]

_CAST_ERRORS = (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, OverflowError)


def recover(signature: Signature, table: pa.Table, refused: SignatureMismatch) -> pa.Table:
    """``table`` checked again with its integral float columns cast to the signature's integer
    types; else a :class:`SignatureMismatch` whose type problems name row, value and type."""
    types = {c.name: c.type for c in signature.inputs}
    present = set(table.column_names)
    cast_any = False
    for p in refused.problems:
        if p.kind != "type" or p.column not in present:
            continue
        column = table.column(p.column)
        target = arrow_type(types[p.column])
        if pa.types.is_floating(column.type) and pa.types.is_integer(target):
            try:
                cast = column.cast(target)  # safe: whole numbers within range only
            except _CAST_ERRORS:
                continue
            table = table.set_column(table.schema.get_field_index(p.column), p.column, cast)
            cast_any = True
    if cast_any:
        try:
            return enforce(signature, table)
        except SignatureMismatch as again:
            refused = again
    raise SignatureMismatch([_explain(p, table, types) for p in refused.problems])


def _explain(p: ColumnProblem, table: pa.Table, types: dict[str, str]) -> ColumnProblem:
    """A type problem with the first row that does not fit; other problems as they are."""
    if p.kind != "type" or p.column not in table.column_names:
        return p
    expected = types[p.column]
    target = arrow_type(expected)
    values = table.column(p.column).to_pylist()
    index = _first_uncastable(table.column(p.column), target)
    if index is None:
        # Every value would convert (numbers sent as text, "41"): the column's type is wrong,
        # not one value; show the first.
        index = next((i for i, v in enumerate(values) if v is not None), None)
    if index is None:
        return p
    value = values[index]
    if isinstance(value, str) and (pa.types.is_integer(target) or pa.types.is_floating(target)):
        what = f"{value!r} is text"
    else:
        what = describe_value(value, expected)
    return ColumnProblem(p.column, p.kind, f"row {index}: {what}; expected {expected}")


def _first_uncastable(column: pa.ChunkedArray, target: pa.DataType) -> int | None:
    """The first position whose value does not cast to ``target``, by halving (few casts)."""
    array = column.combine_chunks()
    try:
        array.cast(target)
        return None
    except _CAST_ERRORS:
        pass
    lo, hi = 0, len(array)
    while hi - lo > 1:  # the first bad value is in [lo, hi)
        mid = (lo + hi) // 2
        try:
            array.slice(lo, mid - lo).cast(target)
            lo = mid
        except _CAST_ERRORS:
            hi = mid
    return lo
