"""What the overview and the models list read, all of it stored: per model its version count,
newest version and aliases (two grouped queries: not every version's JSON, which made the two
pages grow with the number of versions), and its last drift checks (one query, a window per
model, for the drift sparkline and the last verdict).

Nothing here computes monitoring figures: performance per window is computed from the
prediction log (and the model, for the CBPE estimate), which costs tens to hundreds of ms per
model, so the overview loads each card's performance sparkline separately (``/overview/trend``)
and its own answer does not grow with that cost.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select

from modelcycle.store import tables

__all__ = [
    "CheckPoint",
    "LastCheck",
    "ModelSummary",
    "drift_spark",
    "last_checks",
    "model_summaries",
    "recent_checks",
]

_PER_MODEL = 12


@dataclass(frozen=True, slots=True)
class CheckPoint:
    id: int
    at: str
    drifted: bool
    share: float


@dataclass(frozen=True, slots=True)
class LastCheck:
    """The newest check of a model: what the overview's verdict shows."""

    id: int
    at: str
    dataset_drift: bool
    status: str
    drifted_columns: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class ModelSummary:
    name: str
    versions: int
    latest: int
    aliases: dict[str, int]  # alias -> version, by alias

    def ref(self, alias: str) -> str | None:
        version = self.aliases.get(alias)
        return f"{self.name}/{version}" if version is not None else None


def model_summaries(ws: Any) -> list[ModelSummary]:
    """Every model with at least one version, by name."""
    mv, ma = tables.model_versions, tables.model_aliases
    with ws.metadata.read(snapshot=True) as conn:
        counts = conn.execute(
            select(mv.c.name, func.count(), func.max(mv.c.version)).group_by(mv.c.name)
        ).all()
        aliases = conn.execute(select(ma.c.name, ma.c.alias, ma.c.version).order_by(ma.c.alias))
        by_name: dict[str, dict[str, int]] = {}
        for name, alias, version in aliases:
            by_name.setdefault(name, {})[alias] = int(version)
    return sorted(
        (ModelSummary(n, int(c), int(v), by_name.get(n, {})) for n, c, v in counts),
        key=lambda m: m.name,
    )


def recent_checks(ws: Any, per_model: int = _PER_MODEL) -> dict[str, list[CheckPoint]]:
    """Per model name, its last ``per_model`` stored checks, oldest first."""
    t = tables.drift_results
    newest_first = (t.c.at.desc(), t.c.id.desc())
    over = func.row_number().over(partition_by=t.c.model_name, order_by=newest_first)
    rank = over.label("rank")
    inner = (
        select(t.c.id, t.c.model_name, t.c.at, t.c.dataset_drift, t.c.share_drifted, rank)
        .where(t.c.model_name.is_not(None))
        .subquery()
    )
    query = select(inner).where(inner.c.rank <= per_model).order_by(inner.c.at, inner.c.id)
    out: dict[str, list[CheckPoint]] = {}
    with ws.metadata.read() as conn:
        for row in conn.execute(query):
            out.setdefault(row.model_name, []).append(
                CheckPoint(int(row.id), row.at, bool(row.dataset_drift), float(row.share_drifted))
            )
    return out


def last_checks(ws: Any, ids: list[int]) -> dict[int, LastCheck]:
    """The verdicts of the checks ``ids`` (the newest of each model), in one query."""
    t = tables.drift_results
    if not ids:
        return {}
    out: dict[int, LastCheck] = {}
    with ws.metadata.read() as conn:
        rows = conn.execute(
            select(t.c.id, t.c.at, t.c.dataset_drift, t.c.result).where(t.c.id.in_(ids))
        )
        for row in rows:
            result = json.loads(row.result) if row.result else {}
            columns = result.get("columns") if isinstance(result, dict) else None
            drifted = [
                str(c.get("name"))
                for c in (columns if isinstance(columns, list) else [])
                if isinstance(c, dict) and c.get("drifted")
            ]
            out[int(row.id)] = LastCheck(
                int(row.id), row.at, bool(row.dataset_drift), str(result.get("status", "ok")),
                drifted,
            )  # fmt: skip
    return out


def drift_spark(points: list[CheckPoint], width: int = 120, height: int = 28) -> dict[str, Any]:
    """SVG coordinates: the share of drifted columns per check (0 at the bottom, 1 at the
    top), a dot per check, drifted checks as triangles (shape, not only colour)."""
    step = width / max(1, len(points) - 1) if len(points) > 1 else 0
    xy = [
        (round(4 + i * (width - 8) / max(1, len(points) - 1), 1) if step else width / 2,
         round(height - 3 - p.share * (height - 6), 1))
        for i, p in enumerate(points)
    ]  # fmt: skip
    return {
        "line": " ".join(f"{x},{y}" for x, y in xy),
        "ok": [xy[i] for i, p in enumerate(points) if not p.drifted],
        "drifted": [xy[i] for i, p in enumerate(points) if p.drifted],
        "count": len(points),
        "drifted_count": sum(p.drifted for p in points),
    }
