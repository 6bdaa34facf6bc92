"""Model cards: what a reviewer asks about one model version (SR 11-7, EU AI Act Annex IV:
purpose, data, performance, limitations, changes over the model's life), every figure computed
from the registry, the data sets and the audit trail at the moment the card is made.

Sections: intended use and owner (tags ``intended_use``/``description``/``owner``), training
data versions with their profile summary, the run's params and code version, holdout metrics
with 95% bootstrap intervals (the ``holdout``/``target`` tags), metrics per slice of the
categorical columns asked for, promotion gates with both models' scores, approvals,
deployments, drift checks since the first deployment, and the alias moves over time. The card
names the audit head it was computed up to, so a reader can match it with a signed export.
"""

from __future__ import annotations

import html
import math
from typing import TYPE_CHECKING, Any

import numpy as np

from modelcycle.audit.chain import utc_timestamp
from modelcycle.errors import InvalidInput, ModelcycleError

if TYPE_CHECKING:
    from modelcycle.entities import AuditEvent
    from modelcycle.workspace import Workspace

__all__ = ["build_card", "card_html", "card_markdown"]

BOOTSTRAP_RESAMPLES = 1000
_SEED = 0  # fixed: the same holdout gives the same interval every time the card is made
_MAX_SLICE_VALUES = 50
_MODEL_ACTIONS = ("model.promoted", "model.promotion_refused")
_ALIAS_ACTIONS = ("model.alias_moved", "model.alias_deleted")


def build_card(
    ws: Workspace,
    ref: str,
    *,
    slices: tuple[str, ...] = (),
    resamples: int = BOOTSTRAP_RESAMPLES,
    trust: bool = False,
) -> dict[str, Any]:
    """The card of ``ref`` (``NAME/V`` or ``NAME@ALIAS``) as JSON-ready data."""
    mv = ws.registry.get(ref)
    lineage = ws.registry.lineage(mv.ref)
    events = ws.audit.events()
    head = ws.audit.head()
    mine = [e for e in events if _about(e, mv.name)]
    card: dict[str, Any] = {
        "model": {
            "ref": mv.ref,
            "name": mv.name,
            "version": mv.version,
            "flavor": mv.flavor,
            "task": mv.signature.get("task", "unknown"),
            "sha256": mv.sha256,
            "status": mv.status,
            "aliases": list(mv.aliases),
            "created_at": mv.created_at,
            "created_by": mv.created_by,
        },
        "intended_use": {
            "intended_use": mv.tags.get("intended_use") or mv.tags.get("description"),
            "owner": mv.tags.get("owner") or mv.created_by,
            "limitations": mv.tags.get("limitations"),
        },
        # The version's data sets but its holdout (shown with the holdout figures).
        "training_data": [
            _dataset_summary(ws, d) for d in mv.datasets if d != mv.tags.get("holdout")
        ],
        "run": {
            "run_id": mv.run_id,
            "code_version": lineage.code_version or _run_code(ws, mv.run_id),
            "params": mv.params,
            "recorded_metrics": mv.metrics,
        },
        "holdout": _holdout(ws, mv, slices, resamples, trust),
        "gates": [_gate_row(e) for e in mine if e.action in _MODEL_ACTIONS],
        "approvals": [
            {"at": e.at, "actor": e.actor, "action": e.action, "payload": e.payload}
            for e in mine
            if e.action.startswith("promotion.")
        ],
        "deployments": [
            {
                "at": d.created_at,
                "endpoint": d.endpoint,
                "target": d.target,
                "status": d.status,
                "bundle_sha256": d.bundle_sha256,
                "by": d.created_by,
            }
            for d in ws.deploy.list(all=True)
            if d.model_name == mv.name and d.model_version == mv.version
        ],
        "changes": [
            {
                "at": e.at,
                "actor": e.actor,
                "alias": e.payload.get("alias"),
                "from": e.payload.get("from"),
                "to": e.payload.get("to"),
                "why": e.payload.get("by") or e.payload.get("reason") or e.action.split(".")[1],
            }
            for e in mine
            if e.action in _ALIAS_ACTIONS
        ],
        "generated": {"at": utc_timestamp(), "audit_head": {"seq": head.seq, "hash": head.hash}},
    }
    first = min((d["at"] for d in card["deployments"]), default=None)
    card["drift"] = [
        {
            "at": r.at,
            # The verdict, not the check's status ("ok" meant only that it could be computed).
            "verdict": (
                "not enough data"
                if r.status == "not_enough_data"
                else ("drifted" if r.dataset_drift else "no drift")
            ),
            "share_drifted": r.share_drifted,
            "drifted_columns": r.drifted_columns,
            "prediction_drift": r.prediction_drift,
        }
        for r in ws.monitoring.history(mv.name, limit=1000)
        if r.model_version in (None, mv.version) and (first is None or r.at >= first)
    ]
    card["drift_since"] = first
    return card


