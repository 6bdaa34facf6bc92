"""``modelcycle init`` and ``modelcycle db ...``: create a workspace, migrate its database."""

from __future__ import annotations

from pathlib import Path

import typer

from modelcycle.interfaces.cli._context import console, open_workspace
from modelcycle.store import redact_db_url
from modelcycle.workspace import init_workspace

db_app = typer.Typer(
    help="The metadata database: schema status and migrations.", no_args_is_help=True
)


def init(
    path: Path = typer.Argument(Path("."), help="Folder to make a workspace (created if missing)."),
    db_url: str | None = typer.Option(
        None,
        "--db-url",
        envvar="MODELCYCLE_DB_URL",
        help="Metadata database URL (default: SQLite inside the workspace).",
    ),
) -> None:
    """Create a workspace: .modelcycle/ (database, artifacts), modelcycle.toml, the schema."""
    ws, event = init_workspace(path, db_url=db_url)
    with ws:
        console.print(f"Initialised modelcycle workspace in [bold]{ws.root}[/]")
        console.print(f"  database   {redact_db_url(ws.settings.db_url)}")
        console.print(f"  artifacts  {ws.settings.artifacts_url}")
        console.print(f"  audit      event {event.seq} {event.action} {event.hash[:16]}")


@db_app.command("status")
def status() -> None:
    """Show the database's schema revision against this modelcycle's."""
    with open_workspace() as ws:
        st = ws.schema_status()
        state = "up to date" if st.up_to_date else ("behind" if st.known else "unknown (newer)")
        console.print(f"database  {redact_db_url(ws.settings.db_url)}")
        console.print(f"revision  {st.current or '-'} (this modelcycle: {st.head}): {state}")
        if not st.up_to_date and st.known:
            raise typer.Exit(1)


@db_app.command("upgrade")
def upgrade() -> None:
    """Migrate the workspace's database to this modelcycle's schema."""
    with open_workspace() as ws:
        before = ws.schema_status()
        after = ws.upgrade()
        if before.current == after.current:
            console.print(f"Database already at revision {after.current}; nothing to do.")
        else:
            console.print(f"Upgraded the database from {before.current} to {after.current}.")
