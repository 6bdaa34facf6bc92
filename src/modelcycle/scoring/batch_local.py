"""The local engine of batch scoring: worker processes on this machine.

Each worker loads the model once (or inherits it over ``fork``), then runs tasks: a run of
chunks it reads from the Parquet input itself, or one chunk sent with its rows (CSV).
"""

from __future__ import annotations

import multiprocessing
import os
import pickle
import queue
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from modelcycle.errors import IntegrityError, ModelcycleError
from modelcycle.registry import LoadedModel, ModelRegistry
from modelcycle.scoring import batch_io
from modelcycle.scoring._startup import import_skops_lazily
from modelcycle.scoring.batch_tasks import BatchEngine, RangeTask, Task, TaskSpec, run_task
from modelcycle.store import MetadataStore, open_artifact_store

__all__ = ["LocalEngine", "allow_fork"]

# Worker-process state of the local engine: the model (loaded once) and the job's constants.
_worker: dict[str, Any] = {}


def _load_model(
    db_url: str,
    artifacts_url: str,
    actor: str,
    model_ref: str,
    sha256: str,
    trust: bool,
    compiled: tuple[str, bool] | None,
) -> LoadedModel:
    import_skops_lazily()
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
    if compiled is not None:  # (cache folder, build if not there)
        model.compile(Path(compiled[0]), build=compiled[1])
    return model


# What a spawned worker needs to set itself up: _load_model's arguments, the spec, the reader.
_Setup = tuple[
    tuple[str, str, str, str, str, bool, tuple[str, bool] | None],
    TaskSpec,
    "batch_io.RangeReader | None",
]


def _worker_main(tasks: Any, results: Any, setup: _Setup | None) -> None:
    """A local worker: load the model unless inherited (fork), then run tasks until ``None``.

    Sends ``("ready", pid)``, ``("chunk", ChunkResult)`` per part in place, ``("task", None)``
    per task finished, or ``("failed", error)`` and exits.
    """
    # Ctrl-C reaches the whole process group: the coordinating process decides, and stops us.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        _limit_threads()
        if setup is not None:
            _worker.update(model=_load_model(*setup[0]), spec=setup[1], reader=setup[2])
    except BaseException as exc:
        results.put(("failed", _portable(exc)))
        return
    results.put(("ready", os.getpid()))
    model: LoadedModel = _worker["model"]
    spec: TaskSpec = _worker["spec"]
    reader: batch_io.RangeReader | None = _worker.get("reader")
    while (task := tasks.get()) is not None:
        try:
            if isinstance(task, RangeTask):
                assert reader is not None
                for chunk, table in reader.tables(task.first, task.end):
                    result = run_task(model, spec, chunk, chunk * reader.chunk_rows, table)
                    del table
                    results.put(("chunk", result))
            else:
                results.put(
                    ("chunk", run_task(model, spec, task.chunk, task.first_row, task.table))
                )
        except BaseException as exc:
            results.put(("failed", _portable(exc)))
            return
        del task
        results.put(("task", None))


def _portable(exc: BaseException) -> BaseException:
    """``exc`` if it survives pickling to the coordinating process, else a plain stand-in."""
    try:
        pickle.loads(pickle.dumps(exc))  # noqa: S301 - our own bytes, just made
    except Exception:
        return ModelcycleError(f"{type(exc).__name__}: {exc}")
    return exc


# Set by allow_fork(): this process has run no model code (the `score` command's own process).
_FORK_ALLOWED = [False]
# Libraries whose OpenMP thread pool, once started, hangs a forked child's first prediction.
_OPENMP_BOOSTERS = ("lightgbm", "xgboost")


def allow_fork() -> None:
    """Let local batch workers be forked from this process (see LocalEngine.start): call only
    in a process that has not run any model code, such as a fresh CLI process."""
    _FORK_ALLOWED[0] = True


def _limit_threads() -> None:
    """One native (OpenMP/BLAS) thread per worker process: one process per core already."""
    try:
        from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]
    except ImportError:  # pragma: no cover - scikit-learn brings threadpoolctl
        return
    threadpool_limits(limits=1)


