"""What the Parquet sink keeps in the database: per part, per (version, shadow, source), counts,
a latency sketch and per-column summaries; summed per hour when read.

Every figure is *mergeable* (a sum, a min, a max, a histogram of counts), so the hour of an
endpoint is the sum of its parts' rows whatever the number of replicas or flushes. The latency
sketch is a log-bucketed histogram (DDSketch's idea): bucket ``i`` holds latencies in
``(GAMMA**(i-1), GAMMA**i]`` ms, so any quantile read from it is within 1 % of the true value.
Column summaries are what a dashboard or a cheap drift pre-check needs without the rows:
numeric columns count, nulls, sum, sum of squares, min, max; text and boolean columns their
20 most frequent values (approximate after merging, exact within a part).
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Any

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc

__all__ = ["GAMMA", "latency_quantile", "merge_summaries", "part_aggregates"]

GAMMA = 1.02
_LOG_GAMMA = math.log(GAMMA)
_TOP = 20


def latency_sketch(values: np.ndarray) -> dict[str, int]:
    """Counts per log bucket (``"0"`` holds latencies of 0 ms and below)."""
    values = values[~np.isnan(values)]
    positive = values[values > 0]
    buckets = np.ceil(np.log(positive) / _LOG_GAMMA).astype(np.int64)
    keys, counts = np.unique(buckets, return_counts=True)
    sketch = {str(int(k)): int(c) for k, c in zip(keys, counts, strict=True)}
    if len(values) > len(positive):
        sketch["zero"] = int(len(values) - len(positive))
    return sketch


def latency_quantile(sketch: dict[str, int], q: float) -> float | None:
    """The ``q`` quantile (0..1) of a sketch, within 1 % of the true value; None if empty."""
    total = sum(sketch.values())
    if not total:
        return None
    rank = q * (total - 1)
    seen = sketch.get("zero", 0)
    if rank < seen:
        return 0.0
    for key in sorted((k for k in sketch if k != "zero"), key=int):
        seen += sketch[key]
        if rank < seen:
            i = int(key)
            return 2 * GAMMA**i / (GAMMA + 1)  # the bucket's midpoint in relative terms
    return 2 * GAMMA ** max(int(k) for k in sketch if k != "zero") / (GAMMA + 1)


def _column_summary(column: pa.ChunkedArray | pa.Array) -> dict[str, Any]:
    kind = column.type
    nulls = int(column.null_count)
    count = len(column) - nulls
    if pa.types.is_integer(kind) or pa.types.is_floating(kind):
        values = column.cast(pa.float64())
        finite = pc.filter(values, pc.is_finite(values)) if count else values
        if not len(finite):
            return {"kind": "numeric", "count": count, "nulls": nulls}
        mm = pc.min_max(finite)
        return {
            "kind": "numeric",
            "count": count,
            "nulls": nulls,
            "sum": float(pc.sum(finite).as_py()),
            "sum_sq": float(pc.sum(pc.multiply(finite, finite)).as_py()),
            "min": float(mm["min"].as_py()),
            "max": float(mm["max"].as_py()),
        }
    if pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_boolean(kind):
        counts = pc.value_counts(column.drop_null() if count < len(column) else column)
        pairs = sorted(
            zip(
                counts.field("values").to_pylist(), counts.field("counts").to_pylist(), strict=True
            ),
            key=lambda p: -p[1],
        )
        top = {str(v): int(c) for v, c in pairs[:_TOP]}
        return {"kind": "categorical", "count": count, "nulls": nulls, "top": top,
                "other": count - sum(top.values())}  # fmt: skip
    return {"kind": "other", "count": count, "nulls": nulls}


def merge_summaries(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """Two summaries of one column as one (the hour's from its parts')."""
    if a.get("kind") != b.get("kind"):
        return {"kind": "other", "count": a["count"] + b["count"], "nulls": a["nulls"] + b["nulls"]}
    out = {**a, "count": a["count"] + b["count"], "nulls": a["nulls"] + b["nulls"]}
    if a["kind"] == "numeric":
        for key in ("sum", "sum_sq"):
            if key in a or key in b:
                out[key] = a.get(key, 0.0) + b.get(key, 0.0)
        for key, pick in (("min", min), ("max", max)):
            got = [s[key] for s in (a, b) if key in s]
            if got:
                out[key] = pick(got)
    elif a["kind"] == "categorical":
        top = Counter(a["top"]) + Counter(b["top"])
        kept = dict(top.most_common(_TOP))
        out["top"] = kept
        out["other"] = out["count"] - sum(kept.values())
    return out


def part_aggregates(part: pa.Table) -> list[dict[str, Any]]:
    """One row per (model_version, shadow, source) of a part: what goes to the database."""
    keys = (
        pa.table({k: part.column(k) for k in ("model_version", "shadow", "source")})
        .group_by(["model_version", "shadow", "source"])
        .aggregate([])
    )
    out = []
    for version, shadow, source in zip(
        *(keys.column(k).to_pylist() for k in ("model_version", "shadow", "source")), strict=True
    ):
        mask = pc.and_(
            pc.and_(pc.equal(part.column("model_version"), version),
                    pc.equal(part.column("shadow"), shadow)),
            pc.equal(part.column("source"), source),
        )  # fmt: skip
        rows = part.filter(mask)
        firsts = pc.equal(rows.column("row_index"), 0)
        latency = rows.column("latency_ms").filter(firsts).to_numpy(zero_copy_only=False)
        inputs = rows.column("inputs").combine_chunks()
        columns = {
            inputs.type.field(i).name: _column_summary(inputs.field(i))
            for i in range(inputs.type.num_fields)
        }
        columns["prediction"] = _column_summary(rows.column("prediction"))
        at = pc.min_max(rows.column("at"))
        out.append(
            {
                "model_version": int(version),
                "shadow": bool(shadow),
                "source": str(source),
                "rows": rows.num_rows,
                "requests": int(pc.sum(firsts).as_py() or 0),
                # A row the model answered nothing for (null/NaN prediction). Requests that
                # failed never reach the log: the server's /metrics counts those.
                "errors": int(rows.column("prediction").null_count),
                "first_at": at["min"].as_py(),
                "last_at": at["max"].as_py(),
                "latency": orjson.dumps(
                    latency_sketch(np.asarray(latency, dtype=np.float64))
                ).decode(),
                "columns": orjson.dumps(columns).decode(),
            }
        )
    return out
