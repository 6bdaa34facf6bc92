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
    from modelcycle.deploy.host_state import deploy_spill_dir
    from modelcycle.scoring.log_sinks import open_log_sink

    rows = files = busy = bad = 0
    with open_workspace() as ws:
        settings = ws.settings
        # Where `modelcycle serve` spills, and where locally deployed servers do (the same
        # folder in a workspace folder; apart in a stateless process's cache).
        for spill in dict.fromkeys([settings.local_dir("spill"), deploy_spill_dir(settings)]):
            sink = open_log_sink(
                settings.config, ws.metadata, spill, artifacts_url=settings.artifacts_url
            )
            done = sink.ingest_spill()
            rows, files = rows + done.rows, files + done.files
            busy, bad = busy + done.busy_files, bad + done.bad_lines
    console.print(
        f"Ingested {rows} row(s) from {files} spill file(s)"
        + (f"; {busy} still open by a running server" if busy else "")
        + (f"; {bad} torn line(s) skipped" if bad else ""),
        highlight=False,
    )
