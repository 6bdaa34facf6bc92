"""``modelcycle notify test NAME`` and ``modelcycle notify log``."""

from __future__ import annotations

import json

import typer
from rich.markup import escape
from rich.table import Table

from modelcycle.interfaces.cli._context import console, open_workspace

app = typer.Typer(
    help="Notifications from [[notify]] in modelcycle.toml: send a test, list deliveries.",
    no_args_is_help=True,
)


@app.command("test")
def send_test(
    name: str = typer.Argument(..., help="The [[notify]] entry to send a sample to."),
) -> None:
    """Send a sample notification now (one attempt, not queued); exit 6 if it is not taken."""
    with open_workspace() as ws:
        message, receipt = ws.automations.notifications.send_test(name)
    console.print(
        f"sent {message.event} to {escape(name)}: {escape(receipt)} (delivery {message.id})"
    )


@app.command("log")
def log(
    state: str | None = typer.Option(None, "--state", help="Only deliveries in this state."),
    limit: int = typer.Option(50, "--limit", "-n", min=1, help="Newest N deliveries."),
    as_json: bool = typer.Option(False, "--json", help="JSON lines."),
) -> None:
    """Deliveries, newest first: entry, event, delivery id, state, attempts, last error."""
    from modelcycle.automations.notifications import describe

    with open_workspace() as ws:
        rows = describe(ws.automations.notifications.log(state=state, limit=limit))
    if as_json:
        for row in rows:
            typer.echo(json.dumps(row))
        return
    table = Table("job", "notify", "event", "delivery", "state", "attempts", "last error")
    for r in rows:
        table.add_row(
            r["job"], escape(str(r["notifier"])), escape(str(r["event"])),
            str(r["delivery"])[:12], r["state"], f"{r['attempts']}/{r['max_attempts']}",
            escape((r["error"] or "-")[:80]),
        )  # fmt: skip
    console.print(table)
