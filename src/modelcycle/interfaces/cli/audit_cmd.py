"""``modelcycle audit ...``: the tamper-evident log of every change."""

from __future__ import annotations

import getpass
import json
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.markup import escape
from rich.table import Table

from modelcycle.audit import read_export, verify_chain
from modelcycle.audit.chain import canonical_json
from modelcycle.audit.verify import VerifyReport
from modelcycle.errors import InvalidInput, NotFound
from modelcycle.interfaces.cli._context import console, err_console, open_workspace, parse_since
from modelcycle.store import AuditFilter

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ec import EllipticCurvePublicKey

app = typer.Typer(help="The audit trail: list, verify, export, add notes.", no_args_is_help=True)


@app.command("log")
def log(
    subject: str | None = typer.Option(None, "--subject", help="Only events about this subject."),
    action: str | None = typer.Option(None, "--action", help="Only this action, e.g. audit.note."),
    since: str | None = typer.Option(None, "--since", help="30m, 2h, 7d, or an ISO 8601 time."),
    limit: int | None = typer.Option(None, "--limit", "-n", help="Only the newest N events."),
    as_json: bool = typer.Option(False, "--json", help="One JSON object per line."),
) -> None:
    """List audit events, oldest first."""
    where = AuditFilter(
        subject=subject,
        action=action,
        since=parse_since(since) if since else None,
        limit=limit,
    )
    with open_workspace() as ws:
        events = ws.audit.events(where)
        # Listing checks the hashes too: a damaged event is shown as such, never as if sound.
        report = ws.audit.verify()
    bad = {p.seq: p for p in report.problems}
    acked = {p.seq for p in report.acknowledged}
    if as_json:
        for event in events:
            data = event.as_dict()
            data["tampered"] = event.seq in bad
            if event.seq in bad:
                data["tamper"] = {"kind": bad[event.seq].kind, "acknowledged": event.seq in acked}
            typer.echo(canonical_json(data))
        return
    table = Table("seq", "at (UTC)", "actor", "action", "subject", "payload", "hash", "check")
    for event in events:
        mark = ""
        if event.seq in bad:
            word = f"TAMPERED ({bad[event.seq].kind})"
            mark = (
                f"[yellow]{word}, acknowledged[/]" if event.seq in acked else f"[bold red]{word}[/]"
            )
        table.add_row(
            str(event.seq),
            event.at[:19].replace("T", " "),
            escape(event.actor),
            event.action,
            escape(event.subject),
            escape(canonical_json(event.payload)),
            event.hash[:12],
            mark,
        )
    console.print(table)
    console.print(f"{len(events)} event(s)")
    listed = {e.seq for e in events}
    for problem in report.problems:
        if problem.seq not in listed and problem.kind in ("missing", "truncated"):
            state = "acknowledged" if problem.seq in acked else "TAMPERED"
            console.print(f"{state}: {escape(str(problem))}")
    if not report.ok:
        err_console.print(
            f"[bold red]TAMPERED[/]: {escape(str(report.problem))}; changes are refused until "
            "`modelcycle audit acknowledge --note TEXT`"
        )


@app.command("verify")
def verify(
    file: Path | None = typer.Option(
        None, "--file", help="Verify an export file offline instead of the workspace."
    ),
    public_key: Path | None = typer.Option(
        None,
        "--public-key",
        help="With --file: also check the export's signature (FILE.dsse.json) with this PEM "
        "public key, before the chain.",
    ),
    signature: Path | None = typer.Option(
        None, "--signature", help="With --public-key: the DSSE envelope (default FILE.dsse.json)."
    ),
    pack: Path | None = typer.Option(
        None, "--pack", help="Verify an evidence pack (zip) offline, with --public-key."
    ),
) -> None:
    """Recompute the hash chain; exit 1 and name the first altered, inserted or missing event."""
    if pack is not None:
        if public_key is None:
            raise InvalidInput("give the signer's public key with --public-key", field="--pack")
        _verify_pack(pack, public_key)
        return
    if public_key is not None:
        if file is None:
            raise InvalidInput("give the export to check with --file", field="--file")
        _verify_signed(file, public_key, signature)
        return
    if file is not None:
        events, anchors = read_export(file)
        report = verify_chain(events, anchors)
        where = str(file)
    else:
        with open_workspace() as ws:
            report = ws.audit.verify()
            where = "the workspace's audit log"
    _print_report(report, where, workspace=file is None)
    if not report.ok:
        raise typer.Exit(1)


def _public_key(path: Path) -> EllipticCurvePublicKey:
    from modelcycle.audit.keys import load_public_key

    if not path.is_file():
        raise NotFound(f"no public key file {path}")
    return load_public_key(path.read_bytes(), field=str(path))


