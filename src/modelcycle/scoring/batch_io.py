"""The data plane of batch scoring: checks, scoring a chunk, atomic parts, prediction-log rows.

Everything here is shared by the local and the Dask engine and is plain functions over Arrow
(the inputs, and how they are cut into chunks, are in :mod:`modelcycle.scoring.batch_inputs`,
re-exported here):

- :func:`check_input` runs the signature check on the input's schema and first chunk before
  anything is scored or written, reporting every problem at once;
- :func:`score_chunk` builds the output table of one chunk; :func:`write_part` writes it to a
  temporary name, fsyncs it and renames it to ``part-NNNNN.parquet``, so a part either exists
  whole or not at all.
"""

from __future__ import annotations

import hashlib
import os
import random
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from modelcycle.audit import canonical_json
from modelcycle.registry import ColumnProblem, LoadedModel, Signature, SignatureMismatch, enforce
from modelcycle.scoring.batch_inputs import (
    REJECTS_FILE,
    InputSource,
    RangeReader,
    Rejects,
    Segment,
    chunks,
    open_input,
    plan_ranges,
)

__all__ = [
    "REJECTS_FILE",
    "RESERVED",
    "ChunkResult",
    "InputSource",
    "RangeReader",
    "Rejects",
    "Segment",
    "check_input",
    "chunks",
    "open_input",
    "output_columns",
    "part_name",
    "plan_ranges",
    "score_chunk",
    "write_part",
]

RESERVED = ("prediction", "model_version")
# Fixed writer options: the same chunk gives the same part bytes with one pyarrow version.
_PARQUET_OPTIONS: dict[str, Any] = {
    "compression": "zstd",
    "compression_level": 1,
    "use_dictionary": True,
    "write_statistics": False,
    "version": "2.6",
}


@dataclass(frozen=True, slots=True)
class ChunkResult:
    """One scored chunk: its part file (already renamed into place) and what to log."""

    chunk: int
    rows: int
    part: str
    sha256: str
    log_rows: list[dict[str, Any]]


# -- checks ------------------------------------------------------------------------------------


def check_input(
    signature: Signature,
    schema: pa.Schema,
    passthrough: list[str],
    first: pa.Table | None,
    *,
    where: str | None = None,
) -> None:
    """Refuse, with every problem at once, an input that the model cannot score.

    Columns and types are checked on the schema (a zero-row table), nulls on the first chunk;
    passthrough columns must exist and must not clash with the output's own columns. The
    error names the input (``where``: its path or ``data:NAME@VERSION``) and each column.
    """
    problems: list[ColumnProblem] = []
    try:
        enforce(signature, schema.empty_table(), allow_extra=True)
    except SignatureMismatch as exc:
        problems.extend(exc.problems)
    for name in passthrough:
        if name not in schema.names:
            problems.append(ColumnProblem(name, "missing", "passthrough column not in the input"))
        elif name in RESERVED or name.startswith("proba_"):
            problems.append(
                ColumnProblem(name, "reserved", "passthrough column clashes with an output column")
            )
    if not problems and first is not None:
        try:
            enforce(signature, first.select(signature.input_names), allow_extra=True)
        except SignatureMismatch as exc:
            problems.extend(exc.problems)
    if problems:
        error = SignatureMismatch(problems)
        if where is not None:
            # "input: the input X does not match ...": which file, whatever its format.
            error.message = f"input: the input {where} {error.message.removeprefix('input: ')}"
            error.args = (error.message,)
        raise error


def output_columns(signature: Signature, passthrough: list[str], proba: bool) -> list[str]:
    """The output's column names, in order."""
    classes = [f"proba_{c}" for c in (signature.classes or [])] if proba else []
    return [*passthrough, "prediction", *classes, "model_version"]


# -- scoring and writing -----------------------------------------------------------------------


