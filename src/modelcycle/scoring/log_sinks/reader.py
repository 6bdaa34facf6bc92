"""Reading the Parquet sink's window, and its per-hour aggregates, through the parts index.

Monitoring never lists the bucket: ``prediction_log_parts`` says which parts hold a model's
hours, and where. Each part is read whole (parts are one model and one hour), checked against
the sha256 recorded when it was committed, and filtered to the exact window.
"""

from __future__ import annotations

import hashlib
import io
from collections import defaultdict
from datetime import datetime
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from sqlalchemy import select

from modelcycle.errors import IntegrityError
from modelcycle.scoring.log_sinks.aggregates import merge_summaries
from modelcycle.scoring.log_sinks.objects import read_location
from modelcycle.scoring.log_sinks.parquet_table import AT_TYPE, flatten_part
from modelcycle.store import MetadataStore, tables

__all__ = ["read_hourly", "read_parts"]


def _hour(text: str) -> str:
    return text[:13]  # 2026-11-29T10:00:00.000000Z -> 2026-11-29T10


def read_parts(
    metadata: MetadataStore,
    model_name: str,
    *,
    since: str | None,
    until: str | None,
    version: int | None,
    include_shadow: bool,
) -> pa.Table | None:
    """The Parquet-logged rows of the window in ``read_predictions``' shape; None if none."""
    t = tables.prediction_log_parts
    query = select(t.c.location, t.c.sha256).where(t.c.model_name == model_name).distinct()
    if since is not None:
        query = query.where(t.c.hour >= _hour(since))
    if until is not None:
        query = query.where(t.c.hour <= _hour(until))
    if version is not None:
        query = query.where(t.c.model_version == int(version))
    if not include_shadow:
        query = query.where(t.c.shadow.is_(False))
    with metadata.read() as conn:
        parts = conn.execute(query.order_by(t.c.location)).all()
    if not parts:
        return None
    out = []
    for location, digest in parts:
        data = read_location(location)
        if hashlib.sha256(data).hexdigest() != digest:
            raise IntegrityError(f"the prediction-log part {location} does not match its sha256")
        part = pq.read_table(io.BytesIO(data))
        mask = pc.equal(part.column("model_name"), model_name)
        if since is not None:
            mask = pc.and_(mask, pc.greater_equal(part.column("at"), _at(since)))
        if until is not None:
            mask = pc.and_(mask, pc.less(part.column("at"), _at(until)))
        if version is not None:
            mask = pc.and_(mask, pc.equal(part.column("model_version"), int(version)))
        if not include_shadow:
            mask = pc.and_(mask, pc.invert(part.column("shadow")))
        part = part.filter(mask)
        if part.num_rows:
            out.append(flatten_part(part))
    if not out:
        return None
    return pa.concat_tables(out, promote_options="permissive")


def _at(text: str) -> pa.Scalar:
    return pa.scalar(datetime.fromisoformat(text), AT_TYPE)


def read_hourly(
    metadata: MetadataStore,
    model_name: str,
    *,
    since: str | None = None,
    until: str | None = None,
) -> list[dict[str, Any]]:
    """Per (version, hour, shadow): rows, requests, errors, the merged latency sketch and
    column summaries, from the aggregates alone (no Parquet read). Oldest hour first."""
    t = tables.prediction_log_parts
    query = select(t).where(t.c.model_name == model_name)
    if since is not None:
        query = query.where(t.c.hour >= _hour(since))
    if until is not None:
        query = query.where(t.c.hour <= _hour(until))
    with metadata.read() as conn:
        rows = conn.execute(query.order_by(t.c.hour, t.c.id)).mappings().all()
    hours: dict[tuple[int, str, bool], dict[str, Any]] = defaultdict(dict)
    for row in rows:
        key = (int(row["model_version"]), str(row["hour"]), bool(row["shadow"]))
        acc = hours[key]
        latency = orjson.loads(row["latency"])
        columns = orjson.loads(row["columns"])
        if not acc:
            acc.update(
                model_version=key[0], hour=key[1], shadow=key[2], rows=0, requests=0, errors=0,
                latency={}, columns={},
            )  # fmt: skip
        acc["rows"] += int(row["rows"])
        acc["requests"] += int(row["requests"])
        acc["errors"] += int(row["errors"])
        for bucket, n in latency.items():
            acc["latency"][bucket] = acc["latency"].get(bucket, 0) + int(n)
        for name, summary in columns.items():
            have = acc["columns"].get(name)
            acc["columns"][name] = summary if have is None else merge_summaries(have, summary)
    return sorted(hours.values(), key=lambda h: (h["hour"], h["model_version"], h["shadow"]))
