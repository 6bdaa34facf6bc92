"""What a step sees of its run: a parameter named ``ctx`` receives a :class:`StepContext`."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from modelcycle.entities import DatasetVersion, ModelVersion
from modelcycle.errors import InvalidInput, NotReady

if TYPE_CHECKING:
    import pyarrow as pa

    from modelcycle.datasets import DatasetCatalog
    from modelcycle.registry import ModelRegistry

__all__ = ["StepContext"]

_MAX_METRIC_NAME = 100


class StepContext:
    """Log metrics, read and write data set versions and register models, all recorded
    against the run (and the step) that did it."""

    def __init__(
        self,
        run_id: str,
        step: str,
        *,
        datasets: DatasetCatalog | None,
        registry: ModelRegistry | None,
        code_version: str | None = None,
        inputs: Mapping[str, str] | None = None,
    ) -> None:
        self.run_id = run_id
        self.step = step
        # The sha256 of each upstream output this step receives, by name: a step can link a
        # stored output (an artifact of the run) to what it records, e.g. a model version.
        self.inputs: dict[str, str] = dict(inputs or {})
        # The run's git commit (``+dirty`` when it had local changes), for lineage tags.
        self.code_version = code_version
        self._datasets = datasets
        self._registry = registry
        self.metrics: dict[str, float] = {}
        self.dataset_refs: list[str] = []
        self.model_refs: list[str] = []

    # -- metrics ----------------------------------------------------------------------------

    def log_metric(self, name: str, value: float) -> None:
        """Record one figure for the run (a later value of the same name wins)."""
        if not isinstance(name, str) or not name or len(name) > _MAX_METRIC_NAME:
            raise InvalidInput(
                f"{name!r} is not a metric name (1-{_MAX_METRIC_NAME} characters)", field="metric"
            )
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise InvalidInput(f"{value!r} is not a number", field=f"metric {name}") from None
        if not math.isfinite(number):
            raise InvalidInput(f"{value!r} is not a finite number", field=f"metric {name}")
        self.metrics[name] = number

    def log_metrics(self, metrics: Mapping[str, float]) -> None:
        """Record several figures."""
        for name, value in metrics.items():
            self.log_metric(name, value)

    # -- data sets --------------------------------------------------------------------------

    @property
    def datasets(self) -> DatasetCatalog:
        if self._datasets is None:
            raise NotReady("this run has no data set catalog; run it from a Workspace")
        return self._datasets

    @property
    def registry(self) -> ModelRegistry:
        if self._registry is None:
            raise NotReady("this run has no model registry; run it from a Workspace")
        return self._registry

    def dataset_version(self, ref: str) -> DatasetVersion:
        """The version ``NAME[@VERSION]`` names, recorded as an input of the run."""
        version = self.datasets.version(ref)
        self._note_dataset(version.ref)
        return version

    def load_data(self, ref: str) -> pa.Table:
        """The data of ``NAME[@VERSION]`` as an Arrow table, recorded as an input of the run."""
        version = self.dataset_version(ref)
        return self.datasets.get(version.name, version.version)

    def add_data(self, name: str, table: Any, *, description: str | None = None) -> DatasetVersion:
        """Store ``table`` as a version of data set ``name`` (or find the one holding it)."""
        version = self.datasets.add(name, table, description=description)
        self._note_dataset(version.ref)
        return version

    # -- models -----------------------------------------------------------------------------

    def register_model(self, model: Any, name: str, **kwargs: Any) -> ModelVersion:
        """Register ``model`` with this run as its lineage (``run_id`` is filled in)."""
        kwargs.setdefault("run_id", self.run_id)
        version = self.registry.register(model, name, **kwargs)
        ref = f"{version.name}/{version.version}"
        if ref not in self.model_refs:
            self.model_refs.append(ref)
        return version

    def set_alias(self, name: str, alias: str, version: int) -> ModelVersion:
        """Point ``alias`` of model ``name`` at ``version``."""
        return self.registry.set_alias(name, alias, version)

    def _note_dataset(self, ref: str) -> None:
        if ref not in self.dataset_refs:
            self.dataset_refs.append(ref)
