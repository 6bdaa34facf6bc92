"""``modelcycle models card`` and ``modelcycle audit pack``: documents for reviewers."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.markup import escape

from modelcycle.errors import InvalidInput
from modelcycle.interfaces.cli._context import console, open_workspace


def card(
    ref: str = typer.Argument(..., help="NAME/VERSION or NAME@ALIAS."),
    fmt: str = typer.Option("md", "--format", help="md, html or json."),
    out: Path | None = typer.Option(None, "--out", help="Write to this file instead of stdout."),
    slice_: list[str] = typer.Option(
        [], "--slice", help="A categorical holdout column to break metrics down by (repeatable)."
    ),
    trust: bool = typer.Option(False, "--trust", help="Load a model that needs trust (pickle)."),
) -> None:
    """The model card of a version: every figure computed from the registry and the audit log."""
    from modelcycle.evidence import build_card, card_html, card_markdown

    if fmt not in ("md", "html", "json"):
        raise InvalidInput(f"must be md, html or json, got {fmt!r}", field="--format")
    with open_workspace() as ws:
        data = build_card(ws, ref, slices=tuple(slice_), trust=trust)
    text = (
        card_markdown(data)
        if fmt == "md"
        else card_html(data)
        if fmt == "html"
        else json.dumps(data, indent=2, sort_keys=True) + "\n"
    )
    if out is None:
        typer.echo(text, nl=False)
        return
    out.write_text(text, encoding="utf-8")
    console.print(f"Wrote the model card of {escape(ref)} to {escape(str(out))}", highlight=False)


def pack(
    model: str = typer.Option(..., "--model", help="The model's name."),
    out: Path = typer.Option(..., "--out", help="The zip file to write."),
    since: str | None = typer.Option(None, "--since", help="30d, 2h, or an ISO 8601 time."),
    sign: bool = typer.Option(False, "--sign", help="Sign the export and the pack's manifest."),
    key: str | None = typer.Option(None, "--key", help="With --sign: the key's name."),
) -> None:
    """Write an evidence pack: signed audit export, model cards, drift, promotions, bundles."""
    from modelcycle.evidence import build_pack

    with open_workspace() as ws:
        manifest = build_pack(ws, model, out, since=since, sign=sign, key=key)
    console.print(
        f"Wrote {escape(str(out))}: {len(manifest['members'])} member(s) about "
        f"{escape(model)}, chain head {manifest['head']['seq']}"
        + (
            f"\nverify: modelcycle audit verify --pack {escape(str(out))} --public-key KEY.pub"
            if sign
            else " (unsigned: `audit verify --pack` needs --sign)"
        ),
        highlight=False,
    )
