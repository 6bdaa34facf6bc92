"""``modelcycle monitor ...``: drift between a reference and current data."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import typer
from rich.markup import escape
from rich.table import Table

from modelcycle.errors import InvalidInput, ModelcycleError
from modelcycle.interfaces.cli._context import console, open_workspace
from modelcycle.settings import load_settings

if TYPE_CHECKING:
    import pyarrow as pa

    from modelcycle.monitoring import DriftReport

app = typer.Typer(help="Production monitoring: data drift.", no_args_is_help=True)

_DATA_PREFIX = "data:"


@app.command("drift")
def drift(
    reference: str = typer.Option(
        ..., "--reference", "-r", help="A file (CSV, Parquet, JSON lines) or data:NAME[@VERSION]."
    ),
    current: str = typer.Option(
        ..., "--current", "-c", help="A file (CSV, Parquet, JSON lines) or data:NAME[@VERSION]."
    ),
    columns: str | None = typer.Option(None, "--columns", help="Comma-separated columns."),
    method: str | None = typer.Option(None, "--method", help="One test for every column."),
    threshold: float | None = typer.Option(
        None, "--threshold", help="Threshold for --method (default: the test's own)."
    ),
    drift_share: float | None = typer.Option(
        None, "--drift-share", help="Share of drifted columns that makes the data set drifted."
    ),
    robust: bool = typer.Option(False, "--robust", help="Effect intervals + FDR correction."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
    fail_on_drift: bool = typer.Option(
        False, "--fail-on-drift", help="Exit 1 when the data set drifted."
    ),
) -> None:
    """Compare current data with a reference, column by column."""
    # Imported here: numpy, scipy and pyarrow cost a second, and only this command needs them.
    from modelcycle.monitoring import DriftPolicy, compute_drift

    if threshold is not None and method is None:
        raise InvalidInput("needs --method: which test's threshold to set", field="--threshold")
    policy = DriftPolicy.from_config(
        _drift_config(),
        method=method,
        thresholds={method: threshold} if method and threshold is not None else None,
        drift_share=drift_share,
        robust=robust or None,
    )
    ref_table = _load(reference, "--reference")
    cur_table = _load(current, "--current")
    report = compute_drift(
        ref_table,
        cur_table,
        columns=[c.strip() for c in columns.split(",") if c.strip()] if columns else None,
        policy=policy,
        reference_name=reference,
        current_name=current,
    )
    if as_json:
        typer.echo(json.dumps(report.as_dict(), indent=2))
    else:
        _print(report)
    if fail_on_drift and report.dataset_drift:
        raise typer.Exit(1)


def _drift_config() -> dict[str, Any]:
    """``[monitoring.drift]`` from the workspace's modelcycle.toml, when inside a workspace."""
    try:
        config = load_settings().config
    except ModelcycleError:
        return {}
    section = config.get("monitoring", {}).get("drift", {})
    if not isinstance(section, dict):
        raise InvalidInput("must be a table", field="modelcycle.toml [monitoring.drift]")
    return section


def _load(source: str, field: str) -> pa.Table:
    from modelcycle.datasets import parse_dataset_ref, read_table

    if source.startswith(_DATA_PREFIX):
        ref = parse_dataset_ref(source[len(_DATA_PREFIX) :], field=field)
        with open_workspace() as ws:
            return ws.datasets.get(ref.name, ref.version)
    return read_table(source, field=field)


def _print(report: DriftReport) -> None:
    table = Table(
        "column", "type", "method", "statistic", "p-value", "threshold", "drift", "missing ref/cur"
    )
    for col in sorted(report.columns, key=lambda c: c.score, reverse=True):
        table.add_row(
            escape(col.name),
            col.type,
            col.method,
            "-" if col.statistic is None else f"{col.statistic:.4g}",
            "-" if col.p_value is None else f"{col.p_value:.3g}",
            f"{col.threshold:g}",
            "[bold red]DRIFT[/]"
            if col.drifted
            else ("not enough data" if col.status != "ok" else "[green]ok[/]"),
            f"{col.missing_share_reference:.1%} / {col.missing_share_current:.1%}"
            + (" [red]changed[/]" if col.missing_drifted else ""),
        )
    console.print(table)
    verdict = "[bold red]DRIFTED[/]" if report.dataset_drift else "[green]no data set drift[/]"
    console.print(
        f"{verdict}: {report.number_of_drifted_columns} of {report.number_of_columns} column(s) "
        f"drifted (share {report.share_drifted:.2f}, threshold {report.drift_share:g}); "
        f"reference {report.reference['rows']} rows, current {report.current['rows']} rows"
        + ("; robust mode" if report.robust else "")
    )
