"""``modelcycle models ...``: registered models, aliases, promotion gates, lineage."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer
from rich.markup import escape
from rich.table import Table

from modelcycle.audit.chain import canonical_json
from modelcycle.errors import InvalidInput
from modelcycle.interfaces.cli._ci_view import ci_line
from modelcycle.interfaces.cli._context import console, open_workspace
from modelcycle.interfaces.cli._evaluation_view import print_evaluation
from modelcycle.interfaces.cli.approvals_cmd import print_requested

app = typer.Typer(
    help="The model registry: versions, aliases, promotion, lineage.", no_args_is_help=True
)
alias_app = typer.Typer(help="Set or delete an alias (NAME@ALIAS).", no_args_is_help=True)
app.add_typer(alias_app, name="alias")


@app.command("register")
def register(
    name: str = typer.Argument(..., help="Model name."),
    file: Path = typer.Argument(..., help="The saved model file."),
    flavor: str = typer.Option(
        ..., "--flavor", help="skops, onnx, xgboost, lightgbm, python-model or pickle."
    ),
    example: Path | None = typer.Option(
        None, "--example", help="Input example rows (Parquet or CSV) to infer the signature."
    ),
    signature: Path | None = typer.Option(None, "--signature", help="Signature JSON file."),
    metric: list[str] = typer.Option([], "--metric", help="NAME=VALUE, repeatable."),
    tag: list[str] = typer.Option([], "--tag", help="KEY=VALUE, repeatable."),
    dataset: list[str] = typer.Option([], "--dataset", help="DATASET@VERSION, repeatable."),
    trust: bool = typer.Option(
        False, "--trust", help="Trust the file (needed for pickle, python-model)."
    ),
) -> None:
    """Register a model file as the next version of NAME."""
    sig = _read_json(signature) if signature else None
    with open_workspace() as ws:
        mv = ws.registry.register_file(
            str(file),
            name,
            flavor=flavor,
            trust=trust,
            input_example=_read_table(example) if example else None,
            signature=sig,
            metrics={k: _number(k, v) for k, v in _pairs(metric, "--metric").items()},
            tags=_pairs(tag, "--tag"),
            datasets=dataset,
        )
    console.print(f"Registered [bold]{escape(mv.ref)}[/] ({mv.flavor}, sha256 {mv.sha256[:16]})")


@app.command("list")
def list_(name: str | None = typer.Argument(None, help="Only this model.")) -> None:
    """List model versions with their aliases."""
    with open_workspace() as ws:
        versions = ws.registry.list(name)
    table = Table("model", "flavor", "status", "aliases", "metrics", "created (UTC)", "by")
    for mv in versions:
        table.add_row(
            escape(mv.ref),
            mv.flavor,
            mv.status,
            escape(", ".join(mv.aliases)),
            escape(", ".join(f"{k}={v:.4g}" for k, v in mv.metrics.items())),
            mv.created_at[:19].replace("T", " "),
            escape(mv.created_by),
        )
    console.print(table)


@app.command("show")
def show(
    ref: str = typer.Argument(..., help="NAME/VERSION or NAME@ALIAS."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """A version's lineage: run, data sets, code version, signature, metrics, aliases, events."""
    with open_workspace() as ws:
        lineage = ws.registry.lineage(ref)
        mv = lineage.version
        # Where this version serves now: the active deployments that run it.
        deployed = [
            {"endpoint": d.endpoint, "target": d.target, "url": d.url, "since": d.created_at}
            for d in ws.deploy.list()
            if d.model_name == mv.name and d.model_version == mv.version
        ]
        # The training run's evaluation artifacts linked to the version (hash-checked).
        from modelcycle.registry import version_evaluation  # a stage: loaded when used

        evaluation = version_evaluation(ws.artifacts, mv)
        notes = [n.as_dict() for n in ws.registry.notes(mv.ref)]
    data = {**lineage.as_dict(), "deployments": deployed, "evaluation": evaluation, "notes": notes}
    if as_json:
        typer.echo(json.dumps(data, indent=2, sort_keys=True))
        return
    console.print(f"[bold]{escape(data['model'])}[/]  {data['flavor']}  {data['status']}")
    for label, key in (
        ("aliases", "aliases"),
        ("run", "run_id"),
        ("data sets", "datasets"),
        ("code version", "code_version"),
        ("metrics", "metrics"),
        ("requirements", "requirements"),
    ):
        console.print(f"{label}: {escape(_text(data[key]))}")
    # The CI run that registered it (the first event of the version that carries one).
    registered_in = next((ev.payload["ci"] for ev in lineage.events if ev.payload.get("ci")), None)
    console.print(f"ci: {escape(ci_line(registered_in))}", highlight=False)
    where = ", ".join(f"{d['endpoint']} ({d['target']}, {d['url']})" for d in deployed)
    console.print(f"deployed: {escape(where or 'nowhere')}")
    for n in notes:
        console.print(f"note: {escape(n['note'])} [dim]({escape(n['author'])}, {n['at'][:19]})[/]")
    sig = Table("input", "type", "nullable", title=f"signature ({data['signature'].get('task')})")
    for col in data["signature"].get("inputs", []):
        sig.add_row(escape(col["name"]), col["type"], str(col["nullable"]))
    console.print(sig)
    if data["signature"].get("classes") is not None:
        console.print(f"classes: {escape(_text(data['signature']['classes']))}")
    if data["evaluations"]:
        evals = Table("data set", "metric", "value", "at (UTC)", title="evaluations")
        for ev in data["evaluations"]:
            evals.add_row(
                escape(ev["dataset"]), ev["metric"], f"{ev['value']:.6g}", ev["created_at"][:19]
            )
        console.print(evals)
    print_evaluation(evaluation)
    events = Table("seq", "at (UTC)", "actor", "action", "payload", title="audit events")
    for ev in lineage.events:
        events.add_row(
            str(ev.seq),
            ev.at[:19].replace("T", " "),
            escape(ev.actor),
            ev.action,
            escape(canonical_json(ev.payload)),
        )
    console.print(events)


