"""The compact evaluation summary ``runs show`` and ``models show`` print."""

from __future__ import annotations

from typing import Any

from rich.markup import escape
from rich.table import Table

from modelcycle.entities import Run
from modelcycle.interfaces.cli._context import console

__all__ = ["print_evaluation", "run_evaluation"]

_TOP_FEATURES = 5
# Step outputs that are evaluation artifacts of the built-in trainer's runs.
_ARTIFACTS = ("evaluation", "evaluation_html", "training_rows")


def run_evaluation(run: Run, load: Any) -> dict[str, Any] | None:
    """``{"artifacts": {name: {"sha256", "size"}}, "details": {...}}`` from the run's step
    outputs (``load(step, name)`` reads one), or None when no step stored an evaluation."""
    artifacts: dict[str, dict[str, Any]] = {}
    where = None
    for s in run.steps:
        for name, meta in s.outputs.items():
            if name in _ARTIFACTS:
                artifacts[name] = {"sha256": meta["sha256"], "size": meta.get("size")}
                if name == "evaluation" and meta.get("format") == "json":
                    where = s.name
    if where is None:
        return None
    return {"artifacts": artifacts, "details": load(where, "evaluation")}


def print_evaluation(evaluation: dict[str, Any] | None) -> None:
    """Confusion matrix and per-class figures, curves' areas or residuals, top features,
    and where the artifacts are."""
    if evaluation is None:
        console.print("evaluation: - (no evaluation artifacts recorded)")
        return
    d = evaluation["details"]
    console.print(f"[bold]evaluation[/] on {d.get('holdout_rows')} holdout rows", highlight=False)
    if "confusion_matrix" in d:
        cm = d["confusion_matrix"]
        table = Table("true \\ predicted", *map(escape, cm["labels"]), title="confusion matrix")
        for label, row in zip(cm["labels"], cm["matrix"], strict=True):
            table.add_row(escape(label), *map(str, row))
        console.print(table)
        per = Table("class", "precision", "recall", "f1", "support", title="per class")
        for c in d.get("per_class", []):
            per.add_row(
                escape(c["class"]), _f(c["precision"]), _f(c["recall"]), _f(c["f1"]),
                str(c["support"]),
            )  # fmt: skip
        console.print(per)
    if "roc" in d:
        console.print(
            f"ROC AUC {_f(d['roc']['auc'])}, average precision "
            f"{_f(d['pr']['average_precision'])} (positive class "
            f"{escape(d['roc']['positive_class'])}; {len(d['roc']['fpr'])} ROC and "
            f"{len(d['pr']['recall'])} PR points stored)",
            highlight=False,
        )
    if "residuals" in d:
        r = d["residuals"]["summary"]
        console.print(
            f"residuals (actual - predicted): mean {_f(r['mean'])}, std {_f(r['std'])}, "
            f"median {_f(r['median'])}, 5%..95% {_f(r['q05'])}..{_f(r['q95'])}, "
            f"min {_f(r['min'])}, max {_f(r['max'])} "
            f"({d['residuals']['points']['sampled']} points stored)",
            highlight=False,
        )
    imp = d.get("permutation_importance")
    if imp:
        top = ", ".join(
            f"{escape(f['feature'])} {_f(f['mean'])}" for f in imp["features"][:_TOP_FEATURES]
        )
        console.print(
            f"top features (permutation importance, {imp['meaning']}; {imp['rows']} rows x "
            f"{imp['repeats']}): {top}",
            highlight=False,
        )
    for name, meta in evaluation["artifacts"].items():
        console.print(f"  {name:16} sha256 {meta['sha256']}", highlight=False)
    html = evaluation["artifacts"].get("evaluation_html")
    if html:
        console.print(
            f"  open the page: modelcycle artifacts get {html['sha256']} -o evaluation.html",
            highlight=False,
        )


def _f(value: Any) -> str:
    return "-" if value is None else f"{value:.4g}"
