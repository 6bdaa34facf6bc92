"""``modelcycle approvals ...``: promotion requests waiting under a [promotion.*] policy.

The acting identity is ``MODELCYCLE_ACTOR``, else the OS user: on the CLI the local machine
is the trust boundary (docs/approvals.md).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import typer
from rich.markup import escape
from rich.table import Table

from modelcycle.interfaces.cli._context import console, open_workspace

if TYPE_CHECKING:
    from modelcycle.registry import PromotionRequest

app = typer.Typer(
    help="Promotion requests: list, show, approve, reject, cancel.", no_args_is_help=True
)

_JSON = typer.Option(False, "--json", help="Print JSON.")


def print_requested(request_id: str, label: str, version: int) -> None:
    """What `models promote` says when a policy turned the move into a request."""
    console.print(
        f"promotion request [bold]{request_id}[/]: {label} -> version {version} waits for "
        f"approval; the alias has not moved (`modelcycle approvals show {request_id[:8]}`)",
        soft_wrap=True,
        highlight=False,
    )


@app.command("list")
def list_requests(
    pending: bool = typer.Option(False, "--pending", help="Only requests still waiting."),
    model: str | None = typer.Option(None, "--model", help="Only this model's requests."),
    as_json: bool = typer.Option(False, "--json", help="One JSON object per line."),
) -> None:
    """Promotion requests, newest first."""
    with open_workspace() as ws:
        requests = ws.approvals.list(pending=pending, name=model)
    if as_json:
        for req in requests:
            typer.echo(json.dumps(req.as_dict()))
        return
    if not requests:
        console.print("no pending promotion requests" if pending else "no promotion requests")
        return
    table = Table("id", "model", "alias", "state", "approvals", "requested by", "at (UTC)")
    for req in requests:
        table.add_row(
            req.id[:12],
            escape(req.ref),
            escape(req.alias),
            _state(req),
            f"{len(req.approvals)}/{req.approvals_needed}",
            escape(req.requested_by),
            req.requested_at[:19],
        )
    console.print(table)


@app.command("show")
def show(
    request_id: str = typer.Argument(..., help="Request id (or a unique prefix)."),
    as_json: bool = _JSON,
) -> None:
    """A request: version, gate figures, lineage, who asked, approvals so far."""
    with open_workspace() as ws:
        req = ws.approvals.get(request_id)
        lineage = ws.registry.lineage(req.ref)
    if as_json:
        typer.echo(
            json.dumps(
                {
                    **req.as_dict(),
                    "lineage": {
                        "run_id": lineage.run_id,
                        "datasets": lineage.datasets,
                        "code_version": lineage.code_version,
                        "author": lineage.version.created_by,
                        "metrics": lineage.metrics,
                    },
                }
            )
        )
        return
    rows: list[tuple[str, Any]] = [
        ("request", req.id),
        ("model", f"{req.ref} -> {req.name}@{req.alias} (which named {_from(req)} then)"),
        ("state", req.state),
        ("approvals", _approvals_line(req)),
        ("policy", f"{req.policy.get('section')}: {json.dumps(_policy_view(req))}"),
        ("requested", f"by {req.requested_by} at {req.requested_at} ({req.origin})"),
        ("expires", req.expires_at or "never"),
        ("forced", f"yes: {req.reason}" if req.forced else "no"),
        ("gate", _gate_line(req.gate)),
        ("author", lineage.version.created_by),
        ("run", lineage.run_id or "-"),
        ("datasets", ", ".join(lineage.datasets) or "-"),
        ("code version", lineage.code_version or "-"),
        ("metrics", json.dumps(lineage.metrics)),
    ]
    if req.decided_at:
        rows.append(("decided", f"{req.state} by {req.decided_by or 'expiry'} at {req.decided_at}"))
    if req.comment:
        rows.append(("comment", req.comment))
    for key, value in rows:
        console.print(f"[bold]{key:>13}[/]  {escape(str(value))}", soft_wrap=True, highlight=False)


@app.command("approve")
def approve(
    request_id: str = typer.Argument(..., help="Request id (or a unique prefix)."),
    comment: str | None = typer.Option(None, "--comment", help="Why; kept in the audit trail."),
    as_json: bool = _JSON,
) -> None:
    """Approve; the approval that completes the count moves the alias."""
    with open_workspace() as ws:
        req = ws.approvals.approve(request_id, comment=comment)
    if as_json:
        typer.echo(json.dumps(req.as_dict()))
    elif req.state == "approved":
        console.print(
            f"approved: {escape(req.name)}@{escape(req.alias)} moved to version {req.version} "
            f"(approved by {escape(', '.join(req.approved_by))})",
            highlight=False,
        )
    else:
        console.print(
            f"approval recorded ({_approvals_line(req)}); {escape(req.name)}@{escape(req.alias)} "
            "moves when enough approvers have approved",
            highlight=False,
        )


@app.command("reject")
def reject(
    request_id: str = typer.Argument(..., help="Request id (or a unique prefix)."),
    comment: str = typer.Option(..., "--comment", help="Why (required)."),
    as_json: bool = _JSON,
) -> None:
    """Reject: the request closes and the alias does not move."""
    with open_workspace() as ws:
        req = ws.approvals.reject(request_id, comment=comment)
    _closed(req, as_json)


@app.command("cancel")
def cancel(
    request_id: str = typer.Argument(..., help="Request id (or a unique prefix)."),
    comment: str | None = typer.Option(None, "--comment", help="Why; kept in the audit trail."),
    as_json: bool = _JSON,
) -> None:
    """Withdraw a request (its requester or an approver): the alias does not move."""
    with open_workspace() as ws:
        req = ws.approvals.cancel(request_id, comment=comment)
    _closed(req, as_json)


def _closed(req: PromotionRequest, as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps(req.as_dict()))
    else:
        console.print(
            f"request {req.id[:12]} {req.state}: {escape(req.name)}@{escape(req.alias)} "
            "did not move",
            highlight=False,
        )


def _from(req: PromotionRequest) -> str:
    return "no version" if req.from_version is None else f"version {req.from_version}"


def _state(req: PromotionRequest) -> str:
    return {"pending": "[yellow]pending[/]", "approved": "[green]approved[/]"}.get(
        req.state, req.state
    )


def _approvals_line(req: PromotionRequest) -> str:
    who = ", ".join(
        f"{a.approver}" + (f" ({a.comment})" if a.comment else "") for a in req.approvals
    )
    return f"{len(req.approvals)} of {req.approvals_needed}" + (f": {who}" if who else "")


def _policy_view(req: PromotionRequest) -> dict[str, Any]:
    return {k: v for k, v in req.policy.items() if k != "section"}


def _gate_line(gate: dict[str, Any] | None) -> str:
    if gate is None:
        return "not run (first promotion or forced)"
    cand, champ = gate["candidate"], gate["champion"]
    return (
        f"{gate['metric']} on {gate['dataset']}: candidate v{cand['version']} = "
        f"{cand['score']:.6g}, champion v{champ['version']} = {champ['score']:.6g}"
    )
