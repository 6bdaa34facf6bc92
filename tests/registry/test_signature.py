"""Signatures: inference from examples, JSON round trip, and enforcement listing every problem."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from modelcycle.errors import InvalidInput
from modelcycle.registry import ColumnSpec, Signature, SignatureMismatch, enforce


def _sig() -> Signature:
    return Signature(
        inputs=[
            ColumnSpec("x", "double"),
            ColumnSpec("n", "int64"),
            ColumnSpec("city", "string", nullable=True),
        ],
        task="binary_classification",
        classes=[0, 1],
    )


def test_inferred_from_a_dataframe_with_types_and_outputs() -> None:
    example = pd.DataFrame({"x": [1.5, 2.0], "n": [1, 2], "ok": [True, False], "s": ["a", None]})
    sig = Signature.infer(
        example,
        predictions=np.array([0, 1]),
        task="binary_classification",
        classes=[np.int64(0), np.int64(1)],
        probabilities=True,
    )
    assert [(c.name, c.type, c.nullable) for c in sig.inputs] == [
        ("x", "double", False),
        ("n", "int64", False),
        ("ok", "bool", False),
        ("s", "string", True),
    ]
    assert [(o.name, o.type, o.shape) for o in sig.outputs] == [
        ("prediction", "int64", (-1,)),
        ("probabilities", "double", (-1, 2)),
    ]
    assert sig.classes == [0, 1]
    assert type(sig.classes[0]) is int


def test_inferred_from_arrow_and_numpy() -> None:
    sig = Signature.infer(pa.table({"a": pa.array([1, 2], pa.int32())}))
    assert sig.inputs == [ColumnSpec("a", "int32", False)]
    sig = Signature.infer(np.array([[1.0, np.nan], [2.0, 3.0]]))
    assert [(c.name, c.type, c.nullable) for c in sig.inputs] == [
        ("f0", "double", False),
        ("f1", "double", True),
    ]


def test_json_round_trip() -> None:
    sig = Signature.infer(pd.DataFrame({"x": [1.0]}), predictions=np.array([[0.1, 0.2]]))
    again = Signature.from_json(sig.to_json())
    assert again == sig
    assert again.outputs[0].shape == (-1, 2)


def test_malformed_signature_names_the_field() -> None:
    with pytest.raises(InvalidInput, match="signature"):
        Signature.from_dict({"outputs": []})
    with pytest.raises(InvalidInput, match="unique"):
        Signature.from_dict({"inputs": [{"name": "a", "type": "double"}] * 2})


def test_matching_table_passes_without_copy() -> None:
    table = pa.table({"x": [1.0, 2.0], "n": pa.array([1, 2], pa.int64()), "city": ["a", None]})
    assert enforce(_sig(), table) is table


def test_safe_casts_and_reordering() -> None:
    table = pa.table(
        {
            "city": pa.array(["a", "b"], pa.large_string()),  # large_string -> string
            "n": pa.array([1, 2], pa.int32()),  # int32 -> int64
            "x": pa.array([1, 2], pa.int64()),  # int -> double
        }
    )
    out = enforce(_sig(), table)
    assert out.column_names == ["x", "n", "city"]
    assert out.schema.field("x").type == pa.float64()
    assert out.schema.field("n").type == pa.int64()
    assert out.schema.field("city").type == pa.string()
    assert out.column("x").to_pylist() == [1.0, 2.0]


def test_every_problem_is_listed_at_once() -> None:
    table = pa.table(
        {
            "x": [1.0, None],  # null where none allowed
            "n": [1.0, 2.0],  # integral floats are still not a safe cast to int
            "extra": [1, 2],  # unknown
            # city missing
        }
    )
    with pytest.raises(SignatureMismatch) as info:
        enforce(_sig(), table)
    problems = {(p.column, p.kind) for p in info.value.problems}
    assert problems == {("x", "nulls"), ("n", "type"), ("extra", "unknown"), ("city", "missing")}
    message = str(info.value)
    for column in ("'x'", "'n'", "'extra'", "'city'"):
        assert column in message
    assert "expected int64, got double" in message
    assert isinstance(info.value, InvalidInput)


def test_nan_counts_as_missing_and_extra_columns_can_be_dropped() -> None:
    frame = pd.DataFrame({"x": [1.0, float("nan")], "n": [1, 2], "city": ["a", "b"], "id": [7, 8]})
    with pytest.raises(SignatureMismatch, match=r"'x'.*null/NaN"):
        enforce(_sig(), frame, allow_extra=True)
    frame.loc[1, "x"] = 3.0
    out = enforce(_sig(), frame, allow_extra=True)
    assert out.column_names == ["x", "n", "city"]


def test_string_where_number_expected_is_refused() -> None:
    with pytest.raises(SignatureMismatch, match="expected double, got string"):
        enforce(_sig(), pa.table({"x": ["1"], "n": [1], "city": ["a"]}))
