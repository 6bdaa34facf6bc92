"""Runs side by side (``runs compare``): parameters, metrics, and whether the metrics can be
compared at all, that is, whether they were measured on the same holdout.

A run's holdout is what it recorded: the ``holdout`` tag of the model versions it registered
(the built-in trainer sets it), else an input data set version whose name ends in
``-holdout``. Holdouts are compared by content hash (the data set version's ``sha256``), so the
same rows stored under two names still count as one holdout.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from modelcycle.entities import Run
from modelcycle.errors import InvalidInput, ModelcycleError

if TYPE_CHECKING:
    from modelcycle.datasets import DatasetCatalog
    from modelcycle.registry import ModelRegistry

__all__ = ["MAX_RUNS", "MIN_RUNS", "RunComparison", "compare_runs", "run_holdouts"]

MIN_RUNS = 2
MAX_RUNS = 10
_HOLDOUT_SUFFIX = "-holdout"


@dataclass(frozen=True, slots=True)
class RunComparison:
    """Runs' parameters and metrics side by side: ``{name: (value in run 1, run 2, ...)}``.

    ``holdouts``: per run, the holdout data set versions its metrics came from (``ref`` and
    content ``sha256``); ``warnings``: why the metrics may not be comparable.
    """

    runs: list[Run]
    params: dict[str, tuple[Any, ...]]
    metrics: dict[str, tuple[float | None, ...]]
    holdouts: list[list[dict[str, str | None]]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def a(self) -> Run:
        return self.runs[0]

    @property
    def b(self) -> Run:
        return self.runs[1]

    def as_dict(self) -> dict[str, Any]:
        return {
            "runs": [r.id for r in self.runs],
            "params": {k: list(v) for k, v in self.params.items()},
            "metrics": {k: list(v) for k, v in self.metrics.items()},
            "holdouts": {r.id: h for r, h in zip(self.runs, self.holdouts, strict=True)},
            "warnings": list(self.warnings),
        }


def check_run_count(run_ids: Sequence[str]) -> None:
    """2 to 10 distinct runs, else InvalidInput naming ``runs``."""
    if not MIN_RUNS <= len(run_ids) <= MAX_RUNS:
        raise InvalidInput(
            f"compare takes {MIN_RUNS} to {MAX_RUNS} runs, got {len(run_ids)}", field="runs"
        )


def compare_runs(
    runs: Sequence[Run],
    *,
    datasets: DatasetCatalog | None,
    registry: ModelRegistry | None,
) -> RunComparison:
    """Compare ``runs`` (already fetched), warning when their holdouts differ."""
    ids = [r.id for r in runs]
    twice = sorted({i for i in ids if ids.count(i) > 1})
    if twice:
        raise InvalidInput(f"run {twice[0]} is listed more than once", field="runs")
    params = {
        k: tuple(r.params.get(k) for r in runs) for k in sorted({k for r in runs for k in r.params})
    }
    metrics = {
        k: tuple(r.metrics.get(k) for r in runs)
        for k in sorted({k for r in runs for k in r.metrics})
    }
    holdouts = [run_holdouts(r, datasets=datasets, registry=registry) for r in runs]
    return RunComparison(list(runs), params, metrics, holdouts, _warnings(runs, holdouts))


def run_holdouts(
    run: Run, *, datasets: DatasetCatalog | None, registry: ModelRegistry | None
) -> list[dict[str, str | None]]:
    """The holdout data set versions the run's metrics came from (see the module docstring)."""
    refs: list[str] = []
    for model in run.models:
        if registry is None:
            break
        try:
            tag = registry.get(model).tags.get("holdout")
        except ModelcycleError:  # a version since removed or unreadable: use what the run says
            continue
        if tag and tag not in refs:
            refs.append(tag)
    if not refs:
        refs = [d for d in run.datasets if d.split("@", 1)[0].endswith(_HOLDOUT_SUFFIX)]
    out: list[dict[str, str | None]] = []
    for ref in refs:
        sha: str | None = None
        if datasets is not None:
            try:
                sha = datasets.version(ref).sha256
            except ModelcycleError:
                sha = None
        out.append({"ref": ref, "sha256": sha})
    return out


def _identity(holdout: dict[str, str | None]) -> str:
    return holdout["sha256"] or f"ref:{holdout['ref']}"


def _warnings(runs: Sequence[Run], holdouts: list[list[dict[str, str | None]]]) -> list[str]:
    with_metrics = [i for i, r in enumerate(runs) if r.metrics]
    if len(with_metrics) < 2:
        return []
    known = {i: holdouts[i] for i in with_metrics if holdouts[i]}
    unknown = [runs[i].id for i in with_metrics if not holdouts[i]]
    out = []
    identities = {frozenset(_identity(h) for h in hs) for hs in known.values()}
    if len(identities) > 1:
        listing = "; ".join(
            f"{runs[i].id}: "
            + ", ".join(f"{h['ref']} ({(h['sha256'] or 'unknown')[:12]})" for h in hs)
            for i, hs in known.items()
        )
        out.append(
            "these runs' metrics come from different holdouts, so they are not measured on the "
            f"same rows and differences may not mean a better model ({listing})"
        )
    if unknown and known:  # none recording one (a pipeline without a holdout) is no warning
        out.append(
            f"run(s) {', '.join(unknown)} record no holdout data set: cannot tell whether "
            "their metrics were measured on the same rows as the others'"
        )
    return out
