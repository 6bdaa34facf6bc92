"""Open Inference Protocol v2 (KServe, Triton, Seldon) for tabular models.

Inputs are one tensor per signature column (name = column, shape ``[n]`` or ``[n, 1]``,
datatype from the signature), or a single 2-D tensor ``[n, k]`` holding the ``k`` columns in
signature order when they share one numeric type. Outputs are ``predict`` (shape ``[n]``) and,
for classifiers, ``predict_proba`` (shape ``[n, classes]``, row-major; the model metadata gives
the class of each column as ``parameters.classes``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

import numpy as np
import pyarrow as pa

from modelcycle.registry import Signature
from modelcycle.scoring.engine import ModelSlot, ScoreResult
from modelcycle.scoring.protocols._tabular import (
    Problem,
    RequestInvalid,
    describe_value,
    first_misfit,
    fits_type,
    jsonable,
    mixed_values,
    problem,
)

__all__ = [
    "V2Request",
    "decode_infer",
    "encode_infer",
    "model_metadata",
    "v2_datatype",
]

# Signature (Arrow) type -> v2 datatype, and the Arrow type each v2 datatype decodes to.
_TO_V2 = {
    "bool": "BOOL",
    "int8": "INT8",
    "int16": "INT16",
    "int32": "INT32",
    "int64": "INT64",
    "uint8": "UINT8",
    "uint16": "UINT16",
    "uint32": "UINT32",
    "uint64": "UINT64",
    "halffloat": "FP16",
    "float32": "FP32",
    "double": "FP64",
    "string": "BYTES",
    "binary": "BYTES",
}
_FROM_V2: dict[str, pa.DataType] = {
    "BOOL": pa.bool_(),
    "INT8": pa.int8(),
    "INT16": pa.int16(),
    "INT32": pa.int32(),
    "INT64": pa.int64(),
    "UINT8": pa.uint8(),
    "UINT16": pa.uint16(),
    "UINT32": pa.uint32(),
    "UINT64": pa.uint64(),
    "FP16": pa.float16(),
    "FP32": pa.float32(),
    "FP64": pa.float64(),
    "BYTES": pa.string(),
}
PREDICT = "predict"
PREDICT_PROBA = "predict_proba"


def v2_datatype(type_name: str) -> str:
    """The v2 datatype of a signature column type (``BYTES`` for anything textual)."""
    return _TO_V2.get(type_name, "BYTES")


def _numpy_datatype(values: np.ndarray) -> str:
    kind = values.dtype.kind
    if kind == "b":
        return "BOOL"
    if kind in "iu":
        return f"{'U' if kind == 'u' else ''}INT{values.dtype.itemsize * 8}"
    if kind == "f":
        return {2: "FP16", 4: "FP32"}.get(values.dtype.itemsize, "FP64")
    return "BYTES"


def model_metadata(slot: ModelSlot, versions: list[int]) -> dict[str, Any]:
    """``GET /v2/models/{name}``: exactly the inputs a request needs and the outputs it gets."""
    sig = slot.signature
    outputs: list[dict[str, Any]] = [
        {"name": PREDICT, "datatype": _predict_datatype(sig), "shape": [-1]}
    ]
    if sig.is_classifier:
        classes = list(sig.classes or [])
        # The label of each column, as MLServer's and KServe's tensor metadata "parameters"
        # carry extra facts: without it a client cannot tell the columns apart.
        outputs.append(
            {
                "name": PREDICT_PROBA,
                "datatype": "FP64",
                "shape": [-1, len(classes)],
                "parameters": {"classes": classes},
            }
        )
    return {
        "name": slot.name,
        "versions": [str(v) for v in versions],
        "platform": f"modelcycle-{slot.flavor}",
        "inputs": [
            {"name": c.name, "datatype": v2_datatype(c.type), "shape": [-1]} for c in sig.inputs
        ],
        "outputs": outputs,
        # How this server predicts (not part of the V2 protocol: its extension point).
        "parameters": {"predictor": slot.predictor},
    }


def _predict_datatype(sig: Signature) -> str:
    for out in sig.outputs:
        if out.name == "prediction":
            return v2_datatype(out.type)
    if sig.classes:
        first = sig.classes[0]
        if isinstance(first, bool):
            return "BOOL"
        return "INT64" if isinstance(first, int) else "BYTES"
    return "FP64"


@dataclass(frozen=True, slots=True)
class V2Request:
    """A decoded inference request."""

    table: pa.Table
    id: str | None
    predict: bool
    proba: bool


def decode_infer(body: Any, signature: Signature, *, proba_default: bool = False) -> V2Request:
    """Read an inference request body into a table; every problem is reported at once."""
    problems: list[Problem] = []
    if not isinstance(body, dict):
        raise RequestInvalid([problem("body", "expected a JSON object with 'inputs'")])
    request_id = body.get("id")
    if request_id is not None and not isinstance(request_id, str):
        problems.append(problem("id", "expected a string"))
    parameters = body.get("parameters") or {}
    if not isinstance(parameters, dict):
        problems.append(problem("parameters", "expected an object"))
        parameters = {}
    want_predict, want_proba = _wanted_outputs(body.get("outputs"), parameters, problems)
    if want_proba is None:
        want_proba = proba_default
    inputs = body.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        problems.append(problem("inputs", "expected a non-empty list of tensors"))
        raise RequestInvalid(problems)
    columns: dict[str, pa.Array] = {}
    for i, tensor in enumerate(inputs):
        _decode_tensor(tensor, i, signature, columns, problems)
    if not problems:
        lengths = {len(a) for a in columns.values()}
        if len(lengths) > 1:
            detail = ", ".join(f"{n}={len(a)}" for n, a in columns.items())
            problems.append(problem("inputs", f"tensors differ in row count ({detail})"))
    if problems:
        raise RequestInvalid(problems)
    return V2Request(
        pa.table(columns),
        request_id if isinstance(request_id, str) else None,
        want_predict,
        want_proba,
    )


def _wanted_outputs(
    outputs: Any, parameters: dict[str, Any], problems: list[Problem]
) -> tuple[bool, bool | None]:
    proba_param = parameters.get("probabilities")
    if proba_param is not None and not isinstance(proba_param, bool):
        problems.append(problem("parameters.probabilities", "expected true or false"))
        proba_param = None
    if outputs is None:
        return True, proba_param
    if not isinstance(outputs, list):
        problems.append(problem("outputs", "expected a list of {'name': ...} objects"))
        return True, proba_param
    names = set()
    for i, out in enumerate(outputs):
        name = out.get("name") if isinstance(out, dict) else None
        if name not in (PREDICT, PREDICT_PROBA):
            problems.append(
                problem(
                    f"outputs[{i}]",
                    f"unknown output {name!r}; use {PREDICT!r} or {PREDICT_PROBA!r}",
                )
            )
        names.add(name)
    if not names:
        return True, proba_param
    return PREDICT in names, PREDICT_PROBA in names or bool(proba_param)


def _decode_tensor(
    tensor: Any,
    index: int,
    signature: Signature,
    columns: dict[str, pa.Array],
    problems: list[Problem],
) -> None:
    where = f"inputs[{index}]"
    if not isinstance(tensor, dict):
        problems.append(problem(where, "expected a tensor object {name, shape, datatype, data}"))
        return
    name = tensor.get("name")
    if not isinstance(name, str) or not name:
        problems.append(problem(f"{where}.name", "expected the column name"))
        return
    where = name
    datatype = tensor.get("datatype")
    shape = tensor.get("shape")
    data = tensor.get("data")
    before = len(problems)
    if datatype not in _FROM_V2:
        problems.append(
            problem(f"{where}.datatype", f"expected one of {sorted(_FROM_V2)}, got {datatype!r}")
        )
    if (
        not isinstance(shape, list)
        or not shape
        or len(shape) > 2
        or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in shape)
    ):
        problems.append(
            problem(f"{where}.shape", f"expected [rows] or [rows, columns], got {shape!r}")
        )
    if not isinstance(data, list):
        problems.append(problem(f"{where}.data", "expected a list of values"))
    if len(problems) > before:
        return
    datatype, shape, data = cast(str, datatype), cast(list[int], shape), cast(list[Any], data)
    flat = _flatten(data)
    if flat is None:
        problems.append(problem(f"{where}.data", "nested lists deeper than the shape allows"))
        return
    expected = shape[0] * (shape[1] if len(shape) == 2 else 1)
    if len(flat) != expected:
        problems.append(
            problem(
                f"{where}.shape", f"shape {shape} holds {expected} values, data has {len(flat)}"
            )
        )
        return
    arrow_type = _FROM_V2[datatype]
    known = signature.input_names
    if len(shape) == 2 and shape[1] != 1:
        # The 2-D form: one tensor holding every column in signature order.
        if shape[1] != len(known):
            problems.append(
                problem(
                    f"{where}.shape",
                    f"a 2-D tensor must have one column per input ({len(known)}: "
                    f"{', '.join(known)}), got {shape[1]}",
                )
            )
            return
        values = _typed(flat, arrow_type, datatype, where, problems, columns=known)
        if values is None:
            return
        width = shape[1]
        for j, col in enumerate(known):
            columns[col] = values.take(pa.array(range(j, len(flat), width)))
        return
    values = _typed(flat, arrow_type, datatype, where, problems, signature=signature)
    if values is not None:
        if name in columns:
            problems.append(problem(where, "given more than once"))
        columns[name] = values


def _flatten(data: list[Any]) -> list[Any] | None:
    if not data or not isinstance(data[0], list):
        return data
    flat: list[Any] = []
    for row in data:
        if not isinstance(row, list) or any(isinstance(v, list) for v in row):
            return None
        flat.extend(row)
    return flat


def _typed(
    values: list[Any],
    arrow_type: pa.DataType,
    datatype: str,
    where: str,
    problems: list[Problem],
    *,
    signature: Signature | None = None,
    columns: list[str] | None = None,
) -> pa.Array | None:
    """``values`` as the tensor's declared type; a value that does not fit is a problem.

    ``signature``: for a one-column tensor, its type there words the problem; ``columns``:
    the columns of a 2-D tensor, whose values are row-major.
    """
    try:
        inferred = pa.array(values)
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError) as exc:
        # The failure path only: look the column's type up now, not on every request.
        expected = None
        if signature is not None:
            expected = next((c.type for c in signature.inputs if c.name == where), None)
        want = expected or datatype
        index = first_misfit(values, want)
        if index is None:
            problems.append(problem(f"{where}.data", mixed_values(values, expected, exc)))
        else:
            problems.append(problem(f"{where}.data", _misfit(values, index, want, columns)))
        return None
    got = inferred.type
    fits = (
        pa.types.is_null(got)
        or (datatype == "BOOL" and pa.types.is_boolean(got))
        or (datatype == "BYTES" and pa.types.is_string(got))
        or (
            datatype not in ("BOOL", "BYTES")
            and (pa.types.is_integer(got) or pa.types.is_floating(got))
        )
    )
    if not fits:
        problems.append(problem(f"{where}.data", f"{datatype} tensor holds {got} values"))
        return None
    try:
        return inferred.cast(arrow_type)  # safe: refuses 1.5 as INT64 and overflow
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        index = next(
            (i for i, v in enumerate(values) if v is not None and not _casts(v, arrow_type)), None
        )
        text = (
            f"values do not fit {datatype} ({exc})"
            if index is None
            else _misfit(values, index, datatype, columns)
        )
        problems.append(problem(f"{where}.data", text))
        return None


def _casts(value: Any, arrow_type: pa.DataType) -> bool:
    try:
        pa.array([value]).cast(arrow_type)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, OverflowError):
        return False
    return True


def _misfit(values: list[Any], index: int, expected: str, columns: list[str] | None) -> str:
    """``row 3: 'x' is a string; expected double`` (a 2-D tensor's cell also names its column)."""
    value = values[index]
    if columns:
        row, col = divmod(index, len(columns))
        where = f"row {row}, column {columns[col]}"
    else:
        where = f"row {index}"
    if isinstance(value, int) and not isinstance(value, bool) and fits_type(value, expected):
        return f"{where}: {value!r} is out of the range of {expected}"
    return f"{where}: {describe_value(value, expected)}; expected {expected}"


def encode_infer(result: ScoreResult, request_id: str) -> dict[str, Any]:
    """The inference response: ``predict`` and/or ``predict_proba`` tensors."""
    outputs: list[dict[str, Any]] = []
    if result.predictions is not None:
        pred = result.predictions
        outputs.append(
            {
                "name": PREDICT,
                "shape": [int(pred.shape[0])],
                "datatype": _numpy_datatype(pred),
                "data": jsonable(pred.astype(str) if pred.dtype.kind == "O" else pred),
            }
        )
    if result.probabilities is not None:
        proba = np.asarray(result.probabilities, dtype=np.float64)
        outputs.append(
            {
                "name": PREDICT_PROBA,
                "shape": list(proba.shape),
                "datatype": "FP64",
                "data": jsonable(proba.ravel()),
            }
        )
    return {
        "model_name": result.model_name,
        "model_version": str(result.model_version),
        "id": request_id,
        "outputs": outputs,
    }