@app.command("promote")
def promote(
    ref: str = typer.Argument(..., help="The candidate, NAME/VERSION."),
    to: str = typer.Option("champion", "--to", help="The alias to move."),
    metric: str | None = typer.Option(None, "--metric", help="e.g. roc_auc, accuracy, rmse."),
    min_gain: float = typer.Option(0.0, "--min-gain", help="How much better it must be."),
    on: str | None = typer.Option(None, "--on", help="Holdout DATASET@VERSION."),
    target: str | None = typer.Option(None, "--target", help="The holdout's label column."),
    force: bool = typer.Option(
        False, "--force", help="Skip the gate (needs --reason; audited as forced)."
    ),
    reason: str | None = typer.Option(
        None, "--reason", help="Why (required with --force); kept in the audit events."
    ),
    trust: bool = typer.Option(False, "--trust", help="Trust pickle models while scoring."),
    # No default here: naming the registry's DEFAULT_MIN_ROWS would load the registry at every
    # command's start (the CLI loads a stage only when a command uses it).
    min_rows: int | None = typer.Option(
        None,
        "--min-rows",
        help="Refuse when fewer holdout rows than this are left once the rows either model "
        "trained on are taken out [default: 50].",
    ),
) -> None:
    """Move an alias to the candidate if it scores at least as well as the current holder."""
    if force and reason is None:
        raise InvalidInput(
            "--force skips the promotion gate: say why with --reason TEXT (kept in the audit "
            "trail and shown by `models alias history`)",
            field="--reason",
        )
    from modelcycle.registry import request_origin  # here: the CLI starts without the registry

    with open_workspace() as ws, request_origin("cli"):
        result = ws.registry.promote(
            ref,
            to,
            metric=metric,
            min_gain=min_gain,
            on=on,
            target=target,
            force=force,
            trust=trust,
            reason=reason,
            **({} if min_rows is None else {"min_rows": min_rows}),
        )
    label = f"{escape(result.name)}@{escape(result.alias)}"
    if result.metric is not None:
        console.print(
            f"{result.metric} on {escape(result.dataset or '')}: candidate "
            f"{result.name}/{result.version} = {result.candidate_score:.6g}, champion "
            f"{result.name}/{result.previous} = {result.champion_score:.6g}",
            soft_wrap=True,
        )
    if result.rows is not None:
        rows = result.rows
        seen = ", ".join(f"{role} {n}" for role, n in rows["seen_in_training"].items())
        console.print(
            f"rows evaluated: {rows['evaluated']} of {rows['holdout']} holdout rows; "
            f"excluded as seen in training: {rows['excluded']}" + (f" ({seen})" if seen else ""),
            soft_wrap=True,
            highlight=False,
        )
    for warning in result.warnings:
        console.print(f"[yellow]warning:[/] {escape(warning)}", soft_wrap=True)
    if result.request is not None:  # a [promotion.*] policy: the alias waits for approvals
        print_requested(result.request, label, result.version)
    elif not result.moved:
        console.print(f"{label} already points at version {result.version}")
    elif result.first:
        console.print(f"{label} set to version {result.version} (first promotion)")
    else:
        how = " [yellow](forced, gate skipped)[/]" if result.forced else ""
        console.print(f"{label} moved from version {result.previous} to {result.version}{how}")


