"""Drift reports: chart data per column (computed here, apart from the statistics), then the
same content as JSON or as one self-contained HTML page (Plotly's bundled JavaScript inlined:
it opens offline, no CDN).

    charts = chart_data(reference, current, drift_report)
    html = render_html(DriftCheck(drift_report), charts)
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from modelcycle.audit import utc_timestamp
from modelcycle.datasets import column_kind
from modelcycle.errors import InvalidInput
from modelcycle.monitoring.drift import ColumnDrift, DriftReport
from modelcycle.monitoring.results import DriftCheck

__all__ = ["ColumnChart", "chart_data", "render_html", "report_data", "write_report"]

OTHER = "(other)"
_TEMPLATE = "drift_report.html.j2"


@dataclass(frozen=True)
class ColumnChart:
    """What one column's chart shows: shares of each side per bin or category.

    ``histogram``: ``x`` are bin centres, ``width`` bin widths, on bins shared by both sides
    (the outer bins also hold the values beyond the 0.5th/99.5th percentiles). ``bar``: ``x``
    are the most frequent categories, then ``(other)``.
    """

    name: str
    kind: str
    x: list[Any]
    reference: list[float]
    current: list[float]
    width: list[float] | None = None
    clipped: bool = False


def chart_data(
    reference: pa.Table,
    current: pa.Table,
    report: DriftReport,
    *,
    bins: int = 30,
    top: int = 12,
) -> list[ColumnChart]:
    """One chart per column of ``report``, in the report's column order."""
    charts = []
    for col in report.columns:
        if col.name not in reference.column_names or col.name not in current.column_names:
            continue
        ref, cur = reference.column(col.name), current.column(col.name)
        numeric = column_kind(ref.type) == "numeric" and column_kind(cur.type) == "numeric"
        if numeric and col.type == "numerical":
            charts.append(_histogram(col.name, ref, cur, bins))
        else:
            charts.append(_bars(col.name, ref, cur, top))
    return charts


def _finite(column: pa.ChunkedArray) -> np.ndarray:
    values = np.asarray(column.to_numpy(zero_copy_only=False), dtype=np.float64)
    return values[np.isfinite(values)]


def _histogram(name: str, ref: pa.ChunkedArray, cur: pa.ChunkedArray, bins: int) -> ColumnChart:
    r, c = _finite(ref), _finite(cur)
    both = np.concatenate([r, c])
    if not len(both):
        return ColumnChart(name, "histogram", [], [], [], [])
    low, high = (float(v) for v in np.quantile(both, [0.005, 0.995]))
    clipped = bool(low > both.min() or high < both.max())
    if low == high:
        low, high = float(both.min()), float(both.max())
    if low == high:
        low, high = low - 0.5, high + 0.5
    edges = np.histogram_bin_edges(both, bins=bins, range=(low, high))
    r_counts, _ = np.histogram(np.clip(r, low, high), bins=edges)
    c_counts, _ = np.histogram(np.clip(c, low, high), bins=edges)
    centres = (edges[:-1] + edges[1:]) / 2
    return ColumnChart(
        name,
        "histogram",
        [float(x) for x in centres],
        _shares(r_counts),
        _shares(c_counts),
        [float(w) for w in np.diff(edges)],
        clipped,
    )


def _bars(name: str, ref: pa.ChunkedArray, cur: pa.ChunkedArray, top: int) -> ColumnChart:
    r_counts = _value_counts(ref)
    c_counts = _value_counts(cur)
    total_r, total_c = sum(r_counts.values()), sum(c_counts.values())
    keys = sorted(
        set(r_counts) | set(c_counts),
        key=lambda k: (
            -(r_counts.get(k, 0) / max(total_r, 1) + c_counts.get(k, 0) / max(total_c, 1))
        ),
    )
    shown, rest = keys[:top], keys[top:]
    x = list(shown)
    r_vals = [r_counts.get(k, 0) for k in shown]
    c_vals = [c_counts.get(k, 0) for k in shown]
    if rest:
        x.append(OTHER)
        r_vals.append(sum(r_counts.get(k, 0) for k in rest))
        c_vals.append(sum(c_counts.get(k, 0) for k in rest))
    return ColumnChart(name, "bar", x, _shares(r_vals), _shares(c_vals))


