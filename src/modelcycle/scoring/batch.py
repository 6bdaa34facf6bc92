"""Batch scoring: a model over a file or data set version, streamed, in parallel, resumable.

``BatchScoring`` (``ws.batch``) is the facade; a job runs in four steps:

1. resolve the model (alias -> version), open the input for streaming, read its first chunk
   and check the schema against the signature: every problem is reported at once, before a
   row is scored or anything (job row, output folder) is written;
2. record the job (``batch.started``) and start the engine: a local pool of worker processes
   (default) or a Dask distributed cluster (``batch_dask``). Each worker loads the model
   once, verified by its sha256;
3. cut the input into chunks of ``chunk_rows`` rows (chunk ``i`` is always the same rows)
   and hand the chunks not yet committed to the workers a few tasks at a time: with Parquet
   input a task is a run of chunks the worker reads from the file (or S3 object) itself, on
   either engine (this process ships no rows); otherwise a chunk travels with its task. As
   each part is reported in place, commit its row in ``batch_chunks``;
4. record ``batch.finished``, or ``batch.failed`` with the error; ``resume(JOB)`` later
   scores only the chunks without a row, so the output holds each input row exactly once.

The output is a folder or an ``s3://`` prefix of ``part-NNNNN.parquet`` files, each put in
place whole (``batch_outputs``); read in name order they are the input rows in order, with
the passthrough columns, ``prediction``, ``proba_<class>`` when asked, and ``model_version``.
"""

from __future__ import annotations

import builtins
import os
import tempfile
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack, suppress
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from modelcycle.errors import Conflict, IntegrityError, InvalidInput, ModelcycleError
from modelcycle.liveness import Heartbeat
from modelcycle.registry import ModelRegistry, Signature
from modelcycle.scoring import batch_io
from modelcycle.scoring.batch_outputs import open_output, output_text
from modelcycle.scoring.batch_records import BatchJob, BatchRecords
from modelcycle.scoring.batch_tasks import BatchEngine, ChunkTask, RangeTask, Task, TaskSpec
from modelcycle.statuses import BatchJobStatus
from modelcycle.store import ArtifactStore, MetadataStore, tables

if TYPE_CHECKING:
    from modelcycle.datasets import DatasetCatalog

__all__ = [
    "DEFAULT_CHUNK_ROWS",
    "ENGINES",
    "BatchEngine",
    "BatchJob",
    "BatchScoring",
    "Progress",
    "TaskSpec",
]

# Small enough that a worker's data stays a fraction of its libraries and model (peak RSS
# 0.37x the floor's at 1M rows), large enough that per-chunk costs vanish.
DEFAULT_CHUNK_ROWS = 32_768
_MAX_CHUNK_ROWS = 10_000_000

# progress(rows_done, rows_total or None when unknown (CSV))
Progress = Callable[[int, int | None], None]


def _local_engine(
    scoring: BatchScoring,
    mv: Any,
    params: dict[str, Any],
    spec: TaskSpec,
    reader: batch_io.RangeReader | None,
) -> BatchEngine:
    from modelcycle.scoring.batch_local import LocalEngine

    return LocalEngine(
        db_url=scoring._meta.url,
        artifacts_url=scoring._artifacts_url,
        actor=scoring._actor,
        model_ref=mv.ref,
        sha256=mv.sha256,
        trust=bool(params["trust"]),
        spec=spec,
        workers=params.get("workers") or os.cpu_count() or 1,
        reader=reader,
        compiled=_compiled(scoring, params.get("input_rows")),
    )


def _compiled(scoring: BatchScoring, rows: int | None) -> tuple[Path, bool] | None:
    """Where the workers find compiled trees, and whether this job is large enough to pay for
    building them (a build takes seconds; a cached library is used by any job)."""
    if scoring._compiled_cache is None:
        return None
    build = rows is not None and rows >= scoring._compile_min_rows
    return scoring._compiled_cache, build


