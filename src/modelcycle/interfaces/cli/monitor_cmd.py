"""``modelcycle monitor ...``: drift (files, data sets, a model's traffic), history, performance."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import typer
from rich.markup import escape
from rich.table import Table

from modelcycle.errors import InvalidInput, NotFound
from modelcycle.interfaces.cli._context import console, open_workspace
from modelcycle.settings import Settings, load_settings, parse_section
from modelcycle.workspace import Workspace

if TYPE_CHECKING:
    import pyarrow as pa

    from modelcycle.monitoring import DriftReport

app = typer.Typer(
    help="Production monitoring: data drift, history, performance.", no_args_is_help=True
)

_DATA_PREFIX = "data:"


@app.command("drift")
def drift(
    reference: str | None = typer.Option(
        None, "--reference", "-r", help="A file (CSV, Parquet, JSON lines) or data:NAME[@VERSION]."
    ),
    current: str | None = typer.Option(
        None, "--current", "-c", help="A file (CSV, Parquet, JSON lines) or data:NAME[@VERSION]."
    ),
    model: str | None = typer.Option(
        None,
        "--model",
        "-m",
        help="NAME[@ALIAS|/VERSION]: its prediction log vs its training data.",
    ),
    window: str | None = typer.Option(
        None, "--window", help="With --model: e.g. 1h, 1d (default 1d)."
    ),
    since: str | None = typer.Option(
        None, "--since", help="With --model: window start (ISO or 2h)."
    ),
    until: str | None = typer.Option(None, "--until", help="With --model: window end."),
    columns: str | None = typer.Option(None, "--columns", help="Comma-separated columns."),
    method: str | None = typer.Option(None, "--method", help="One test for every column."),
    threshold: float | None = typer.Option(
        None, "--threshold", help="Threshold for --method (default: the test's own)."
    ),
    drift_share: float | None = typer.Option(
        None, "--drift-share", help="Share of drifted columns that makes the data set drifted."
    ),
    robust: bool = typer.Option(False, "--robust", help="Effect intervals + FDR correction."),
    report_path: str | None = typer.Option(
        None, "--report", help="Write an HTML report (or JSON, for a .json name)."
    ),
    save: bool = typer.Option(
        False, "--save", help="Store the result in the workspace (always done with --model)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
    fail_on_drift: bool = typer.Option(
        False, "--fail-on-drift", help="Exit 1 when the data set drifted."
    ),
) -> None:
    """Compare current data with a reference, column by column."""
    # Imported here: numpy, scipy and pyarrow cost a second, and only this command needs them.
    from modelcycle.monitoring import DriftCheck, DriftPolicy, compute_drift, write_report

    if threshold is not None and method is None:
        raise InvalidInput("needs --method: which test's threshold to set", field="--threshold")
    if model is None and (reference is None or current is None):
        raise InvalidInput(
            "needs --reference and --current, or --model",
            field="--current" if reference else "--reference",
        )
    if model is None and (window or since or until):
        raise InvalidInput("--window/--since/--until need --model", field="--window")
    settings = _settings_here()
    policy = DriftPolicy.from_config(
        _drift_config(settings),
        method=method,
        thresholds={method: threshold} if method and threshold is not None else None,
        drift_share=drift_share,
        robust=robust or None,
    )
    names = [c.strip() for c in columns.split(",") if c.strip()] if columns else None
    if model is not None or save:
        with _workspace(settings) as ws:
            check = ws.monitoring.drift(
                reference,
                current,
                model=model,
                window=window,
                since=since,
                until=until,
                columns=names,
                policy=policy,
                report=report_path,
            )
    else:
        ref_table = _load(str(reference), "--reference", settings)
        cur_table = _load(str(current), "--current", settings)
        result = compute_drift(
            ref_table,
            cur_table,
            columns=names,
            policy=policy,
            reference_name=str(reference),
            current_name=str(current),
        )
        check = DriftCheck(report=result)
        if report_path:
            write_report(report_path, check, ref_table, cur_table)
    if as_json:
        typer.echo(
            json.dumps(
                check.as_dict() if check.model or check.id else check.report.as_dict(), indent=2
            )
        )
    else:
        _print(check.report)
        if check.prediction is not None:
            p = check.prediction
            state = (
                "not enough data"
                if p.status != "ok"
                else ("[bold red]DRIFTED[/]" if p.dataset_drift else "[green]no drift[/]")
            )
            console.print(f"prediction drift ({escape(p.reference['name'])}): {state}")
        for note in check.notes:
            console.print(f"[dim]{escape(note)}[/]")
        if check.id is not None:
            console.print(
                f"stored as check #{check.id}"
                + ("; [bold red]drift.detected[/] recorded" if check.detected else "")
            )
        if report_path:
            console.print(f"report: {escape(report_path)}")
    if fail_on_drift and check.report.dataset_drift:
        raise typer.Exit(1)


@app.command("history")
def history(
    model: str | None = typer.Option(None, "--model", "-m", help="Only this model's checks."),
    since: str | None = typer.Option(None, "--since", help="e.g. 7d or an ISO time."),
    limit: int = typer.Option(50, "--limit", help="The last N checks."),
    as_json: bool = typer.Option(False, "--json", help="Print as JSON."),
) -> None:
    """Stored drift checks over time, oldest first."""
    with open_workspace() as ws:
        records = ws.monitoring.history(model, since=since, limit=limit)
    if as_json:
        typer.echo(json.dumps([r.as_dict() for r in records], indent=2))
        return
    table = Table("#", "at", "model", "window", "drift", "share", "drifted columns", "prediction")
    for r in records:
        window = (
            f"{r.window_start or '...'} .. {r.window_end or ''}"
            if r.window_start or r.window_end
            else "-"
        )
        table.add_row(
            str(r.id),
            r.at[:19].replace("T", " "),
            escape(f"{r.model_name}/{r.model_version}" if r.model_name else r.current),
            escape(window),
            ("not enough data" if r.status != "ok" else _history_verdict(r.dataset_drift))
            + (" (robust)" if r.robust else ""),
            f"{r.share_drifted:.2f}",
            # Robust checks: the figures that decided each drifted column, not just its name.
            escape(
                "\n".join(f"{d['name']}: {d['explanation']}" for d in r.drifted_details)
                if r.robust
                else ", ".join(r.drifted_columns)
            )
            or "-",
            "-"
            if r.prediction_drift is None
            else ("[red]drift[/]" if r.prediction_drift else "ok"),
        )
    console.print(table if records else "no stored drift checks")


@app.command("performance")
def performance(
    model: str = typer.Option(..., "--model", "-m", help="NAME[@ALIAS|/VERSION]."),
    window: str = typer.Option("1d", "--window", help="Window length, e.g. 1h, 1d."),
    since: str | None = typer.Option(None, "--since", help="Windows from this time (ISO or 7d)."),
    until: str | None = typer.Option(None, "--until", help="End of the last window."),
    degradation: float | None = typer.Option(
        None, "--degradation", help="Relative drop vs the holdout metric that alarms (0.05)."
    ),
    min_rows: int | None = typer.Option(None, "--min-rows", help="Labelled rows a window needs."),
    as_json: bool = typer.Option(False, "--json", help="Print as JSON."),
) -> None:
    """Metrics from ground truth per window, against the holdout metrics."""
    with open_workspace() as ws:
        result = ws.monitoring.performance(
            model,
            window=window,
            since=since,
            until=until,
            degradation=degradation,
            min_rows=min_rows,
        )
    if as_json:
        typer.echo(json.dumps(result.as_dict(), indent=2))
        return
    names = sorted({k for w in result.windows for k in (*w.metrics, *w.baseline)})
    estimated = any(w.estimated for w in result.windows)
    extra = ["est. accuracy (no labels)"] if estimated else []
    table = Table("window", "predictions", "labelled", *names, *extra, "verdict")
    for w in result.windows:
        cells = []
        for k in names:
            value = w.metrics.get(k)
            base = w.baseline.get(k)
            text = "-" if value is None else f"{value:.3f}"
            if base is not None:
                text += f" ({base:.3f})"
            cells.append(f"[red]{text}[/]" if k in w.degraded else text)
        verdict = (
            "not enough labels"
            if w.status != "ok"
            else ("[bold red]DEGRADED[/]" if w.degraded else "[green]ok[/]")
        )
        if estimated:
            est = w.estimated.get("accuracy")
            cells.append("-" if est is None else f"{est:.3f}")
        table.add_row(
            f"{w.start[:16]} .. {w.end[:16]}", str(w.predictions), str(w.labelled), *cells, verdict
        )
    console.print(table)
    console.print(
        f"{escape(result.model)}: metric (holdout metric); degraded = worse by more than "
        f"{result.degradation:.0%}"
        + ("; [bold red]performance.degraded[/] recorded" if result.event_recorded else "")
    )


@app.command("feedback")
def feedback(
    file: str = typer.Argument(..., help="CSV, Parquet or JSON lines: request_id, label[, row]."),
) -> None:
    """Store ground-truth labels from a file, joined to predictions by request id."""
    from modelcycle.datasets import read_table
    from modelcycle.scoring import parse_feedback, store_feedback

    rows = read_table(file, field="file").to_pylist()
    with open_workspace() as ws:
        stored = matched = 0
        for start in range(0, len(rows), _FEEDBACK_BATCH):
            chunk = [
                {k: v for k, v in r.items() if v is not None}
                for r in rows[start:][:_FEEDBACK_BATCH]
            ]
            result = store_feedback(ws.metadata, parse_feedback({"feedback": chunk}))
            stored += result.stored
            matched += result.matched
    console.print(
        f"Stored {stored} label(s): {matched} matched a logged prediction, "
        f"{stored - matched} did not (yet)"
    )


_FEEDBACK_BATCH = 10_000


def _settings_here() -> Settings | None:
    """The workspace's settings when inside one (read once for the whole command), else None:
    comparing two files needs no workspace."""
    try:
        return load_settings()
    except NotFound:
        return None


def _workspace(settings: Settings | None) -> Workspace:
    return Workspace(settings=settings) if settings is not None else open_workspace()


def _drift_config(settings: Settings | None) -> dict[str, Any]:
    """``[monitoring.drift]`` from the workspace's modelcycle.toml, when inside a workspace."""
    from modelcycle.monitoring.config import MonitoringSection

    if settings is None:
        return {}
    return parse_section(settings.config, "monitoring", MonitoringSection).drift


