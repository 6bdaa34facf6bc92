"""Running a pipeline: step by step, with caching, captured logs, a heartbeat and a record.

Cache key of a step = sha256 of canonical JSON ``{source, params, inputs, outputs}``: the
hash of the step's source, the parameters it receives, the sha256 of each input (an upstream
step's stored output) and its output names. A step whose key matches a succeeded step of any
run is not executed; its stored outputs are reused and the step is recorded as ``cached``.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import io
import logging
import os
import sys
import time
import traceback
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import IO, TYPE_CHECKING, Any, Protocol

from modelcycle.audit import canonical_json, utc_timestamp
from modelcycle.capture import capture_output
from modelcycle.entities import Run
from modelcycle.errors import InvalidInput
from modelcycle.liveness import Heartbeat, hostname
from modelcycle.pipelines import _outputs
from modelcycle.pipelines.context import StepContext
from modelcycle.pipelines.provenance import code_version, environment
from modelcycle.pipelines.records import RunRecords, StepFinish
from modelcycle.pipelines.spec import Pipeline, Step
from modelcycle.statuses import RunStatus, StepStatus
from modelcycle.store import ArtifactStore, MetadataStore

if TYPE_CHECKING:
    from modelcycle.datasets import DatasetCatalog
    from modelcycle.registry import ModelRegistry

__all__ = ["PipelineRunner", "cache_key"]

_log = logging.getLogger(__name__)


def cache_key(s: Step, params: Mapping[str, Any], inputs: Mapping[str, str]) -> str:
    """The step's cache key (see the module docstring)."""
    try:
        text = canonical_json(
            {
                "source": s.source_sha256,
                "params": dict(params),
                "inputs": dict(inputs),
                "outputs": list(s.outputs),
            }
        )
    except InvalidInput:
        bad = next(k for k, v in params.items() if not _jsonable(v))
        raise InvalidInput(
            f"step {s.name!r}: the value of parameter {bad!r} is not JSON data; parameters must "
            "be JSON (numbers, strings, lists, dicts) so that runs can be cached and compared",
            field=f"params.{bad}",
        ) from None
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _jsonable(value: Any) -> bool:
    try:
        canonical_json(value)
    except InvalidInput:
        return False
    return True


class _Slot:
    """One output: its stored hash and format, its value loaded only when a step needs it."""

    _MISSING: Any = object()

    def __init__(self, artifacts: ArtifactStore, meta: dict[str, Any], value: Any = _MISSING):
        self._artifacts = artifacts
        self.meta = meta
        self._value = value

    @property
    def sha256(self) -> str:
        return str(self.meta["sha256"])

    def value(self) -> Any:
        if self._value is _Slot._MISSING:
            # The hash comes from our database and the store re-checks it on read.
            data = self._artifacts.get_bytes(self.sha256)
            self._value = _outputs.decode(data, str(self.meta["format"]))
        return self._value


@dataclass
class _Totals:
    metrics: dict[str, float] = field(default_factory=dict)
    datasets: list[str] = field(default_factory=list)
    models: list[str] = field(default_factory=list)

    def add(self, metrics: Mapping[str, float], datasets: list[str], models: list[str]) -> None:
        self.metrics.update(metrics)
        self.datasets.extend(d for d in datasets if d not in self.datasets)
        self.models.extend(m for m in models if m not in self.models)

    def as_dict(self) -> dict[str, Any]:
        return {"metrics": self.metrics, "datasets": self.datasets, "models": self.models}


class Display(Protocol):
    """Shows a run's progress; the runner calls these in order."""

    def start(self, run_id: str, pipeline: Pipeline) -> None: ...
    def step_started(self, name: str) -> None: ...
    def step_done(self, name: str, status: str, duration_s: float) -> None: ...
    def close(self) -> None: ...


class QuietDisplay:
    """Shows nothing (not attached to a terminal)."""

    def start(self, run_id: str, pipeline: Pipeline) -> None:
        pass

    def step_started(self, name: str) -> None:
        pass

    def step_done(self, name: str, status: str, duration_s: float) -> None:
        pass

    def close(self) -> None:
        pass


