"""``modelcycle keys ...``: the signing keys for audit exports, bundles and evidence packs."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.markup import escape
from rich.table import Table

from modelcycle.interfaces.cli._context import console, open_workspace

app = typer.Typer(
    help="Signing keys (NIST P-256): create, list, export-public.", no_args_is_help=True
)


@app.command("create")
def create(
    name: str | None = typer.Option(
        None, "--name", help="Key name (default: [signing] key in modelcycle.toml, else default)."
    ),
) -> None:
    """Make a P-256 key pair in .modelcycle/keys (private key mode 0600); audited."""
    with open_workspace() as ws:
        key = ws.keys.create(name)
        public = ws.keys.ring.keys_dir / f"{key.name}.pub"
    console.print(
        f"Created signing key [bold]{escape(key.name)}[/] (P-256), fingerprint {key.fingerprint}; "
        f"public key {escape(str(public))}",
        highlight=False,
    )


@app.command("list")
def list_keys(
    as_json: bool = typer.Option(False, "--json", help="One JSON object per line."),
) -> None:
    """List the keys with their fingerprints (never a private key)."""
    with open_workspace() as ws:
        entries = ws.keys.list()
    if as_json:
        for entry in entries:
            typer.echo(json.dumps(entry.as_dict(), sort_keys=True))
        return
    table = Table("name", "fingerprint (sha256 of the public key PEM)", "private key", "default")
    for entry in entries:
        table.add_row(
            escape(entry.name),
            entry.fingerprint,
            escape(entry.source),
            "yes" if entry.default else "",
        )
    console.print(table)


@app.command("export-public")
def export_public(
    name: str = typer.Argument(..., help="The key's name."),
    out: Path | None = typer.Option(None, "--out", help="Write the PEM here instead of stdout."),
) -> None:
    """Print (or write) the public key in PEM: what verifiers need, nothing secret."""
    with open_workspace() as ws:
        pem = ws.keys.public_pem(name)
    if out is None:
        typer.echo(pem.decode("ascii"), nl=False)
        return
    out.write_bytes(pem)
    console.print(f"Wrote the public key of {escape(name)} to {escape(str(out))}", highlight=False)
