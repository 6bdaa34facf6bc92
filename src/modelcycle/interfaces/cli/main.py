"""The root command: global options, the command groups, and error handling.

Errors from modelcycle are printed as one line (``error: ...``) with an exit code per kind;
``--debug`` adds the traceback.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

import click
import typer
from rich.markup import escape

from modelcycle._version import __version__
from modelcycle.errors import (
    Conflict,
    Forbidden,
    IntegrityError,
    InvalidInput,
    ModelcycleError,
    NotFound,
    NotReady,
    OperationFailed,
    Unauthorized,
)
from modelcycle.interfaces.cli import (
    approvals_cmd,
    artifacts_cmd,
    audit_cmd,
    automations_cmd,
    ci_cmd,
    data_cmd,
    demo_cmd,
    deploy_cmd,
    evidence_cmd,
    k8s_cmd,
    keys_cmd,
    models_cmd,
    monitor_cmd,
    notify_cmd,
    pipeline_cmd,
    predictions_cmd,
    score_cmd,
    serve_cmd,
    server_cmd,
    tokens_cmd,
    workspace_cmd,
)
from modelcycle.interfaces.cli._context import console, err_console

app = typer.Typer(
    name="modelcycle",
    help="A self-hosted MLOps loop: data sets, pipelines, registry, deployment, scoring, "
    "monitoring, automations, and a tamper-evident audit trail.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

# The exit code tells scripts what kind of failure it was; 1 stays "failed" in general.
EXIT_CODES: dict[type[ModelcycleError], int] = {
    InvalidInput: 2,
    NotFound: 3,
    Conflict: 4,
    IntegrityError: 5,
    NotReady: 6,
    Unauthorized: 7,
    Forbidden: 7,
    # The work ran and failed (a deployment, a container build): "failed", as before.
    OperationFailed: 1,
}


def _version(value: bool) -> None:
    if value:
        typer.echo(f"modelcycle {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks of errors."),
) -> None:
    """modelcycle: run `modelcycle COMMAND --help` for any command."""


app.command("init")(workspace_cmd.init)
app.add_typer(workspace_cmd.db_app, name="db")
app.add_typer(audit_cmd.app, name="audit")
app.add_typer(artifacts_cmd.app, name="artifacts")
# -- stage command groups: one line each below --
app.command("serve")(serve_cmd.serve)
app.command("server")(server_cmd.server)
app.add_typer(pipeline_cmd.pipeline_app, name="pipeline")
app.add_typer(pipeline_cmd.runs_app, name="runs")
app.command("train")(pipeline_cmd.train)
app.add_typer(data_cmd.app, name="data")
app.add_typer(models_cmd.app, name="models")
app.add_typer(approvals_cmd.app, name="approvals")
app.add_typer(monitor_cmd.app, name="monitor")
app.command("worker")(automations_cmd.worker)
app.command("demo")(demo_cmd.demo)
app.add_typer(automations_cmd.jobs_app, name="jobs")
app.add_typer(automations_cmd.rules_app, name="rules")
app.add_typer(notify_cmd.app, name="notify")
app.command("score")(score_cmd.score)
app.add_typer(tokens_cmd.app, name="tokens")
app.add_typer(predictions_cmd.app, name="predictions")
app.command("bundle")(deploy_cmd.bundle)
app.command("deploy")(deploy_cmd.deploy)
app.add_typer(deploy_cmd.deployments_app, name="deployments")
app.add_typer(keys_cmd.app, name="keys")
models_cmd.app.command("card")(evidence_cmd.card)
audit_cmd.app.command("pack")(evidence_cmd.pack)
app.add_typer(ci_cmd.app, name="ci")
app.add_typer(k8s_cmd.app, name="k8s")


def exit_code_for(error: ModelcycleError) -> int:
    for kind in type(error).__mro__:
        if kind in EXIT_CODES:
            return EXIT_CODES[kind]
    return 1


def main(argv: Sequence[str] | None = None) -> None:
    """Run the CLI; never shows a traceback for a ModelcycleError unless ``--debug``."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not console.is_terminal and "COLUMNS" not in os.environ:
        # Piped output (logs, CI, `| less`) gets room for whole table cells, not Rich's 80.
        console.width = 160
    try:
        result = app(args=args, prog_name="modelcycle", standalone_mode=False)
    except ModelcycleError as exc:
        if "--debug" in args:
            err_console.print_exception()
        err_console.print(
            f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True
        )
        sys.exit(exit_code_for(exc))
    # typer vendors its own click: its usage errors, Exit and Abort are not click's classes.
    except (click.exceptions.ClickException, typer.exceptions.TyperException) as exc:
        show = getattr(exc, "show", None)
        if show is not None:
            show()
        else:
            err_console.print(f"error: {escape(exc.format_message())}", highlight=False)
        sys.exit(exc.exit_code)
    except (click.exceptions.Exit, typer.Exit) as exc:
        sys.exit(exc.exit_code)
    except (click.exceptions.Abort, typer.Abort, KeyboardInterrupt):
        err_console.print("aborted")
        sys.exit(130)
    sys.exit(result if isinstance(result, int) else 0)