def _run_code(ws: Workspace, run_id: str | None) -> str | None:
    if run_id is None:
        return None
    try:
        code = ws.pipelines.get_run(run_id).code
    except ModelcycleError:
        return None
    commit = code.get("commit")
    if not commit:
        return None
    return f"{commit}+dirty" if code.get("dirty") else str(commit)


def _about(event: AuditEvent, name: str) -> bool:
    if event.subject == f"model:{name}" or event.subject.startswith(f"model:{name}/"):
        return True
    if event.action.startswith("promotion."):
        ref = str(event.payload.get("ref") or event.payload.get("model") or "")
        return ref == name or ref.startswith((f"{name}/", f"{name}@"))
    return False


def _gate_row(event: AuditEvent) -> dict[str, Any]:
    # A promotion nests the gate's figures under "gate"; a refusal records them at the top.
    refused = event.action == "model.promotion_refused"
    gate = event.payload.get("gate") or (event.payload if refused else {})
    return {
        "at": event.at,
        "actor": event.actor,
        "result": "refused" if refused else "promoted",
        "alias": event.payload.get("alias"),
        "subject": event.subject.removeprefix("model:"),
        "metric": gate.get("metric"),
        "dataset": gate.get("dataset"),
        "candidate": gate.get("candidate"),
        "champion": gate.get("champion"),
        "forced": event.payload.get("forced", False),
        "reason": event.payload.get("reason"),
    }


def _dataset_summary(ws: Workspace, ref: str) -> dict[str, Any]:
    try:
        dv = ws.datasets.version(ref)
    except ModelcycleError as exc:
        return {"ref": ref, "error": exc.message}
    columns = dv.profile.get("columns", {}) if isinstance(dv.profile, dict) else {}
    summary: dict[str, Any] = {}
    if isinstance(columns, dict):
        for col, prof in columns.items():
            if isinstance(prof, dict):
                keep = ("type", "null_count", "nulls", "min", "max", "mean", "distinct")
                summary[col] = {k: prof[k] for k in keep if k in prof}
    return {
        "ref": dv.ref,
        "sha256": dv.sha256,
        "rows": dv.num_rows,
        "columns": [c.get("name") for c in dv.schema],
        "created_at": dv.created_at,
        "profile": summary,
    }


