"""The Dask engine of batch scoring: chunks read, scored and written by a distributed cluster.

The submitting process is not in the data path. For Parquet input (a file, parts, an
``s3://`` glob, or a data set version in an ``s3://`` store) a task is a *description*: a run
of chunks ``[first, end)`` and the few row groups they lie in (paths or ``s3://`` URLs). The
worker reads those rows straight from the input, scores them, and writes each chunk's part to
the output (a folder, or an ``s3://`` prefix: scoring/batch_outputs), then returns only the
part names and sha256s. CSV and JSON lines cannot be entered mid-way: their chunks are read
here and travel with their tasks, as before.

The model goes to the cluster once: its bytes are scattered with ``broadcast=True`` (one copy
per worker), and each task gets that copy by reference. On a worker, :func:`_model_for` keeps
the loaded model in a process-wide cache keyed by its sha256, checking the bytes against the
sha256 before the first (and only) load.

Exactly once: the scheduler keeps every task; when a worker dies mid-job it re-runs the
worker's tasks elsewhere, and a re-run writes the same part bytes under the same name (whole
or absent, in a folder or a bucket). This process commits a chunk's row once. If the scheduler
itself dies, the job fails here and ``resume`` scores only the chunks without a row.

Without a ``scheduler`` the engine starts a ``distributed.LocalCluster`` of worker processes
(one thread each, ``workers`` of them, bounded by the cores) on 127.0.0.1 for the job, so the
bench, the tests and a laptop get a cluster the same way.
"""

from __future__ import annotations

import hashlib
import os
import threading
import uuid
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import pyarrow as pa

from modelcycle.entities import ModelVersion
from modelcycle.errors import IntegrityError, InvalidInput, NotReady
from modelcycle.registry import LoadedModel, Signature, get_flavor
from modelcycle.scoring import batch_io
from modelcycle.scoring._startup import import_skops_lazily
from modelcycle.scoring.batch_tasks import (
    BatchEngine,
    ChunkTask,
    RangeTask,
    Task,
    TaskSpec,
    run_task,
)

__all__ = ["DaskEngine"]

_CONNECT_TIMEOUT_S = 20
# A local cluster's workers: one per core, one thread each, at most this many.
_MAX_LOCAL_WORKERS = 8
_cache: dict[str, LoadedModel] = {}
_loads: dict[str, int] = {}
_lock = threading.Lock()
_limited: list[bool] = []


def _model_for(version: ModelVersion, blob: bytes, trust: bool) -> LoadedModel:
    """The loaded model on this worker: loaded (and its bytes verified) on first use only."""
    with _lock:
        model = _cache.get(version.sha256)
        if model is None:
            import_skops_lazily()  # not every scikit-learn module on each worker's first load
            if hashlib.sha256(blob).hexdigest() != version.sha256:
                raise IntegrityError(f"the bytes of {version.ref} do not match its sha256")
            flavor = get_flavor(version.flavor)
            model = LoadedModel(
                version,
                Signature.from_dict(version.signature),
                flavor,
                flavor.load(blob, trust=trust),
            )
            _cache[version.sha256] = model
            _loads[version.sha256] = _loads.get(version.sha256, 0) + 1
        return model


def _limit_threads() -> None:
    """One native thread per task (a Dask worker runs one task per thread); once per process."""
    if _limited:
        return
    try:
        from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]
    except ImportError:  # pragma: no cover
        return
    threadpool_limits(limits=1)  # ~30 ms a call: not per task
    _limited.append(True)


def _task(
    version: ModelVersion,
    blob: bytes,
    trust: bool,
    spec: TaskSpec,
    chunk: int,
    first_row: int,
    table: pa.Table,
) -> batch_io.ChunkResult:
    _limit_threads()
    return run_task(_model_for(version, blob, trust), spec, chunk, first_row, table)


def _range_task(
    version: ModelVersion,
    blob: bytes,
    trust: bool,
    spec: TaskSpec,
    reader: batch_io.RangeReader,
    first: int,
    end: int,
) -> list[batch_io.ChunkResult]:
    """Read chunks ``first`` to ``end - 1`` from the input, score them, write their parts."""
    _limit_threads()
    model = _model_for(version, blob, trust)
    results = []
    for chunk, table in reader.tables(first, end):
        results.append(run_task(model, spec, chunk, chunk * reader.chunk_rows, table))
        del table
    return results


def task_reader(reader: batch_io.RangeReader, first: int, end: int) -> batch_io.RangeReader:
    """``reader`` cut down to the row groups chunks ``first`` to ``end - 1`` lie in.

    What a task carries: a few segments (path, row group, start, rows), never the whole
    input's list, which for thousands of parts would be most of the description.
    """
    lo, hi = first * reader.chunk_rows, min(end * reader.chunk_rows, reader.num_rows)
    segments = tuple(s for s in reader.segments if s.start < hi and s.start + s.rows > lo)
    return batch_io.RangeReader(segments, reader.columns, reader.chunk_rows, reader.num_rows)


