"""Which holdout rows a promotion gate may score on: those neither model trained on.

A training run records the rows it trained on as a sorted array of 64-bit row hashes (an
``.npy`` artifact named by its sha256, linked from the version's ``training_rows`` tag). When
a data set grows by appending rows, the new version's holdout contains rows an older model
trained on; scored on those, the older model looks better than it is. The gate therefore drops
every holdout row whose hash is in either model's training set before scoring both.

A row's hash covers the model's input columns and the target, by column name (order does not
matter, extra columns are ignored), with numbers compared as float64 values (``3`` and ``3.0``
are one value), so a row reads the same from a CSV or a Parquet copy of the data.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from modelcycle.entities import ModelVersion
from modelcycle.errors import InvalidInput
from modelcycle.registry.errors import PromotionRefused
from modelcycle.store import ArtifactStore

__all__ = [
    "DEFAULT_MIN_ROWS",
    "TRAINING_ROWS_TAG",
    "RowSelection",
    "decode_row_hashes",
    "encode_row_hashes",
    "row_hashes",
    "select_unseen_rows",
    "too_few_rows",
]

TRAINING_ROWS_TAG = "training_rows"
# Fewer unseen rows than this and a comparison says more about chance than about the models.
DEFAULT_MIN_ROWS = 50

_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_NULL = np.uint64(0x6E756C6C6E756C6C)  # the hash of a missing value, whatever the type
_NAN = np.uint64(0x4E614E4E614E4E61)


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser: spreads every input bit over the 64 output bits."""
    x = x ^ (x >> np.uint64(30))
    x = x * _M1
    x = x ^ (x >> np.uint64(27))
    x = x * _M2
    out: np.ndarray = x ^ (x >> np.uint64(31))
    return out