def _value_counts(column: pa.ChunkedArray) -> dict[str, int]:
    values = pc.drop_null(column.cast(pa.string()))
    counts = pc.value_counts(values)
    return {
        str(v): int(n)
        for v, n in zip(
            counts.field("values").to_pylist(), counts.field("counts").to_pylist(), strict=True
        )
    }


def _shares(counts: Any) -> list[float]:
    values = np.asarray(counts, dtype=np.float64)
    total = values.sum()
    return [float(v) for v in (values / total if total else values)]


# -- the report's content -----------------------------------------------------------------------


def report_data(
    check: DriftCheck | DriftReport,
    charts: list[ColumnChart],
    prediction_charts: list[ColumnChart] | None = None,
) -> dict[str, Any]:
    """The report as JSON-ready data: the check (summary and columns) plus every chart."""
    check = check if isinstance(check, DriftCheck) else DriftCheck(report=check)
    data = check.as_dict()
    data["charts"] = [asdict(c) for c in charts]
    data["prediction_charts"] = [asdict(c) for c in prediction_charts or []]
    return data


def render_html(
    check: DriftCheck | DriftReport,
    charts: list[ColumnChart],
    prediction_charts: list[ColumnChart] | None = None,
    *,
    title: str | None = None,
) -> str:
    """One self-contained HTML page: summary, columns by drift score, a chart per column."""
    import jinja2

    check = check if isinstance(check, DriftCheck) else DriftCheck(report=check)
    report = check.report
    by_name = {c.name: c for c in charts}
    ordered = sorted(report.columns, key=_sort_key)
    methods: dict[str, dict[str, Any]] = {}
    for col in report.columns:
        # In robust mode the verdict comes from the robust test and effect, not the default test.
        r = col.robust
        method = f"{r['test']} + {r['effect']} interval" if r else col.method
        entry = methods.setdefault(
            method, {"method": method, "columns": 0, "drifted": 0, "threshold": set()}
        )
        entry["columns"] += 1
        entry["drifted"] += int(col.drifted)
        entry["threshold"].add(
            f"p < {r['alpha']:g}, effect ≥ {r['effect_threshold']:g}" if r else f"{col.threshold:g}"
        )
    figures = []
    rows = []
    for i, col in enumerate(ordered):
        chart = by_name.get(col.name)
        div = f"chart-{i}"
        rows.append(_row(col, div if chart else None))
        if chart is not None:
            figures.append({"div": div, **_figure(chart)})
    prediction_rows = []
    if check.prediction is not None:
        pred_by_name = {c.name: c for c in prediction_charts or []}
        for i, col in enumerate(check.prediction.columns):
            chart = pred_by_name.get(col.name)
            div = f"pred-chart-{i}"
            prediction_rows.append(_row(col, div if chart else None))
            if chart is not None:
                figures.append({"div": div, **_figure(chart)})
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("modelcycle.monitoring", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )
    verdict = (
        "not_enough_data"
        if report.status != "ok"
        else ("drift" if report.dataset_drift else "no_drift")
    )
    return env.get_template(_TEMPLATE).render(
        title=title or (f"Drift report: {check.model}" if check.model else "Drift report"),
        check=check,
        report=report,
        verdict=verdict,
        window=check.window,
        generated=check.at or utc_timestamp(),
        methods=[{**m, "threshold": ", ".join(sorted(m["threshold"]))} for m in methods.values()],
        rows=rows,
        drifted_names=[c.name for c in ordered if c.drifted],
        prediction=check.prediction,
        prediction_rows=prediction_rows,
        figures_json=_script_json(figures),
        plotly_js=_plotly_js(),
    )


def write_report(
    path: str | Path,
    check: DriftCheck | DriftReport,
    reference: pa.Table,
    current: pa.Table,
    reference_predictions: pa.Table | None = None,
    current_predictions: pa.Table | None = None,
) -> Path:
    """Write the report as HTML, or as JSON when ``path`` ends in ``.json``."""
    target = Path(path)
    if target.suffix.lower() not in (".html", ".htm", ".json"):
        raise InvalidInput(f"{path}: expected a .html or .json file name", field="report")
    check = check if isinstance(check, DriftCheck) else DriftCheck(report=check)
    charts = chart_data(reference, current, check.report)
    prediction_charts = (
        chart_data(reference_predictions, current_predictions, check.prediction)
        if check.prediction is not None
        and reference_predictions is not None
        and current_predictions is not None
        else None
    )
    if target.suffix.lower() == ".json":
        text = json.dumps(report_data(check, charts, prediction_charts), indent=2)
    else:
        text = render_html(check, charts, prediction_charts)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text, encoding="utf-8")
    return target


