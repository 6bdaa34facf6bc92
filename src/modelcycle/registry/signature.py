"""Model signatures: the input columns a model takes and what it answers, and their enforcement.

A signature is plain data (JSON round-trip). :func:`enforce` is the one check every scoring
path runs before a model sees a table: columns present and known, types equal or safely
castable, no nulls where none are allowed; every problem is reported at once.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from modelcycle.datasets import ColumnSpec, arrow_type, is_safe_cast
from modelcycle.errors import InvalidInput
from modelcycle.registry.errors import ColumnProblem, SignatureMismatch

__all__ = ["ColumnSpec", "OutputSpec", "Signature", "enforce", "to_arrow"]

TASKS = ("binary_classification", "multiclass_classification", "regression", "unknown")

# Arrow type names that mean the same to a model.
_SYNONYMS = {"large_string": "string", "large_binary": "binary", "float": "float32"}


def type_name(arrow_type: pa.DataType) -> str:
    """The signature's name for an Arrow type: ``double``, ``int64``, ``string``, ``bool``..."""
    name = str(arrow_type)
    return _SYNONYMS.get(name, name)


@dataclass(frozen=True, slots=True)
class OutputSpec:
    """One output: name, element type, shape (``-1`` for the row count)."""

    name: str
    type: str
    shape: tuple[int, ...]

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "type": self.type, "shape": list(self.shape)}


