"""One stored drift check, whole: what ``monitor drift --json`` printed when it ran, and its
HTML report rebuilt from what is stored."""

from __future__ import annotations

import json
from dataclasses import fields, replace
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from modelcycle.errors import InvalidInput, NotFound
from modelcycle.monitoring.drift import ColumnDrift, DriftReport
from modelcycle.monitoring.results import DriftCheck
from modelcycle.monitoring.windows import Window
from modelcycle.store import MetadataStore, tables

if TYPE_CHECKING:
    import pyarrow as pa

    from modelcycle.datasets import DatasetCatalog
    from modelcycle.monitoring.report import ColumnChart

__all__ = ["stored_check", "stored_columns", "stored_report_html"]


def stored_check(metadata: MetadataStore, check_id: int) -> dict[str, Any]:
    """The stored result of check ``check_id`` with its id, time, model and window."""
    row, result = _load(metadata, check_id)
    model = f"{row.model_name}/{row.model_version}" if row.model_name is not None else None
    window = (
        {"start": row.window_start, "end": row.window_end} if row.window_start is not None else None
    )
    return {
        **result,
        "id": int(row.id),
        "at": row.at,
        "model": model,
        "reference": row.reference,
        "current": row.current,
        "window": result.get("window") or window,
    }


def stored_columns(metadata: MetadataStore, check_ids: list[int]) -> dict[int, list[ColumnDrift]]:
    """Every column's verdict (statistic, threshold, method) of each stored check, in one
    query: what a drift heatmap colours. A check stored without them maps to []."""
    t = tables.drift_results
    out: dict[int, list[ColumnDrift]] = {}
    if not check_ids:
        return out
    with metadata.read() as conn:
        rows = conn.execute(select(t.c.id, t.c.result).where(t.c.id.in_(check_ids))).all()
    for check_id, text in rows:
        result = json.loads(text)
        columns = result.get("columns") if isinstance(result, dict) else None
        out[int(check_id)] = _report_from(result).columns if isinstance(columns, list) else []
    return out


def _load(metadata: MetadataStore, check_id: int) -> tuple[Any, dict[str, Any]]:
    t = tables.drift_results
    with metadata.read() as conn:
        row = conn.execute(select(t).where(t.c.id == check_id)).first()
    if row is None:
        raise NotFound(f"no drift check {check_id}; see `modelcycle monitor history`")
    result: dict[str, Any] = json.loads(row.result)
    return row, result


def _check_from(row: Any, result: dict[str, Any]) -> DriftCheck:
    """The :class:`DriftCheck` a stored row describes; NotFound when it was stored without
    its per-column verdicts (it cannot be shown)."""
    if not isinstance(result.get("columns"), list) or not isinstance(result.get("reference"), dict):
        raise NotFound(
            f"drift check {row.id} was stored without its per-column results; "
            "its report cannot be rebuilt (run the check again)"
        )
    prediction = result.get("prediction_drift")
    window = result.get("window") or {}
    if not window and row.window_start is not None:
        window = {"start": row.window_start, "end": row.window_end}
    model = f"{row.model_name}/{row.model_version}" if row.model_name is not None else None
    return DriftCheck(
        report=_report_from(result),
        prediction=_report_from(prediction) if isinstance(prediction, dict) else None,
        model=model,
        window=Window(window.get("start"), window.get("end")) if window else None,
        id=int(row.id),
        at=row.at,
        notes=[str(n) for n in result.get("notes") or []],
    )


def stored_report_html(
    metadata: MetadataStore, datasets: DatasetCatalog | None, check_id: int
) -> str:
    """The HTML report of stored check ``check_id``.

    The store keeps the verdicts, not the chart data, so the charts are computed again from
    the reference and current data when both are stored data sets still in the workspace;
    otherwise the report shows the verdicts and says why the charts are missing.
    """
    from modelcycle.monitoring.report import chart_data, render_html

    row, result = _load(metadata, check_id)
    check = _check_from(row, result)
    charts: list[ColumnChart] = []
    tables_or_why = _stored_tables(datasets, str(row.reference), str(row.current))
    if isinstance(tables_or_why, str):
        check = replace(check, notes=[*check.notes, tables_or_why])
    else:
        charts = chart_data(*tables_or_why, check.report)
    return render_html(check, charts)


def _report_from(data: dict[str, Any]) -> DriftReport:
    names = {f.name for f in fields(DriftReport)} - {"columns"}
    column_names = {f.name for f in fields(ColumnDrift)}
    columns = [ColumnDrift(**{k: v for k, v in c.items() if k in column_names})
               for c in data.get("columns") or []]  # fmt: skip
    return DriftReport(**{k: v for k, v in data.items() if k in names}, columns=columns)


def _stored_tables(
    datasets: DatasetCatalog | None, reference: str, current: str
) -> tuple[pa.Table, pa.Table] | str:
    """Both data sets as tables, or a sentence saying why the charts cannot be drawn."""
    from modelcycle.datasets import parse_dataset_ref

    found = []
    for side, source in (("reference", reference), ("current", current)):
        if datasets is None or not source.startswith("data:"):
            return (
                f"Charts are not shown: the {side} data ({source}) is not a stored data set, "
                "so it cannot be read again; the verdicts are as stored."
            )
        try:
            ref = parse_dataset_ref(source[len("data:") :], field=side)
            found.append(datasets.get(ref.name, ref.version))
        except (NotFound, InvalidInput):
            return (
                f"Charts are not shown: the {side} data set {source} is no longer in the "
                "workspace; the verdicts are as stored."
            )
    return found[0], found[1]
