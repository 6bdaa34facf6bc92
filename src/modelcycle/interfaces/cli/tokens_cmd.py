"""``modelcycle tokens ...``: API tokens for the HTTP servers (stored hashed, audited)."""

from __future__ import annotations

import typer
from rich.markup import escape
from rich.table import Table

from modelcycle.interfaces.cli._context import console, open_workspace

app = typer.Typer(help="API tokens: create, list, revoke.", no_args_is_help=True)


@app.command("create")
def create(
    name: str = typer.Argument(..., help="What the token is for (e.g. the client's name)."),
    role: str = typer.Option(
        ..., "--role", help="reader < scorer < operator < admin (each may do what lower ones may)."
    ),
) -> None:
    """Create a token and print it once (only its hash is stored)."""
    from modelcycle.store.tokens import TokenStore

    with open_workspace() as ws:
        token, secret = TokenStore(ws.metadata, ws.actor).create(name, role)
    console.print(
        f"Created token {token.token_id} ({escape(token.name)}, role {token.role}). "
        "Copy it now: it is not shown again.",
        highlight=False,
    )
    typer.echo(secret)


@app.command("list")
def list_tokens(
    active: bool = typer.Option(False, "--active", help="Leave out revoked tokens."),
) -> None:
    """List tokens (never their secrets)."""
    from modelcycle.store.tokens import TokenStore

    with open_workspace() as ws:
        tokens = TokenStore(ws.metadata, ws.actor).list(include_revoked=not active)
    table = Table("id", "name", "role", "created", "by", "revoked")
    for t in tokens:
        table.add_row(
            t.token_id,
            escape(t.name),
            t.role,
            t.created_at,
            escape(t.created_by),
            t.revoked_at or "",
        )
    console.print(table)


@app.command("revoke")
def revoke(token_id: str = typer.Argument(..., help="The token's id (see `tokens list`).")) -> None:
    """Revoke a token; servers refuse it from their next start or POST /admin/reload."""
    from modelcycle.store.tokens import TokenStore

    with open_workspace() as ws:
        token = TokenStore(ws.metadata, ws.actor).revoke(token_id)
    console.print(f"Revoked token {token.token_id} ({escape(token.name)}).", highlight=False)