def _text_hash(text: str) -> np.uint64:
    return np.uint64(int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big"))


def _column_hash(column: pa.ChunkedArray) -> np.ndarray:
    kind = column.type
    if pa.types.is_dictionary(kind):
        column = column.cast(kind.value_type)
        kind = kind.value_type
    if pa.types.is_boolean(kind) or pa.types.is_integer(kind) or pa.types.is_decimal(kind):
        column = column.cast(pa.float64())
    elif pa.types.is_temporal(kind):
        try:
            column = column.cast(pa.int64()).cast(pa.float64())
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            column = column.cast(pa.string())
    elif pa.types.is_floating(kind):
        column = column.cast(pa.float64())
    if pa.types.is_floating(column.type):
        values = column.fill_null(0.0).to_numpy()
        values = np.where(values == 0.0, 0.0, values)  # -0.0 and 0.0 are one value
        out = _mix(values.view(np.uint64))
        out[np.isnan(values)] = _NAN
    else:
        # Text (and anything else, through its text form): hash each distinct value once.
        if not (pa.types.is_string(column.type) or pa.types.is_large_string(column.type)):
            try:
                column = column.cast(pa.string())
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                # Nested and other types without a text cast: their Python repr.
                column = pa.chunked_array(
                    [pa.array([None if v is None else repr(v) for v in column.to_pylist()])],
                    pa.string(),
                )
        encoded = column.combine_chunks().dictionary_encode()
        distinct = np.array(
            [_text_hash(v) for v in encoded.dictionary.to_pylist()] or [np.uint64(0)],
            dtype=np.uint64,
        )
        indices = encoded.indices.fill_null(0).to_numpy(zero_copy_only=False)
        out = distinct[indices]
    nulls = pc.is_null(column).to_numpy(zero_copy_only=False)
    if nulls.any():
        out = out.copy()
        out[nulls] = _NULL
    return out


def row_hashes(table: pa.Table, columns: list[str]) -> np.ndarray:
    """One uint64 per row of ``table`` over ``columns`` (taken by name, in sorted order)."""
    missing = [c for c in columns if c not in table.column_names]
    if missing:
        raise InvalidInput(f"no column(s) {', '.join(map(repr, missing))}", field="columns")
    out = np.zeros(table.num_rows, dtype=np.uint64)
    for name in sorted(set(columns)):
        out = _mix(out ^ _mix(_column_hash(table.column(name)) ^ _text_hash(name)))
    return out


def encode_row_hashes(hashes: np.ndarray) -> np.ndarray:
    """The compact form stored as an artifact: distinct hashes, sorted (for searchsorted)."""
    return np.unique(np.asarray(hashes, dtype=np.uint64))


def decode_row_hashes(data: bytes) -> np.ndarray:
    """A stored ``.npy`` array of row hashes, refusing anything but sorted uint64."""
    try:
        array: np.ndarray = np.load(io.BytesIO(data), allow_pickle=False)
    except ValueError as exc:
        raise InvalidInput(f"not a row-hash array ({exc})", field=TRAINING_ROWS_TAG) from exc
    if array.dtype != np.uint64 or array.ndim != 1:
        raise InvalidInput(
            f"expected a 1-d uint64 array, got {array.dtype} {array.shape}",
            field=TRAINING_ROWS_TAG,
        )
    return array


def _isin_sorted(values: np.ndarray, sorted_set: np.ndarray) -> np.ndarray:
    if sorted_set.size == 0:
        return np.zeros(values.shape, dtype=bool)
    pos = np.searchsorted(sorted_set, values)
    pos[pos == sorted_set.size] = 0
    found: np.ndarray = sorted_set[pos] == values
    return found


@dataclass(frozen=True, slots=True)
class RowSelection:
    """The rows a gate scores on, and why the others were left out."""

    table: pa.Table
    holdout_rows: int
    # role ("candidate", "champion") -> holdout rows that model trained on
    seen: dict[str, int] = field(default_factory=dict)
    # roles whose training rows are not recorded (registered by hand): not excluded
    unchecked: dict[str, str] = field(default_factory=dict)

    @property
    def evaluated(self) -> int:
        return int(self.table.num_rows)

    @property
    def excluded(self) -> int:
        return self.holdout_rows - self.evaluated

    def as_dict(self) -> dict[str, Any]:
        return {
            "holdout": self.holdout_rows,
            "evaluated": self.evaluated,
            "excluded": self.excluded,
            "seen_in_training": dict(self.seen),
            "unchecked": dict(self.unchecked),
        }

    def describe(self) -> str:
        """e.g. ``240 of 400 holdout rows; 160 left out as seen in training (champion 160,
        candidate 0)``."""
        text = f"{self.evaluated} of {self.holdout_rows} holdout rows"
        if self.seen:
            by = ", ".join(f"{role} {n}" for role, n in self.seen.items())
            text += f"; {self.excluded} left out as seen in training ({by})"
        if self.unchecked:
            text += f"; not checked: {', '.join(self.unchecked)}"
        return text

    def warnings(self) -> list[str]:
        return [f"{role}: {why}" for role, why in self.unchecked.items()]


def select_unseen_rows(
    artifacts: ArtifactStore,
    table: pa.Table,
    target: str,
    models: Mapping[str, ModelVersion],
) -> RowSelection:
    """``table`` without the rows any of ``models`` trained on (see the module docstring)."""
    keep = np.ones(table.num_rows, dtype=bool)
    seen: dict[str, int] = {}
    unchecked: dict[str, str] = {}
    for role, mv in models.items():
        sha = mv.tags.get(TRAINING_ROWS_TAG)
        if not sha:
            unchecked[role] = (
                f"{mv.ref} has no recorded training rows (registered by hand?); rows it "
                "trained on cannot be excluded"
            )
            continue
        inputs = [str(c["name"]) for c in mv.signature.get("inputs", [])]
        columns = [*inputs, target]
        absent = [c for c in columns if c not in table.column_names]
        if absent:
            unchecked[role] = (
                f"the holdout lacks {mv.ref}'s column(s) {', '.join(absent)}; its training "
                "rows cannot be matched"
            )
            continue
        # get_bytes re-checks the blob against its sha256 (IntegrityError if altered).
        trained = decode_row_hashes(artifacts.get_bytes(sha))
        hit = _isin_sorted(row_hashes(table, columns), trained)
        seen[role] = int(hit.sum())
        keep &= ~hit
    selected = table if keep.all() else table.filter(pa.array(keep))
    return RowSelection(selected, table.num_rows, seen, unchecked)


@dataclass(frozen=True, slots=True)
class Refusal:
    """What to audit (``model.promotion_refused``) and what to raise."""

    payload: dict[str, Any]
    error: PromotionRefused


def too_few_rows(
    candidate: ModelVersion,
    champion: ModelVersion,
    alias: str,
    metric: str,
    dataset: str,
    rows: RowSelection,
    min_rows: int,
) -> Refusal:
    """The refusal when fewer than ``min_rows`` holdout rows are unseen by both models."""
    payload = {
        "alias": alias,
        "metric": metric,
        "dataset": dataset,
        "reason": "too_few_unseen_rows",
        "min_rows": min_rows,
        "rows": rows.as_dict(),
        "candidate": {"version": candidate.version},
        "champion": {"version": champion.version},
    }
    error = PromotionRefused(
        f"{candidate.ref} not promoted to {alias}: too few unseen rows; only {rows.evaluated} "
        f"rows of {dataset} were used to train neither model ({rows.describe()}), and the "
        f"gate needs at least {min_rows} to compare {candidate.ref} with {champion.ref}. "
        "Evaluate on data neither trained on (--on DATASET@VERSION --target COLUMN), or "
        "lower --min-rows",
        metric=metric,
        candidate=None,
        champion=None,
        dataset=dataset,
        rows=rows.as_dict(),
    )
    return Refusal(payload, error)
