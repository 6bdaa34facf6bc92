"""``modelcycle data ...``: versioned data sets, their schemas and profiles."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.markup import escape
from rich.table import Table

from modelcycle.audit.chain import canonical_json
from modelcycle.errors import InvalidInput
from modelcycle.interfaces.cli._context import console, open_workspace

app = typer.Typer(
    help="Data sets: versions by content hash, schema, profile.", no_args_is_help=True
)


@app.command("add")
def add(
    name: str = typer.Argument(..., help="Data set name."),
    source: str = typer.Argument(
        ..., help="CSV, Parquet or JSON lines file, a folder of Parquet parts, or a quoted glob."
    ),
    description: str | None = typer.Option(None, "--description", "-d", help="What it holds."),
) -> None:
    """Store a file as the next version of NAME (nothing new if the content is already there)."""
    with open_workspace() as ws:
        result = ws.datasets.ingest(name, source, description=description)
    v = result.version
    if result.created:
        console.print(
            f"Added [bold]{escape(v.ref)}[/]: {v.num_rows} rows, {len(v.schema)} columns, "
            f"sha256 {v.sha256[:16]}"
        )
    else:
        console.print(
            f"[yellow]{escape(v.ref)} already exists[/] with this content "
            f"(sha256 {v.sha256[:16]}); nothing stored"
        )


@app.command("list")
def list_(name: str | None = typer.Argument(None, help="Only this data set.")) -> None:
    """List data set versions."""
    with open_workspace() as ws:
        versions = ws.datasets.list(name)
    table = Table("data set", "rows", "columns", "size", "sha256", "created (UTC)", "by", "source")
    for v in versions:
        table.add_row(
            escape(v.ref),
            str(v.num_rows),
            str(len(v.schema)),
            str(v.size_bytes),
            v.sha256[:12],
            v.created_at[:19].replace("T", " "),
            escape(v.created_by),
            escape(v.source),
        )
    console.print(table)
    console.print(f"{len(versions)} version(s)")


@app.command("show")
def show(
    ref: str = typer.Argument(..., help="NAME, NAME@VERSION or NAME@latest."),
    as_json: bool = typer.Option(False, "--json", help="The whole record as JSON."),
) -> None:
    """Show a version's schema and per-column profile."""
    with open_workspace() as ws:
        v = ws.datasets.version(ref)
    if as_json:
        typer.echo(canonical_json(v.as_dict()))
        return
    console.print(f"[bold]{escape(v.ref)}[/]  {v.num_rows} rows  {v.size_bytes} bytes")
    console.print(f"sha256 {v.sha256}  created {v.created_at} by {escape(v.created_by)}")
    console.print(f"source {escape(v.source)}")
    if v.description:
        console.print(escape(v.description))
    columns = v.profile["columns"]
    # "missing": nulls (a blank CSV field is one), plus NaN/inf for numeric columns.
    numeric = Table(
        "column", "type", "missing", "mean", "std", "min", "p50", "max", title="numeric"
    )
    categorical = Table("column", "type", "missing", "distinct", "top values", title="categorical")
    other = Table("column", "type", "missing", "count", title="other")
    for col in v.schema:
        p = columns[col["name"]]
        name = escape(col["name"])
        if p["kind"] == "numeric":
            q = p.get("quantiles") or {}
            numeric.add_row(
                name, col["type"], _missing(p), _num(p["mean"]), _num(p["std"]),
                _num(p["min"]), _num(q.get("p50")), _num(p["max"]),
            )  # fmt: skip
        elif p["kind"] == "categorical":
            top = ", ".join(f"{escape(str(t['value']))} ({t['count']})" for t in p["top"][:5])
            distinct = str(p["cardinality"]) + ("" if p["cardinality_exact"] else "+")
            categorical.add_row(name, col["type"], _missing(p), distinct, top)
        else:
            other.add_row(name, col["type"], _missing(p), str(p["count"]))
    for table in (numeric, categorical, other):
        if table.row_count:
            console.print(table)


@app.command("diff")
def diff(
    ref_a: str = typer.Argument(..., help="NAME@VERSION to compare from."),
    ref_b: str = typer.Argument(..., help="NAME@VERSION to compare to."),
    as_json: bool = typer.Option(False, "--json", help="The comparison as JSON."),
) -> None:
    """Schema changes and per-column distribution shift between two versions."""
    with open_workspace() as ws:
        result = ws.datasets.diff(ref_a, ref_b)
    if as_json:
        typer.echo(canonical_json(result.as_dict()))
        return
    rows_a, rows_b = result.num_rows
    same = " (same content)" if result.same_content else ""
    console.print(f"{escape(result.a)} -> {escape(result.b)}: rows {rows_a} -> {rows_b}{same}")
    for col in result.added:
        console.print(f"  [green]+ {escape(col.name)}[/] {col.type}")
    for col in result.removed:
        console.print(f"  [red]- {escape(col.name)}[/] {col.type}")
    for change in result.type_changed:
        console.print(f"  [yellow]~ {escape(change.name)}[/] {change.a} -> {change.b}")
    table = Table("column", "kind", "PSI", "largest changes")
    for shift in result.columns:
        shown = [
            f"{escape(k)}: {_num(c['a'])} -> {_num(c['b'])}"
            for k, c in list(shift.changes.items())[:4]
        ]
        table.add_row(escape(shift.name), shift.kind, _num(shift.psi), "; ".join(shown))
    console.print(table)


@app.command("sample")
def sample(
    kind: str = typer.Argument(..., help="Which sample: credit."),
    out: Path = typer.Argument(..., help="File to write: .csv or .parquet."),
    rows: int = typer.Option(10_000, "--rows", "-n", help="Number of rows."),
    seed: int = typer.Option(0, "--seed", help="Random seed: the same seed, the same data."),
    drift: float = typer.Option(0.0, "--drift", help="Shift the distributions, 0 to 1."),
    concept: float = typer.Option(
        0.0, "--concept", help="Change how the target depends on the features, 0 to 1."
    ),
) -> None:
    """Write a generated sample data set (no download) to a file."""
    import pyarrow.csv as pa_csv
    import pyarrow.parquet as pq

    from modelcycle.datasets import SAMPLES

    make = SAMPLES.get(kind)
    if make is None:
        raise InvalidInput(
            f"{kind!r} is not a sample; expected one of {sorted(SAMPLES)}", field="kind"
        )
    suffix = out.suffix.lower()
    if suffix not in (".csv", ".parquet"):
        raise InvalidInput(f"{out.name}: expected a .csv or .parquet file name", field="out")
    table = make(rows, seed=seed, drift=drift, concept=concept)
    out.parent.mkdir(parents=True, exist_ok=True)
    if suffix == ".csv":
        pa_csv.write_csv(table, out)
    else:
        pq.write_table(table, out)
    console.print(f"Wrote {table.num_rows} rows of {escape(kind)} to {escape(str(out))}")


def _missing(profile: dict[str, Any]) -> str:
    """Null count, and the NaN/inf values of a numeric column beside it when there are any."""
    text = str(profile["nulls"])
    non_finite = profile.get("non_finite") or 0
    return f"{text} (+{non_finite} NaN/inf)" if non_finite else text


def _num(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.6g}"
    return escape(str(value))