class LocalEngine(BatchEngine):
    """Worker processes on this machine scoring chunks and writing the parts.

    With a ``reader`` (Parquet input) each worker reads its runs of chunks straight from the
    file, so this process reads and ships nothing; it only hands out ``[first, end)`` runs
    and commits each part as its worker reports it. Without (CSV), chunks come with their
    rows.
    """

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
        reader: batch_io.RangeReader | None = None,
        compiled: tuple[Path, bool] | None = None,
    ) -> None:
        self.spec = spec
        self.workers = workers
        self.reader = reader
        # Tree ensembles compiled for this machine: (cache folder, build one if not cached).
        cache = None if compiled is None else (str(compiled[0]), compiled[1])
        self._load = (db_url, artifacts_url, actor, model_ref, sha256, trust, cache)
        self._procs: list[Any] = []
        self._tasks: Any = None
        self._results: Any = None
        self._clean = False

    def start(self) -> None:
        """Start the workers and wait until each has the model (errors surface here)."""
        # fork is cheap: the model is loaded here once and the workers share it copy-on-write,
        # instead of each importing the libraries and loading it (about a second per
        # process). It needs a process that runs no other thread, and no OpenMP thread pool
        # the child cannot use: a process that fitted or predicted with LightGBM or XGBoost
        # before forking left one, and the child's first prediction hung (a LightGBM batch
        # job in a test process that had fitted models). Such a process (the SDK in a
        # notebook, a worker that trains) spawns its workers, each loading the model itself,
        # unless it says it has run no model code (allow_fork: the `score` command).
        forking = (
            os.name == "posix"
            and threading.active_count() == 1
            and (_FORK_ALLOWED[0] or not any(m in sys.modules for m in _OPENMP_BOOSTERS))
        )
        ctx = multiprocessing.get_context("fork" if forking else "spawn")
        self._tasks, self._results = ctx.Queue(), ctx.Queue()
        setup: _Setup | None = None
        if forking:
            _worker.update(model=_load_model(*self._load), spec=self.spec, reader=self.reader)
        else:
            setup = (self._load, self.spec, self.reader)
        try:
            for _ in range(self.workers):
                proc = ctx.Process(  # type: ignore[attr-defined]
                    target=_worker_main,
                    args=(self._tasks, self._results, setup),
                    name="modelcycle-batch-worker",
                    daemon=True,
                )
                proc.start()
                self._procs.append(proc)
        finally:
            _worker.clear()  # the workers have their copy; this process needs none
        ready = 0
        while ready < self.workers:
            kind, value = self._next("while loading the model")
            if kind == "failed":
                raise value
            ready += kind == "ready"

    def run(self, tasks: Iterator[Task], on_done: Callable[[batch_io.ChunkResult], None]) -> None:
        # At most two tasks per worker are queued: for CSV this bounds the rows in flight.
        window = 2 * self.workers
        in_flight = 0
        more = True
        while True:
            while more and in_flight < window:
                task = next(tasks, None)
                if task is None:
                    more = False
                else:
                    self._tasks.put(task)
                    in_flight += 1
                    del task
            if not in_flight:
                break
            kind, value = self._next("while scoring")
            if kind == "chunk":
                on_done(value)
            elif kind == "task":
                in_flight -= 1
            elif kind == "failed":
                raise value
        self._clean = True

    def _next(self, doing: str) -> tuple[str, Any]:
        """The next message from a worker; a worker that died is an error, not a hang."""
        while True:
            try:
                message: tuple[str, Any] = self._results.get(timeout=0.5)
                return message
            except queue.Empty:
                for proc in self._procs:
                    if proc.exitcode is not None:
                        raise ModelcycleError(
                            f"a batch worker process died {doing} (exit code {proc.exitcode})"
                        ) from None

    def close(self) -> None:
        if not self._procs:
            return
        if self._clean:
            for _ in self._procs:
                self._tasks.put(None)
        for proc in self._procs:
            proc.join(timeout=10 if self._clean else 0)
            if proc.exitcode is None:
                proc.terminate()
                proc.join(timeout=10)
        for q in (self._tasks, self._results):
            q.close()
            if self._clean:
                q.join_thread()  # so that the next job in this process may fork again
            else:
                q.cancel_join_thread()
        self._procs = []