def _dask_engine(
    scoring: BatchScoring,
    mv: Any,
    params: dict[str, Any],
    spec: TaskSpec,
    reader: batch_io.RangeReader | None,
) -> BatchEngine:
    # Imported here: dask.distributed takes a second to import and only this engine needs it.
    from modelcycle.scoring.batch_dask import DaskEngine

    blob = scoring._artifacts.get_bytes(mv.sha256)  # IntegrityError if the blob was altered
    return DaskEngine(
        params.get("scheduler"),
        mv,
        blob,
        spec,
        trust=bool(params["trust"]),
        reader=reader,
        workers=params.get("workers"),
    )


# The engines by name: each builds an unstarted BatchEngine (see batch_tasks) for a job.
_ENGINES: dict[
    str,
    Callable[
        [BatchScoring, Any, dict[str, Any], TaskSpec, batch_io.RangeReader | None], BatchEngine
    ],
] = {"local": _local_engine, "dask": _dask_engine}
ENGINES = tuple(_ENGINES)


# -- the facade --------------------------------------------------------------------------------


class BatchScoring:
    """Batch scoring jobs of one workspace (``ws.batch``). Constructing it does no I/O."""

    def __init__(
        self,
        metadata: MetadataStore,
        artifacts: ArtifactStore,
        actor: str,
        *,
        registry: ModelRegistry,
        datasets: DatasetCatalog,
        artifacts_url: str,
        stale_after: float = 120.0,
        compiled_cache: Path | None = None,
        compile_min_rows: int = 1_000_000,
    ) -> None:
        # Where local workers keep tree ensembles compiled for this machine (None: never
        # compile; registry/compiled_trees.py), and the job size from which one is built.
        self._compiled_cache = compiled_cache
        self._compile_min_rows = compile_min_rows
        self._meta = metadata
        self._artifacts = artifacts
        self._actor = actor
        self._registry = registry
        self._datasets = datasets
        self._artifacts_url = artifacts_url
        self.records = BatchRecords(metadata, actor, stale_after=stale_after)

    # -- running ----------------------------------------------------------------------------

    def score(
        self,
        model: str,
        input: str | os.PathLike[str],
        output: str | os.PathLike[str],
        *,
        engine: str = "local",
        scheduler: str | None = None,
        workers: int | None = None,
        chunk_rows: int = DEFAULT_CHUNK_ROWS,
        passthrough: builtins.list[str] | tuple[str, ...] = (),
        proba: bool = False,
        log_predictions: bool = False,
        sample_rate: float = 1.0,
        trust: bool = False,
        skip_bad_rows: bool = False,
        progress: Progress | None = None,
    ) -> BatchJob:
        """Score ``input`` with ``model`` (``NAME@ALIAS`` or ``NAME/V``) into the ``output`` folder.

        ``input``: a Parquet file, a folder or glob of Parquet parts, a CSV file, or
        ``data:NAME@VERSION``. A CSV row that cannot be read is an error naming its line;
        with ``skip_bad_rows`` such rows are left out and listed, with the reason, in the
        output's ``_rejects.csv``. Returns the finished job; a failure after the job started
        is raised after the job is recorded failed (``resume(job_id)`` continues it).
        """
        if engine not in ENGINES:
            raise InvalidInput(
                f"{engine!r} is not an engine; expected one of {ENGINES}", field="engine"
            )
        if workers is not None and workers < 1:
            raise InvalidInput("must be at least 1", field="workers")
        if not 1 <= chunk_rows <= _MAX_CHUNK_ROWS:
            raise InvalidInput(f"must be from 1 to {_MAX_CHUNK_ROWS}", field="chunk_rows")
        if not 0.0 <= sample_rate <= 1.0:
            raise InvalidInput("must be from 0 to 1", field="sample_rate")
        passthrough = list(passthrough)
        if len(set(passthrough)) != len(passthrough):
            raise InvalidInput("names a column more than once", field="passthrough")
        mv = self._registry.get(model)
        if mv.status == "archived":
            raise Conflict(f"{mv.ref} is archived and cannot be loaded for use")
        signature = Signature.from_dict(mv.signature)
        if proba and not signature.is_classifier:
            raise InvalidInput(
                f"{mv.ref} is a {signature.task} model; only classifiers give probabilities",
                field="proba",
            )
        location = open_output(output_text(output))
        location.check_new()
        input_text = self._input_text(os.fspath(input))
        params: dict[str, Any] = {
            "model_sha256": mv.sha256,
            "flavor": mv.flavor,
            "chunk_rows": chunk_rows,
            "passthrough": passthrough,
            "proba": proba,
            "log_predictions": log_predictions,
            "sample_rate": sample_rate,
            "trust": trust,
            "workers": workers,
            "scheduler": scheduler,
            "skip_bad_rows": skip_bad_rows,
        }
        job_id = uuid.uuid4().hex
        spec = TaskSpec(
            job_id, location.url, tuple(passthrough), proba, log_predictions, sample_rate
        )
        with ExitStack() as stack:
            rejects = batch_io.Rejects() if skip_bad_rows else None
            source = self._open(input_text, signature, stack, rejects, engine=engine)
            # Columns and types first, on the schema alone: a reader asked for a column the
            # input lacks fails inside Arrow (a CSV's include_columns) before any check runs.
            batch_io.check_input(signature, source.schema, passthrough, None, where=input_text)
            columns = _needed_columns(signature, passthrough)
            reader = _reader(source, columns, chunk_rows)
            stream: Iterator[pa.Table] = iter(())
            first: pa.Table | None
            if reader is not None:  # the workers read every chunk, this one included
                first = reader.head()
            else:
                stream = batch_io.chunks(source.batches(columns), chunk_rows)
                first = next(stream, None)
            if first is None:
                raise InvalidInput(f"{input_text} has no rows", field="input")
            batch_io.check_input(signature, source.schema, passthrough, first, where=input_text)
            params["input_schema"] = [[f.name, str(f.type)] for f in source.schema]
            params["input_rows"] = source.num_rows
            if reader is not None:
                first = None
                pa.default_memory_pool().release_unused()  # not to be copied into the workers
            runner = self._engine(engine, mv, params, spec, stack, reader)  # loads the model
            location.prepare()
            if rejects is not None:
                rejects.open(location.open_text(batch_io.REJECTS_FILE))
                stack.callback(rejects.close)
            self.records.create(
                job_id=job_id,
                model_name=mv.name,
                model_version=mv.version,
                input=input_text,
                output=location.url,
                engine=engine,
                params=params,
                rows_in=source.num_rows or 0,
            )
            if first is not None:
                stream = _prepend(first, stream)
            return self._run(job_id, runner, stream, set(), source.num_rows, progress, rejects)
        raise AssertionError("unreachable")  # pragma: no cover

    def resume(
        self,
        job_id: str,
        *,
        workers: int | None = None,
        scheduler: str | None = None,
        progress: Progress | None = None,
    ) -> BatchJob:
        """Finish a failed (or stale) job: only chunks without a committed row are scored."""
        job = self.records.get(job_id)
        if job.status == BatchJobStatus.RUNNING:
            raise Conflict(
                f"batch job {job.id} is still running (process {job.pid} on {job.hostname})"
            )
        if job.status != BatchJobStatus.FAILED:
            raise Conflict(f"batch job {job.id} is {job.status}; only a failed job can be resumed")
        p = job.params
        mv = self._registry.get(job.model_ref)
        if mv.sha256 != p["model_sha256"]:
            raise IntegrityError(f"{mv.ref} no longer has the sha256 the job started with")
        signature = Signature.from_dict(mv.signature)
        location = open_output(job.output)
        location.prepare()
        # Every committed part must still be there, unchanged.
        location.verify_parts([(c.part, c.sha256) for c in job.chunks])
        if scheduler:
            p = {**p, "scheduler": scheduler}
        if workers:
            p = {**p, "workers": workers}
        spec = TaskSpec(
            job.id,
            location.url,
            tuple(p["passthrough"]),
            p["proba"],
            p["log_predictions"],
            p["sample_rate"],
        )
        with ExitStack() as stack:
            rejects = batch_io.Rejects() if p.get("skip_bad_rows") else None
            source = self._open(job.input, signature, stack, rejects, engine=job.engine)
            schema = [[f.name, str(f.type)] for f in source.schema]
            if schema != p["input_schema"] or source.num_rows != p["input_rows"]:
                raise Conflict(
                    f"the input {job.input} changed since job {job.id} started; start a new job"
                )
            columns = _needed_columns(signature, list(p["passthrough"]))
            chunk_rows = int(p["chunk_rows"])
            reader = _reader(source, columns, chunk_rows)
            runner = self._engine(job.engine, mv, p, spec, stack, reader)
            stream = (
                iter(())
                if reader is not None
                else batch_io.chunks(source.batches(columns), chunk_rows)
            )
            if rejects is not None:  # the CSV is read from its start again: the same rejects
                rejects.open(location.open_text(batch_io.REJECTS_FILE))
                stack.callback(rejects.close)
            self.records.resumed(job)
            done = {c.chunk for c in job.chunks}
            return self._run(job.id, runner, stream, done, source.num_rows, progress, rejects)
        raise AssertionError("unreachable")  # pragma: no cover

    # -- reading ----------------------------------------------------------------------------

    def get(self, job_id: str) -> BatchJob:
        """The job (a unique prefix of its id is enough) with its committed chunks."""
        return self.records.get(job_id)

    def rejected(self, job: BatchJob) -> int:
        """How many CSV rows the job left out as bad (``skip_bad_rows``), per its rejects file."""
        text = open_output(job.output).read_text(batch_io.REJECTS_FILE)
        if text is None:
            return 0
        import csv
        import io

        return max(0, sum(1 for _ in csv.reader(io.StringIO(text, newline=""))) - 1)

    def list(self, *, limit: int | None = 50) -> builtins.list[BatchJob]:
        """Jobs, newest first; stale running jobs are marked failed first."""
        return self.records.list(limit=limit)

    # -- internals --------------------------------------------------------------------------

    def _input_text(self, text: str) -> str:
        """The input as recorded on the job: an absolute path, or ``data:NAME@VERSION``."""
        if text.startswith("data:"):
            from modelcycle.datasets import parse_dataset_ref

            ref = parse_dataset_ref(text.removeprefix("data:"), field="input")
            record = self._datasets.version(ref.name, ref.version)
            return f"data:{record.name}@{record.version}"
        if text.startswith("s3://"):
            return text  # object storage: recorded as given (scoring/batch_inputs reads it)
        if any(ch in text for ch in "*?["):
            return os.path.abspath(os.path.expanduser(text))
        return str(Path(text).expanduser().resolve())

    def _open(
        self,
        input_text: str,
        signature: Signature,
        stack: ExitStack,
        rejects: batch_io.Rejects | None,
        *,
        engine: str = "local",
    ) -> batch_io.InputSource:
        if input_text.startswith("data:"):
            record = self._datasets.version(input_text.removeprefix("data:"))
            remote = _object_url(self._artifacts, record.artifact_sha256)
            if engine == "dask" and remote is not None:
                # Dask tasks read the version's object straight from the bucket, by ranges.
                source = batch_io.open_input(remote, signature=signature)
                return batch_io.InputSource(
                    input_text, source.schema, source.num_rows, source.batches, source.segments
                )
            tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="modelcycle-batch-")))
            path = self._artifacts.get_file(record.artifact_sha256, tmp / "data.parquet")
            source = batch_io.open_input(str(path), signature=signature)
            # Dask workers may be on other hosts, which cannot read this process's temporary
            # copy: without segments the chunks travel with their tasks.
            segments = None if engine == "dask" else source.segments
            return batch_io.InputSource(
                input_text, source.schema, source.num_rows, source.batches, segments
            )
        return batch_io.open_input(input_text, signature=signature, rejects=rejects)

    def _engine(
        self,
        engine: str,
        mv: Any,
        params: dict[str, Any],
        spec: TaskSpec,
        stack: ExitStack,
        reader: batch_io.RangeReader | None,
    ) -> BatchEngine:
        runner = _ENGINES[engine](self, mv, params, spec, reader)
        stack.callback(runner.close)
        runner.start()  # loads the model in the workers: errors surface here
        return runner

    def _run(
        self,
        job_id: str,
        runner: BatchEngine,
        stream: Iterator[pa.Table],
        done: set[int],
        rows_total: int | None,
        progress: Progress | None,
        rejects: batch_io.Rejects | None = None,
    ) -> BatchJob:
        beat = Heartbeat(
            lambda: self.records.heartbeat(job_id),
            min(10.0, self.records.stale_after / 4),
            name="batch-heartbeat",
        )
        beat.start()
        rows_done = 0
        counted = {"rows": 0, "chunks": 0}

        def _report(rows: int) -> None:
            nonlocal rows_done
            rows_done += rows
            if progress is not None:
                progress(rows_done, rows_total)

        def chunk_tasks() -> Iterator[Task]:
            first_row = 0
            for index, table in enumerate(stream):
                counted["rows"] += table.num_rows
                counted["chunks"] = index + 1
                if index not in done:
                    yield ChunkTask(index, first_row, table)
                else:
                    _report(table.num_rows)
                first_row += table.num_rows

        def range_tasks(reader: batch_io.RangeReader) -> Iterator[Task]:
            counted.update(rows=reader.num_rows, chunks=reader.num_chunks)
            size = reader.chunk_rows
            for chunk in sorted(done):
                _report(min(size, reader.num_rows - chunk * size))
            todo = [c for c in range(reader.num_chunks) if c not in done]
            for first, end in batch_io.plan_ranges(reader.segments, size, todo, runner.workers):
                yield RangeTask(first, end)

        def on_done(result: batch_io.ChunkResult) -> None:
            self.records.commit_chunk(job_id, result.chunk, result.rows, result.part, result.sha256)
            if result.log_rows:
                self._log_predictions(result.log_rows)
            _report(result.rows)

        try:
            tasks = range_tasks(runner.reader) if runner.reader is not None else chunk_tasks()
            runner.run(tasks, on_done)
            beat.stop()
            open_output(runner.spec.output).clean()
            self.records.finished(
                job_id,
                rows_in=counted["rows"],
                chunks_total=counted["chunks"],
                rejected=rejects.count if rejects is not None else None,
            )
        except BaseException as exc:
            beat.stop()
            message = (
                str(exc) if isinstance(exc, ModelcycleError) else f"{type(exc).__name__}: {exc}"
            )
            if isinstance(exc, KeyboardInterrupt):
                message = "interrupted"
            with suppress(Exception):
                self.records.failed(job_id, message or type(exc).__name__)
            raise
        return self.records.get(job_id)

    def _log_predictions(self, rows: builtins.list[dict[str, Any]]) -> None:
        """Scored rows into the prediction log (bulk, not audited: it is traffic, not change)."""
        self._meta.append_rows(tables.prediction_log, rows)


def _needed_columns(signature: Signature, passthrough: builtins.list[str]) -> builtins.list[str]:
    names = list(signature.input_names)
    return names + [c for c in passthrough if c not in names]


def _reader(
    source: batch_io.InputSource, columns: builtins.list[str], chunk_rows: int
) -> batch_io.RangeReader | None:
    """A reader of any run of chunks, for inputs that can be entered mid-way (Parquet)."""
    if source.segments is None or not source.num_rows:
        return None
    if any(name not in source.schema.names for name in columns):
        return None  # refused by the checks, which then name every missing column
    return batch_io.RangeReader(source.segments, tuple(columns), chunk_rows, source.num_rows)


def _prepend(first: pa.Table, rest: Iterator[pa.Table]) -> Iterator[pa.Table]:
    yield first
    yield from rest


def _object_url(artifacts: ArtifactStore, sha256: str) -> str | None:
    """``s3://bucket/key`` of a blob when the store is a bucket (Dask tasks read it directly)."""
    from modelcycle.store.s3_artifacts import S3ArtifactStore

    if isinstance(artifacts, S3ArtifactStore):
        return f"s3://{artifacts.bucket}/{artifacts.key(sha256)}"
    return None
