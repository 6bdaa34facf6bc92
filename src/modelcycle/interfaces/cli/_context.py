"""What every command shares: the consoles, the workspace opener, and time parsing."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from rich.console import Console

from modelcycle.audit import utc_timestamp
from modelcycle.errors import InvalidInput
from modelcycle.workspace import Workspace

console = Console()
err_console = Console(stderr=True, soft_wrap=True)

_RELATIVE = re.compile(r"^(\d+)([smhdw])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def open_workspace() -> Workspace:
    """The workspace for this command: MODELCYCLE_HOME, else the current folder upward."""
    return Workspace()


def parse_since(value: str, *, field: str = "--since") -> str:
    """``30m``, ``2h``, ``7d`` ago, or an ISO 8601 time; returned as the log's UTC text."""
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
