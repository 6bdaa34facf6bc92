"""Errors of the registry, each a subclass of one of modelcycle's root kinds.

InvalidInput
 +-- SignatureMismatch      input does not match a model's signature (every problem listed)
 +-- UntrustedModel         a model file holds types we do not trust (named), or needs trust=True
Conflict
 +-- PromotionRefused       the candidate did not beat the current holder of the alias,
                            or too few holdout rows were unseen by both models
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from modelcycle.errors import Conflict, InvalidInput

__all__ = ["ColumnProblem", "PromotionRefused", "SignatureMismatch", "UntrustedModel"]


@dataclass(frozen=True, slots=True)
class ColumnProblem:
    """One column's problem: ``missing``, ``unknown``, ``type`` or ``nulls``."""

    column: str
    kind: str
    detail: str

    def __str__(self) -> str:
        return f"column {self.column!r}: {self.detail}"


class SignatureMismatch(InvalidInput):
    """The input table does not match the signature; ``problems`` lists every column at fault."""

    def __init__(self, problems: list[ColumnProblem], *, what: str = "input") -> None:
        listed = "; ".join(str(p) for p in problems)
        super().__init__(
            f"does not match the model signature ({len(problems)} problem(s)): {listed}",
            field=what,
        )
        self.problems = problems


class UntrustedModel(InvalidInput):
    """Loading would run or build types outside the trusted list; ``types`` names them."""

    def __init__(self, message: str, *, types: list[str] | None = None) -> None:
        super().__init__(message, field="model")
        self.types = list(types or [])


class PromotionRefused(Conflict):
    """The candidate is not good enough (both figures are kept on the error), or too few
    holdout rows were left that neither model trained on (the figures are then None and
    ``rows`` says how many were evaluated and excluded)."""

    def __init__(
        self,
        message: str,
        *,
        metric: str,
        candidate: float | None,
        champion: float | None,
        dataset: str,
        rows: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.metric = metric
        self.candidate = candidate
        self.champion = champion
        self.dataset = dataset
        self.rows = rows
