"""The trainer's evaluation details on the holdout, as JSON data and as one HTML page.

Classifiers: confusion matrix, per-class precision/recall/F1/support and, for two classes, ROC
and precision-recall curves. Regressors: a residual summary and a sample of (predicted,
residual) points. Both: permutation importance of each raw input column, on at most
``IMPORTANCE_ROWS`` holdout rows with ``IMPORTANCE_REPEATS`` shuffles (bounded so training
stays quick). The HTML page draws its figures as inline SVG (``_svg_charts``): no JavaScript,
tens of KB, it opens offline in any browser. The calculations return plain data; the page is
built from that data alone.
"""

from __future__ import annotations

import html
import math
from typing import Any

import numpy as np

from modelcycle.errors import InvalidInput
from modelcycle.pipelines._svg_charts import Line, hbars, heatmap, line_chart, scatter

__all__ = ["IMPORTANCE_REPEATS", "IMPORTANCE_ROWS", "evaluation_details", "render_html"]

IMPORTANCE_ROWS = 1000
IMPORTANCE_REPEATS = 3
_CURVE_POINTS = 200
_RESIDUAL_POINTS = 500


def _num(value: Any) -> float | None:
    """A JSON-safe number (6 significant digits); None for inf/NaN."""
    number = float(value)
    return float(f"{number:.6g}") if math.isfinite(number) else None


def _nums(values: Any) -> list[float | None]:
    return [_num(v) for v in np.asarray(values, dtype=np.float64).tolist()]


def _thin(n: int, limit: int) -> np.ndarray:
    """At most ``limit`` indices out of ``n``, evenly spread, first and last kept."""
    if n <= limit:
        return np.arange(n)
    return np.unique(np.linspace(0, n - 1, limit).round().astype(int))


def _classification(
    y: np.ndarray, predicted: np.ndarray, proba: np.ndarray, classes: list[Any]
) -> dict[str, Any]:
    from sklearn import metrics as skm

    matrix = skm.confusion_matrix(y, predicted, labels=classes)
    precision, recall, f1, support = skm.precision_recall_fscore_support(
        y, predicted, labels=classes, zero_division=0
    )
    out: dict[str, Any] = {
        "classes": [str(c) for c in classes],
        "confusion_matrix": {
            "labels": [str(c) for c in classes],
            "rows": "true class",
            "columns": "predicted class",
            "matrix": matrix.astype(int).tolist(),
        },
        "per_class": [
            {
                "class": str(c),
                "precision": _num(precision[i]),
                "recall": _num(recall[i]),
                "f1": _num(f1[i]),
                "support": int(support[i]),
            }
            for i, c in enumerate(classes)
        ],
    }
    if len(classes) == 2 and len(np.unique(y)) == 2:
        positive = classes[1]
        truth = y == positive
        fpr, tpr, thresholds = skm.roc_curve(truth, proba[:, 1])
        keep = _thin(len(fpr), _CURVE_POINTS)
        out["roc"] = {
            "positive_class": str(positive),
            "auc": _num(skm.roc_auc_score(truth, proba[:, 1])),
            "fpr": _nums(fpr[keep]),
            "tpr": _nums(tpr[keep]),
            "thresholds": _nums(thresholds[keep]),
        }
        precision_c, recall_c, thresholds_c = skm.precision_recall_curve(truth, proba[:, 1])
        keep = _thin(len(precision_c), _CURVE_POINTS)
        # precision_recall_curve gives one threshold fewer than points: the last point has none
        padded = np.append(thresholds_c, np.nan)
        out["pr"] = {
            "positive_class": str(positive),
            "average_precision": _num(skm.average_precision_score(truth, proba[:, 1])),
            "precision": _nums(precision_c[keep]),
            "recall": _nums(recall_c[keep]),
            "thresholds": _nums(padded[keep]),
        }
    return out


