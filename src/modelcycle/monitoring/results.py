"""Stored drift checks: what one check found (the "what"), writing it with its audit events,
and reading the time series back.

A check is stored in ``drift_results`` inside one audited write (``drift.checked``); when the
data set drifted (and the debounce rule agrees), a ``drift.detected`` event is recorded in the
same transaction for automations to consume.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import insert, select

from modelcycle.audit import utc_timestamp
from modelcycle.audit.chain import canonical_json
from modelcycle.errors import InvalidInput
from modelcycle.monitoring.drift import DriftReport, column_from_dict
from modelcycle.monitoring.windows import Window
from modelcycle.store import MetadataStore, tables

__all__ = ["Debounce", "DriftCheck", "DriftRecord", "drift_history", "store_drift_check"]


@dataclass(frozen=True)
class Debounce:
    """``drift.detected`` only when at least ``k`` of the last ``m`` checks drifted (this one
    included). The default, 1 of 1, fires on every drifted check."""

    k: int = 1
    m: int = 1

    def __post_init__(self) -> None:
        if not 1 <= self.k <= self.m:
            raise InvalidInput(
                f"needs 1 <= k <= m, got k={self.k}, m={self.m}", field="[monitoring] debounce"
            )

    @classmethod
    def from_config(cls, value: Any) -> Debounce:
        """``debounce = [K, M]`` (or ``"K/M"``) in ``[monitoring]``; absent: 1 of 1."""
        if value is None:
            return cls()
        if isinstance(value, str) and "/" in value:
            value = value.split("/", 1)
        if (
            isinstance(value, list | tuple)
            and len(value) == 2
            and all(isinstance(v, int | str) and str(v).strip().isdigit() for v in value)
        ):
            return cls(int(value[0]), int(value[1]))
        raise InvalidInput(
            f'{value!r} is not a debounce rule; expected [K, M] or "K/M", e.g. [2, 3]',
            field="[monitoring] debounce",
        )


@dataclass(frozen=True)
class DriftCheck:
    """One drift check: the data report, prediction drift (model mode), where it is stored."""

    report: DriftReport
    prediction: DriftReport | None = None
    model: str | None = None  # NAME/VERSION in model mode
    window: Window | None = None
    id: int | None = None
    at: str | None = None
    detected: bool = False  # a drift.detected event was recorded
    notes: list[str] = field(default_factory=list)

    @property
    def status(self) -> str:
        return self.report.status

    def as_dict(self) -> dict[str, Any]:
        data = self.report.as_dict()
        data.update(
            {
                "id": self.id,
                "at": self.at,
                "model": self.model,
                "window": self.window.as_dict() if self.window else None,
                "prediction_drift": self.prediction.as_dict() if self.prediction else None,
                "detected": self.detected,
                "notes": list(self.notes),
            }
        )
        return data


@dataclass(frozen=True)
class DriftRecord:
    """One stored check, as the history lists it."""

    id: int
    at: str
    model_name: str | None
    model_version: int | None
    reference: str
    current: str
    window_start: str | None
    window_end: str | None
    dataset_drift: bool
    share_drifted: float
    status: str
    number_of_columns: int
    drifted_columns: list[str]
    prediction_drift: bool | None
    robust: bool = False
    # Per drifted column: what decided it (``decided_by``, ``explanation``, robust figures).
    drifted_details: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def store_drift_check(
    metadata: MetadataStore,
    actor: str,
    check: DriftCheck,
    *,
    debounce: Debounce | None = None,
) -> DriftCheck:
    """Store ``check`` with ``drift.checked`` (and ``drift.detected``) in one transaction."""
    debounce = debounce or Debounce()
    report = check.report
    name, version = _split_model(check.model)
    at = utc_timestamp()
    window = check.window or Window(None, None)
    drifted_columns = [c.name for c in report.columns if c.drifted]
    prediction_drifted = check.prediction.dataset_drift if check.prediction else None
    payload: dict[str, Any] = _finite(
        {
            "model": check.model,
            "reference": report.reference,
            "current": report.current,
            "window": window.as_dict(),
            "status": report.status,
            "dataset_drift": report.dataset_drift,
            "share_drifted": report.share_drifted,
            "drifted_columns": drifted_columns,
            "prediction_drift": prediction_drifted,
        }
    )
    result = report.as_dict()
    result["prediction_drift"] = check.prediction.as_dict() if check.prediction else None
    result["notes"] = list(check.notes)
    t = tables.drift_results
    with metadata.write(
        actor=actor,
        action="drift.checked",
        subject=f"model:{check.model}" if check.model else "drift",
        payload=payload,
    ) as tx:
        new_id = tx.conn.execute(
            insert(t)
            .values(
                model_name=name,
                model_version=version,
                reference=str(report.reference.get("name")),
                current=str(report.current.get("name")),
                window_start=window.start,
                window_end=window.end,
                at=at,
                dataset_drift=report.dataset_drift,
                share_drifted=float(report.share_drifted),
                result=canonical_json(_finite(result)),
            )
            .returning(t.c.id)
        ).scalar_one()
        tx.payload["id"] = int(new_id)
        if not check.model:
            tx.subject = f"drift:{new_id}"
        detected = False
        if report.dataset_drift:
            recent = _recent_drift_flags(tx.conn, name, str(report.reference.get("name")), debounce)
            count = sum(recent) + 1  # this check drifted
            detected = count >= debounce.k
            if detected:
                tx.record(
                    "drift.detected",
                    tx.subject,
                    {
                        **payload,
                        "id": int(new_id),
                        "debounce": {"k": debounce.k, "m": debounce.m, "drifted": count},
                    },
                )
    return DriftCheck(
        report=report,
        prediction=check.prediction,
        model=check.model,
        window=check.window,
        id=int(new_id),
        at=at,
        detected=detected,
        notes=check.notes,
    )


def _recent_drift_flags(
    conn: Any, model_name: str | None, reference: str, debounce: Debounce
) -> list[bool]:
    """Whether each of the ``m - 1`` checks before this one (same model, or same reference
    when no model) drifted; the newly inserted row is skipped."""
    if debounce.m <= 1:
        return []
    t = tables.drift_results
    query = select(t.c.dataset_drift)
    if model_name is not None:
        query = query.where(t.c.model_name == model_name)
    else:
        query = query.where(t.c.model_name.is_(None), t.c.reference == reference)
    rows = conn.execute(query.order_by(t.c.id.desc()).limit(debounce.m)).all()
    return [bool(r.dataset_drift) for r in rows[1:]]


def drift_history(
    metadata: MetadataStore,
    *,
    model: str | None = None,
    since: str | None = None,
    limit: int = 100,
) -> list[DriftRecord]:
    """Stored checks, oldest first (the last ``limit``); ``model`` is a name."""
    if limit < 1:
        raise InvalidInput("must be at least 1", field="limit")
    t = tables.drift_results
    query = select(t)
    if model is not None:
        query = query.where(t.c.model_name == model)
    if since is not None:
        query = query.where(t.c.at >= since)
    with metadata.read() as conn:
        rows = conn.execute(query.order_by(t.c.id.desc()).limit(limit)).all()
    records = []
    for row in reversed(rows):
        result = json.loads(row.result)
        prediction = result.get("prediction_drift")
        records.append(
            DriftRecord(
                id=int(row.id),
                at=row.at,
                model_name=row.model_name,
                model_version=row.model_version,
                reference=row.reference,
                current=row.current,
                window_start=row.window_start,
                window_end=row.window_end,
                dataset_drift=bool(row.dataset_drift),
                share_drifted=float(row.share_drifted),
                status=str(result.get("status", "ok")),
                number_of_columns=int(result.get("number_of_columns", 0)),
                drifted_columns=[c["name"] for c in result.get("columns", []) if c.get("drifted")],
                prediction_drift=bool(prediction["dataset_drift"]) if prediction else None,
                robust=bool(result.get("robust", False)),
                drifted_details=[_detail(c) for c in result.get("columns", []) if c.get("drifted")],
            )
        )
    return records


def _detail(stored: dict[str, Any]) -> dict[str, Any]:
    """A stored drifted column: the figures its verdict came from (older checks stored no
    ``explanation``: it is rebuilt from the stored figures)."""
    col = column_from_dict(stored)
    return {
        "name": col.name,
        "decided_by": col.decided_by,
        "explanation": col.explain(),
        "robust": col.robust,
    }


def _split_model(ref: str | None) -> tuple[str | None, int | None]:
    if not ref:
        return None, None
    name, _, version = ref.partition("/")
    return name, int(version) if version.isdigit() else None


def _finite(value: Any) -> Any:
    """JSON has no NaN or infinity: store them as null."""
    if isinstance(value, float):
        return value if value == value and value not in (float("inf"), float("-inf")) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value
