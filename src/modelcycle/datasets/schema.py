"""Column schemas: what a table's columns are called, their Arrow types, and whether nulls occur.

A schema is a list of :class:`ColumnSpec` (JSON form: ``{"name", "type", "nullable"}``, the
type written as Arrow prints it: ``int64``, ``double``, ``string``, ``bool``, ``timestamp[us]``).
``nullable`` records whether the column holds nulls in the data the schema was taken from: file
formats such as CSV cannot declare it, so it is observed rather than declared.

The registry's signature enforcement (the one check every scoring path runs) is built on
:class:`ColumnSpec`, :func:`arrow_type` and :func:`is_safe_cast`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from modelcycle.errors import InvalidInput

__all__ = [
    "ColumnSpec",
    "arrow_type",
    "is_safe_cast",
    "schema_from_json",
    "schema_of",
    "schema_to_json",
    "type_name",
]


@dataclass(frozen=True, slots=True)
class ColumnSpec:
    """One column: its name, Arrow type name, and whether nulls occur in it."""

    name: str
    type: str
    nullable: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "type": self.type, "nullable": self.nullable}


def type_name(data_type: pa.DataType) -> str:
    """The Arrow type as text (``int64``, ``string``, ``timestamp[us, tz=UTC]``)."""
    return str(data_type)


def arrow_type(name: str) -> pa.DataType:
    """The Arrow type of a type name written by :func:`type_name` (simple and temporal types)."""
    try:
        return pa.type_for_alias(name)
    except (ValueError, KeyError):
        pass
    raise InvalidInput(f"{name!r} is not an Arrow type name this schema can parse", field="type")


def schema_of(table: pa.Table | pa.RecordBatch) -> list[ColumnSpec]:
    """The schema of ``table``; ``nullable`` is true when the column holds a null."""
    return [
        ColumnSpec(field.name, type_name(field.type), table.column(i).null_count > 0)
        for i, field in enumerate(table.schema)
    ]


def schema_to_json(schema: Sequence[ColumnSpec]) -> list[dict[str, Any]]:
    return [col.as_dict() for col in schema]


def schema_from_json(data: Iterable[dict[str, Any]]) -> list[ColumnSpec]:
    """Read the JSON form back; a malformed entry is refused naming its position."""
    out: list[ColumnSpec] = []
    for i, item in enumerate(data):
        try:
            out.append(ColumnSpec(str(item["name"]), str(item["type"]), bool(item["nullable"])))
        except (KeyError, TypeError) as exc:
            raise InvalidInput(
                "expected {'name', 'type', 'nullable'}", field=f"schema[{i}]"
            ) from exc
    return out


def is_safe_cast(source: pa.DataType, target: pa.DataType) -> bool:
    """Whether values of ``source`` convert to ``target`` without loss or surprise."""
    if source.equals(target) or pa.types.is_null(source):
        return True
    if pa.types.is_dictionary(source):
        return is_safe_cast(source.value_type, target)
    stringish = (pa.types.is_string, pa.types.is_large_string)
    if any(f(source) for f in stringish) and any(f(target) for f in stringish):
        return True
    if pa.types.is_integer(source):
        if pa.types.is_floating(target):
            return True
        if pa.types.is_integer(target):
            signed_ok = pa.types.is_signed_integer(target) or not pa.types.is_signed_integer(source)
            # An unsigned source needs a strictly wider signed target.
            wider = target.bit_width > source.bit_width or (
                target.bit_width == source.bit_width
                and pa.types.is_signed_integer(source) == pa.types.is_signed_integer(target)
            )
            return bool(signed_ok and wider)
    if pa.types.is_floating(source) and pa.types.is_floating(target):
        return bool(target.bit_width >= source.bit_width)
    return False