def _regression(y: np.ndarray, predicted: np.ndarray, seed: int) -> dict[str, Any]:
    y = np.asarray(y, dtype=np.float64)
    predicted = np.asarray(predicted, dtype=np.float64)
    residual = y - predicted
    q = np.quantile(residual, [0.05, 0.25, 0.5, 0.75, 0.95])
    rng = np.random.default_rng(seed)
    n = len(residual)
    sample = np.sort(rng.choice(n, size=min(n, _RESIDUAL_POINTS), replace=False))
    return {
        "residuals": {
            "definition": "actual - predicted",
            "summary": {
                "count": n,
                "mean": _num(residual.mean()),
                "std": _num(residual.std()),
                "min": _num(residual.min()),
                "q05": _num(q[0]),
                "q25": _num(q[1]),
                "median": _num(q[2]),
                "q75": _num(q[3]),
                "q95": _num(q[4]),
                "max": _num(residual.max()),
                "mean_abs": _num(np.abs(residual).mean()),
            },
            "points": {
                "sampled": len(sample),
                "of": n,
                "predicted": _nums(predicted[sample]),
                "residual": _nums(residual[sample]),
            },
        }
    }


def _importance(fitted: Any, x: Any, y: np.ndarray, task: str, seed: int) -> dict[str, Any]:
    from sklearn.inspection import permutation_importance

    n = len(y)
    rows = np.arange(n)
    if n > IMPORTANCE_ROWS:
        rows = np.sort(np.random.default_rng(seed).choice(n, IMPORTANCE_ROWS, replace=False))
    from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]

    scoring = "accuracy" if task == "classification" else "r2"
    # Many small predictions: OpenMP threads (HistGradientBoosting) only add overhead here,
    # and spin against whatever else the machine runs.
    with threadpool_limits(limits=1):
        result = permutation_importance(
            fitted,
            x.iloc[rows],
            y[rows],
            scoring=scoring,
            n_repeats=IMPORTANCE_REPEATS,
            random_state=seed,
            n_jobs=1,
        )
    features: list[dict[str, Any]] = [
        {
            "feature": str(name),
            "mean": _num(result.importances_mean[i]),
            "std": _num(result.importances_std[i]),
        }
        for i, name in enumerate(x.columns)
    ]
    features.sort(key=lambda f: -float(f["mean"] or 0.0))
    return {
        "scoring": scoring,
        "meaning": f"drop in {scoring} when the column is shuffled",
        "rows": len(rows),
        "repeats": IMPORTANCE_REPEATS,
        "features": features,
    }


def evaluation_details(
    fitted: Any,
    x: Any,
    y: np.ndarray,
    *,
    task: str,
    seed: int,
    predicted: np.ndarray,
    proba: np.ndarray | None,
) -> dict[str, Any]:
    """Everything above as JSON data, computed on the holdout (``x``: the raw columns)."""
    out: dict[str, Any] = {"task": task, "holdout_rows": len(y)}
    if task == "classification":
        if proba is None:
            raise InvalidInput("a classifier's evaluation needs probabilities", field="model")
        out.update(_classification(y, predicted, proba, list(fitted.classes_)))
    else:
        out.update(_regression(y, predicted, seed))
    out["permutation_importance"] = _importance(fitted, x, y, task, seed)
    return out


# -- the page ---------------------------------------------------------------------------------


