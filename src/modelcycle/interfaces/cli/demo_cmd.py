"""``modelcycle demo``: the whole loop in a fresh workspace, narrated."""

from __future__ import annotations

import tempfile
from pathlib import Path

import typer

from modelcycle.errors import InvalidInput
from modelcycle.interfaces.cli._context import console


def demo(
    workspace: Path | None = typer.Option(
        None, "--workspace", help="Where to create the demo workspace (default: a new temp dir)."
    ),
    rows: int = typer.Option(6000, "--rows", min=1000, help="Rows per month of data."),
    every: str = typer.Option("5s", "--every", help="How often the drift check runs."),
    with_approval: bool = typer.Option(
        False,
        "--with-approval",
        help="Under a promotion policy: each promotion waits for a second identity's approval.",
    ),
    model: str = typer.Option(
        "hgb", "--model", help="The trainer's algorithm: hgb (default), xgboost, lightgbm ..."
    ),
) -> None:
    """Run the full loop: data -> train -> promote -> deploy -> traffic -> drift -> retrain."""
    from modelcycle.interfaces.demo import run_demo
    from modelcycle.pipelines import ALGORITHMS

    if model not in ALGORITHMS:  # before the workspace is made
        raise InvalidInput(f"{model!r} is not one of {', '.join(ALGORITHMS)}", field="--model")

    path = workspace or Path(tempfile.mkdtemp(prefix="modelcycle-demo-")) / "workspace"
    run_demo(path, console, rows=rows, every=every, with_approval=with_approval, model=model)