# -- HTML helpers ---------------------------------------------------------------------------------


def _sort_key(col: ColumnDrift) -> tuple[int, float]:
    # Drifted first, then by how far over the threshold; untestable columns last.
    return (0 if col.drifted else (1 if col.status == "ok" else 2), -_score(col))


def _score(col: ColumnDrift) -> float:
    score = col.score
    return score if math.isfinite(score) else -1e300


def _fmt(value: float | None, spec: str) -> str:
    if value is None or not math.isfinite(value):
        return "–"
    return format(value, spec)


def _row(col: ColumnDrift, div: str | None) -> dict[str, Any]:
    row: dict[str, Any] = {
        "name": col.name,
        "type": col.type,
        "method": col.method,
        "statistic": _fmt(col.statistic, ".4g"),
        "p_value": _fmt(col.p_value, ".3g"),
        "threshold": f"{col.threshold:g}",
        "verdict": (
            "drift" if col.drifted else ("ok" if col.status == "ok" else "not_enough_data")
        ),
        "rows": f"{col.reference_rows:,} / {col.current_rows:,}",
        "missing": f"{col.missing_share_reference:.1%} / {col.missing_share_current:.1%}",
        "missing_drifted": col.missing_drifted,
        "div": div,
        "test": col.explain(),
        "robust": None,
    }
    r = col.robust
    if r is not None:
        low, high = r["effect_interval"]
        row["robust"] = {
            "test": r["test"],
            "p_adjusted": _fmt(r["p_adjusted"], ".3g"),
            "alpha": f"{r['alpha']:g}",
            "effect": r["effect"],
            "effect_size": _fmt(r["effect_size"], ".4g"),
            "interval": f"[{_fmt(low, '.4g')}, {_fmt(high, '.4g')}]",
            "effect_threshold": f"{r['effect_threshold']:g}",
        }
    return row


_REF_COLOUR = "#7f8c9a"
_CUR_COLOUR = "#e4572e"


def _figure(chart: ColumnChart) -> dict[str, Any]:
    """A Plotly figure spec (data + layout) for one column."""
    common = {"type": "bar", "hovertemplate": "%{x}: %{y:.1%}<extra>%{fullData.name}</extra>"}
    data: list[dict[str, Any]] = [
        {**common, "name": "reference", "x": chart.x, "y": chart.reference,
         "marker": {"color": _REF_COLOUR}},
        {**common, "name": "current", "x": chart.x, "y": chart.current,
         "marker": {"color": _CUR_COLOUR}},
    ]  # fmt: skip
    layout: dict[str, Any] = {
        "height": 240,
        "margin": {"l": 48, "r": 8, "t": 8, "b": 40},
        "yaxis": {"tickformat": ".0%", "gridcolor": "#eee"},
        "legend": {"orientation": "h", "y": 1.12, "x": 1, "xanchor": "right"},
        "plot_bgcolor": "white",
        "paper_bgcolor": "white",
        "font": {"size": 11},
    }
    if chart.kind == "histogram":
        for trace in data:
            trace["width"] = chart.width
            trace["opacity"] = 0.55
        layout["barmode"] = "overlay"
        layout["bargap"] = 0
    else:
        layout["barmode"] = "group"
        layout["xaxis"] = {"type": "category"}
    return {"data": data, "layout": layout}


def _script_json(value: Any) -> str:
    """JSON safe inside a <script> element."""
    text = json.dumps(value, allow_nan=False, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


@lru_cache(maxsize=1)
def _plotly_js() -> str:
    """plotly.min.js from the installed plotly package, ready to inline."""
    import plotly

    path = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
    if not path.is_file():
        raise InvalidInput(f"plotly's bundled JavaScript is missing ({path})", field="report")
    return path.read_text(encoding="utf-8").replace("</script", "<\\/script")