def score_chunk(
    model: LoadedModel,
    table: pa.Table,
    *,
    passthrough: list[str],
    proba: bool,
) -> tuple[pa.Table, pa.Table, np.ndarray, np.ndarray | None]:
    """The output table of one chunk, with the features, predictions and probabilities.

    The schema was checked once before the job; per chunk, :func:`enforce` still runs, as
    only it sees this chunk's nulls (it returns the table as is when nothing needs a cast).
    """
    sig = model.signature
    features = enforce(sig, table.select(sig.input_names))
    # The model's own input, built once for labels and probabilities (see ModelFlavor).
    x = model.fast_input(features, validated=True)
    predictions = np.asarray(model.predict_fast(x))
    columns: dict[str, Any] = {name: table.column(name) for name in passthrough}
    columns["prediction"] = _array(predictions)
    probabilities: np.ndarray | None = None
    if proba:
        probabilities = np.asarray(model.predict_proba_fast(x))
        for i, cls in enumerate(sig.classes or []):
            columns[f"proba_{cls}"] = pa.array(probabilities[:, i], type=pa.float64())
    columns["model_version"] = pa.array(
        np.full(table.num_rows, model.version.version, dtype=np.int64)
    )
    return pa.table(columns), features, predictions, probabilities


# The flavors whose predict hands the estimator ``frame_for(table)``: a pandas DataFrame, or


def _array(values: np.ndarray) -> pa.Array:
    if values.ndim == 1:
        if values.dtype == object:
            return pa.array(values.tolist())
        return pa.array(values)
    flat = pa.array(values.reshape(-1))
    return pa.FixedSizeListArray.from_arrays(flat, int(np.prod(values.shape[1:])))


def part_name(chunk: int) -> str:
    return f"part-{chunk:05d}.parquet"


def write_part(output: Path, chunk: int, table: pa.Table) -> tuple[str, str]:
    """Write ``table`` as ``output/part-NNNNN.parquet`` atomically; returns (name, sha256).

    Temp name, fsync, rename, fsync of the folder: after a crash the part is whole or absent.
    A part re-written by a retried chunk gets the same bytes and simply replaces the first.
    """
    name = part_name(chunk)
    tmp = output / f".{name}.{uuid.uuid4().hex}.tmp"
    try:
        pq.write_table(table, tmp, **_PARQUET_OPTIONS)
        digest = hashlib.sha256()
        with open(tmp, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
            os.fsync(fh.fileno())
        os.replace(tmp, output / name)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(output)
    return name, digest.hexdigest()


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def file_sha256(path: Path) -> str:
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def log_rows(
    *,
    job_id: str,
    chunk: int,
    first_row: int,
    model: LoadedModel,
    features: pa.Table,
    predictions: np.ndarray,
    probabilities: np.ndarray | None,
    sample_rate: float,
    at: str,
) -> list[dict[str, Any]]:
    """Prediction-log rows for a (seeded, so resume-stable) sample of one chunk.

    The same shape as the server's rows (``scoring.prediction_log``): ``request_id`` is
    ``JOB-CHUNK``, ``row_index`` the row's position in the chunk (``first_row`` + it is the
    row's position in the input), probabilities in ``signature.classes`` order.
    """
    if sample_rate <= 0:
        return []
    n = features.num_rows
    if sample_rate >= 1:
        picked = list(range(n))
    else:
        rng = random.Random(f"{job_id}:{chunk}")  # noqa: S311 - sampling, not secrets
        picked = [i for i in range(n) if rng.random() < sample_rate]
    if not picked:
        return []
    inputs = features.take(pa.array(picked, type=pa.int64())).to_pylist()
    rows = []
    for i, record in zip(picked, inputs, strict=True):
        out: dict[str, Any] = {"prediction": _json_value(predictions[i])}
        if probabilities is not None:
            out["probabilities"] = [float(v) for v in probabilities[i]]
        rows.append(
            {
                # One "request" per chunk, as the server logs one per request.
                "request_id": f"{job_id}-{chunk}",
                "row_index": i,
                "model_name": model.version.name,
                "model_version": model.version.version,
                "source": "batch",
                "job_id": job_id,
                "shadow": False,
                "at": at,
                "latency_ms": None,
                "inputs": canonical_json({k: _json_value(v) for k, v in record.items()}),
                "outputs": canonical_json(out),
            }
        )
    return rows


def _json_value(value: Any) -> Any:
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, np.ndarray):
        return [_json_value(v) for v in value.tolist()]
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value
