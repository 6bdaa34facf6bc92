"""``ws.monitoring``: drift checks that are stored and audited, model mode, performance, history.

The facade gathers the data (data set versions, files, the prediction log, feedback), hands it
to the computing functions (``compute_drift``, ``window_metrics``), and stores what they return.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from modelcycle.errors import InvalidInput, NotFound
from modelcycle.monitoring.config import MonitoringSection
from modelcycle.monitoring.drift import compute_drift
from modelcycle.monitoring.logs import split_log
from modelcycle.monitoring.performance import (
    CLASSIFIER_METRICS,
    REGRESSOR_METRICS,
    PerformanceReport,
    PerformanceWindow,
    compare_with_baseline,
    join_feedback,
    window_metrics,
)
from modelcycle.monitoring.policy import DriftPolicy
from modelcycle.monitoring.results import (
    Debounce,
    DriftCheck,
    DriftRecord,
    drift_history,
    store_drift_check,
)
from modelcycle.monitoring.windows import Window, parse_duration, parse_time, resolve_window
from modelcycle.settings import parse_section
from modelcycle.store import MetadataStore

if TYPE_CHECKING:
    from modelcycle.datasets import DatasetCatalog
    from modelcycle.entities import ModelVersion
    from modelcycle.registry import ModelRegistry


__all__ = ["Monitoring"]

_DATA_PREFIX = "data:"
PREDICTION_COLUMN = "prediction"


class Monitoring:
    """Monitoring of one workspace. Constructing it touches nothing."""

    def __init__(
        self,
        metadata: MetadataStore,
        actor: str,
        *,
        registry: ModelRegistry,
        datasets: DatasetCatalog,
        config: Mapping[str, Any] | None = None,
    ) -> None:
        self._meta = metadata
        self._actor = actor
        self._registry = registry
        self._datasets = datasets
        self._section = parse_section(config or {}, "monitoring", MonitoringSection)

    # -- drift --------------------------------------------------------------------------------

    def policy(self, **overrides: Any) -> DriftPolicy:
        """``[monitoring.drift]`` from modelcycle.toml with per-call overrides."""
        return DriftPolicy.from_config(self._section.drift, **overrides)

    @property
    def debounce(self) -> Debounce:
        return self._section.debounce_rule

    def drift(
        self,
        reference: pa.Table | str | None = None,
        current: pa.Table | str | None = None,
        *,
        model: str | None = None,
        window: str | timedelta | None = None,
        since: str | datetime | None = None,
        until: str | datetime | None = None,
        columns: list[str] | None = None,
        policy: DriftPolicy | None = None,
        report: str | Path | None = None,
        store: bool = True,
        now: datetime | None = None,
    ) -> DriftCheck:
        """Compare current data with a reference, store the result, record the events.

        Without ``model``: ``reference`` and ``current`` are tables, files or
        ``data:NAME[@VERSION]``. With ``model`` (``NAME``, ``NAME@ALIAS`` or ``NAME/V``): the
        reference defaults to the version's training data set, the columns to its signature's
        inputs, and current to the prediction log of the window (default: the last day); the
        model's outputs are compared with its predictions on the holdout. ``report`` writes an
        HTML (or, for ``.json``, JSON) report.
        """
        policy = policy or self.policy()
        if model is None:
            if reference is None or current is None:
                raise InvalidInput(
                    "needs a reference and current data, or a model", field="reference"
                )
            if window is not None or since is not None or until is not None:
                raise InvalidInput("a window needs a model (its prediction log)", field="window")
            ref_table, ref_name = self._table(reference, "reference")
            cur_table, cur_name = self._table(current, "current")
            result = compute_drift(
                ref_table,
                cur_table,
                columns=columns,
                policy=policy,
                reference_name=ref_name,
                current_name=cur_name,
            )
            check = DriftCheck(report=result)
            tables_for_report = (ref_table, cur_table, None, None)
        else:
            check, tables_for_report = self._model_drift(
                model, reference, current, window, since, until, columns, policy, now
            )
        if store:
            check = store_drift_check(self._meta, self._actor, check, debounce=self.debounce)
        if report is not None:
            from modelcycle.monitoring.report import write_report

            write_report(report, check, *tables_for_report)
        return check

    def _model_drift(
        self,
        model: str,
        reference: pa.Table | str | None,
        current: pa.Table | str | None,
        window: str | timedelta | None,
        since: str | datetime | None,
        until: str | datetime | None,
        columns: list[str] | None,
        policy: DriftPolicy,
        now: datetime | None,
    ) -> tuple[DriftCheck, tuple[pa.Table, pa.Table, pa.Table | None, pa.Table | None]]:
        from modelcycle.registry import Signature

        mv, version_filter = self._resolve_model(model)
        signature = Signature.from_dict(mv.signature)
        notes: list[str] = []
        if reference is None:
            train_ref = training_dataset(mv)
            ref_table, ref_name = self._table(_DATA_PREFIX + train_ref, "reference")
        else:
            ref_table, ref_name = self._table(reference, "reference")
        names = columns or [n for n in signature.input_names if n in ref_table.column_names]
        if not names:
            raise InvalidInput(
                f"{mv.ref}'s inputs ({', '.join(signature.input_names)}) are not in the reference",
                field="columns",
            )
        span: Window | None = None
        predictions: list[Any] | None = None
        if current is None:
            from modelcycle.scoring import read_predictions

            span = resolve_window(window, since, until, now=now)
            log = read_predictions(
                self._meta, mv.name, since=span.start, until=span.end, version=version_filter
            )
            rows = split_log(log, names, schema=ref_table.schema)
            # A handful of rows (smoke tests, a first request) proves nothing either way:
            # below the minimum the window counts as empty, never as drift.
            least = self._section.drift_min_rows
            enough = log.num_rows >= least
            cur_table = rows.features if enough else ref_table.select(names).slice(0, 0)
            cur_name = f"log:{mv.name} [{span.start or '...'}, {span.end or 'now'})"
            predictions = rows.predictions if enough else []
            if not log.num_rows:
                notes.append("no predictions logged in the window: not enough data")
            elif not enough:
                notes.append(
                    f"only {log.num_rows} prediction(s) logged in the window; at least {least} "
                    "are needed ([monitoring] drift_min_rows): not enough data"
                )
        else:
            if window is not None or since is not None:
                raise InvalidInput("give either current data or a window", field="window")
            cur_table, cur_name = self._table(current, "current")
        result = compute_drift(
            ref_table,
            cur_table,
            columns=names,
            policy=policy,
            reference_name=ref_name,
            current_name=cur_name,
        )
        prediction_report = None
        ref_pred = cur_pred = None
        if predictions is not None:
            ref_pred, note = self._holdout_predictions(mv, signature.is_classifier)
            if note:
                notes.append(note)
            if ref_pred is not None:
                cur_pred = pa.table({PREDICTION_COLUMN: _array_like(predictions, ref_pred)})
                kind = "categorical" if signature.is_classifier else "numerical"
                pred_policy = dataclasses.replace(
                    policy,
                    per_column={},
                    column_thresholds={},
                    column_types={PREDICTION_COLUMN: kind},
                )
                prediction_report = compute_drift(
                    ref_pred,
                    cur_pred,
                    policy=pred_policy,
                    reference_name=f"{mv.ref} on {mv.tags.get('holdout')}",
                    current_name=cur_name,
                )
        check = DriftCheck(
            report=result, prediction=prediction_report, model=mv.ref, window=span, notes=notes
        )
        return check, (ref_table, cur_table, ref_pred, cur_pred)

    def _holdout_predictions(
        self, mv: ModelVersion, classifier: bool
    ) -> tuple[pa.Table | None, str | None]:
        """The version's predictions on its holdout: the prediction-drift reference."""
        from modelcycle.registry import enforce

        holdout = mv.tags.get("holdout")
        if not holdout:
            return None, f"{mv.ref} has no holdout tag: prediction drift skipped"
        table, _ = self._table(_DATA_PREFIX + holdout, "holdout")
        loaded = self._registry.load(mv.ref)
        features = enforce(loaded.signature, table, allow_extra=True)
        answer = np.asarray(loaded.predict(features, validated=True))
        if answer.ndim > 1:
            answer = answer[:, 0]
        values = pa.array(answer.tolist()) if classifier else pa.array(answer.astype(np.float64))
        return pa.table({PREDICTION_COLUMN: values}), None

    def _confidence_estimator(self, mv: ModelVersion) -> Any:
        """CBPE for ``mv``: calibrated on its holdout; None without a holdout and target."""
        from modelcycle.monitoring.cbpe import estimated_accuracy, fit_confidence_calibration
        from modelcycle.registry import enforce

        holdout, target = mv.tags.get("holdout"), mv.tags.get("target")
        if not holdout or not target:
            return None
        table, _ = self._table(_DATA_PREFIX + holdout, "holdout")
        loaded = self._registry.load(mv.ref)
        features = enforce(loaded.signature, table, allow_extra=True)
        calibration = fit_confidence_calibration(
            np.asarray(loaded.predict_proba(features, validated=True)),
            table.column(target).to_pylist(),
            list(loaded.signature.classes or []),
        )
        names = loaded.signature.input_names

        def estimate(log: pa.Table) -> dict[str, float]:
            if not all(n in log.column_names for n in names):
                return {}
            window = enforce(loaded.signature, log.select(names))
            value = estimated_accuracy(calibration, np.asarray(loaded.predict_proba(window)))
            return {} if value is None else {"accuracy": value}

        return estimate

    def _resolve_model(self, model: str) -> tuple[ModelVersion, int | None]:
        """``NAME/V`` and ``NAME@ALIAS`` pin one version's traffic; a bare ``NAME`` means its
        champion (else its latest version) as the reference and all its traffic."""
        if "/" in model or "@" in model:
            mv = self._registry.get(model)
            return mv, mv.version
        try:
            return self._registry.get(f"{model}@champion"), None
        except NotFound:
            return self._registry.get(f"{model}@latest"), None

    def _table(self, source: pa.Table | str, field: str) -> tuple[pa.Table, str]:
        from modelcycle.datasets import parse_dataset_ref, read_table

        if isinstance(source, pa.Table):
            return source, field
        if not isinstance(source, str):
            raise InvalidInput(
                f"expected a table, a file or data:NAME[@VERSION], got {type(source).__name__}",
                field=field,
            )
        if source.startswith(_DATA_PREFIX):
            ref = parse_dataset_ref(source[len(_DATA_PREFIX) :], field=field)
            record = self._datasets.version(ref.name, ref.version)
            return self._datasets.get(record.name, record.version), f"data:{record.ref}"
        return read_table(source, field=field), source

    # -- history ------------------------------------------------------------------------------

    def history(
        self, model: str | None = None, *, since: str | None = None, limit: int = 100
    ) -> list[DriftRecord]:
        """Stored drift checks, oldest first; ``model`` is a model name."""
        start = parse_time(since, field="since") if since is not None else None
        return drift_history(self._meta, model=model, since=start, limit=limit)

    # -- performance --------------------------------------------------------------------------

    def performance(
        self,
        model: str,
        *,
        window: str | timedelta = "1d",
        since: str | datetime | None = None,
        until: str | datetime | None = None,
        degradation: float | None = None,
        min_rows: int | None = None,
        now: datetime | None = None,
        record: bool = True,
    ) -> PerformanceReport:
        """Metrics from ground truth per ``window``, against the version's holdout metrics.

        Without ``since``: the one window ending at ``until`` (or now). With ``since``:
        consecutive windows from ``since`` to ``until``. A metric worse than the holdout's by
        more than ``degradation`` (relative; default 0.05 or ``[monitoring] degradation``)
        records a ``performance.degraded`` event, unless ``record`` is False (a page that
        only shows the figures must not write events each time it is viewed).
        """
        from modelcycle.registry import Signature

        degradation = float(degradation if degradation is not None else self._section.degradation)
        if not 0 < degradation < 1:
            raise InvalidInput("must be in (0, 1)", field="degradation")
        min_rows = int(min_rows if min_rows is not None else self._section.min_rows)
        if min_rows < 1:
            raise InvalidInput("must be at least 1", field="min_rows")
        mv, version_filter = self._resolve_model(model)
        signature = Signature.from_dict(mv.signature)
        wanted = CLASSIFIER_METRICS if signature.is_classifier else REGRESSOR_METRICS
        baseline = {k: float(v) for k, v in mv.metrics.items() if k in wanted}
        spans = _windows(parse_duration(window), since, until, now)
        from modelcycle.scoring import read_feedback, read_predictions

        # Unmatched feedback too: it joins on the log's request ids below, and a request the
        # Parquet sink logged is not in the database to be matched on arrival.
        feedback = read_feedback(self._meta, mv.name, unmatched=True)
        labels: dict[tuple[str, int | None], Any] = {}
        for rid, idx, label in zip(
            *[feedback.column(c).to_pylist() for c in ("request_id", "row_index", "label")],
            strict=True,
        ):
            labels[(str(rid), None if idx is None else int(idx))] = label
        results, ambiguous = [], 0
        estimator = self._confidence_estimator(mv) if signature.is_classifier else None
        for span in spans:
            log = read_predictions(
                self._meta, mv.name, since=span.start, until=span.end, version=version_filter
            )
            estimated = estimator(log) if estimator is not None and log.num_rows >= min_rows else {}
            rows = split_log(log, [])
            joined = join_feedback(rows.request_ids, rows.row_indexes, labels)
            ambiguous += joined.ambiguous
            probs = rows.probabilities[joined.rows] if rows.probabilities is not None else None
            enough = len(joined.rows) >= min_rows
            metrics = (
                window_metrics(
                    [rows.predictions[i] for i in joined.rows],
                    joined.labels,
                    classifier=signature.is_classifier,
                    classes=signature.classes,
                    probabilities=probs,
                )
                if enough
                else {}
            )
            results.append(
                PerformanceWindow(
                    start=str(span.start),
                    end=str(span.end),
                    predictions=log.num_rows,
                    labelled=len(joined.rows),
                    metrics=metrics,
                    baseline=baseline,
                    degraded=compare_with_baseline(metrics, baseline, degradation),
                    status="ok" if enough else "not_enough_data",
                    estimated=estimated,
                )
            )
        result = PerformanceReport(
            model=mv.ref,
            task=signature.task,
            degradation=degradation,
            min_rows=min_rows,
            windows=results,
            ambiguous_request_ids=ambiguous,
        )
        if result.degraded and record:
            bad = [w for w in results if w.degraded]
            with self._meta.write(
                actor=self._actor,
                action="performance.degraded",
                subject=f"model:{mv.ref}",
                payload={
                    "model": mv.ref,
                    "degradation": degradation,
                    "windows": [
                        {
                            "start": w.start,
                            "end": w.end,
                            "labelled": w.labelled,
                            "metrics": w.metrics,
                            "baseline": {k: w.baseline[k] for k in w.degraded},
                            "degraded": w.degraded,
                        }
                        for w in bad
                    ],
                },
            ):
                pass
            result = dataclasses.replace(result, event_recorded=True)
        return result


