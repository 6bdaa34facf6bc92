"""Promotion: the gate that compares a candidate with the alias's holder on rows neither model
trained on, then moves the alias (or, under a ``[promotion.*]`` policy, opens a request).

:class:`RegistryPromotion` is mixed into :class:`~modelcycle.registry.ModelRegistry`, which
supplies the store, the catalog and the version lookups.
"""

from __future__ import annotations

import builtins
import dataclasses
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
from sqlalchemy import Connection, insert, select

from modelcycle.audit import utc_timestamp
from modelcycle.errors import Conflict, InvalidInput, NotReady, PreconditionFailed
from modelcycle.registry._checks import (
    ARCHIVED,
    check_alias,
    check_precondition,
    split_dataset_ref,
)
from modelcycle.registry._metrics import Metric, default_metric, get_metric
from modelcycle.registry.clean_commit import refuse_unclean_commit
from modelcycle.registry.errors import PromotionRefused
from modelcycle.registry.gate import DEFAULT_MIN_ROWS, select_unseen_rows, too_few_rows
from modelcycle.registry.notes import check_text
from modelcycle.registry.signature import Signature, enforce
from modelcycle.store import tables

if TYPE_CHECKING:
    from modelcycle.datasets import DatasetCatalog
    from modelcycle.entities import ModelVersion
    from modelcycle.registry.approvals import PromotionApprovals
    from modelcycle.registry.loaded import LoadedModel
    from modelcycle.store import ArtifactStore, MetadataStore

__all__ = ["PromotionResult", "RegistryPromotion", "store_evaluations"]


@dataclass(frozen=True, slots=True)
class PromotionResult:
    """What a promotion did: the alias move and, unless first or forced, both figures."""

    name: str
    alias: str
    version: int
    previous: int | None
    moved: bool
    forced: bool = False
    first: bool = False
    metric: str | None = None
    candidate_score: float | None = None
    champion_score: float | None = None
    dataset: str | None = None
    # the gate's rows: holdout, evaluated, excluded, seen_in_training by role, unchecked
    rows: dict[str, Any] | None = None
    warnings: builtins.list[str] = field(default_factory=builtins.list)
    # set when a promotion policy turned the move into a request (registry/approvals.py)
    request: str | None = None


