"""Schema helpers: observed schemas and the safe-cast rule the signature enforcement uses."""

from __future__ import annotations

import pyarrow as pa
import pytest

import modelcycle.datasets as datasets
from modelcycle.datasets import ColumnSpec, is_safe_cast, schema_of


def test_schema_of_records_types_and_observed_nulls() -> None:
    t = pa.table({"a": [1, 2], "b": ["x", None]})
    assert schema_of(t) == [ColumnSpec("a", "int64", False), ColumnSpec("b", "string", True)]


@pytest.mark.parametrize(
    ("source", "target", "ok"),
    [
        (pa.int32(), pa.int64(), True),
        (pa.int64(), pa.float64(), True),
        (pa.uint8(), pa.int16(), True),
        (pa.uint8(), pa.int8(), False),
        (pa.int64(), pa.int32(), False),
        (pa.float64(), pa.float32(), False),
        (pa.float64(), pa.int64(), False),
        (pa.string(), pa.int64(), False),
        (pa.null(), pa.string(), True),
    ],
)
def test_safe_casts(source: pa.DataType, target: pa.DataType, ok: bool) -> None:
    assert is_safe_cast(source, target) is ok


def test_public_surface_is_pinned() -> None:
    assert sorted(datasets.__all__) == sorted(
        name for name in dir(datasets) if not name.startswith("_") and name not in _MODULES
    )
    for name in datasets.__all__:
        assert hasattr(datasets, name)


_MODULES = {"catalog", "diff", "profile", "samples", "schema"}