def _table(header: list[str], rows: list[list[Any]]) -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def _figures(details: dict[str, Any]) -> list[tuple[str, str]]:
    """(heading, inline SVG) per figure, drawn from the JSON data alone."""
    figures: list[tuple[str, str]] = []
    if "roc" in details:
        roc = details["roc"]
        title = f"ROC curve (AUC {roc['auc']}, positive class {roc['positive_class']})"
        desc = (
            f"True positive rate against false positive rate at {len(roc['fpr'])} thresholds; "
            f"area under the curve {roc['auc']}. The dashed diagonal is a model that guesses."
        )
        lines = [Line("model", roc["fpr"], roc["tpr"]), Line("chance", [0, 1], [0, 1])]
        figures.append(
            (
                title,
                line_chart(
                    "roc",
                    title,
                    desc,
                    lines,
                    x_label="false positive rate",
                    y_label="true positive rate",
                ),
            )
        )
        pr = details["pr"]
        title = f"Precision-recall (AP {pr['average_precision']})"
        desc = (
            f"Precision against recall for class {pr['positive_class']}; "
            f"average precision {pr['average_precision']}."
        )
        lines = [Line("model", pr["recall"], pr["precision"])]
        support = {c["class"]: c["support"] for c in details.get("per_class", [])}
        if support and sum(support.values()):
            # a model that guesses has precision = the positive share at every recall
            base = support.get(pr["positive_class"], 0) / sum(support.values())
            lines.append(Line(f"chance (positive share {base:.3g})", [0, 1], [base, base]))
            desc += f" The dashed line is a model that guesses: precision {base:.3g}."
        figures.append(
            (title, line_chart("pr", title, desc, lines, x_label="recall", y_label="precision"))
        )
    if "confusion_matrix" in details:
        cm = details["confusion_matrix"]
        title = "Confusion matrix"
        cells = "; ".join(
            f"true {t}: "
            + ", ".join(f"{n} predicted {p}" for p, n in zip(cm["labels"], row, strict=True))
            for t, row in zip(cm["labels"], cm["matrix"], strict=True)
        )
        desc = f"Holdout rows by true class (rows) and predicted class (columns). {cells}."
        svg = heatmap(
            "cm",
            title,
            desc,
            cm["matrix"],
            cm["labels"],
            x_label="predicted class",
            y_label="true class",
        )
        figures.append((title, svg))
    if "residuals" in details:
        pts = details["residuals"]["points"]
        title = f"Residuals ({pts['sampled']} of {pts['of']} holdout rows)"
        desc = (
            "Residual (actual - predicted) against the predicted value for a sample of holdout "
            "rows; the dashed line is zero error."
        )
        svg = scatter(
            "residuals",
            title,
            desc,
            pts["predicted"],
            pts["residual"],
            x_label="predicted",
            y_label="actual - predicted",
        )
        figures.append((title, svg))
    meta = details["permutation_importance"]
    imp = meta["features"][:20]
    title = "Permutation importance"
    desc = (
        f"{meta['meaning']} (mean ± standard deviation over {meta['repeats']} shuffles of "
        f"{meta['rows']} holdout rows), largest first: "
        + "; ".join(f"{f['feature']} {f['mean']} ± {f['std']}" for f in imp)
        + "."
    )
    svg = hbars(
        "importance",
        title,
        desc,
        [f["feature"] for f in imp],
        [f["mean"] for f in imp],
        [f["std"] for f in imp],
        x_label=meta["meaning"],
    )
    figures.append((title, svg))
    return figures


def render_html(details: dict[str, Any], *, title: str, metrics: dict[str, float]) -> bytes:
    """One self-contained page, no JavaScript: the tables, then the figures as inline SVG."""
    parts = [
        f"<h1>{html.escape(title)}</h1>",
        _table(["metric", "value"], [[k, f"{v:.6g}"] for k, v in metrics.items()]),
    ]
    if "per_class" in details:
        parts.append("<h2>Per class</h2>")
        parts.append(
            _table(
                ["class", "precision", "recall", "f1", "support"],
                [
                    [c["class"], c["precision"], c["recall"], c["f1"], c["support"]]
                    for c in details["per_class"]
                ],
            )
        )
    if "residuals" in details:
        parts.append("<h2>Residuals (actual - predicted)</h2>")
        summary = details["residuals"]["summary"]
        parts.append(_table(list(summary), [list(summary.values())]))
    for heading, svg in _figures(details):
        parts.append(f"<figure><h2>{html.escape(heading)}</h2>{svg}</figure>")
    page = (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>{html.escape(title)}</title>"
        "<style>body{font-family:sans-serif;margin:2em;max-width:60em;color:#222}"
        "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;"
        "padding:.2em .6em;text-align:right}figure{margin:2em 0}"
        "figure h2{font-size:1.1em}</style></head><body>" + "".join(parts) + "</body></html>"
    )
    return page.encode("utf-8")
