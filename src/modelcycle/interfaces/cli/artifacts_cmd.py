"""``modelcycle artifacts ...``: the content-addressed blob store."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.markup import escape
from rich.table import Table

from modelcycle.errors import IntegrityError
from modelcycle.interfaces.cli._context import console, err_console, open_workspace

app = typer.Typer(help="Immutable blobs named by sha256.", no_args_is_help=True)


@app.command("put")
def put(
    file: Path = typer.Argument(..., help="File to store."),
    label: str | None = typer.Option(None, "--label", help="A name to remember it by."),
) -> None:
    """Store a file; print its sha256."""
    with open_workspace() as ws:
        ref = ws.store_artifact(file, label=label)
    console.print(f"{ref.sha256}  {ref.size} bytes")


@app.command("get")
def get(
    sha256: str = typer.Argument(..., help="The blob's sha256."),
    out: Path = typer.Option(..., "--out", "-o", help="Where to write it."),
) -> None:
    """Copy a blob out of the store, verified against its hash."""
    with open_workspace() as ws:
        ws.artifacts.get_file(sha256, out)
    console.print(f"Wrote {out}")


@app.command("list")
def list_() -> None:
    """List the blobs stored through the workspace."""
    with open_workspace() as ws:
        rows = ws.artifact_index()
    table = Table("sha256", "size", "label", "stored at (UTC)", "by")
    for row in rows:
        table.add_row(
            row["sha256"],
            str(row["size"]),
            escape(row["label"]),
            row["created_at"][:19].replace("T", " "),
            escape(row["created_by"]),
        )
    console.print(table)


@app.command("verify")
def verify(
    sha256: list[str] = typer.Argument(None, help="Blobs to check (default: every blob)."),
) -> None:
    """Re-hash blobs; exit 1 naming every corrupted one."""
    with open_workspace() as ws:
        store = ws.artifacts
        names = sha256 or list(store.list())
        bad = 0
        for name in names:
            try:
                store.verify(name)
            except IntegrityError as exc:
                bad += 1
                err_console.print(f"[bold red]CORRUPT[/] {escape(str(exc))}")
    if bad:
        err_console.print(f"{bad} of {len(names)} blob(s) corrupted")
        raise typer.Exit(1)
    console.print(f"[green]OK[/]: {len(names)} blob(s) verified")