def training_dataset(mv: ModelVersion) -> str:
    """The data set version the model was trained on: the first of its data sets that is not
    its holdout (the tabular trainer records ``[data, holdout]`` and tags ``holdout``)."""
    holdout = mv.tags.get("holdout")
    for ref in mv.datasets:
        if ref != holdout and not ref.split("@", 1)[0].endswith("-holdout"):
            return ref
    raise InvalidInput(
        f"{mv.ref} records no training data set; pass a reference (--reference)",
        field="reference",
    )


def _array_like(values: list[Any], like: pa.Table) -> pa.Array:
    wanted = like.column(0).type
    try:
        return pa.array(values, type=wanted)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return pa.array([None if v is None else str(v) for v in values], pa.string())


def _windows(
    length: timedelta,
    since: str | datetime | None,
    until: str | datetime | None,
    now: datetime | None,
) -> list[Window]:
    from modelcycle.audit import utc_timestamp

    last = resolve_window(length, None, until, now=now)
    if since is None:
        return [last]
    start = datetime.fromisoformat(parse_time(since, field="since", now=now).replace("Z", "+00:00"))
    end = datetime.fromisoformat(str(last.end).replace("Z", "+00:00"))
    if start >= end:
        raise InvalidInput(f"{since} is not before the end of the range", field="since")
    if (end - start) / length > 1000:
        raise InvalidInput("more than 1,000 windows; use a longer window", field="window")
    spans = []
    while start < end:
        stop = min(start + length, end)
        spans.append(Window(utc_timestamp(start), utc_timestamp(stop)))
        start = stop
    return spans