@dataclass(frozen=True, slots=True)
class Signature:
    """What a model takes and gives. ``classes`` is set for classifiers."""

    inputs: list[ColumnSpec]
    outputs: list[OutputSpec] = field(default_factory=list)
    task: str = "unknown"
    classes: list[Any] | None = None

    @property
    def input_names(self) -> list[str]:
        return [c.name for c in self.inputs]

    @property
    def is_classifier(self) -> bool:
        return self.task in ("binary_classification", "multiclass_classification")

    def as_dict(self) -> dict[str, Any]:
        return {
            "inputs": [c.as_dict() for c in self.inputs],
            "outputs": [o.as_dict() for o in self.outputs],
            "task": self.task,
            "classes": self.classes,
        }

    def to_json(self) -> str:
        return json.dumps(self.as_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Signature:
        """Read the :meth:`as_dict` form back; bad data is InvalidInput naming ``signature``."""
        try:
            inputs = [
                ColumnSpec(str(c["name"]), str(c["type"]), bool(c.get("nullable", False)))
                for c in data["inputs"]
            ]
            outputs = [
                OutputSpec(str(o["name"]), str(o["type"]), tuple(int(s) for s in o["shape"]))
                for o in data.get("outputs", [])
            ]
            task = str(data.get("task", "unknown"))
            classes = data.get("classes")
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidInput(f"malformed signature ({exc!r})", field="signature") from exc
        if task not in TASKS:
            raise InvalidInput(f"task must be one of {TASKS}, got {task!r}", field="signature")
        names = [c.name for c in inputs]
        if len(set(names)) != len(names):
            raise InvalidInput("input column names must be unique", field="signature")
        return cls(inputs, outputs, task, list(classes) if classes is not None else None)

    @classmethod
    def from_json(cls, text: str) -> Signature:
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise InvalidInput(f"not JSON ({exc})", field="signature") from exc
        if not isinstance(data, dict):
            raise InvalidInput("expected a JSON object", field="signature")
        return cls.from_dict(data)

    @classmethod
    def infer(
        cls,
        input_example: Any,
        *,
        predictions: Any = None,
        task: str = "unknown",
        classes: list[Any] | None = None,
        probabilities: bool = False,
    ) -> Signature:
        """Infer inputs from an example (DataFrame, Arrow table, 2-D numpy) and outputs from
        the model's predictions on it."""
        table = to_arrow(input_example)
        inputs = [
            ColumnSpec(f.name, type_name(f.type), _has_missing(table.column(f.name)))
            for f in table.schema
        ]
        outputs: list[OutputSpec] = []
        if predictions is not None:
            pred = np.asarray(predictions)
            shape = (-1, *pred.shape[1:])
            outputs.append(OutputSpec("prediction", type_name(_arrow_type_of(pred)), shape))
        if probabilities and classes is not None:
            outputs.append(OutputSpec("probabilities", "double", (-1, len(classes))))
        return cls(
            inputs, outputs, task, [_plain(c) for c in classes] if classes is not None else None
        )


def _plain(value: Any) -> Any:
    """numpy scalars as JSON-ready Python values."""
    return value.item() if isinstance(value, np.generic) else value


def _arrow_type_of(values: np.ndarray) -> pa.DataType:
    try:
        return pa.from_numpy_dtype(values.dtype)
    except (pa.ArrowNotImplementedError, TypeError):
        return pa.string()


def _has_missing(column: pa.ChunkedArray) -> bool:
    if column.null_count:
        return True
    if pa.types.is_floating(column.type):
        return bool(pc.any(pc.is_nan(column)).as_py())
    return False


def to_arrow(data: Any, *, field: str = "input") -> pa.Table:
    """An Arrow table from an Arrow table, a pandas DataFrame or a 2-D numpy array (``f0..fn``)."""
    if isinstance(data, pa.Table):
        return data
    if isinstance(data, pa.RecordBatch):
        return pa.Table.from_batches([data])
    if isinstance(data, pd.DataFrame):
        if len(set(map(str, data.columns))) != len(data.columns):
            raise InvalidInput("column names must be unique", field=field)
        frame = data.rename(columns=str)
        return pa.Table.from_pandas(frame, preserve_index=False)
    if isinstance(data, np.ndarray):
        if data.ndim != 2:
            raise InvalidInput(f"a numpy array must be 2-D, got {data.ndim}-D", field=field)
        return pa.table({f"f{i}": data[:, i] for i in range(data.shape[1])})
    raise InvalidInput(
        "expected an Arrow table, a pandas DataFrame or a 2-D numpy array, "
        f"got {type(data).__name__}",
        field=field,
    )


def enforce(signature: Signature, data: Any, *, allow_extra: bool = False) -> pa.Table:
    """``data`` as an Arrow table with exactly the signature's columns, in order, safely cast.

    Raises one :class:`SignatureMismatch` listing every missing, unknown, mistyped or
    null-holding column. A table that already matches is returned as is, without a copy.
    ``allow_extra`` drops columns the signature does not know instead of refusing them.
    """
    table = to_arrow(data)
    problems: list[ColumnProblem] = []
    expected = {c.name: c for c in signature.inputs}
    present = table.column_names
    if len(set(present)) != len(present):
        dupes = sorted({n for n in present if present.count(n) > 1})
        problems.extend(ColumnProblem(n, "duplicate", "appears more than once") for n in dupes)
    for name in present:
        if name not in expected and not allow_extra:
            problems.append(ColumnProblem(name, "unknown", "is not in the signature"))
    columns: list[pa.ChunkedArray] = []
    for spec in signature.inputs:
        if spec.name not in present:
            problems.append(ColumnProblem(spec.name, "missing", f"missing (expected {spec.type})"))
            continue
        column = table.column(spec.name)
        got = type_name(column.type)
        target = arrow_type(spec.type)
        if not column.type.equals(target):
            if not is_safe_cast(column.type, target):
                problems.append(
                    ColumnProblem(
                        spec.name, "type", f"expected {spec.type}, got {got} (not a safe cast)"
                    )
                )
                continue
            try:
                column = column.cast(target)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
                problems.append(
                    ColumnProblem(spec.name, "type", f"cannot cast {got} to {spec.type}: {exc}")
                )
                continue
        if not spec.nullable:
            missing = _missing_count(column)
            if missing:
                problems.append(
                    ColumnProblem(
                        spec.name, "nulls", f"{missing} null/NaN value(s) where none are allowed"
                    )
                )
        columns.append(column)
    if problems:
        raise SignatureMismatch(problems)
    names = signature.input_names
    if present == names and all(
        table.schema.field(n).type == c.type for n, c in zip(names, columns, strict=True)
    ):
        return table  # nothing cast, nothing reordered: no copy
    return pa.Table.from_arrays(columns, names=names)


def _missing_count(column: pa.ChunkedArray) -> int:
    count = int(column.null_count)
    if pa.types.is_floating(column.type):
        count += int(pc.sum(pc.is_nan(column).cast(pa.int64())).as_py() or 0)
    return count