class RegistryPromotion:
    """Promotion through the gate (mixed into ModelRegistry, which supplies the rest)."""

    if TYPE_CHECKING:
        _meta: MetadataStore
        _artifacts: ArtifactStore
        _actor: str
        _datasets: DatasetCatalog | None
        approvals: PromotionApprovals | None

        def get(self, ref: str) -> ModelVersion: ...

        def _load_version(self, mv: ModelVersion, *, trust: bool) -> LoadedModel: ...

        def _move_alias(
            self, conn: Connection, name: str, alias: str, version: int
        ) -> int | None: ...

    def promote(
        self,
        ref: str,
        to: str = "champion",
        *,
        metric: str | None = None,
        min_gain: float = 0.0,
        on: str | None = None,
        target: str | None = None,
        force: bool = False,
        trust: bool = False,
        if_version: int | None = None,
        min_rows: int = DEFAULT_MIN_ROWS,
        reason: str | None = None,
    ) -> PromotionResult:
        """Move ``NAME@to`` to the candidate if it scores at least as well as the current holder
        (plus ``min_gain``) on the same holdout data set version; else raise PromotionRefused.
        With ``if_version``, PreconditionFailed unless the alias still points there.
        ``reason`` is recorded in the audit events (a forced move records ``reason: null``
        when none is given; the CLI demands one with ``--force``)."""
        alias = check_alias(to, field="to")
        reason = check_text(reason, field="reason")
        if not math.isfinite(min_gain) or min_gain < 0:
            raise InvalidInput("must be a number >= 0", field="min_gain")
        if isinstance(min_rows, bool) or not isinstance(min_rows, int) or min_rows < 1:
            raise InvalidInput("must be a whole number >= 1", field="min_rows")
        candidate = self.get(ref)
        if candidate.status == ARCHIVED:
            raise Conflict(f"{candidate.ref} is archived and cannot be promoted")
        name = candidate.name
        current = self._alias_target(name, alias)
        check_precondition(name, alias, current, if_version)
        if current == candidate.version:
            return PromotionResult(name, alias, candidate.version, current, moved=False)
        if self.approvals is not None:
            refuse_unclean_commit(
                self._meta, self.approvals.policies, candidate, alias, self._actor
            )
        if current is None or force:
            return self._commit_promotion(
                candidate,
                alias,
                current,
                forced=force and current is not None,
                first=current is None,
                reason=reason,
            )
        champion = self.get(f"{name}/{current}")
        sig = Signature.from_dict(candidate.signature)
        figure = get_metric(metric or default_metric(sig.task), sig.task)
        ds_ref, table, target_col = self._holdout(candidate, on, target)
        # Score only on rows neither model trained on (see registry/gate.py).
        rows = select_unseen_rows(
            self._artifacts, table, target_col, {"candidate": candidate, "champion": champion}
        )
        if rows.excluded and rows.evaluated < min_rows:
            refusal = too_few_rows(candidate, champion, alias, figure.name, ds_ref, rows, min_rows)
            with self._meta.write(
                actor=self._actor,
                action="model.promotion_refused",
                subject=f"model:{candidate.ref}",
                payload=refusal.payload,
            ):
                pass
            raise refusal.error
        cand_score = self._score(candidate, figure, rows.table, target_col, trust)
        champ_score = self._score(champion, figure, rows.table, target_col, trust)
        passed = figure.at_least_as_good(cand_score, champ_score, min_gain)
        gate = {
            "rows": rows.as_dict(),
            "metric": figure.name,
            "higher_is_better": figure.higher_is_better,
            "min_gain": min_gain,
            "dataset": ds_ref,
            "target": target_col,
            "candidate": {"version": candidate.version, "score": cand_score},
            "champion": {"version": champion.version, "score": champ_score},
        }
        if passed:
            result = self._commit_promotion(candidate, alias, current, gate=gate, reason=reason)
            return dataclasses.replace(result, rows=rows.as_dict(), warnings=rows.warnings())
        with self._meta.write(
            actor=self._actor,
            action="model.promotion_refused",
            subject=f"model:{candidate.ref}",
            payload={"alias": alias, **gate},
        ) as tx:
            store_evaluations(tx.conn, name, gate)
        # Raised after the commit: the refusal and both figures stay on record.
        direction = "higher" if figure.higher_is_better else "lower"
        raise PromotionRefused(
            f"{candidate.ref} not promoted to {alias}: {figure.name} ({direction} is better) on "
            f"{ds_ref} ({rows.describe()}) is {cand_score:.6g} for {candidate.ref} and "
            f"{champ_score:.6g} for {champion.ref} ({name}@{alias}); needed a gain of at least "
            f"{min_gain:g}",
            metric=figure.name,
            candidate=cand_score,
            champion=champ_score,
            dataset=ds_ref,
            rows=rows.as_dict(),
        )

    def _alias_target(self, name: str, alias: str) -> int | None:
        a = tables.model_aliases
        with self._meta.read() as conn:
            value = conn.execute(
                select(a.c.version).where(a.c.name == name, a.c.alias == alias)
            ).scalar()
        return int(value) if value is not None else None

    def _commit_promotion(
        self,
        candidate: ModelVersion,
        alias: str,
        expected: int | None,
        *,
        gate: dict[str, Any] | None = None,
        forced: bool = False,
        first: bool = False,
        reason: str | None = None,
    ) -> PromotionResult:
        if self.approvals is not None:  # the policy's hook: a request instead of a move
            pending = self.approvals.intercept(
                candidate, alias, expected, gate=gate, forced=forced, reason=reason
            )
            if pending is not None:
                return pending
        payload: dict[str, Any] = {
            "alias": alias,
            "from": expected,
            "to": candidate.version,
            "forced": forced,
            "first": first,
        }
        if forced or reason is not None:  # a skipped gate always says why, or that none was given
            payload["reason"] = reason
        if gate is not None:
            payload["gate"] = gate
        with self._meta.write(
            actor=self._actor,
            action="model.promoted",
            subject=f"model:{candidate.ref}",
            payload=payload,
        ) as tx:
            old = self._move_alias(tx.conn, candidate.name, alias, candidate.version)
            if old != expected:
                # Someone moved the alias while we scored: the figures compared the wrong model.
                raise PreconditionFailed(
                    f"{candidate.name}@{alias} moved from {expected} to {old} during the "
                    "promotion; run it again"
                )
            tx.record(
                "model.alias_moved",
                f"model:{candidate.ref}",
                {"alias": alias, "from": old, "to": candidate.version, "by": "promotion",
                 **{k: payload[k] for k in ("forced", "reason") if k in payload}},
            )  # fmt: skip
            if gate is not None:
                store_evaluations(tx.conn, candidate.name, gate)
        return PromotionResult(
            candidate.name,
            alias,
            candidate.version,
            expected,
            moved=True,
            forced=forced,
            first=first,
            metric=gate["metric"] if gate else None,
            candidate_score=gate["candidate"]["score"] if gate else None,
            champion_score=gate["champion"]["score"] if gate else None,
            dataset=gate["dataset"] if gate else None,
        )

    def _holdout(
        self, mv: ModelVersion, on: str | None, target: str | None
    ) -> tuple[str, pa.Table, str]:
        on = on or mv.tags.get("holdout")
        target = target or mv.tags.get("target")
        if not on or not target:
            raise InvalidInput(
                f"{mv.ref} has no recorded holdout data set and target; pass on='DATASET@VERSION' "
                "and target='COLUMN' (CLI: --on, --target)",
                field="on" if not on else "target",
            )
        if self._datasets is None:
            raise NotReady(
                "scoring a holdout needs the data set catalog; open the registry from a Workspace"
            )
        ds_name, ds_version = split_dataset_ref(on, field="on")
        resolved = self._datasets.version(ds_name, ds_version)
        table = self._datasets.get(ds_name, resolved.version)
        if target not in table.column_names:
            raise InvalidInput(f"{resolved.ref} has no column {target!r}", field="target")
        return resolved.ref, table, target

    def _score(
        self, mv: ModelVersion, figure: Metric, table: pa.Table, target: str, trust: bool
    ) -> float:
        loaded = self._load_version(mv, trust=trust)
        features = enforce(loaded.signature, table.drop_columns([target]), allow_extra=True)
        y_true = table.column(target).to_numpy(zero_copy_only=False)
        if figure.needs_proba:
            answer = loaded.flavor.predict_proba(loaded.model, features)
        else:
            answer = loaded.flavor.predict(loaded.model, features)
        return figure.compute(np.asarray(y_true), answer, loaded.signature.classes)

    # -- lineage ----------------------------------------------------------------------------


def store_evaluations(conn: Connection, name: str, gate: dict[str, Any]) -> None:
    now = utc_timestamp()
    conn.execute(
        insert(tables.model_evaluations),
        [
            {
                "name": name,
                "version": gate[side]["version"],
                "dataset": gate["dataset"],
                "metric": gate["metric"],
                "value": gate[side]["score"],
                "created_at": now,
            }
            for side in ("candidate", "champion")
        ],
    )
