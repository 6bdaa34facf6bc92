"""``modelcycle predictions ...``: the scoring server's prediction log."""

from __future__ import annotations

import typer

from modelcycle.interfaces.cli._context import console, open_workspace

app = typer.Typer(help="The prediction log of the scoring servers.", no_args_is_help=True)


@app.command("ingest-spill")
def ingest_spill() -> None:
    """Move what a server spilled to .modelcycle/spill/ (database or object store down) to the
    prediction log's sink ([scoring] log_sink)."""
    # Imported here: the scoring stack costs a second every other command skips.
    from modelcycle.scoring.log_sinks import open_log_sink

    with open_workspace() as ws:
        settings = ws.settings
        spill = settings.local_dir("spill")  # where `modelcycle serve` spills
        sink = open_log_sink(
            settings.config, ws.metadata, spill, artifacts_url=settings.artifacts_url
        )
        done = sink.ingest_spill()
    console.print(
        f"Ingested {done.rows} row(s) from {done.files} spill file(s)"
        + (f"; {done.busy_files} still open by a running server" if done.busy_files else "")
        + (f"; {done.bad_lines} torn line(s) skipped" if done.bad_lines else ""),
        highlight=False,
    )