def _holdout(
    ws: Workspace, mv: Any, slices: tuple[str, ...], resamples: int, trust: bool
) -> dict[str, Any]:
    from modelcycle.registry import METRICS, enforce

    on, target = mv.tags.get("holdout"), mv.tags.get("target")
    if not on or not target:
        return {"note": "no holdout recorded (tags holdout and target)"}
    try:
        dv = ws.datasets.version(on)
        table = ws.datasets.get(dv.name, dv.version)
    except ModelcycleError as exc:
        return {"dataset": on, "note": exc.message}
    if target not in table.column_names:
        return {"dataset": on, "note": f"the holdout has no column {target!r}"}
    try:
        loaded = ws.registry.load(mv.ref, trust=trust)
    except ModelcycleError as exc:
        return {"dataset": on, "target": target, "note": exc.message}
    task = loaded.signature.task
    y = np.asarray(table.column(target).to_numpy(zero_copy_only=False))
    # Extra holdout columns (the target, slice columns) are allowed, as in the promotion gate.
    features = enforce(loaded.signature, table.drop_columns([target]), allow_extra=True)
    pred = np.asarray(loaded.predict(features, validated=True))
    proba = (
        np.asarray(loaded.predict_proba(features, validated=True))
        if loaded.signature.is_classifier
        else None
    )
    classes = loaded.signature.classes
    rng = np.random.default_rng(_SEED)
    draws = rng.integers(0, len(y), (resamples, len(y))) if len(y) else np.empty((0, 0), int)
    metrics: dict[str, Any] = {}
    for m in METRICS.values():
        if task not in m.tasks or (m.needs_proba and proba is None):
            continue
        answer = proba if m.needs_proba else pred
        assert answer is not None
        value = _safe(m.compute, y, answer, classes)
        if value is None:
            continue
        fast = _bootstrap_fast(m.name, y, answer, classes, draws)
        boot = (
            [_safe(m.compute, y[i], answer[i], classes) for i in draws]
            if fast is None
            else [float(b) for b in fast]
        )
        finite = sorted(b for b in boot if b is not None and math.isfinite(b))
        low, high = (
            (float(np.percentile(finite, 2.5)), float(np.percentile(finite, 97.5)))
            if finite
            else (None, None)
        )
        metrics[m.name] = {
            "value": value,
            "ci95": [low, high],
            "higher_is_better": m.higher_is_better,
        }
    by_slice: dict[str, Any] = {}
    for col in slices:
        if col not in table.column_names:
            raise InvalidInput(f"the holdout {on} has no column {col!r}", field="slice")
        values = np.asarray(table.column(col).to_numpy(zero_copy_only=False))
        distinct = sorted({str(v) for v in values})
        if len(distinct) > _MAX_SLICE_VALUES:
            raise InvalidInput(
                f"{col!r} has {len(distinct)} values; slices need a categorical column (at "
                f"most {_MAX_SLICE_VALUES})",
                field="slice",
            )
        rows = []
        for label in distinct:
            mask = np.asarray([str(v) == label for v in values])
            figures: dict[str, float | None] = {}
            for name in metrics:
                m = METRICS[name]
                answer = proba if m.needs_proba else pred
                assert answer is not None
                figures[name] = _safe(m.compute, y[mask], answer[mask], classes)
            rows.append({"value": label, "rows": int(mask.sum()), "metrics": figures})
        by_slice[col] = rows
    return {
        "dataset": on,
        "target": target,
        "rows": len(y),
        "resamples": resamples,
        "metrics": metrics,
        "slices": by_slice,
    }


