"""Batch scoring: a model over a file or data set version, streamed, in parallel, resumable.

``BatchScoring`` (``ws.batch``) is the facade; a job runs in four steps:

1. resolve the model (alias -> version), open the input for streaming, read its first chunk
   and check the schema against the signature: every problem is reported at once, before a
   row is scored or anything (job row, output folder) is written;
2. record the job (``batch.started``) and start the engine: a local pool of worker processes
   (default) or a Dask distributed cluster (``batch_dask``). Each worker loads the model
   once, verified by its sha256;
3. cut the input into chunks of ``chunk_rows`` rows (chunk ``i`` is always the same rows),
   send the chunks not yet committed to the workers a few at a time (memory stays bounded by
   the window, not the input), and as each comes back with its part renamed into place,
   commit its row in ``batch_chunks``;
4. record ``batch.finished``, or ``batch.failed`` with the error; ``resume(JOB)`` later
   scores only the chunks without a row, so the output holds each input row exactly once.

The output is a folder of ``part-NNNNN.parquet`` files; read in name order they are the input
rows in order, with the passthrough columns, ``prediction``, ``proba_<class>`` when asked,
and ``model_version``.
"""

from __future__ import annotations

import builtins
import multiprocessing
import os
import tempfile
import threading
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from contextlib import ExitStack, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from modelcycle.audit import utc_timestamp
from modelcycle.errors import Conflict, IntegrityError, InvalidInput, ModelcycleError
from modelcycle.registry import LoadedModel, ModelRegistry, Signature
from modelcycle.scoring import batch_io
from modelcycle.scoring.batch_records import FAILED, RUNNING, BatchJob, BatchRecords
from modelcycle.store import ArtifactStore, MetadataStore, open_artifact_store, tables

if TYPE_CHECKING:
    from modelcycle.datasets import DatasetCatalog

__all__ = [
    "DEFAULT_CHUNK_ROWS",
    "ENGINES",
    "BatchJob",
    "BatchScoring",
    "LocalEngine",
    "Progress",
    "TaskSpec",
    "run_task",
]

ENGINES = ("local", "dask")
DEFAULT_CHUNK_ROWS = 100_000
_MAX_CHUNK_ROWS = 10_000_000

# progress(rows_done, rows_total or None when unknown (CSV))
Progress = Callable[[int, int | None], None]


