"""The hash chain: canonical encoding of an event and the hash that links it to the one before.

hash(event) = sha256(canonical_json({seq, at, actor, action, subject, payload, prev_hash}))

canonical_json sorts keys, uses no insignificant whitespace, keeps non-ASCII as UTF-8 and
refuses NaN and infinities, so that one event has exactly one byte encoding on every machine.
The payload is stored as that same canonical text, so what is hashed is what is stored.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from modelcycle.entities import AuditEvent, ChainHead
from modelcycle.errors import InvalidInput

__all__ = [
    "GENESIS",
    "canonical_json",
    "event_hash",
    "next_event",
    "parse_since",
    "utc_timestamp",
    "validate_action",
]

GENESIS = ChainHead(seq=0, hash="0" * 64)

# "workspace.created", "model.alias_moved": lower-case dotted words.
_ACTION_RE = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$")


def canonical_json(value: Any) -> str:
    """The one byte-stable JSON text of ``value`` (sorted keys, compact, no NaN)."""
    try:
        return json.dumps(
            value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
        )
    except (TypeError, ValueError) as exc:
        raise InvalidInput(
            f"must be JSON data without NaN or infinity ({exc})", field="payload"
        ) from exc


def utc_timestamp(now: datetime | None = None) -> str:
    """ISO 8601 UTC with microseconds and a 'Z': fixed width, sorts as text."""
    moment = (now or datetime.now(UTC)).astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


_RELATIVE = re.compile(r"^(\d{1,6})([smhdw])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_since(value: str, *, field: str = "since") -> str:
    """``30m``, ``2h``, ``7d`` ago, or an ISO 8601 time, as :func:`utc_timestamp` text: what the
    CLI's ``--since`` and the API's ``since`` take to filter the log."""
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


def validate_action(action: str) -> str:
    """Check an action name such as ``dataset.version_created``."""
    if not _ACTION_RE.match(action):
        raise InvalidInput(
            f"{action!r} is not an action name; expected dotted lower-case words such as "
            "'model.version_registered'",
            field="action",
        )
    return action


def event_hash(event: AuditEvent) -> str:
    """sha256 (hex) over the canonical encoding of the event's fields (all but its own hash)."""
    body = canonical_json(
        {
            "seq": event.seq,
            "at": event.at,
            "actor": event.actor,
            "action": event.action,
            "subject": event.subject,
            "payload": event.payload,
            "prev_hash": event.prev_hash,
        }
    )
    return hashlib.sha256(body.encode("utf-8")).hexdigest()


def next_event(
    head: ChainHead,
    *,
    actor: str,
    action: str,
    subject: str,
    payload: dict[str, Any],
    at: str | None = None,
) -> AuditEvent:
    """The event that follows ``head``, with its hash computed."""
    validate_action(action)
    if not actor:
        raise InvalidInput("must not be empty", field="actor")
    # Round-trip through the canonical text so the stored payload equals the hashed one.
    normalized: dict[str, Any] = json.loads(canonical_json(payload))
    draft = AuditEvent(
        seq=head.seq + 1,
        at=at or utc_timestamp(),
        actor=actor,
        action=action,
        subject=subject,
        payload=normalized,
        prev_hash=head.hash,
    )
    return replace(draft, hash=event_hash(draft))
