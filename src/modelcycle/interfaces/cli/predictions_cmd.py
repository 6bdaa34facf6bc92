"""``modelcycle predictions ...``: the scoring server's prediction log."""

from __future__ import annotations

import typer

from modelcycle.interfaces.cli._context import console, open_workspace
from modelcycle.settings import STATE_DIR

app = typer.Typer(help="The prediction log of the scoring servers.", no_args_is_help=True)


@app.command("ingest-spill")
def ingest_spill() -> None:
    """Move rows a server spilled to .modelcycle/spill/ (database down) into the database."""
    # Imported here: the scoring stack costs a second every other command skips.
    from modelcycle.scoring import ingest_spill as ingest

    with open_workspace() as ws:
        done = ingest(ws.metadata, ws.root / STATE_DIR / "spill")
    console.print(
        f"Ingested {done.rows} row(s) from {done.files} spill file(s)"
        + (f"; {done.busy_files} still open by a running server" if done.busy_files else "")
        + (f"; {done.bad_lines} torn line(s) skipped" if done.bad_lines else ""),
        highlight=False,
    )
