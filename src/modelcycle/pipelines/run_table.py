"""One page of the runs table, filtered, sorted and cut in the database (for the console).

The console's runs table sorts by a column (started, pipeline, status, duration) or by a
metric kept in the run's JSON ``metrics`` text, filters by pipeline, status, data set and
model, and shows page N of M. Everything happens in one SQL query per page plus a count, so a
workspace with 10,000 runs answers as fast as one with ten: JSON is read in SQL with the
dialect's own function (SQLite ``json_extract``, PostgreSQL ``jsonb``), and durations are
computed from the stored ISO stamps (SQLite ``julianday``, PostgreSQL ``timestamptz``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Float, case, cast, func, select
from sqlalchemy.dialects.postgresql import JSON
from sqlalchemy.sql.elements import ColumnElement

from modelcycle.entities import Run
from modelcycle.errors import InvalidInput
from modelcycle.pipelines.records import _to_run
from modelcycle.store import MetadataStore, tables

__all__ = ["RUN_SORTS", "RunQuery", "RunTablePage", "run_table_page"]

RUN_SORTS = ("started", "pipeline", "status", "duration")
_MAX_LIMIT = 1000
# Metric names for the table's columns come from this many newest matching runs: a bounded
# read, whatever the workspace's size (older runs rarely carry metrics the newer ones lack).
_METRIC_SAMPLE = 200


@dataclass(frozen=True, slots=True)
class RunQuery:
    """Which runs, in which order, which page. ``sort`` is one of :data:`RUN_SORTS` or
    ``m:METRIC``; runs without the sorted value (a running run's duration, a metric it never
    logged) come last in either order. ``dataset``: NAME or NAME@VERSION; ``model``: NAME or
    NAME/VERSION."""

    pipeline: str | None = None
    status: str | None = None
    dataset: str | None = None
    model: str | None = None
    sort: str = "started"
    descending: bool = True
    offset: int = 0
    limit: int = 25

    def check(self) -> None:
        if self.sort not in RUN_SORTS and not (self.sort.startswith("m:") and len(self.sort) > 2):
            raise InvalidInput(f"expected one of {', '.join(RUN_SORTS)} or m:METRIC", field="sort")
        if not 1 <= self.limit <= _MAX_LIMIT:
            raise InvalidInput(f"must be between 1 and {_MAX_LIMIT}", field="limit")
        if self.offset < 0:
            raise InvalidInput("must be 0 or more", field="offset")


@dataclass(frozen=True, slots=True)
class RunTablePage:
    """The runs of one page (without steps), how many match in all, and the metric names
    seen on the newest matching runs (the table's metric columns)."""

    runs: list[Run]
    total: int
    metric_names: list[str] = field(default_factory=list)
    pipelines: list[str] = field(default_factory=list)  # every pipeline name, for a filter


def run_table_page(meta: MetadataStore, query: RunQuery) -> RunTablePage:
    query.check()
    r = tables.runs
    where = _filters(query)
    value = _sort_value(meta.dialect, query.sort)
    # NULLS LAST (both dialects) keeps runs without the value at the end in either order,
    # without computing the value twice (it parses each run's JSON on a metric sort).
    ordered = (value.desc() if query.descending else value.asc()).nulls_last()
    tiebreak = [r.c.started_at.desc(), r.c.id] if query.sort != "started" else [r.c.id]
    keys = [ordered, *tiebreak]
    # Ids first, whole rows after: skipping ``offset`` rows then reads the index, not rows.
    page_ids = select(r.c.id).where(*where).order_by(*keys).offset(query.offset).limit(query.limit)
    count = select(func.count()).select_from(r).where(*where)
    sample = (
        select(r.c.metrics)
        .where(*where)
        .order_by(r.c.started_at.desc(), r.c.id)
        .limit(_METRIC_SAMPLE)
    )
    with meta.read() as conn:
        ids = list(conn.execute(page_ids).scalars())
        by_id = {row.id: row for row in conn.execute(select(r).where(r.c.id.in_(ids)))}
        rows = [by_id[i] for i in ids if i in by_id]
        total = int(conn.execute(count).scalar_one())
        names: set[str] = set()
        for (text,) in conn.execute(sample):
            names.update(json.loads(text))
        pipelines = conn.execute(select(r.c.pipeline).distinct().order_by(r.c.pipeline)).scalars()
        return RunTablePage(
            [_to_run(row._mapping, ()) for row in rows], total, sorted(names), list(pipelines)
        )


def _filters(query: RunQuery) -> list[ColumnElement[bool]]:
    r = tables.runs
    where: list[ColumnElement[bool]] = []
    if query.pipeline:
        where.append(r.c.pipeline == query.pipeline)
    if query.status:
        where.append(r.c.status == query.status)
    # The lists are stored as JSON text (["credit@1", ...]): match a whole quoted element,
    # or every version of a name. LIKE wildcards in the value are escaped.
    if query.dataset:
        exact = "@" in query.dataset
        needle = f'"{query.dataset}"' if exact else f'"{query.dataset}@'
        where.append(r.c.datasets.contains(needle, autoescape=True))
    if query.model:
        exact = "/" in query.model
        needle = f'"{query.model}"' if exact else f'"{query.model}/'
        where.append(r.c.models.contains(needle, autoescape=True))
    return where


def _sort_value(dialect: str, sort: str) -> ColumnElement[Any]:
    """The value to order by: NULL where a run has none (sorted last by the caller)."""
    r = tables.runs
    if sort == "started":
        return r.c.started_at
    if sort in ("pipeline", "status"):
        return r.c[sort]
    if sort == "duration":
        if dialect == "postgresql":
            return func.extract(
                "epoch",
                cast(r.c.finished_at, _timestamptz()) - cast(r.c.started_at, _timestamptz()),
            )
        return (func.julianday(r.c.finished_at) - func.julianday(r.c.started_at)) * 86400.0
    name = sort[2:]
    if dialect == "postgresql":
        # json, not jsonb: parsing text to json is cheaper, and each row is parsed once here.
        item = cast(r.c.metrics, JSON)[name]
        return case((func.json_typeof(item) == "number", cast(item.astext, Float)), else_=None)
    path = '$."' + name.replace('"', '\\"') + '"'
    raw = func.json_extract(r.c.metrics, path)
    return case((func.json_type(r.c.metrics, path).in_(("real", "integer")), raw))


def _timestamptz() -> Any:
    from sqlalchemy.dialects.postgresql import TIMESTAMP

    return TIMESTAMP(timezone=True)