def _load(source: str, field: str, settings: Settings | None = None) -> pa.Table:
    from modelcycle.datasets import parse_dataset_ref, read_table

    if source.startswith(_DATA_PREFIX):
        ref = parse_dataset_ref(source[len(_DATA_PREFIX) :], field=field)
        with _workspace(settings) as ws:
            return ws.datasets.get(ref.name, ref.version)
    return read_table(source, field=field)


def _print(report: DriftReport) -> None:
    if report.robust:
        _print_robust(report)
    else:
        table = Table(
            "column",
            "type",
            "method",
            "statistic",
            "p-value",
            "threshold",
            "drift",
            "missing ref/cur",
        )
        for col in sorted(report.columns, key=lambda c: c.score, reverse=True):
            table.add_row(
                escape(col.name),
                col.type,
                col.method,
                "-" if col.statistic is None else f"{col.statistic:.4g}",
                "-" if col.p_value is None else f"{col.p_value:.3g}",
                f"{col.threshold:g}",
                _verdict(col),
                _missing(col),
            )
        console.print(table)
    verdict = "[bold red]DRIFTED[/]" if report.dataset_drift else "[green]no data set drift[/]"
    console.print(
        f"{verdict}: {report.number_of_drifted_columns} of {report.number_of_columns} column(s) "
        f"drifted (share {report.share_drifted:.2f}, threshold {report.drift_share:g}); "
        f"reference {report.reference['rows']} rows, current {report.current['rows']} rows"
        + ("; robust mode" if report.robust else "")
    )