def _bootstrap_fast(
    name: str, y: np.ndarray, answer: np.ndarray, classes: Any, draws: np.ndarray
) -> np.ndarray | None:
    """The metric over every resample at once (rows of ``draws``), for the metrics that
    decompose into per-row terms or counts; None: fall back to one call per resample. Same
    definitions as the registry's metrics (registry/_metrics.py)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        if name == "accuracy":
            return np.asarray((y == answer)[draws].mean(axis=1))
        if name in ("rmse", "mae", "r2"):
            yt, yp = np.asarray(y, dtype=np.float64), np.asarray(answer, dtype=np.float64)
            err = (yt - yp)[draws]
            if name == "rmse":
                return np.asarray(np.sqrt((err**2).mean(axis=1)))
            if name == "mae":
                return np.asarray(np.abs(err).mean(axis=1))
            ys = yt[draws]
            total = ((ys - ys.mean(axis=1, keepdims=True)) ** 2).sum(axis=1)
            return np.asarray(1.0 - (err**2).sum(axis=1) / total)
        binary = classes is not None and len(classes) == 2
        if name == "log_loss" and classes is not None:
            index = {c: i for i, c in enumerate(classes)}
            cols = np.asarray([index.get(v, -1) for v in y.tolist()])
            if (cols < 0).any():
                return None
            proba = answer / answer.sum(axis=1, keepdims=True)
            eps = np.finfo(proba.dtype).eps
            loss = -np.log(np.clip(proba[np.arange(len(y)), cols], eps, 1 - eps))
            return np.asarray(loss[draws].mean(axis=1))
        if name == "f1" and binary:
            pos, hit = y == classes[1], answer == classes[1]
            tp = (pos & hit)[draws].sum(axis=1)
            wrong = (pos ^ hit)[draws].sum(axis=1)
            return np.asarray(np.where(2 * tp + wrong > 0, 2 * tp / (2 * tp + wrong), 0.0))
        if name == "roc_auc" and binary:
            from scipy.stats import rankdata

            pos = (y == classes[1])[draws]
            ranks = rankdata(answer[:, 1][draws], axis=1)
            n_pos = pos.sum(axis=1)
            n_neg = pos.shape[1] - n_pos
            u = (ranks * pos).sum(axis=1) - n_pos * (n_pos + 1) / 2
            # One class only in a resample: undefined (NaN), left out like the slow path does.
            return np.asarray(np.where((n_pos > 0) & (n_neg > 0), u / (n_pos * n_neg), np.nan))
    return None


def _safe(fn: Any, y: np.ndarray, answer: np.ndarray, classes: Any) -> float | None:
    """The metric, or None where it is undefined (one class only in a resample or slice)."""
    try:
        value = float(fn(y, answer, classes))
    except (ValueError, ZeroDivisionError):
        return None
    return value if math.isfinite(value) else None


# -- rendering ------------------------------------------------------------------------------


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4f}"
    if isinstance(value, dict):
        return ", ".join(f"{k}={_fmt(v)}" for k, v in value.items())
    if isinstance(value, list):
        return ", ".join(_fmt(v) for v in value) or "-"
    return str(value).replace("|", "\\|").replace("\n", " ")


def _table(head: list[str], rows: list[list[Any]]) -> list[str]:
    if not rows:
        return ["(none)", ""]
    out = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    out += ["| " + " | ".join(_fmt(c) for c in row) + " |" for row in rows]
    return [*out, ""]


def card_markdown(card: dict[str, Any]) -> str:
    """The card as Markdown."""
    m, use, run, hold = card["model"], card["intended_use"], card["run"], card["holdout"]
    lines = [f"# Model card: {m['ref']}", ""]
    lines += _table(
        ["flavor", "task", "status", "aliases", "registered", "by", "sha256"],
        [[m["flavor"], m["task"], m["status"], m["aliases"], m["created_at"], m["created_by"],
          m["sha256"]]],
    )  # fmt: skip
    lines += ["## Intended use and owner", ""]
    lines += [
        f"- Intended use: {use['intended_use'] or 'not recorded (tag intended_use)'}",
        f"- Owner: {use['owner']}",
        f"- Limitations: {use['limitations'] or 'not recorded (tag limitations)'}",
        "",
        "## Training data",
        "",
    ]
    lines += _table(
        ["data set", "rows", "columns", "sha256", "created"],
        [[d["ref"], d.get("rows"), len(d.get("columns", [])), d.get("sha256"),
          d.get("created_at")] for d in card["training_data"]],
    )  # fmt: skip
    for d in card["training_data"]:
        if d.get("profile"):
            lines += [f"Profile of {d['ref']}:", ""]
            lines += _table(["column", "summary"], [[c, p] for c, p in d["profile"].items()])
    lines += ["## Training run", ""]
    lines += [f"- Run: {run['run_id'] or '-'}", f"- Code version: {run['code_version'] or '-'}"]
    lines += [f"- Params: {_fmt(run['params'])}", ""]
    lines += ["## Holdout performance", ""]
    if "metrics" in hold:
        lines += [
            f"On {hold['dataset']} (target {hold['target']}, {hold['rows']} rows); 95% "
            f"intervals from {hold['resamples']} bootstrap resamples.",
            "",
        ]
        lines += _table(
            ["metric", "value", "95% CI low", "95% CI high"],
            [[k, v["value"], v["ci95"][0], v["ci95"][1]] for k, v in hold["metrics"].items()],
        )
        for col, rows in hold["slices"].items():
            names = list(hold["metrics"])
            lines += [f"Per slice of {col}:", ""]
            lines += _table(
                [col, "rows", *names],
                [[r["value"], r["rows"], *(r["metrics"][n] for n in names)] for r in rows],
            )
    else:
        lines += [hold.get("note", "-"), ""]
    lines += ["## Promotion gates", ""]
    lines += _table(
        ["at", "result", "alias", "version", "metric", "candidate", "champion", "data set", "by"],
        [[g["at"], g["result"] + (" (forced)" if g["forced"] else ""), g["alias"], g["subject"],
          g["metric"], g["candidate"], g["champion"], g["dataset"], g["actor"]]
         for g in card["gates"]],
    )  # fmt: skip
    lines += ["## Approvals", ""]
    lines += _table(
        ["at", "event", "by", "details"],
        [[a["at"], a["action"], a["actor"], a["payload"]] for a in card["approvals"]],
    )
    lines += ["## Deployments", ""]
    lines += _table(
        ["at", "endpoint", "target", "status", "bundle sha256", "by"],
        [[d["at"], d["endpoint"], d["target"], d["status"], d["bundle_sha256"], d["by"]]
         for d in card["deployments"]],
    )  # fmt: skip
    since = card["drift_since"]
    lines += [f"## Drift checks{' since ' + since if since else ''}", ""]
    lines += _table(
        ["at", "verdict", "share drifted", "drifted columns", "prediction drift"],
        [[r["at"], r["verdict"], r["share_drifted"], r["drifted_columns"], r["prediction_drift"]]
         for r in card["drift"]],
    )  # fmt: skip
    lines += ["## Changes (alias moves)", ""]
    lines += _table(
        ["at", "alias", "from", "to", "why", "by"],
        [[c["at"], c["alias"], c["from"], c["to"], c["why"], c["actor"]]
         for c in card["changes"]],
    )  # fmt: skip
    gen = card["generated"]
    lines += [
        f"Generated {gen['at']} from the registry and the audit trail up to event "
        f"{gen['audit_head']['seq']} ({gen['audit_head']['hash']}).",
    ]
    return "\n".join(lines) + "\n"


def card_html(card: dict[str, Any]) -> str:
    """The card as a stand-alone HTML page (the Markdown's content, tables as tables)."""
    out = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>Model card {html.escape(card['model']['ref'])}</title>",
        "<style>body{font-family:sans-serif;max-width:70em;margin:2em auto}table{border-collapse:"
        "collapse}td,th{border:1px solid #ccc;padding:2px 6px;font-size:90%}</style></head><body>",
    ]
    rows: list[str] = []
    for line in card_markdown(card).splitlines():
        if line.startswith("|"):
            if line.startswith("| ---") or line.startswith("|---"):
                continue
            cells = [c.strip().replace("\\|", "|") for c in line.strip("|").split(" | ")]
            tag = "th" if not rows else "td"
            rows.append("<tr>" + "".join(f"<{tag}>{html.escape(c)}</{tag}>" for c in cells))
            continue
        if rows:
            out.append("<table>" + "</tr>".join(rows) + "</tr></table>")
            rows = []
        if line.startswith("## "):
            out.append(f"<h2>{html.escape(line[3:])}</h2>")
        elif line.startswith("# "):
            out.append(f"<h1>{html.escape(line[2:])}</h1>")
        elif line.startswith("- "):
            out.append(f"<p>{html.escape(line[2:])}</p>")
        elif line:
            out.append(f"<p>{html.escape(line)}</p>")
    if rows:
        out.append("<table>" + "</tr>".join(rows) + "</tr></table>")
    out.append("</body></html>")
    return "\n".join(out) + "\n"
