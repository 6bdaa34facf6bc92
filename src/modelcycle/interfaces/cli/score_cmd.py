"""``modelcycle score MODEL --input PATH --output PATH``: batch scoring jobs.

``modelcycle score list`` and ``modelcycle score show JOB`` read the jobs back (model
references always hold ``/`` or ``@``, so ``list`` and ``show`` cannot be one).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import typer
from rich.markup import escape
from rich.table import Table

from modelcycle.errors import InvalidInput
from modelcycle.interfaces.cli._context import console, open_workspace

if TYPE_CHECKING:
    from modelcycle.scoring.batch import BatchJob


def score(
    model: str = typer.Argument(
        ..., help="NAME@ALIAS or NAME/VERSION to score with; or `list`, or `show JOB`."
    ),
    job_arg: str | None = typer.Argument(None, metavar="[JOB]", help="The job, for `show`."),
    input: str | None = typer.Option(
        None, "--input", "-i", help="Parquet file/folder/glob, CSV, JSON lines, or data:NAME@V."
    ),
    output: str | None = typer.Option(
        None, "--output", "-o", help="Folder or s3://bucket/prefix/ for the parts (new or empty)."
    ),
    engine: str = typer.Option("local", "--engine", help="local (process pool) or dask."),
    scheduler: str | None = typer.Option(
        None,
        "--scheduler",
        help="Dask scheduler tcp://HOST:PORT (engine dask; default: a local cluster).",
    ),
    workers: int | None = typer.Option(
        None, "--workers", min=1, help="Worker processes, local engine or cluster (default: cores)."
    ),
    chunk_rows: int | None = typer.Option(
        None, "--chunk-rows", min=1, help="Rows per chunk/part (default 32768)."
    ),
    passthrough: str | None = typer.Option(
        None, "--passthrough", help="Input columns to copy to the output: COL,COL,..."
    ),
    proba: bool = typer.Option(False, "--proba", help="Add proba_<class> columns."),
    resume: str | None = typer.Option(None, "--resume", help="Finish the failed job JOB."),
    log_predictions: bool = typer.Option(
        False, "--log-predictions", help="Also write the scored rows to the prediction log."
    ),
    sample_rate: float = typer.Option(
        1.0,
        "--sample-rate",
        min=0.0,
        max=1.0,
        help="Share of rows logged (with --log-predictions).",
    ),
    trust: bool = typer.Option(False, "--trust", help="Load models that need trust (pickle)."),
    skip_bad_rows: bool = typer.Option(
        False,
        "--skip-bad-rows",
        help="CSV: leave out rows that cannot be read; list them in OUTPUT/_rejects.csv.",
    ),
) -> None:
    """Score a file or data set version with a registered model, in parallel and resumably."""
    if model == "list":
        _list()
        return
    if model == "show":
        if not job_arg:
            raise InvalidInput("give the job to show: modelcycle score show JOB", field="job")
        _show(job_arg)
        return
    if job_arg is not None:
        raise InvalidInput(f"unexpected argument {job_arg!r}", field="arguments")
    progress = _Bar() if console.is_terminal else None
    from modelcycle.scoring.batch_local import allow_fork

    allow_fork()  # this process has run no model code: workers may share its loaded model
    with open_workspace() as ws:
        try:
            if resume:
                job = ws.batch.resume(
                    resume, workers=workers, scheduler=scheduler, progress=progress
                )
            else:
                if not input or not output:
                    raise InvalidInput("--input and --output are required", field="arguments")
                cols = [c.strip() for c in (passthrough or "").split(",") if c.strip()]
                job = ws.batch.score(
                    model,
                    input,
                    output,
                    engine=engine,
                    scheduler=scheduler,
                    workers=workers,
                    **({"chunk_rows": chunk_rows} if chunk_rows is not None else {}),
                    passthrough=cols,
                    proba=proba,
                    log_predictions=log_predictions,
                    sample_rate=sample_rate,
                    trust=trust,
                    skip_bad_rows=skip_bad_rows,
                    progress=progress,
                )
            rejected = ws.batch.rejected(job)
        finally:
            if progress is not None:
                progress.close()
    console.print(
        f"job {job.id}: {job.rows_out} rows scored with {escape(job.model_ref)} into "
        f"{escape(job.output)} ({job.chunks_total} parts)",
        highlight=False,
    )
    if rejected:
        console.print(
            f"{rejected} bad rows left out, listed in "
            f"{escape(job.output.rstrip('/'))}/_rejects.csv",
            highlight=False,
        )


class _Bar:
    """A Rich progress bar with rows/s and ETA, started at the first report.

    Started late on purpose: the local engine forks its workers first, before any thread.
    """

    def __init__(self) -> None:
        self._progress: Any = None
        self._task: Any = None
        self._start = 0.0

    def __call__(self, done: int, total: int | None) -> None:
        import time

        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        if self._progress is None:
            self._start = time.monotonic()
            self._progress = Progress(
                TextColumn("scoring"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[rate]} rows/s"),
                TimeElapsedColumn(),
                TimeRemainingColumn(),
                console=console,
            )
            self._progress.start()
            self._task = self._progress.add_task("scoring", total=total, rate="-")
        elapsed = max(time.monotonic() - self._start, 1e-6)
        self._progress.update(
            self._task, completed=done, total=total, rate=f"{done / elapsed:,.0f}"
        )

    def close(self) -> None:
        if self._progress is not None:
            self._progress.stop()


def _list() -> None:
    with open_workspace() as ws:
        jobs = ws.batch.list()
    table = Table("job", "model", "status", "rows", "engine", "started", "input")
    for job in jobs:
        table.add_row(
            job.id[:12],
            escape(job.model_ref),
            job.status,
            f"{job.rows_out}/{job.rows_in or '?'}",
            job.engine,
            job.started_at,
            escape(job.input),
        )
    console.print(table)


def _show(job_id: str) -> None:
    with open_workspace() as ws:
        job: BatchJob = ws.batch.get(job_id)
    data = job.as_dict()
    data["chunks"] = [
        {"chunk": c.chunk, "rows": c.rows, "part": c.part, "sha256": c.sha256} for c in job.chunks
    ]
    console.print_json(json.dumps(data))
