"""``modelcycle pipeline ...``, ``modelcycle runs ...`` and ``modelcycle train``."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import typer
from rich.markup import escape
from rich.table import Table

from modelcycle.audit.chain import canonical_json
from modelcycle.entities import Run
from modelcycle.errors import InvalidInput
from modelcycle.interfaces.cli._ci_view import ci_line, commit_link
from modelcycle.interfaces.cli._context import console, err_console, open_workspace
from modelcycle.interfaces.cli._evaluation_view import print_evaluation, run_evaluation

pipeline_app = typer.Typer(help="Run pipelines and resume failed runs.", no_args_is_help=True)
runs_app = typer.Typer(help="Pipeline runs: list, show, compare, logs.", no_args_is_help=True)


@pipeline_app.command("run")
def run(
    ref: str = typer.Argument(..., help="module:attribute, or a name under [pipelines]."),
    param: list[str] = typer.Option([], "--param", "-p", help="KEY=VALUE (JSON or text)."),
    data: str | None = typer.Option(None, "--data", help="NAME[@VERSION] for the 'data' param."),
    no_cache: bool = typer.Option(False, "--no-cache", help="Execute every step."),
) -> None:
    """Run a pipeline; exits 1 when a step fails (resume it with `pipeline resume`)."""
    with open_workspace() as ws:
        result = ws.pipelines.run(ref, params=_params(param), data=data, no_cache=no_cache)
    _finished(result)


@pipeline_app.command("resume")
def resume(run_id: str = typer.Argument(..., help="The failed run.")) -> None:
    """Rerun a failed run from its failed step, reusing the steps that finished."""
    with open_workspace() as ws:
        result = ws.pipelines.resume(run_id)
    _finished(result)


def train(
    data: str = typer.Option(..., "--data", help="NAME[@VERSION] of the data set."),
    target: str = typer.Option(..., "--target", help="The column to predict."),
    task: str = typer.Option("auto", "--task", help="classification, regression or auto."),
    model: str = typer.Option(
        "hgb", "--model", help="hgb, logreg, rf, linear, xgboost or lightgbm."
    ),
    register: str | None = typer.Option(
        None, "--register", help="Model name (default: the data set's name)."
    ),
    seed: int = typer.Option(0, "--seed", help="Random seed (same seed, same model)."),
    drop: list[str] = typer.Option([], "--drop", help="A column to leave out; repeatable."),
    param: list[str] = typer.Option(
        [], "--param", "-p", help="KEY=VALUE hyperparameter of the estimator; repeatable."
    ),
    no_cache: bool = typer.Option(False, "--no-cache", help="Execute every step."),
) -> None:
    """Train, evaluate and register a model with the built-in tabular trainer."""
    from modelcycle.pipelines import parse_hyperparam  # a stage: loaded when used

    hyperparams = {k: parse_hyperparam(v) for k, v in _pairs(param, "--param").items()}
    with open_workspace() as ws:
        result = ws.pipelines.train(
            data,
            target,
            task=task,
            model=model,
            register=register,
            seed=seed,
            drop=drop,
            params=hyperparams,
            no_cache=no_cache,
        )
        version = ws.registry.get(result.models[0]) if result.ok and result.models else None
    _finished(result)
    if version is not None:
        chosen = ", ".join(f"{k}={v!r}" for k, v in hyperparams.items())
        console.print(
            f"  algorithm: {version.tags.get('estimator')} ({model})"
            + (f" with {escape(chosen)}" if chosen else ""),
            highlight=False,
        )


@runs_app.command("list")
def list_(
    pipeline: str | None = typer.Option(None, "--pipeline", help="Only this pipeline."),
    status: str | None = typer.Option(None, "--status", help="running, succeeded or failed."),
    limit: int = typer.Option(50, "--limit", "-n", help="The newest N runs."),
    as_json: bool = typer.Option(False, "--json", help="One JSON object per line."),
) -> None:
    """List runs, newest first; runs whose process died are marked failed (stale)."""
    with open_workspace() as ws:
        found = ws.pipelines.runs(pipeline=pipeline, status=status, limit=limit)
    if as_json:
        for r in found:
            typer.echo(canonical_json(r.as_dict()))
        return
    table = Table("run", "pipeline", "status", "started (UTC)", "duration", "metrics", "by")
    for r in found:
        table.add_row(
            r.id,
            escape(r.pipeline),
            _status(r),
            r.started_at[:19].replace("T", " "),
            _duration(r),
            escape(", ".join(f"{k}={v:.4g}" for k, v in r.metrics.items())),
            escape(r.created_by),
        )
    console.print(table)


@runs_app.command("show")
def show(
    run_id: str = typer.Argument(..., help="Run id (or a unique prefix)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Everything a run recorded: params, metrics, steps, code, environment, data, models."""
    with open_workspace() as ws:
        r = ws.pipelines.get_run(run_id)
        evaluation = run_evaluation(r, lambda step, name: ws.pipelines.output(r.id, step, name))
    if as_json:
        typer.echo(json.dumps({**r.as_dict(), "evaluation": evaluation}, indent=2, sort_keys=True))
        return
    console.print(f"[bold]run {r.id}[/] of {escape(r.pipeline)}: {_status(r)}")
    git = _git_line(r.code)
    packages = r.environment.get("packages", {})
    for label, value in (
        ("started", f"{r.started_at} by {r.created_by} on {r.hostname} (pid {r.pid})"),
        ("finished", f"{r.finished_at or '-'} ({_duration(r)})"),
        ("resumed from", r.resumed_from or "-"),
        ("params", canonical_json(r.params)),
        ("metrics", canonical_json(r.metrics)),
        ("data sets", ", ".join(r.datasets) or "-"),
        ("models", ", ".join(r.models) or "-"),
        ("code", git),
        ("commit link", commit_link(r.code.get("remote"), r.code.get("commit")) or "-"),
        ("ci", ci_line(r.code.get("ci"))),
        ("python", f"{r.environment.get('python')} on {r.environment.get('platform')}"),
        ("packages", ", ".join(f"{k} {v}" for k, v in packages.items() if v)),
    ):
        console.print(f"  {label:13} {escape(str(value))}", highlight=False)
    table = Table("step", "status", "duration", "cached from", "outputs", "metrics")
    for s in r.steps:
        table.add_row(
            escape(s.name),
            s.status,
            "-" if s.duration_s is None else f"{s.duration_s:.2f}s",
            s.cached_from or "",
            escape(", ".join(f"{k}:{v['sha256'][:10]}" for k, v in s.outputs.items())),
            escape(", ".join(f"{k}={v:.4g}" for k, v in s.metrics.items())),
        )
    console.print(table)
    if evaluation is not None:
        print_evaluation(evaluation)
    if r.error:
        err_console.print(escape(r.error.rstrip()), highlight=False)


