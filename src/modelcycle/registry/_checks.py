"""Checks and constants the registry's parts share (versions, aliases, promotion)."""

from __future__ import annotations

from modelcycle.datasets import parse_dataset_ref
from modelcycle.errors import InvalidInput, PreconditionFailed
from modelcycle.names import validate_name
from modelcycle.registry.refs import LATEST
from modelcycle.statuses import ModelVersionStatus

# The registry's names for the version states (ModelVersionStatus is the definition).
ACTIVE = ModelVersionStatus.ACTIVE
ARCHIVED = ModelVersionStatus.ARCHIVED


def split_dataset_ref(ref: str, *, field: str = "datasets") -> tuple[str, int | str]:
    """``NAME@VERSION`` (or ``NAME``, ``NAME@latest``) as the catalog's (name, version)."""
    parsed = parse_dataset_ref(ref, field=field)
    return parsed.name, "latest" if parsed.version is None else parsed.version


def check_precondition(name: str, alias: str, current: int | None, expected: int | None) -> None:
    if expected is not None and current != expected:
        raise PreconditionFailed(
            f"{name}@{alias} points at version {current}, not {expected}; read it again"
        )


def check_alias(alias: str, *, field: str = "alias") -> str:
    validate_name(alias, field=field)
    if alias == LATEST:
        raise InvalidInput(
            "'latest' always means the newest version and cannot be set", field=field
        )
    if alias.isdigit():
        raise InvalidInput(
            "an alias must not be a bare number (it reads as a version)", field=field
        )
    return alias