def _print_robust(report: DriftReport) -> None:
    """Robust mode: the figures the verdicts came from, not the default tests' distances."""
    table = Table(
        "column",
        "type",
        "test",
        "adjusted p",
        "effect",
        "90% interval",
        "effect threshold",
        "drift",
        "missing ref/cur",
    )
    alpha = None
    for col in sorted(report.columns, key=lambda c: c.score, reverse=True):
        r = col.robust
        if r is None:  # not tested
            table.add_row(
                escape(col.name), col.type, "-", "-", "-", "-", "-", _verdict(col), _missing(col)
            )
            continue
        alpha = r["alpha"]
        low, high = r["effect_interval"]
        table.add_row(
            escape(col.name),
            col.type,
            r["test"],
            f"{r['p_adjusted']:.3g}",
            f"{r['effect']} {r['effect_size']:.4g}",
            f"[{low:.4g}, {high:.4g}]",
            f"{r['effect_threshold']:g}",
            _verdict(col),
            _missing(col),
        )
    console.print(table)
    if alpha is not None:
        console.print(
            f"robust rule: a column drifts when its Benjamini-Hochberg adjusted p-value is below "
            f"{alpha:g} and the lower end of its effect's 90% bootstrap interval reaches the "
            "effect threshold",
            highlight=False,
        )


def _history_verdict(drifted: bool) -> str:
    return "[bold red]DRIFT[/]" if drifted else "[green]ok[/]"


def _verdict(col: Any) -> str:
    if col.drifted:
        return "[bold red]DRIFT[/]"
    return "not enough data" if col.status != "ok" else "[green]ok[/]"


def _missing(col: Any) -> str:
    return f"{col.missing_share_reference:.1%} / {col.missing_share_current:.1%}" + (
        " [red]changed[/]" if col.missing_drifted else ""
    )