@runs_app.command("compare")
def compare(
    run_ids: list[str] = typer.Argument(..., help="2 to 10 runs (ids or unique prefixes)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Parameters and metrics of 2 to 10 runs side by side (differences marked); warns when
    their metrics come from different holdouts."""
    with open_workspace() as ws:
        cmp = ws.pipelines.compare(*run_ids)
    if as_json:
        typer.echo(json.dumps(cmp.as_dict(), indent=2, sort_keys=True))
    else:
        table = Table("", "name", *(r.id for r in cmp.runs), "differs")
        for kind, rows in (("param", cmp.params), ("metric", cmp.metrics)):
            for name, values in rows.items():
                differs = any(v != values[0] for v in values)
                table.add_row(kind, escape(name), *map(_cell, values), "*" if differs else "")
        holdouts = [", ".join(str(h["ref"]) for h in hs) or "-" for hs in cmp.holdouts]
        table.add_row("holdout", "", *map(escape, holdouts), "*" if len(set(holdouts)) > 1 else "")
        console.print(table)
    for warning in cmp.warnings:
        err_console.print(f"[yellow]warning:[/] {escape(warning)}", soft_wrap=True)


@runs_app.command("logs")
def logs(
    run_id: str = typer.Argument(..., help="Run id (or a unique prefix)."),
    step: str | None = typer.Option(None, "--step", help="Only this step."),
) -> None:
    """The captured output (stdout, stderr, logging) of a run's steps."""
    with open_workspace() as ws:
        typer.echo(ws.pipelines.logs(run_id, step))


def _git_line(code: dict[str, Any]) -> str:
    if not code.get("repository"):
        return f"not in a git repository ({code.get('path') or '?'})"
    git = str(code.get("commit") or "no commit yet")
    if code.get("branch"):
        git += f" on {code['branch']}"
    if code.get("dirty"):
        git += f" (dirty, diff {str(code.get('diff_sha256'))[:12]})"
    return (
        git + f" in {code['repository']}" + (f" ({code['remote']})" if code.get("remote") else "")
    )


def _finished(r: Run) -> None:
    console.print(f"run [bold]{r.id}[/] of {escape(r.pipeline)}: {_status(r)} ({_duration(r)})")
    for s in r.steps:
        note = f" (from run {s.cached_from})" if s.cached_from else ""
        took = "-" if s.duration_s is None else f"{s.duration_s:.2f}s"
        console.print(f"  {escape(s.name):20} {s.status:10} {took}{note}", highlight=False)
    if r.metrics:
        console.print("  metrics: " + ", ".join(f"{k}={v:.4g}" for k, v in r.metrics.items()))
    if r.models:
        console.print("  models: " + escape(", ".join(r.models)))
    if not r.ok:
        err_console.print(escape((r.error or "").rstrip()), highlight=False)
        err_console.print(f"resume with: modelcycle pipeline resume {r.id}")
        raise typer.Exit(1)


def _pairs(pairs: list[str], option: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise InvalidInput(f"{pair!r} is not KEY=VALUE", field=option)
        out[key] = value
    return out


def _params(pairs: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise InvalidInput(f"{pair!r} is not KEY=VALUE", field="--param")
        try:
            out[key] = json.loads(value)
        except ValueError:
            out[key] = value
    return out


def _status(r: Run) -> str:
    colour = {"succeeded": "green", "failed": "red", "running": "yellow"}.get(r.status, "white")
    extra = f" ({r.failure})" if r.failure else ""
    return f"[{colour}]{r.status}[/]{extra}"


def _duration(r: Run) -> str:
    total = sum(s.duration_s or 0.0 for s in r.steps)
    if r.finished_at is None:
        return "-"
    fmt = "%Y-%m-%dT%H:%M:%S.%fZ"
    seconds = (
        datetime.strptime(r.finished_at, fmt) - datetime.strptime(r.started_at, fmt)
    ).total_seconds()
    return f"{max(seconds, total):.1f}s"


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.6g}"
    return escape(canonical_json(value))
