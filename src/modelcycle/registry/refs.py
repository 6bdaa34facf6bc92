"""Model references: ``NAME/3`` (a version), ``NAME@champion`` (an alias), ``NAME@latest``."""

from __future__ import annotations

from dataclasses import dataclass

from modelcycle.errors import InvalidInput
from modelcycle.names import validate_name

__all__ = ["LATEST", "ModelRef", "parse_model_ref"]

# Not an alias anyone sets: it always means the newest version that is not archived.
LATEST = "latest"


@dataclass(frozen=True, slots=True)
class ModelRef:
    """A parsed reference: exactly one of ``version`` and ``alias`` is set."""

    name: str
    version: int | None = None
    alias: str | None = None

    def __str__(self) -> str:
        return (
            f"{self.name}/{self.version}"
            if self.version is not None
            else f"{self.name}@{self.alias}"
        )


def parse_model_ref(ref: str, *, field: str = "model") -> ModelRef:
    """Parse ``NAME/VERSION`` or ``NAME@ALIAS``; anything else is InvalidInput naming ``field``."""
    if not isinstance(ref, str):
        raise InvalidInput(f"expected NAME/VERSION or NAME@ALIAS, got {ref!r}", field=field)
    if "/" in ref:
        name, _, number = ref.partition("/")
        if not number.isdigit() or int(number) < 1:
            raise InvalidInput(
                f"{ref!r}: the version after '/' must be a positive whole number", field=field
            )
        return ModelRef(validate_name(name, field=field), version=int(number))
    if "@" in ref:
        name, _, alias = ref.partition("@")
        return ModelRef(validate_name(name, field=field), alias=validate_name(alias, field=field))
    raise InvalidInput(
        f"{ref!r} names no version; use NAME/VERSION, NAME@ALIAS or NAME@latest", field=field
    )