@dataclass(frozen=True, slots=True)
class TaskSpec:
    """What every worker needs to score and write a chunk (picklable, sent once)."""

    job_id: str
    output: str
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
    name, sha = batch_io.write_part(Path(spec.output), chunk, out)
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
    ) -> None:
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
        progress: Progress | None = None,
    ) -> BatchJob:
        """Score ``input`` with ``model`` (``NAME@ALIAS`` or ``NAME/V``) into the ``output`` folder.

        ``input``: a Parquet file, a folder or glob of Parquet parts, a CSV file, or
        ``data:NAME@VERSION``. Returns the finished job; a failure after the job started is
        raised after the job is recorded failed (``resume(job_id)`` continues it).
        """
        if engine not in ENGINES:
            raise InvalidInput(
                f"{engine!r} is not an engine; expected one of {ENGINES}", field="engine"
            )
        if engine == "dask" and not scheduler:
            raise InvalidInput(
                "the dask engine needs --scheduler tcp://HOST:PORT", field="scheduler"
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
        out = Path(output).expanduser().resolve()
        if out.exists() and (not out.is_dir() or any(out.iterdir())):
            raise Conflict(f"the output {out} exists and is not an empty folder; choose a new one")
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
        }
        job_id = uuid.uuid4().hex
        spec = TaskSpec(job_id, str(out), tuple(passthrough), proba, log_predictions, sample_rate)
        with ExitStack() as stack:
            source = self._open(input_text, signature, stack)
            columns = _needed_columns(signature, passthrough)
            stream = batch_io.chunks(source.batches(columns), chunk_rows)
            first = next(stream, None)
            if first is None:
                raise InvalidInput(f"{input_text} has no rows", field="input")
            batch_io.check_input(signature, source.schema, passthrough, first)
            params["input_schema"] = [[f.name, str(f.type)] for f in source.schema]
            params["input_rows"] = source.num_rows
            runner = self._engine(engine, mv, params, spec, stack)  # loads the model everywhere
            out.mkdir(parents=True, exist_ok=True)
            self.records.create(
                job_id=job_id,
                model_name=mv.name,
                model_version=mv.version,
                input=input_text,
                output=str(out),
                engine=engine,
                params=params,
                rows_in=source.num_rows or 0,
            )
            return self._run(
                job_id, runner, _prepend(first, stream), set(), source.num_rows, progress
            )
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
        if job.status == RUNNING:
            raise Conflict(
                f"batch job {job.id} is still running (process {job.pid} on {job.hostname})"
            )
        if job.status != FAILED:
            raise Conflict(f"batch job {job.id} is {job.status}; only a failed job can be resumed")
        p = job.params
        mv = self._registry.get(job.model_ref)
        if mv.sha256 != p["model_sha256"]:
            raise IntegrityError(f"{mv.ref} no longer has the sha256 the job started with")
        signature = Signature.from_dict(mv.signature)
        out = Path(job.output)
        out.mkdir(parents=True, exist_ok=True)
        for chunk in job.chunks:  # every committed part must still be there, unchanged
            part = out / chunk.part
            if not part.is_file() or batch_io.file_sha256(part) != chunk.sha256:
                raise IntegrityError(
                    f"the committed part {part} is missing or changed; the job cannot be resumed"
                )
        if scheduler:
            p = {**p, "scheduler": scheduler}
        if workers:
            p = {**p, "workers": workers}
        spec = TaskSpec(
            job.id,
            str(out),
            tuple(p["passthrough"]),
            p["proba"],
            p["log_predictions"],
            p["sample_rate"],
        )
        with ExitStack() as stack:
            source = self._open(job.input, signature, stack)
            schema = [[f.name, str(f.type)] for f in source.schema]
            if schema != p["input_schema"] or source.num_rows != p["input_rows"]:
                raise Conflict(
                    f"the input {job.input} changed since job {job.id} started; start a new job"
                )
            columns = _needed_columns(signature, list(p["passthrough"]))
            stream = batch_io.chunks(source.batches(columns), int(p["chunk_rows"]))
            runner = self._engine(job.engine, mv, p, spec, stack)
            self.records.resumed(job)
            done = {c.chunk for c in job.chunks}
            return self._run(job.id, runner, stream, done, source.num_rows, progress)
        raise AssertionError("unreachable")  # pragma: no cover

    # -- reading ----------------------------------------------------------------------------

    def get(self, job_id: str) -> BatchJob:
        """The job (a unique prefix of its id is enough) with its committed chunks."""
        return self.records.get(job_id)

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
        if any(ch in text for ch in "*?["):
            return os.path.abspath(os.path.expanduser(text))
        return str(Path(text).expanduser().resolve())

    def _open(
        self, input_text: str, signature: Signature, stack: ExitStack
    ) -> batch_io.InputSource:
        if input_text.startswith("data:"):
            record = self._datasets.version(input_text.removeprefix("data:"))
            tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="modelcycle-batch-")))
            path = self._artifacts.get_file(record.artifact_sha256, tmp / "data.parquet")
            source = batch_io.open_input(str(path), signature=signature)
            return batch_io.InputSource(input_text, source.schema, source.num_rows, source.batches)
        return batch_io.open_input(input_text, signature=signature)

    def _engine(
        self, engine: str, mv: Any, params: dict[str, Any], spec: TaskSpec, stack: ExitStack
    ) -> _Engine:
        if engine == "dask":
            from modelcycle.scoring.batch_dask import DaskEngine

            blob = self._artifacts.get_bytes(mv.sha256)  # IntegrityError if the blob was altered
            dask_engine = DaskEngine(
                str(params["scheduler"]), mv, blob, spec, trust=bool(params["trust"])
            )
            stack.callback(dask_engine.close)
            dask_engine.start()
            return dask_engine
        local = LocalEngine(
            db_url=self._meta.url,
            artifacts_url=self._artifacts_url,
            actor=self._actor,
            model_ref=mv.ref,
            sha256=mv.sha256,
            trust=bool(params["trust"]),
            spec=spec,
            workers=params.get("workers") or os.cpu_count() or 1,
        )
        stack.callback(local.close)
        local.start()
        return local

    def _run(
        self,
        job_id: str,
        runner: _Engine,
        stream: Iterator[pa.Table],
        done: set[int],
        rows_total: int | None,
        progress: Progress | None,
    ) -> BatchJob:
        beat = _Heartbeat(self.records, job_id, interval=min(10.0, self.records.stale_after / 4))
        beat.start()
        rows_done = 0
        counted = {"rows": 0}

        def tasks() -> Iterator[tuple[int, int, pa.Table]]:
            first_row = 0
            for index, table in enumerate(stream):
                counted["rows"] += table.num_rows
                counted["chunks"] = index + 1
                if index not in done:
                    yield index, first_row, table
                else:
                    _report(table.num_rows)
                first_row += table.num_rows

        def _report(rows: int) -> None:
            nonlocal rows_done
            rows_done += rows
            if progress is not None:
                progress(rows_done, rows_total)

        def on_done(result: batch_io.ChunkResult) -> None:
            self.records.commit_chunk(job_id, result.chunk, result.rows, result.part, result.sha256)
            if result.log_rows:
                self._log_predictions(result.log_rows)
            _report(result.rows)

        try:
            runner.run(tasks(), on_done)
            beat.stop()
            _clean_temp_parts(Path(runner.spec.output))
            self.records.finished(
                job_id, rows_in=counted["rows"], chunks_total=counted.get("chunks", 0)
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


def _prepend(first: pa.Table, rest: Iterator[pa.Table]) -> Iterator[pa.Table]:
    yield first
    yield from rest


def _clean_temp_parts(output: Path) -> None:
    for tmp in output.glob(".part-*.tmp"):
        tmp.unlink(missing_ok=True)


class _Heartbeat:
    """Refreshes the job's heartbeat from a thread while the job runs."""

    def __init__(self, records: BatchRecords, job_id: str, *, interval: float) -> None:
        self._records = records
        self._job_id = job_id
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="batch-heartbeat", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    def _loop(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                self._records.heartbeat(self._job_id)
            except Exception:  # noqa: S112 - a missed beat is retried next interval
                continue


# -- engines -----------------------------------------------------------------------------------


class _Engine:
    """Runs chunk tasks somewhere; calls ``on_done`` in this process as each one completes."""

    spec: TaskSpec

    def start(self) -> None:
        raise NotImplementedError

    def run(
        self,
        tasks: Iterator[tuple[int, int, pa.Table]],
        on_done: Callable[[batch_io.ChunkResult], None],
    ) -> None:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError


# Worker-process state of the local engine: the model, loaded once by the initializer.
_worker: dict[str, Any] = {}


def _init_worker(
    db_url: str,
    artifacts_url: str,
    actor: str,
    model_ref: str,
    sha256: str,
    trust: bool,
    spec: TaskSpec,
) -> None:
    try:
        _limit_threads()
        meta = MetadataStore(db_url)
        try:
            registry = ModelRegistry(meta, open_artifact_store(artifacts_url), actor)
            model = registry.load(model_ref, trust=trust)  # the registry re-checks the sha256
        finally:
            meta.close()
        if model.version.sha256 != sha256:
            raise IntegrityError(
                f"{model_ref} loaded with sha256 {model.version.sha256}, expected {sha256}"
            )
        _worker.update(model=model, spec=spec, error=None, loads=1)
    except BaseException as exc:
        _worker.update(error=exc)


def _worker_ready() -> tuple[int, int]:
    if _worker.get("error") is not None:
        raise _worker["error"]
    return os.getpid(), int(_worker.get("loads", 0))


def _worker_task(chunk: int, first_row: int, table: pa.Table) -> batch_io.ChunkResult:
    if _worker.get("error") is not None:
        raise _worker["error"]
    return run_task(_worker["model"], _worker["spec"], chunk, first_row, table)


def _limit_threads() -> None:
    """One native (OpenMP/BLAS) thread per worker process: one process per core already."""
    try:
        from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]
    except ImportError:  # pragma: no cover - scikit-learn brings threadpoolctl
        return
    threadpool_limits(limits=1)


class LocalEngine(_Engine):
    """A pool of worker processes on this machine, each loading the model once."""

    def __init__(
        self,
        *,
        db_url: str,
        artifacts_url: str,
        actor: str,
        model_ref: str,
        sha256: str,
        trust: bool,
        spec: TaskSpec,
        workers: int,
    ) -> None:
        self.spec = spec
        self.workers = workers
        self._initargs = (db_url, artifacts_url, actor, model_ref, sha256, trust, spec)
        self._pool: ProcessPoolExecutor | None = None

    def start(self) -> None:
        """Start the workers and wait until each has loaded the model (errors surface here)."""
        # fork is fast (no re-import) and safe while this process runs no other thread; the
        # workers are all forked at the first submit, before the pool's own thread starts.
        method = "fork" if threading.active_count() == 1 and os.name == "posix" else "spawn"
        self._pool = ProcessPoolExecutor(
            max_workers=self.workers,
            mp_context=multiprocessing.get_context(method),
            initializer=_init_worker,
            initargs=self._initargs,
        )
        try:
            for fut in [self._pool.submit(_worker_ready) for _ in range(self.workers)]:
                fut.result()
        except BrokenProcessPool as exc:
            raise ModelcycleError(
                f"a batch worker process died while loading the model: {exc}"
            ) from exc

    def run(
        self,
        tasks: Iterator[tuple[int, int, pa.Table]],
        on_done: Callable[[batch_io.ChunkResult], None],
    ) -> None:
        assert self._pool is not None
        window = 2 * self.workers
        pending: set[Future[batch_io.ChunkResult]] = set()
        try:
            for chunk, first_row, table in tasks:
                while len(pending) >= window:
                    pending = self._drain(pending, on_done)
                pending.add(self._pool.submit(_worker_task, chunk, first_row, table))
                del table
            while pending:
                pending = self._drain(pending, on_done)
        except BrokenProcessPool as exc:
            raise ModelcycleError(f"a batch worker process died: {exc}") from exc
        finally:
            for fut in pending:
                fut.cancel()

    @staticmethod
    def _drain(
        pending: set[Future[batch_io.ChunkResult]],
        on_done: Callable[[batch_io.ChunkResult], None],
    ) -> set[Future[batch_io.ChunkResult]]:
        finished, rest = wait(pending, return_when=FIRST_COMPLETED)
        for fut in finished:
            on_done(fut.result())
        return rest

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
