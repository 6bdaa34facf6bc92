"""Query parameters shared by several routes."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from modelcycle.audit import utc_timestamp
from modelcycle.errors import InvalidInput

__all__ = ["parse_since"]

_RELATIVE = re.compile(r"^(\d{1,6})([smhdw])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_since(value: str, *, field: str = "since") -> str:
    """``30m``, ``2h``, ``7d`` ago, or an ISO 8601 time, as the audit log's UTC text (the
    CLI's ``--since``; kept here so the API does not load the CLI)."""
    match = _RELATIVE.match(value.strip())
    if match:
        delta = timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})
        return utc_timestamp(datetime.now(UTC) - delta)
    try:
        moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise InvalidInput(
            f"{value!r} is not a time; expected e.g. 30m, 2h, 7d or 2026-11-29T10:00:00Z",
            field=field,
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return utc_timestamp(moment)