class RichDisplay:
    """One progress line per step, on the terminal."""

    def __init__(self) -> None:
        from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

        self._progress = Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            TextColumn("{task.fields[status]}"),
            TimeElapsedColumn(),
        )
        self._tasks: dict[str, Any] = {}

    def start(self, run_id: str, pipeline: Pipeline) -> None:
        self._progress.start()
        self._progress.console.print(f"run [bold]{run_id}[/] of pipeline {pipeline.name}")
        for s in pipeline.steps:
            self._tasks[s.name] = self._progress.add_task(
                s.name, total=1, start=False, status="pending"
            )

    def step_started(self, name: str) -> None:
        task = self._tasks[name]
        self._progress.start_task(task)
        self._progress.update(task, status=StepStatus.RUNNING)

    def step_done(self, name: str, status: str, duration_s: float) -> None:
        task = self._tasks[name]
        colours: dict[str, str] = {
            StepStatus.SUCCEEDED: "green",
            StepStatus.CACHED: "cyan",
            StepStatus.FAILED: "red",
        }
        colour = colours.get(status, "white")
        self._progress.start_task(task)
        self._progress.update(task, completed=1, status=f"[{colour}]{status}[/] {duration_s:.2f}s")
        self._progress.stop_task(task)

    def close(self) -> None:
        self._progress.stop()


def default_display() -> Display:
    """Rich progress when standard output is a terminal, nothing otherwise."""
    return RichDisplay() if sys.stdout.isatty() else QuietDisplay()