def _verify_pack(pack: Path, public_key: Path) -> None:
    from modelcycle.evidence import verify_pack

    problem, summary = verify_pack(pack, _public_key(public_key))
    if problem is not None:
        err_console.print(f"[bold red]FAILED[/]: {escape(str(pack))}: {escape(problem)}")
        raise typer.Exit(1)
    console.print(f"[green]OK[/]: {escape(str(pack))}: {escape(summary)}", highlight=False)


def _verify_signed(file: Path, public_key: Path, signature: Path | None) -> None:
    from modelcycle.audit.signed_export import verify_signed_export

    key = _public_key(public_key)
    result = verify_signed_export(file, key, signature=signature)
    if not result.ok:
        err_console.print(f"[bold red]FAILED[/]: {escape(str(file))}: {escape(str(result.reason))}")
        raise typer.Exit(1)
    assert result.chain is not None
    signer = result.predicate.get("signer", {})
    console.print(
        f"[green]OK[/]: signature by key {escape(str(signer.get('key')))} "
        f"({escape(str(signer.get('fingerprint')))}), "
        f"signed {escape(str(result.predicate.get('signed_at')))} "
        f"by {escape(str(signer.get('actor')))}; {result.chain.events} event(s) verified; "
        f"head {result.chain.head.seq} {result.chain.head.hash}",
        highlight=False,
    )


def _print_report(report: VerifyReport, where: str, *, workspace: bool = False) -> None:
    if report.ok:
        console.print(
            f"[green]OK[/]: {report.events} event(s) in {escape(where)} verified; "
            f"head {report.head.seq} {report.head.hash}"
        )
    else:
        err_console.print(f"[bold red]TAMPERED[/]: {escape(where)}: {escape(str(report.problem))}")
        err_console.print(f"the chain is intact up to event {report.head.seq}")
        if workspace:
            err_console.print(
                "the workspace is marked compromised: changes are refused until an admin runs "
                "`modelcycle audit acknowledge --note TEXT`"
            )
    for problem in report.acknowledged:
        console.print(f"acknowledged break: {escape(str(problem))}")


@app.command("acknowledge")
def acknowledge(
    note: str = typer.Option(..., "--note", help="What happened and what was done about it."),
) -> None:
    """Acknowledge a broken chain (admin: whoever runs this as the OS user); writes resume."""
    with open_workspace() as ws:
        event = ws.audit.acknowledge(note, os_user=getpass.getuser())
    breaks = event.payload["breaks"]
    console.print(
        f"Recorded event {event.seq} ({event.hash[:16]}): {len(breaks)} break(s) acknowledged "
        f"from event {event.payload['first_bad_seq']}; changes are accepted again"
    )


@app.command("export")
def export(
    file: Path = typer.Argument(..., help="JSON lines file to write."),
    sign: bool = typer.Option(
        False, "--sign", help="Also write FILE.dsse.json: a DSSE signature of the export."
    ),
    key: str | None = typer.Option(None, "--key", help="With --sign: the key's name."),
) -> None:
    """Write every event plus the chain head as JSON lines, verifiable offline."""
    with open_workspace() as ws:
        if sign:
            ws.keys.load(key)  # a missing or unsafe key fails before anything is written
        count = ws.audit.export(file)
        if sign:
            sig, body = ws.keys.sign_export(file, key)
    console.print(f"Exported {count} event(s) to {file}")
    if sign:
        signer = body["predicate"]["signer"]
        console.print(
            f"Signed with key {escape(signer['key'])} ({signer['fingerprint']}): "
            f"{escape(str(sig))}\n"
            f"verify: modelcycle audit verify --file {escape(str(file))} --public-key KEY.pub",
            highlight=False,
        )


@app.command("verify-script")
def verify_script(
    out: Path = typer.Option(..., "--out", help="Where to write the script, e.g. verify.py."),
) -> None:
    """Write the stand-alone checker of signed exports (< 100 lines, needs only `cryptography`)."""
    from modelcycle.audit.signed_export import write_verify_script

    path, digest = write_verify_script(out)
    console.print(
        f"Wrote {escape(str(path))} (sha256 {digest})\n"
        f"run: python3 {escape(str(path))} EXPORT.jsonl KEY.pub [EXPORT.jsonl.dsse.json]",
        highlight=False,
    )


@app.command("note")
def note(
    text: str = typer.Argument(..., help="The entry: an approval, a decision, a remark."),
    subject: str = typer.Option("workspace", "--subject", help="What the note is about."),
) -> None:
    """Add an operator's own entry to the audit log."""
    with open_workspace() as ws:
        event = ws.audit.note(text, subject=subject)
    console.print(f"Recorded event {event.seq} ({event.hash[:16]})")


@app.command("head")
def head() -> None:
    """Print the chain head (seq and hash): publish it elsewhere to anchor the log."""
    with open_workspace() as ws:
        current = ws.audit.head()
    typer.echo(json.dumps({"seq": current.seq, "hash": current.hash}))