def model_loads(sha256: str) -> int:
    """How many times this worker process loaded the model (1 once it has scored anything)."""
    return _loads.get(sha256, 0)


class DaskEngine(BatchEngine):
    """Scores chunks on the Dask cluster at ``scheduler`` (``tcp://HOST:PORT``), or on a local
    cluster started for the job when ``scheduler`` is None."""

    def __init__(
        self,
        scheduler: str | None,
        version: ModelVersion,
        blob: bytes,
        spec: TaskSpec,
        *,
        trust: bool,
        reader: batch_io.RangeReader | None = None,
        workers: int | None = None,
    ) -> None:
        if scheduler is not None and not scheduler.startswith(("tcp://", "tls://", "inproc://")):
            raise InvalidInput(
                f"{scheduler!r} is not a scheduler address; expected tcp://HOST:PORT",
                field="scheduler",
            )
        self.scheduler = scheduler
        self.spec = spec
        self.reader = reader
        self._local_workers = workers or min(os.cpu_count() or 1, _MAX_LOCAL_WORKERS)
        self.workers = self._local_workers
        self._version = version
        self._blob = blob
        self._trust = trust
        self._cluster: Any = None
        self._client: Any = None
        self._blob_future: Any = None
        self._attempt = uuid.uuid4().hex[:8]

    def start(self) -> None:
        """Connect (or start a local cluster), ship the model, load it on every worker."""
        from distributed import Client

        address = self.scheduler or self._start_local_cluster()
        try:
            self._client = Client(  # type: ignore[no-untyped-call]
                address, timeout=_CONNECT_TIMEOUT_S, set_as_default=False
            )
        except (OSError, TimeoutError) as exc:
            self.close()
            raise NotReady(f"cannot reach the Dask scheduler at {address}: {exc}") from exc
        workers = list(self._client.scheduler_info().get("workers", {}))
        if not workers:
            self.close()
            raise NotReady(f"the Dask scheduler at {address} has no workers")
        self.workers = len(workers)
        self._blob_future = self._client.scatter(self._blob, broadcast=True, hash=False)
        # Load the model on every worker now, so a model that cannot load fails before any row.
        warm = [
            self._client.submit(
                _warm,
                self._version,
                self._blob_future,
                self._trust,
                workers=[worker],
                allow_other_workers=False,
                pure=False,
                key=f"modelcycle-batch-warm-{self._attempt}-{i}",
            )
            for i, worker in enumerate(workers)
        ]
        self._client.gather(warm)

    def _start_local_cluster(self) -> str:
        from distributed import LocalCluster

        self._cluster = LocalCluster(  # type: ignore[no-untyped-call]
            n_workers=self._local_workers,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address=None,
            silence_logs=40,  # errors only: the job's own messages say what happened
        )
        return str(self._cluster.scheduler_address)

    def run(self, tasks: Iterator[Task], on_done: Callable[[batch_io.ChunkResult], None]) -> None:
        from distributed import as_completed

        client = self._client
        window = 2 * max(1, len(client.scheduler_info().get("workers", {})))
        done_iter = as_completed(loop=client.loop)  # type: ignore[no-untyped-call]
        in_flight = 0
        prefix = f"modelcycle-batch-{self.spec.job_id}-{self._attempt}"
        common = (self._version, self._blob_future, self._trust, self.spec)

        def finish(fut: Any) -> None:
            result = fut.result()
            for item in result if isinstance(result, list) else [result]:
                on_done(item)

        for task in tasks:
            while in_flight >= window:
                finish(next(done_iter))
                in_flight -= 1
            if isinstance(task, RangeTask):
                assert self.reader is not None
                fut = client.submit(
                    _range_task,
                    *common,
                    task_reader(self.reader, task.first, task.end),
                    task.first,
                    task.end,
                    key=f"{prefix}-{task.first}-{task.end}",
                    pure=False,
                    retries=2,
                )
            else:
                assert isinstance(task, ChunkTask)
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # "large object in task graph": on purpose
                    fut = client.submit(
                        _task,
                        *common,
                        task.chunk,
                        task.first_row,
                        task.table,
                        key=f"{prefix}-{task.chunk}",
                        pure=False,
                        retries=2,
                    )
            done_iter.add(fut)  # type: ignore[no-untyped-call]
            in_flight += 1
            del task
        for fut in done_iter:
            finish(fut)

    def close(self) -> None:
        try:
            if self._client is not None:
                self._client.close(timeout=10)
        finally:
            self._client = None
            if self._cluster is not None:
                try:
                    self._cluster.close(timeout=20)
                finally:
                    self._cluster = None


def _warm(version: ModelVersion, blob: bytes, trust: bool) -> int:
    _limit_threads()
    _model_for(version, blob, trust)
    return model_loads(version.sha256)