class PipelineRunner:
    """Executes pipelines against one workspace's stores and records each run."""

    def __init__(
        self,
        metadata: MetadataStore,
        artifacts: ArtifactStore,
        actor: str,
        *,
        datasets: DatasetCatalog | None = None,
        registry: ModelRegistry | None = None,
        records: RunRecords | None = None,
        heartbeat_interval: float = 10.0,
    ) -> None:
        self._artifacts = artifacts
        self._actor = actor
        self._datasets = datasets
        self._registry = registry
        self.records = records or RunRecords(metadata, actor)
        self._ci = metadata.ci
        self._heartbeat_interval = heartbeat_interval

    def run(
        self,
        pipeline: Pipeline,
        *,
        params: Mapping[str, Any] | None = None,
        ref: str | None = None,
        no_cache: bool = False,
        input_datasets: list[str] | None = None,
        resume_of: Run | None = None,
        display: Display | None = None,
    ) -> Run:
        """Run ``pipeline`` and return its record (``status`` says whether it succeeded).

        ``resume_of``: a failed run whose finished steps are reused where their cache key is
        unchanged, whatever the cache settings.
        """
        resolved = pipeline.resolve_params(params)
        for s in pipeline.steps:  # refuse non-JSON parameters before anything is recorded
            cache_key(s, pipeline.step_params(s, resolved), {})
        run = Run(
            id=uuid.uuid4().hex[:12],
            pipeline=pipeline.name,
            ref=ref,
            status=RunStatus.RUNNING,
            params=resolved,
            metrics={},
            # Inside CI the run also records which CI run it was (settings.ci via the store).
            code={**code_version(pipeline), **({"ci": self._ci} if self._ci else {})},
            environment=environment(),
            datasets=list(input_datasets or []),
            models=[],
            started_at=utc_timestamp(),
            created_by=self._actor,
            hostname=hostname(),
            pid=os.getpid(),
            resumed_from=resume_of.id if resume_of else None,
        )
        self.records.create(run)
        shown = display or default_display()
        totals = _Totals(datasets=list(run.datasets))
        beat = functools.partial(self.records.heartbeat, run.id)
        with Heartbeat(beat, self._heartbeat_interval, name=f"heartbeat-{run.id}"):
            shown.start(run.id, pipeline)
            try:
                failed = self._steps(run, pipeline, resolved, no_cache, resume_of, totals, shown)
            except BaseException as exc:
                # Interrupted (Ctrl-C) or the database went away: end the run if we still can.
                shown.close()
                with contextlib.suppress(Exception):
                    self.records.finish(
                        run.id,
                        status=RunStatus.FAILED,
                        finished_at=utc_timestamp(),
                        totals=totals.as_dict(),
                        failure="interrupted",
                        error="".join(traceback.format_exception(exc)),
                    )
                raise
            shown.close()
            if failed is None:
                self.records.finish(
                    run.id,
                    status=RunStatus.SUCCEEDED,
                    finished_at=utc_timestamp(),
                    totals=totals.as_dict(),
                )
            else:
                self.records.finish(
                    run.id,
                    status=RunStatus.FAILED,
                    finished_at=utc_timestamp(),
                    totals=totals.as_dict(),
                    failure="error",
                    error=failed,
                )
        return self.records.get(run.id)

    def _steps(
        self,
        run: Run,
        pipeline: Pipeline,
        params: Mapping[str, Any],
        no_cache: bool,
        resume_of: Run | None,
        totals: _Totals,
        shown: Display,
    ) -> str | None:
        """Execute or reuse each step; the traceback of the failed step, or None."""
        slots: dict[str, _Slot] = {}
        for position, s in enumerate(pipeline.steps):
            step_params = pipeline.step_params(s, params)
            wires = pipeline.wiring[s.name]
            inputs = {p: slots[p].sha256 for p in wires}
            key = cache_key(s, step_params, inputs)
            started_at = utc_timestamp()
            # Cached or executed, a finished step is recorded with the same identity.
            record_finish = functools.partial(
                self.records.step_finished,
                run.id,
                name=s.name,
                position=position,
                source_sha256=s.source_sha256,
                cache_key=key,
                params=step_params,
                inputs=inputs,
                started_at=started_at,
            )
            t0 = time.perf_counter()
            hit = None
            if resume_of is not None:
                hit = self.records.find_cached(key, run_id=resume_of.id)
            if hit is None and s.cache and not no_cache:
                hit = self.records.find_cached(key)
            if hit is not None and all(
                self._artifacts.exists(o["sha256"]) for o in hit["outputs"].values()
            ):
                for name, meta in hit["outputs"].items():
                    slots[name] = _Slot(self._artifacts, meta)
                done = StepFinish(
                    status=StepStatus.CACHED,
                    outputs=hit["outputs"],
                    metrics=hit["metrics"],
                    datasets=hit["datasets"],
                    models=hit["models"],
                    finished_at=utc_timestamp(),
                    duration_s=time.perf_counter() - t0,
                    log_sha256=hit["log_sha256"],
                    cached_from=hit["cached_from"] or hit["run_id"],
                )
                totals.add(done.metrics, done.datasets, done.models)
                record_finish(done=done, run_totals=totals.as_dict())
                shown.step_done(s.name, StepStatus.CACHED, done.duration_s)
                continue
            self.records.step_started(
                run.id,
                name=s.name,
                position=position,
                source_sha256=s.source_sha256,
                cache_key=key,
                params=step_params,
                inputs=inputs,
                started_at=started_at,
            )
            shown.step_started(s.name)
            ctx = StepContext(
                run.id,
                s.name,
                datasets=self._datasets,
                registry=self._registry,
                code_version=_code_tag(run.code),
                inputs=inputs,
            )
            log = io.StringIO()
            error: str | None = None
            outputs: dict[str, dict[str, Any]] = {}
            try:
                with _capture(log):
                    kwargs = dict(step_params)
                    for p in wires:
                        kwargs[p] = slots[p].value()
                    if s.wants_context:
                        kwargs["ctx"] = ctx
                    values = s.split_outputs(s.fn(**kwargs))
                for name, value in values.items():
                    data, fmt = _outputs.encode(value)
                    ref = self._artifacts.put_bytes(data)
                    outputs[name] = {"sha256": ref.sha256, "format": fmt, "size": ref.size}
                    slots[name] = _Slot(self._artifacts, outputs[name], value)
            except Exception:  # a failing step is the run's outcome, not the runner's error
                error = traceback.format_exc()
                log.write(error)
            duration = time.perf_counter() - t0
            log_ref = self._artifacts.put_bytes(log.getvalue().encode("utf-8"))
            totals.add(ctx.metrics, ctx.dataset_refs, ctx.model_refs)
            if error is not None:
                self.records.step_failed(
                    run.id,
                    name=s.name,
                    error=error,
                    log_sha256=log_ref.sha256,
                    finished_at=utc_timestamp(),
                    duration_s=duration,
                    run_totals=totals.as_dict(),
                )
                shown.step_done(s.name, StepStatus.FAILED, duration)
                return error
            done = StepFinish(
                status=StepStatus.SUCCEEDED,
                outputs=outputs,
                metrics=ctx.metrics,
                datasets=ctx.dataset_refs,
                models=ctx.model_refs,
                finished_at=utc_timestamp(),
                duration_s=duration,
                log_sha256=log_ref.sha256,
                log_size=log_ref.size,
            )
            record_finish(done=done, run_totals=totals.as_dict())
            shown.step_done(s.name, StepStatus.SUCCEEDED, duration)
        return None


def _code_tag(code: Mapping[str, Any]) -> str | None:
    commit = code.get("commit")
    if not commit:
        return None
    return f"{commit}+dirty" if code.get("dirty") else str(commit)


@contextlib.contextmanager
def _capture(log: IO[str]) -> Iterator[None]:
    """Capture the step's stdout, stderr and log records (INFO and up) into ``log``."""
    handler = logging.StreamHandler(log)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    handler.setLevel(logging.INFO)
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    if level > logging.INFO:
        root.setLevel(logging.INFO)
    try:
        # This thread's output only (and still shown): a worker thread running a step must not
        # capture what other threads print.
        with capture_output(log, tee=True):
            yield
    finally:
        root.removeHandler(handler)
        root.setLevel(level)
