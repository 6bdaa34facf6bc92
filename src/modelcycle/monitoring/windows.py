"""Time windows: ``1h``-style durations, ISO times, and the window a check looks at.

Times are kept as the log's UTC text (``2026-11-29T10:00:00.000000Z``): fixed width, so they
compare and sort as text, in SQL as in Python.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from modelcycle.audit import utc_timestamp
from modelcycle.errors import InvalidInput

__all__ = ["Window", "parse_duration", "parse_time", "resolve_window"]

_DURATION = re.compile(r"^(\d+)([smhdw])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


@dataclass(frozen=True)
class Window:
    """``[start, end)`` in UTC text; ``None`` is open on that side."""

    start: str | None
    end: str | None

    def as_dict(self) -> dict[str, str | None]:
        return {"start": self.start, "end": self.end}


def parse_duration(value: str | timedelta, *, field: str = "window") -> timedelta:
    """``30s``, ``15m``, ``1h``, ``7d``, ``2w`` as a positive timedelta."""
    if isinstance(value, timedelta):
        if value <= timedelta(0):
            raise InvalidInput("must be a positive duration", field=field)
        return value
    match = _DURATION.match(str(value).strip()) if isinstance(value, str) else None
    if not match or int(match.group(1)) == 0:
        raise InvalidInput(
            f"{value!r} is not a duration; expected a positive number and a unit, e.g. "
            "30m, 1h, 1d, 2w",
            field=field,
        )
    return timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})


def parse_time(value: str | datetime, *, field: str, now: datetime | None = None) -> str:
    """An ISO 8601 time (UTC when no offset is given) or ``2h``-style "that long ago"."""
    if isinstance(value, datetime):
        moment = value
    else:
        text = str(value).strip()
        if _DURATION.match(text):
            return utc_timestamp(_now(now) - parse_duration(text, field=field))
        try:
            moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            raise InvalidInput(
                f"{value!r} is not a time; expected e.g. 2026-11-29T10:00:00Z or 2h (ago)",
                field=field,
            ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return utc_timestamp(moment)


def resolve_window(
    window: str | timedelta | None = None,
    since: str | datetime | None = None,
    until: str | datetime | None = None,
    *,
    now: datetime | None = None,
    default: str | None = "1d",
) -> Window:
    """``window`` (the last ``1h`` up to ``until`` or now) or ``since``/``until``, not both."""
    if window is not None and since is not None:
        raise InvalidInput("give either a window or --since/--until, not both", field="window")
    end = parse_time(until, field="until", now=now) if until is not None else None
    if since is not None:
        start = parse_time(since, field="since", now=now)
        if end is not None and start >= end:
            raise InvalidInput(f"{since} is not before {until}", field="since")
        return Window(start, end)
    window = window if window is not None else default
    if window is None:
        return Window(None, end)
    length = parse_duration(window, field="window")
    end_moment = _parse_utc(end) if end is not None else _now(now)
    return Window(utc_timestamp(end_moment - length), utc_timestamp(end_moment))


def _parse_utc(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _now(now: datetime | None) -> datetime:
    return now if now is not None else datetime.now(UTC)
