"""``ws.pipelines``: run pipelines, resume failed runs, list, show and compare runs, train."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from modelcycle.entities import Run
from modelcycle.errors import Conflict, InvalidInput, NotFound
from modelcycle.pipelines import _outputs
from modelcycle.pipelines._estimators import build_estimator
from modelcycle.pipelines.comparison import RunComparison, check_run_count, compare_runs
from modelcycle.pipelines.records import RunRecords
from modelcycle.pipelines.run_table import RunQuery, RunTablePage, run_table_page
from modelcycle.pipelines.runner import Display, PipelineRunner, QuietDisplay, RichDisplay
from modelcycle.pipelines.spec import Pipeline, load_pipeline
from modelcycle.pipelines.tabular_trainer import (
    ALGORITHMS,
    TABULAR_TRAINER,
    TABULAR_TRAINER_REF,
    TASKS,
    check_drop,
    infer_task,
)
from modelcycle.statuses import RunStatus
from modelcycle.store import ArtifactStore, MetadataStore

if TYPE_CHECKING:
    from modelcycle.datasets import DatasetCatalog
    from modelcycle.registry import ModelRegistry

__all__ = ["Pipelines", "RunComparison"]


class Pipelines:
    """Pipelines and runs of one workspace. Constructing it does no I/O."""

    def __init__(
        self,
        metadata: MetadataStore,
        artifacts: ArtifactStore,
        actor: str,
        root: Path,
        *,
        datasets: DatasetCatalog | None = None,
        registry: ModelRegistry | None = None,
        config: Mapping[str, Any] | None = None,
        stale_after: float = 300.0,
        heartbeat_interval: float = 10.0,
    ) -> None:
        self._artifacts = artifacts
        self._root = Path(root)
        self._datasets = datasets
        self._registry = registry
        self._config = dict(config or {})
        self._meta = metadata
        self._records = RunRecords(metadata, actor, stale_after=stale_after)
        self._runner = PipelineRunner(
            metadata,
            artifacts,
            actor,
            datasets=datasets,
            registry=registry,
            records=self._records,
            heartbeat_interval=heartbeat_interval,
        )

    # -- running ----------------------------------------------------------------------------

    def load(self, ref: str) -> Pipeline:
        """The pipeline ``module:attr`` or a name declared under ``[pipelines]``."""
        return load_pipeline(ref, root=self._root, config=self._config)

    def run(
        self,
        pipeline: Pipeline | str,
        *,
        params: Mapping[str, Any] | None = None,
        data: str | None = None,
        no_cache: bool = False,
        progress: bool | None = None,
    ) -> Run:
        """Run a pipeline (object or reference) and return the run's record.

        ``data``: ``NAME[@VERSION]`` given to the pipeline's ``data`` parameter as the exact
        version ``NAME@V`` (so the cache never confuses two versions). A failing step does not
        raise: the run comes back with ``status == "failed"`` and the traceback in ``error``.
        """
        ref = pipeline if isinstance(pipeline, str) else None
        pipe = self.load(pipeline) if isinstance(pipeline, str) else pipeline
        given = dict(params or {})
        inputs: list[str] = []
        if data is not None:
            if "data" not in pipe.param_names:
                raise InvalidInput(
                    f"pipeline {pipe.name!r} takes no parameter 'data' to give the data set to",
                    field="data",
                )
            if "data" in given:
                raise InvalidInput("give the data set either as data= or as a param", field="data")
            version = self._catalog().version(data)
            given["data"] = version.ref
            inputs.append(version.ref)
        return self._runner.run(
            pipe,
            params=given,
            ref=ref,
            no_cache=no_cache,
            input_datasets=inputs,
            display=_display(progress),
        )

    def resume(
        self, run_id: str, *, pipeline: Pipeline | None = None, progress: bool | None = None
    ) -> Run:
        """A new run of a failed run's pipeline and parameters (``resumed_from`` links them)
        that reuses every step that finished before, unless its code or inputs changed."""
        old = self.get_run(run_id)
        if old.status == RunStatus.RUNNING:
            raise Conflict(f"run {old.id} is still running; wait for it or stop its process")
        if old.status == RunStatus.SUCCEEDED:
            raise Conflict(f"run {old.id} succeeded; there is nothing to resume")
        if pipeline is None:
            if old.ref is None:
                raise InvalidInput(
                    f"run {old.id} ran a pipeline object, not a reference; pass pipeline=",
                    field="pipeline",
                )
            pipeline = self.load(old.ref)
        if pipeline.name != old.pipeline:
            raise InvalidInput(
                f"run {old.id} ran pipeline {old.pipeline!r}, not {pipeline.name!r}",
                field="pipeline",
            )
        data = old.params.get("data")
        return self._runner.run(
            pipeline,
            params=old.params,
            ref=old.ref,
            input_datasets=[data] if isinstance(data, str) and "@" in data else [],
            resume_of=old,
            display=_display(progress),
        )

    def train(
        self,
        data: str,
        target: str,
        *,
        task: str = "auto",
        model: str = "hgb",
        register: str | None = None,
        seed: int = 0,
        holdout_fraction: float = 0.2,
        drop: Sequence[str] = (),
        params: Mapping[str, Any] | None = None,
        no_cache: bool = False,
        progress: bool | None = None,
    ) -> Run:
        """Run the built-in tabular trainer on data set version ``data`` (``NAME[@VERSION]``).

        The model is registered as ``register`` (default: the data set's name) with the
        ``challenger`` alias; ``run.models`` names the version. ``drop``: columns left out of
        the features. ``params``: hyperparameters of the estimator, checked against its
        constructor before the run starts (recorded as the run's ``hyperparams``).
        """
        if task not in TASKS:
            raise InvalidInput(f"{task!r} is not one of {', '.join(TASKS)}", field="task")
        if model not in ALGORITHMS:
            raise InvalidInput(f"{model!r} is not one of {', '.join(ALGORITHMS)}", field="model")
        version = self._catalog().version(data)
        columns = [str(c.get("name")) for c in version.schema]
        if target not in columns:
            raise InvalidInput(
                f"{version.ref} has no column {target!r}; its columns: {', '.join(columns)}",
                field="target",
            )
        dropped = check_drop(columns, target, list(drop) if not isinstance(drop, str) else drop)
        hyperparams = dict(params or {})
        if hyperparams:
            resolved = task
            if task == "auto":  # the estimator's class depends on the task: read the target
                table = self._catalog().get(version.name, version.version)
                resolved = infer_task(table.column(target).drop_null())
            # Names against the constructor, then values (scikit-learn's own checks), now:
            # not after the data is split and the holdout stored.
            build_estimator(resolved, model, seed, hyperparams)
        given = {
            "data": version.ref,
            "target": target,
            "task": task,
            "algorithm": model,
            "model_name": register,
            "seed": seed,
            "holdout_fraction": holdout_fraction,
            "drop": dropped,
            "hyperparams": hyperparams,
        }
        return self._runner.run(
            TABULAR_TRAINER,
            params=given,
            ref=TABULAR_TRAINER_REF,
            no_cache=no_cache,
            input_datasets=[version.ref],
            display=_display(progress),
        )

    # -- reading ----------------------------------------------------------------------------

    def runs(
        self,
        *,
        pipeline: str | None = None,
        status: str | None = None,
        limit: int | None = None,
        after: tuple[str, str] | None = None,
    ) -> list[Run]:
        """Runs, newest first (without steps); runs whose process died are marked stale.
        ``after``: the ``(started_at, id)`` of the last run already seen (a page cursor)."""
        return self._records.list(pipeline=pipeline, status=status, limit=limit, after=after)

    def run_rows(
        self,
        *,
        pipeline: str | None = None,
        status: str | None = None,
        limit: int | None = None,
        after: tuple[str, str] | None = None,
    ) -> list[dict[str, Any]]:
        """What :meth:`runs` lists, as stored rows: the listed columns only, JSON columns as
        their text, and no stale-run sweep (call :meth:`sweep_stale` on your own schedule).
        For interfaces that pass the rows on without decoding them (the HTTP API)."""
        return self._records.rows(pipeline=pipeline, status=status, limit=limit, after=after)

    def run_table(
        self,
        *,
        pipeline: str | None = None,
        status: str | None = None,
        dataset: str | None = None,
        model: str | None = None,
        sort: str = "started",
        descending: bool = True,
        offset: int = 0,
        limit: int = 25,
    ) -> RunTablePage:
        """One page of runs filtered, sorted (``started``, ``pipeline``, ``status``,
        ``duration`` or ``m:METRIC``) and cut in the database, with the number of matching
        runs: the console's runs table (see pipelines/run_table.py)."""
        query = RunQuery(pipeline, status, dataset, model, sort, descending, offset, limit)
        return run_table_page(self._meta, query)

    def sweep_stale(self) -> None:
        """Mark failed every running run whose process died or stopped beating."""
        self._records.sweep_stale()

    def get_run(self, run_id: str) -> Run:
        """One run with its steps; ``run_id`` may be a unique prefix of 4 or more characters."""
        return self._records.get(run_id)

    def compare(self, *run_ids: str) -> RunComparison:
        """Parameters and metrics of 2 to 10 runs side by side, with a warning when their
        metrics come from different holdouts (see pipelines/comparison.py)."""
        check_run_count(run_ids)
        runs = self._records.get_many(run_ids)
        return compare_runs(runs, datasets=self._datasets, registry=self._registry)

    def logs(self, run_id: str, step: str | None = None) -> str:
        """The captured output of the run's steps (or of one step)."""
        run = self.get_run(run_id)
        steps = [s for s in run.steps if step is None or s.name == step]
        if step is not None and not steps:
            raise NotFound(f"run {run.id} has no step {step!r}")
        parts = []
        for s in steps:
            text = ""
            if s.log_sha256:
                text = self._artifacts.get_bytes(s.log_sha256).decode("utf-8", "replace")
            parts.append(f"== {s.name} ({s.status})\n{text}")
        return "\n".join(parts)

    def output(self, run_id: str, step: str, name: str | None = None) -> Any:
        """A stored output of a step (default: its only output)."""
        run = self.get_run(run_id)
        row = self._records.step_row(run.id, step)
        outputs: dict[str, dict[str, Any]] = row["outputs"]
        if name is None:
            if len(outputs) != 1:
                raise InvalidInput(
                    f"step {step!r} has outputs {sorted(outputs)}; name one", field="name"
                )
            name = next(iter(outputs))
        if name not in outputs:
            raise NotFound(f"step {step!r} of run {run.id} has no output {name!r}")
        meta = outputs[name]
        # The hash comes from our own database and the store re-checks it: see _outputs.
        return _outputs.decode(self._artifacts.get_bytes(meta["sha256"]), meta["format"])

    def _catalog(self) -> DatasetCatalog:
        if self._datasets is None:
            raise InvalidInput("data sets need a Workspace's catalog", field="data")
        return self._datasets


def _display(progress: bool | None) -> Display | None:
    if progress is None:
        return None
    return RichDisplay() if progress else QuietDisplay()
