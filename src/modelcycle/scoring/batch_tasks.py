"""What the batch engines share: the job's constants, the tasks, scoring one chunk, the protocol.

:class:`BatchEngine` is the small interface an engine implements (start, run the tasks, close);
:mod:`modelcycle.scoring.batch` picks one from its table by name (``local``, ``dask``). Both
engines and the facade import from here, never from each other.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pyarrow as pa

from modelcycle.audit import utc_timestamp
from modelcycle.registry import LoadedModel
from modelcycle.scoring import batch_io
from modelcycle.scoring.batch_outputs import open_output

__all__ = ["BatchEngine", "ChunkTask", "RangeTask", "Task", "TaskSpec", "run_task"]


@dataclass(frozen=True, slots=True)
class TaskSpec:
    """What every worker needs to score and write a chunk (picklable, sent once)."""

    job_id: str
    output: str  # a folder, or s3://bucket/prefix/ (scoring/batch_outputs)
    passthrough: tuple[str, ...]
    proba: bool
    log_predictions: bool
    sample_rate: float


def run_task(
    model: LoadedModel, spec: TaskSpec, chunk: int, first_row: int, table: pa.Table
) -> batch_io.ChunkResult:
    """Score one chunk and put its part in place (on a worker of either engine)."""
    out, features, predictions, probabilities = batch_io.score_chunk(
        model, table, passthrough=list(spec.passthrough), proba=spec.proba
    )
    # The output folder or s3:// prefix; the part is whole under its name or absent.
    name, sha = open_output(spec.output).write_part(chunk, out)
    logged = (
        batch_io.log_rows(
            job_id=spec.job_id,
            chunk=chunk,
            first_row=first_row,
            model=model,
            features=features,
            predictions=predictions,
            probabilities=probabilities,
            sample_rate=spec.sample_rate,
            at=utc_timestamp(),
        )
        if spec.log_predictions
        else []
    )
    return batch_io.ChunkResult(chunk, table.num_rows, name, sha, logged)


@dataclass(frozen=True, slots=True)
class ChunkTask:
    """One chunk read by the coordinating process (CSV input), sent with its rows."""

    chunk: int
    first_row: int
    table: pa.Table


@dataclass(frozen=True, slots=True)
class RangeTask:
    """Chunks ``first`` to ``end - 1`` of a Parquet input, read by the worker itself."""

    first: int
    end: int


Task = ChunkTask | RangeTask


class BatchEngine:
    """Runs chunk tasks somewhere; calls ``on_done`` in this process as each one completes.

    An engine with a ``reader`` takes :class:`RangeTask` (its workers read the input
    themselves); otherwise it takes :class:`ChunkTask` only. ``workers`` sizes the plan.
    """

    spec: TaskSpec
    reader: batch_io.RangeReader | None = None
    workers: int = 1

    def start(self) -> None:
        raise NotImplementedError

    def run(self, tasks: Iterator[Task], on_done: Callable[[batch_io.ChunkResult], None]) -> None:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError


# Worker-process state of the local engine: the model (loaded once) and the job's constants.
