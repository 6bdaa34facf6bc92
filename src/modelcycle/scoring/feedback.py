"""Ground truth: true labels sent back for logged predictions, joined by request id.

``POST /feedback`` takes ``{"feedback": [{"request_id", "label", "row"?}, ...]}`` (or one such
object alone). Every item is stored, whether or not its request id is known yet (the
prediction may still be on its way to the log, or in another worker's); the answer counts
the ids this server could match. ``row`` is the row's position in a multi-row request; without
it the label is for the whole request (a one-row request, the usual online case). Labels are
any JSON value (class label or number), stored as JSON text.

Feedback rows are observations like prediction rows: written in bulk through
:meth:`MetadataStore.append_rows`, not audited, synchronously (they are few and small).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
import pyarrow as pa
from sqlalchemy import or_, select

from modelcycle.audit import utc_timestamp
from modelcycle.scoring.prediction_log import _when
from modelcycle.scoring.protocols._tabular import Problem, RequestInvalid, problem
from modelcycle.store import MetadataStore, tables

__all__ = ["FeedbackItem", "FeedbackResult", "parse_feedback", "read_feedback", "store_feedback"]

MAX_ITEMS = 10_000


@dataclass(frozen=True, slots=True)
class FeedbackItem:
    request_id: str
    label: Any
    row: int | None = None


@dataclass(frozen=True, slots=True)
class FeedbackResult:
    stored: int
    matched: int
    unmatched: int

    def as_dict(self) -> dict[str, int]:
        return {"stored": self.stored, "matched": self.matched, "unmatched": self.unmatched}


def parse_feedback(body: Any) -> list[FeedbackItem]:
    """Items from a request body; every problem listed by field (``feedback[3].label`` ...)."""
    if isinstance(body, dict) and "feedback" in body:
        items, prefix = body["feedback"], "feedback"
        if set(body) - {"feedback"}:
            raise RequestInvalid([problem("body", "expected only the key 'feedback'")])
    elif isinstance(body, dict) and "request_id" in body:
        items, prefix = [body], ""
    else:
        raise RequestInvalid(
            [problem("body", "expected {'feedback': [{'request_id', 'label'}, ...]} "
                     "or one {'request_id', 'label'} object")]
        )  # fmt: skip
    if not isinstance(items, list) or not items:
        raise RequestInvalid([problem("feedback", "expected a non-empty list of objects")])
    if len(items) > MAX_ITEMS:
        raise RequestInvalid(
            [problem("feedback", f"{len(items)} items is more than the {MAX_ITEMS} allowed")]
        )
    problems: list[Problem] = []
    out: list[FeedbackItem] = []
    for i, item in enumerate(items):
        at = f"{prefix}[{i}]" if prefix else "body"
        if not isinstance(item, dict):
            problems.append(problem(at, "expected an object with request_id and label"))
            continue
        rid, label, row = item.get("request_id"), item.get("label"), item.get("row")
        unknown = sorted(set(item) - {"request_id", "label", "row"})
        if unknown:
            problems.append(problem(at, f"unknown key(s): {', '.join(unknown)}"))
        if not isinstance(rid, str) or not 1 <= len(rid) <= 160:
            problems.append(problem(f"{at}.request_id", "expected a text of 1-160 characters"))
        if "label" not in item or label is None or isinstance(label, dict | list):
            problems.append(problem(f"{at}.label", "expected a label (text, number or boolean)"))
        if row is not None and (not isinstance(row, int) or isinstance(row, bool) or row < 0):
            problems.append(problem(f"{at}.row", "expected a whole number >= 0"))
        if isinstance(rid, str):
            out.append(FeedbackItem(rid, label, row))
    if problems:
        raise RequestInvalid(problems)
    return out


def store_feedback(
    metadata: MetadataStore,
    items: list[FeedbackItem],
    *,
    recent_model: Callable[[str], str | None] | None = None,
) -> FeedbackResult:
    """Store every item; match request ids against ``recent_model`` then the prediction log."""
    models: dict[str, str] = {}
    if recent_model is not None:
        for item in items:
            name = recent_model(item.request_id)
            if name is not None:
                models[item.request_id] = name
    missing = sorted({i.request_id for i in items} - set(models))
    t = tables.prediction_log
    with metadata.read() as conn:
        for start in range(0, len(missing), 500):
            chunk = missing[start : start + 500]
            for rid, name in conn.execute(
                select(t.c.request_id, t.c.model_name)
                .where(t.c.request_id.in_(chunk), t.c.shadow.is_(False))
                .distinct()
            ):
                models[rid] = name
    now = utc_timestamp()
    rows = [
        {
            "request_id": item.request_id,
            "row_index": item.row,
            "model_name": models.get(item.request_id),
            "label": orjson.dumps(item.label).decode(),
            "at": now,
        }
        for item in items
    ]
    metadata.append_rows(tables.feedback, rows, timeout=10.0)
    matched = sum(1 for item in items if item.request_id in models)
    return FeedbackResult(len(rows), matched, len(rows) - matched)


def read_feedback(
    metadata: MetadataStore,
    model_name: str,
    *,
    since: str | datetime | None = None,
    until: str | datetime | None = None,
    unmatched: bool = False,
) -> pa.Table:
    """The feedback for ``model_name``'s logged predictions, oldest first.

    Columns: ``request_id``, ``row_index`` (null when the sender gave no row: the label is for
    the whole request, which places it when that request scored one row), ``label`` (the JSON
    value: text, number or boolean), ``at`` (when the feedback arrived, ISO 8601 UTC text).
    A feedback row belongs to the model when it was matched on arrival or its request id is
    in the model's prediction log now. Join with :func:`read_predictions` on
    ``(request_id, row_index)``. ``since``/``until`` filter on ``at`` as there.
    ``unmatched`` adds the feedback no model was found for on arrival: requests logged by
    the Parquet sink are not in the database, so a caller joining with the log's request ids
    (monitoring's performance view) asks for those too.
    """
    f, p = tables.feedback, tables.prediction_log
    logged = select(p.c.request_id).where(p.c.model_name == model_name)
    mine = or_(f.c.model_name == model_name, f.c.request_id.in_(logged))
    if unmatched:
        mine = or_(mine, f.c.model_name.is_(None))
    query = select(f.c.request_id, f.c.row_index, f.c.label, f.c.at).where(mine)
    lo, hi = _when(since, "since"), _when(until, "until")
    if lo is not None:
        query = query.where(f.c.at >= lo)
    if hi is not None:
        query = query.where(f.c.at < hi)
    with metadata.read() as conn:
        rows = conn.execute(query.order_by(f.c.at, f.c.id)).all()
    return pa.table(
        {
            "request_id": pa.array([r.request_id for r in rows], pa.string()),
            "row_index": pa.array(
                [None if r.row_index is None else int(r.row_index) for r in rows], pa.int64()
            ),
            "label": pa.array([orjson.loads(r.label) for r in rows]),
            "at": pa.array([r.at for r in rows], pa.string()),
        }
    )
