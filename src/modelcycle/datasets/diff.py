"""What changed between two data set versions: columns, types, and each column's distribution.

Numeric columns compare their profile statistics and the population stability index (PSI) over
the first version's histogram bins (outer bins opened to +-infinity so every value of the second
version lands in one). Categorical columns compare value shares and the PSI over the first
version's top values plus one "other" bucket. Shares and second-version bin counts are counted
exactly from the data, not estimated from the profiles.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from modelcycle.datasets.profile import QUANTILES
from modelcycle.datasets.schema import ColumnSpec, schema_from_json
from modelcycle.entities import DatasetVersion

__all__ = ["ColumnShift", "DatasetDiff", "TypeChange", "diff_versions", "psi"]

_PSI_EPS = 1e-4


@dataclass(frozen=True, slots=True)
class TypeChange:
    name: str
    a: str
    b: str


@dataclass(frozen=True, slots=True)
class ColumnShift:
    """How one column present in both versions moved: ``changes[stat] = {"a", "b", "delta"}``."""

    name: str
    kind: str
    psi: float | None
    changes: dict[str, dict[str, Any]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class DatasetDiff:
    """Schema changes and per-column profile shift from version ``a`` to version ``b``."""

    a: str
    b: str
    same_content: bool
    num_rows: tuple[int, int]
    added: list[ColumnSpec]
    removed: list[ColumnSpec]
    type_changed: list[TypeChange]
    columns: list[ColumnShift]

    def as_dict(self) -> dict[str, Any]:
        return {
            "a": self.a,
            "b": self.b,
            "same_content": self.same_content,
            "num_rows": {"a": self.num_rows[0], "b": self.num_rows[1]},
            "added": [c.as_dict() for c in self.added],
            "removed": [c.as_dict() for c in self.removed],
            "type_changed": [{"name": t.name, "a": t.a, "b": t.b} for t in self.type_changed],
            "columns": [
                {"name": c.name, "kind": c.kind, "psi": c.psi, "changes": c.changes}
                for c in self.columns
            ],
        }


def psi(
    expected: Sequence[float] | npt.ArrayLike, actual: Sequence[float] | npt.ArrayLike
) -> float:
    """Population stability index of two count vectors over the same bins.

    sum((a_i - e_i) * ln(a_i / e_i)) over the bins' shares, each share floored at 1e-4 so an
    empty bin does not make it infinite. Rules of thumb: < 0.1 stable, 0.1-0.25 moderate,
    > 0.25 a large shift.
    """
    e = np.asarray(expected, dtype=np.float64)
    a = np.asarray(actual, dtype=np.float64)
    if e.sum() <= 0 or a.sum() <= 0:
        return 0.0
    e = np.maximum(e / e.sum(), _PSI_EPS)
    a = np.maximum(a / a.sum(), _PSI_EPS)
    return float(np.sum((a - e) * np.log(a / e)))


def diff_versions(
    va: DatasetVersion, ta: pa.Table, vb: DatasetVersion, tb: pa.Table
) -> DatasetDiff:
    """Compare two versions given their records and their data."""
    sa = {c.name: c for c in schema_from_json(va.schema)}
    sb = {c.name: c for c in schema_from_json(vb.schema)}
    added = [c for n, c in sb.items() if n not in sa]
    removed = [c for n, c in sa.items() if n not in sb]
    changed = [
        TypeChange(n, sa[n].type, sb[n].type) for n in sa if n in sb and sa[n].type != sb[n].type
    ]
    shifts = []
    for name in sa:
        if name not in sb:
            continue
        pa_col = va.profile["columns"][name]
        pb_col = vb.profile["columns"][name]
        if pa_col["kind"] != pb_col["kind"]:
            shifts.append(ColumnShift(name, f"{pa_col['kind']}->{pb_col['kind']}", None))
        elif pa_col["kind"] == "numeric":
            shifts.append(_numeric_shift(name, pa_col, pb_col, tb.column(name)))
        elif pa_col["kind"] == "categorical":
            shifts.append(_categorical_shift(name, pa_col, ta.column(name), tb.column(name)))
        else:
            shifts.append(ColumnShift(name, pa_col["kind"], None, _null_change(pa_col, pb_col)))
    return DatasetDiff(
        a=va.ref,
        b=vb.ref,
        same_content=va.sha256 == vb.sha256,
        num_rows=(va.num_rows, vb.num_rows),
        added=added,
        removed=removed,
        type_changed=changed,
        columns=shifts,
    )


def _change(a: Any, b: Any) -> dict[str, Any]:
    delta = b - a if isinstance(a, int | float) and isinstance(b, int | float) else None
    return {"a": a, "b": b, "delta": delta}


def _null_change(pa_col: dict[str, Any], pb_col: dict[str, Any]) -> dict[str, dict[str, Any]]:
    def share(p: dict[str, Any]) -> float:
        total = p["count"] + p["nulls"]
        return p["nulls"] / total if total else 0.0

    return {"null_share": _change(share(pa_col), share(pb_col))}


def _numeric_shift(
    name: str, pa_col: dict[str, Any], pb_col: dict[str, Any], b_values: pa.ChunkedArray
) -> ColumnShift:
    changes = _null_change(pa_col, pb_col)
    for stat in ("mean", "std", "min", "max"):
        changes[stat] = _change(pa_col[stat], pb_col[stat])
    qa, qb = pa_col.get("quantiles") or {}, pb_col.get("quantiles") or {}
    for key in QUANTILES:
        if key in qa and key in qb:
            changes[key] = _change(qa[key], qb[key])
    hist = pa_col.get("histogram")
    value: float | None = None
    if hist is not None:
        edges = np.asarray(hist["edges"], dtype=np.float64)
        edges[0], edges[-1] = -math.inf, math.inf
        data = b_values.drop_null()
        if pa.types.is_decimal(data.type):
            data = pc.cast(data, pa.float64())
        arr = np.asarray(data.to_numpy(), dtype=np.float64)
        arr = arr[np.isfinite(arr)]
        # Searchsorted on the inner edges: the same half-open bins as np.histogram.
        inner = edges[1:-1]
        counts = np.bincount(np.searchsorted(inner, arr, side="right"), minlength=len(inner) + 1)
        value = psi(hist["counts"], counts)
    return ColumnShift(name, "numeric", value, changes)


def _value_counts(column: pa.ChunkedArray) -> dict[Any, int]:
    data = column.drop_null()
    if pa.types.is_dictionary(data.type):
        data = data.cast(data.type.value_type)
    vc = pc.value_counts(data)
    return dict(zip(vc.field("values").to_pylist(), vc.field("counts").to_pylist(), strict=True))


def _categorical_shift(
    name: str, pa_col: dict[str, Any], a_values: pa.ChunkedArray, b_values: pa.ChunkedArray
) -> ColumnShift:
    ca, cb = _value_counts(a_values), _value_counts(b_values)
    na, nb = sum(ca.values()) or 1, sum(cb.values()) or 1
    changes: dict[str, dict[str, Any]] = {}
    changes.update(_null_change(pa_col, {"count": nb, "nulls": b_values.null_count}))
    changes["cardinality"] = _change(len(ca), len(cb))
    top_a = [item["value"] for item in pa_col["top"]]
    top_b = sorted(cb, key=lambda v: (-cb[v], str(v)))[: len(pa_col["top"]) or 1]
    shown = list(dict.fromkeys([*top_a, *top_b]))
    shares = {v: _change(ca.get(v, 0) / na, cb.get(v, 0) / nb) for v in shown}
    for value, change in sorted(shares.items(), key=lambda kv: -abs(kv[1]["delta"])):
        changes[f"share[{value}]"] = change
    expected = [ca.get(v, 0) for v in top_a] + [na - sum(ca.get(v, 0) for v in top_a)]
    actual = [cb.get(v, 0) for v in top_a] + [nb - sum(cb.get(v, 0) for v in top_a)]
    return ColumnShift(name, "categorical", psi(expected, actual), changes)
