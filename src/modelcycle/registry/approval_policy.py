"""Promotion policies: ``[promotion.<alias pattern>]`` in ``modelcycle.toml``.

::

    [promotion.champion]
    approvals = 1                 # distinct approvals needed (0 = none: the alias moves at once)
    approvers = ["alice", "bob"]  # identities allowed to approve; empty = any operator or admin
    separation_of_duties = true   # the requester and the version's author may not approve
    expires_after = "72h"         # a pending request expires after this long (absent = never)

The key after ``promotion.`` is an alias name or a shell-style pattern (``"prod-*"``, quoted
in TOML). An alias takes the section that names it exactly, else the first pattern (in file
order) that matches it, else no policy. Every problem is one ``InvalidInput`` naming the key
(``promotion.champion.approvers``) and what was expected: the CLI prints it and exits 2.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from modelcycle.errors import InvalidInput

__all__ = ["PromotionPolicies", "PromotionPolicy", "load_promotion_policies", "parse_duration"]

_DURATION = re.compile(r"^(\d+)([smhd])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}
_PATTERN = re.compile(r"^[A-Za-z0-9_.*?\[\]!-]{1,100}$")
_EXPECTED = {
    "approvals": "a whole number >= 0",
    "approvers": "a list of identity names (strings)",
    "separation_of_duties": "true or false",
    "expires_after": "a duration such as 30m, 72h or 7d",
    "require_clean_commit": "true or false",
}


def parse_duration(text: str) -> timedelta:
    """``30s``, ``15m``, ``72h``, ``7d`` (ValueError otherwise)."""
    match = _DURATION.match(text.strip())
    if not match or int(match.group(1)) == 0:
        raise ValueError(f"{text!r} is not a duration")
    return timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})


class PromotionPolicy(BaseModel):
    """One ``[promotion.<pattern>]`` section, validated."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    approvals: int = Field(default=0, ge=0, le=100)
    approvers: tuple[str, ...] = ()
    separation_of_duties: bool = True
    expires_after: str | None = None
    # Refuse versions whose run had uncommitted changes or no commit (registry/clean_commit.py).
    require_clean_commit: bool = False

    @field_validator("approvers", mode="before")
    @classmethod
    def _approvers(cls, value: Any) -> tuple[str, ...]:
        if not isinstance(value, list | tuple) or not all(
            isinstance(v, str) and v.strip() and len(v) <= 200 for v in value
        ):
            raise ValueError("not a list of names")
        return tuple(v.strip() for v in value)

    @field_validator("expires_after")
    @classmethod
    def _expires(cls, value: str | None) -> str | None:
        if value is not None:
            parse_duration(value)
        return value

    @property
    def expires_delta(self) -> timedelta | None:
        return parse_duration(self.expires_after) if self.expires_after else None

    def may_approve(self, identity: str) -> bool:
        """Whether ``identity`` is on the approvers list (an empty list allows anyone)."""
        return not self.approvers or identity in self.approvers

    def as_dict(self) -> dict[str, Any]:
        return {
            "approvals": self.approvals,
            "approvers": list(self.approvers),
            "separation_of_duties": self.separation_of_duties,
            "expires_after": self.expires_after,
            "require_clean_commit": self.require_clean_commit,
        }


@dataclass(frozen=True)
class PromotionPolicies:
    """Every section, in file order; :meth:`for_alias` picks the one that applies."""

    sections: tuple[tuple[str, PromotionPolicy], ...] = ()

    def for_alias(self, alias: str) -> tuple[str, PromotionPolicy] | None:
        """``(pattern, policy)`` governing ``alias``: its exact section, else the first
        matching pattern, else None."""
        for pattern, policy in self.sections:
            if pattern == alias:
                return pattern, policy
        for pattern, policy in self.sections:
            if fnmatch.fnmatchcase(alias, pattern):
                return pattern, policy
        return None

    def needs_approval(self, alias: str) -> bool:
        found = self.for_alias(alias)
        return found is not None and found[1].approvals > 0


def load_promotion_policies(config: Mapping[str, Any]) -> PromotionPolicies:
    """The ``[promotion.*]`` sections of a parsed ``modelcycle.toml``."""
    raw = config.get("promotion")
    if raw is None:
        return PromotionPolicies()
    if not isinstance(raw, dict):
        raise InvalidInput(
            "expected tables such as [promotion.champion], one per alias or pattern",
            field="promotion",
        )
    sections: list[tuple[str, PromotionPolicy]] = []
    for pattern, body in raw.items():
        where = f"promotion.{pattern}"
        if not _PATTERN.match(pattern):
            raise InvalidInput(
                "expected an alias name or a pattern of letters, digits, . _ - * ? [ ]",
                field=where,
            )
        if not isinstance(body, dict):
            raise InvalidInput(f"expected a table with keys {', '.join(_EXPECTED)}", field=where)
        sections.append((pattern, _validate(where, body)))
    return PromotionPolicies(tuple(sections))


def _validate(where: str, body: dict[str, Any]) -> PromotionPolicy:
    try:
        return PromotionPolicy.model_validate(body)
    except ValidationError as exc:
        first = exc.errors()[0]
        key = str(first["loc"][0]) if first["loc"] else ""
        if first["type"] == "extra_forbidden":
            raise InvalidInput(
                f"unknown key; expected one of {', '.join(_EXPECTED)}", field=f"{where}.{key}"
            ) from None
        got = body.get(key)
        raise InvalidInput(
            f"expected {_EXPECTED.get(key, 'a valid value')}, got {got!r}",
            field=f"{where}.{key}",
        ) from None