@app.command("annotate")
def annotate(
    ref: str = typer.Argument(..., help="NAME/VERSION or NAME@ALIAS (the version it names now)."),
    note: str = typer.Option(..., "--note", help="The note, kept with your name and the time."),
) -> None:
    """Keep a note on a version (audited; `models show` lists every note)."""
    with open_workspace() as ws:
        kept = ws.registry.annotate(ref, note)
    console.print(f"Noted on {escape(kept.model)} (note #{kept.id} by {escape(kept.author)})")


@alias_app.command("history")
def alias_history(
    name: str = typer.Argument(..., help="Model name."),
    alias: str | None = typer.Option(None, "--alias", help="Only this alias."),
    as_json: bool = typer.Option(False, "--json", help="One JSON object per line."),
) -> None:
    """Every move of the model's aliases: when, by whom, from and to, forced, and why."""
    with open_workspace() as ws:
        moves = ws.registry.alias_history(name, alias)
    if as_json:
        for m in moves:
            typer.echo(canonical_json(m.as_dict()))
        return
    table = Table("seq", "at (UTC)", "actor", "alias", "from", "to", "by", "reason")
    for m in moves:
        table.add_row(
            str(m.seq),
            m.at[:19].replace("T", " "),
            escape(m.actor),
            escape(m.alias),
            "-" if m.from_version is None else str(m.from_version),
            "deleted" if m.to_version is None else str(m.to_version),
            escape((m.by or "alias set") + (" (forced)" if m.forced else "")),
            escape(m.reason or ("none given" if m.forced else "-")),
        )
    console.print(table if moves else f"no alias of {escape(name)} has moved")


@alias_app.command("set")
def alias_set(
    name: str = typer.Argument(..., help="Model name."),
    alias: str = typer.Argument(..., help="Alias, e.g. challenger."),
    version: int = typer.Argument(..., help="Version number."),
) -> None:
    """Point NAME@ALIAS at a version (no gate: use `promote` for gated moves)."""
    with open_workspace() as ws:
        ws.registry.set_alias(name, alias, version)
    console.print(f"{escape(name)}@{escape(alias)} -> version {version}")


@alias_app.command("delete")
def alias_delete(
    name: str = typer.Argument(..., help="Model name."),
    alias: str = typer.Argument(..., help="Alias to remove."),
) -> None:
    """Remove an alias."""
    with open_workspace() as ws:
        old = ws.registry.delete_alias(name, alias)
    console.print(f"Deleted {escape(name)}@{escape(alias)} (was version {old})")


@app.command("archive")
def archive(ref: str = typer.Argument(..., help="NAME/VERSION.")) -> None:
    """Archive a version: it can no longer take an alias or be served."""
    with open_workspace() as ws:
        mv = ws.registry.archive(ref)
    console.print(f"Archived {escape(mv.ref)}")


@app.command("export-onnx")
def export_onnx(
    ref: str = typer.Argument(..., help="A scikit-learn version, NAME/VERSION."),
    on: str | None = typer.Option(None, "--on", help="Check data set DATASET@VERSION."),
    target: str | None = typer.Option(None, "--target", help="Its label column (left out)."),
) -> None:
    """Convert to ONNX, check predictions agree, and register it as a new version."""
    with open_workspace() as ws:
        mv = ws.registry.export_onnx(ref, on=on, target=target)
    console.print(f"Registered [bold]{escape(mv.ref)}[/] (onnx, converted from {escape(ref)})")


def _read_table(path: Path) -> Any:
    import pyarrow.csv as pcsv
    import pyarrow.parquet as pq

    from modelcycle.datasets import csv_convert_options

    if path.suffix.lower() == ".csv":
        return pcsv.read_csv(path, convert_options=csv_convert_options())
    return pq.read_table(path)


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InvalidInput(f"cannot read JSON ({exc})", field=str(path)) from exc


def _pairs(items: list[str], option: str) -> dict[str, str]:
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise InvalidInput(f"expected KEY=VALUE, got {item!r}", field=option)
        out[key] = value
    return out


def _number(key: str, value: str) -> float:
    try:
        return float(value)
    except ValueError:
        raise InvalidInput(f"{value!r} is not a number", field=f"--metric {key}") from None


def _text(value: Any) -> str:
    if value is None or value == [] or value == {}:
        return "-"
    if isinstance(value, dict):
        return ", ".join(f"{k}={v}" for k, v in value.items())
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    return str(value)
