"""The Dask engine of batch scoring: chunks scored, and parts written, by a distributed cluster.

The model goes to the cluster once: its bytes are scattered with ``broadcast=True`` (one copy
per worker), and each task gets that copy by reference. On a worker, :func:`_model_for` keeps
the loaded model in a process-wide cache keyed by its sha256, checking the bytes against the
sha256 before the first (and only) load: so a worker loads the model once, not once per
partition.

Each chunk travels inside its task (not as scattered data): the scheduler keeps the task, so
when a worker dies mid-job the scheduler re-runs its chunks on the others. A re-run chunk
rewrites the same part bytes under the same name (temp file, fsync, rename), and this process
commits a chunk's row once, so each row is in the output exactly once.

The workers write the parts, so the output folder must be reachable at the same path from
every worker (a local cluster, or shared storage).
"""

from __future__ import annotations

import hashlib
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
from modelcycle.scoring.batch_tasks import BatchEngine, ChunkTask, Task, TaskSpec, run_task

__all__ = ["DaskEngine"]

_CONNECT_TIMEOUT_S = 20
_cache: dict[str, LoadedModel] = {}
_loads: dict[str, int] = {}
_lock = threading.Lock()


def _model_for(version: ModelVersion, blob: bytes, trust: bool) -> LoadedModel:
    """The loaded model on this worker: loaded (and its bytes verified) on first use only."""
    with _lock:
        model = _cache.get(version.sha256)
        if model is None:
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
    try:
        from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]
    except ImportError:  # pragma: no cover
        return
    threadpool_limits(limits=1)


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


def model_loads(sha256: str) -> int:
    """How many times this worker process loaded the model (1 once it has scored anything)."""
    return _loads.get(sha256, 0)


class DaskEngine(BatchEngine):
    """Scores chunks on the Dask cluster at ``scheduler`` (``tcp://HOST:PORT``)."""

    def __init__(
        self, scheduler: str, version: ModelVersion, blob: bytes, spec: TaskSpec, *, trust: bool
    ) -> None:
        if not scheduler.startswith(("tcp://", "tls://", "inproc://")):
            raise InvalidInput(
                f"{scheduler!r} is not a scheduler address; expected tcp://HOST:PORT",
                field="scheduler",
            )
        self.scheduler = scheduler
        self.spec = spec
        self._version = version
        self._blob = blob
        self._trust = trust
        self._client: Any = None
        self._blob_future: Any = None
        self._attempt = uuid.uuid4().hex[:8]

    def start(self) -> None:
        """Connect, ship the model to every worker, and load it there (errors surface here)."""
        from distributed import Client

        try:
            self._client = Client(  # type: ignore[no-untyped-call]
                self.scheduler, timeout=_CONNECT_TIMEOUT_S, set_as_default=False
            )
        except (OSError, TimeoutError) as exc:
            raise NotReady(f"cannot reach the Dask scheduler at {self.scheduler}: {exc}") from exc
        workers = list(self._client.scheduler_info().get("workers", {}))
        if not workers:
            self.close()
            raise NotReady(f"the Dask scheduler at {self.scheduler} has no workers")
        self._blob_future = self._client.scatter(self._blob, broadcast=True, hash=False)
        # Load the model on every worker now, so a model that cannot load fails before any row.
        warm = [
            self._client.submit(
                _warm,
                self._version,
                self._blob_future,
                self._trust,
                workers=[address],
                allow_other_workers=False,
                pure=False,
                key=f"modelcycle-batch-warm-{self._attempt}-{i}",
            )
            for i, address in enumerate(workers)
        ]
        self._client.gather(warm)

    def run(self, tasks: Iterator[Task], on_done: Callable[[batch_io.ChunkResult], None]) -> None:
        from distributed import as_completed

        client = self._client
        window = 2 * max(1, len(client.scheduler_info().get("workers", {})))
        done_iter = as_completed(loop=client.loop)  # type: ignore[no-untyped-call]
        in_flight = 0

        def submit(chunk: int, first_row: int, table: pa.Table) -> None:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # "large object in task graph": on purpose
                fut = client.submit(
                    _task,
                    self._version,
                    self._blob_future,
                    self._trust,
                    self.spec,
                    chunk,
                    first_row,
                    table,
                    key=f"modelcycle-batch-{self.spec.job_id}-{self._attempt}-{chunk}",
                    pure=False,
                    retries=2,
                )
            done_iter.add(fut)  # type: ignore[no-untyped-call]

        for task in tasks:
            assert isinstance(task, ChunkTask)  # no reader: the chunks travel with their rows
            while in_flight >= window:
                on_done(next(done_iter).result())
                in_flight -= 1
            submit(task.chunk, task.first_row, task.table)
            in_flight += 1
            del task
        for fut in done_iter:
            on_done(fut.result())

    def close(self) -> None:
        if self._client is not None:
            try:
                self._client.close(timeout=10)
            finally:
                self._client = None


def _warm(version: ModelVersion, blob: bytes, trust: bool) -> int:
    _limit_threads()
    _model_for(version, blob, trust)
    return model_loads(version.sha256)
