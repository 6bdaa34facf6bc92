"""Rules: on an event (an audit action), where its payload matches, do an action.

Declared in ``modelcycle.toml``::

    [[rules]]
    name = "retrain-on-new-data"
    on = "dataset.version_created"
    where = { name = "credit" }             # payload fields (or "subject") that must match
    do = "train"
    with = { data = "{subject_ref}", target = "default" }
    debounce = "6h"                          # optional: at most one job per rule per window

``where`` and ``with`` may use the event's fields: any payload field, plus ``subject``,
``subject_ref`` (the subject without its ``kind:`` prefix: ``credit/3``, ``credit@2``),
``subject_name`` (the name in it: ``credit``), ``action`` and ``seq``; ``with`` values use
them as ``{field}`` placeholders.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Annotated, Any

from pydantic import AfterValidator, Field

from modelcycle.entities import AuditEvent
from modelcycle.errors import InvalidInput
from modelcycle.names import validate_name
from modelcycle.settings import CONFIG_FILE, SectionModel, parse_section

__all__ = ["KNOWN_EVENTS", "Rule", "RuleEntry", "load_rules", "parse_duration"]

# The events stages emit today; a rule on anything else is refused at load.
KNOWN_EVENTS = frozenset(
    {
        "dataset.version_created",
        "run.finished",
        "run.failed",
        "model.version_registered",
        "model.alias_moved",
        "model.promoted",
        "promotion.requested",
        "promotion.approved",
        "promotion.rejected",
        "promotion.cancelled",
        "promotion.expired",
        "deployment.succeeded",
        "deployment.rolled_back",
        "drift.detected",
        "performance.degraded",
        "job.failed",
        "audit.note",
    }
)

_PLACEHOLDER = re.compile(r"\{([a-z_][a-z0-9_]*)\}")
_DURATION = re.compile(r"^(\d+)([smhd])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def parse_duration(text: str, *, field: str) -> timedelta:
    """``30s``, ``15m``, ``6h``, ``1d``."""
    match = _DURATION.match(str(text).strip())
    if not match:
        raise InvalidInput(
            f"{text!r} is not a duration; expected e.g. 30s, 15m, 6h, 1d", field=field
        )
    return timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})


def checked_name(value: str) -> str:
    """A validator: the naming rule (pydantic reports the ValueError as ``expected ...``)."""
    try:
        return validate_name(value)
    except InvalidInput:
        raise ValueError(
            f"a name of 1-128 letters, digits, '.', '_' or '-', starting with a letter or digit, "
            f"without '..' or '/', got {value!r}"
        ) from None


def _event(value: str) -> str:
    if value not in KNOWN_EVENTS:
        raise ValueError(f"one of {', '.join(sorted(KNOWN_EVENTS))}, got {value!r}")
    return value


def _duration(value: str | None) -> str | None:
    if value is not None and not _DURATION.match(value.strip()):
        raise ValueError(f"a duration such as 30s, 15m, 6h, 1d, got {value!r}")
    return value


@dataclass(frozen=True)
class Rule:
    """One rule, validated."""

    name: str
    on: str
    do: str
    where: Mapping[str, Any] = field(default_factory=dict)
    params: Mapping[str, Any] = field(default_factory=dict)
    debounce: timedelta | None = None
    max_attempts: int = 3

    @property
    def fingerprint(self) -> str:
        """Who the rule is: its name and what it matches and does (``on``, ``where``, ``do``,
        ``with``). Changing any of them makes a new rule, which acts only on events after the
        change (the dispatcher records when it first saw each fingerprint); ``debounce`` and
        ``max_attempts`` are tuning and leave it the same rule."""
        body = {
            "name": self.name,
            "on": self.on,
            "where": dict(self.where),
            "do": self.do,
            "with": dict(self.params),
        }
        # default=str: TOML dates are not JSON, but their text is stable.
        text = json.dumps(body, sort_keys=True, separators=(",", ":"), default=str)
        return hashlib.sha256(text.encode("utf-8")).hexdigest()

    def matches(self, event: AuditEvent) -> bool:
        """Whether ``event`` triggers this rule."""
        if event.action != self.on:
            return False
        values = _event_values(event)
        return all(values.get(k) == v for k, v in self.where.items())

    def render(self, event: AuditEvent) -> dict[str, Any]:
        """The action's parameters with the event's placeholders filled in."""
        values = _event_values(event)

        def fill(value: Any) -> Any:
            if not isinstance(value, str):
                return value
            missing = [m for m in _PLACEHOLDER.findall(value) if m not in values]
            if missing:
                raise InvalidInput(
                    f"event {event.seq} ({event.action}) has no field {missing[0]!r}",
                    field=f"rules.{self.name}.with",
                )
            return _PLACEHOLDER.sub(lambda m: str(values[m.group(1)]), value)

        return {k: fill(v) for k, v in self.params.items()}


def _event_values(event: AuditEvent) -> dict[str, Any]:
    values: dict[str, Any] = dict(event.payload)
    ref = event.subject.split(":", 1)[-1]
    values.update(
        subject=event.subject,
        subject_ref=ref,
        subject_name=re.split(r"[/@]", ref, maxsplit=1)[0],
        action=event.action,
        seq=event.seq,
    )
    return values


class RuleEntry(SectionModel):
    """One ``[[rules]]`` table as written; :func:`load_rules` checks the actions and names."""

    name: Annotated[str, AfterValidator(checked_name)]
    on: Annotated[str, AfterValidator(_event)]
    do: str
    where: dict[str, Any] = Field(default_factory=dict)
    with_: dict[str, Any] = Field(default_factory=dict, alias="with")
    debounce: Annotated[str | None, AfterValidator(_duration)] = None
    max_attempts: int = Field(default=3, ge=1, le=20, strict=True)


def load_rules(config: Mapping[str, Any], actions: Iterable[str]) -> list[Rule]:
    """Every ``[[rules]]`` entry, checked; the first problem is one line naming
    ``rules[INDEX].KEY`` (InvalidInput)."""
    entries = parse_section(config, "rules", list[RuleEntry])
    known_actions = set(actions)
    rules: list[Rule] = []
    seen: set[str] = set()
    for i, entry in enumerate(entries):
        if entry.name in seen:
            raise InvalidInput(f"two rules are named {entry.name!r}", field=_field(i, "name"))
        seen.add(entry.name)
        if entry.do not in known_actions:
            raise InvalidInput(
                f"{entry.do!r} is not an action; expected one of "
                f"{', '.join(sorted(known_actions))}",
                field=_field(i, "do"),
            )
        rules.append(
            Rule(
                name=entry.name,
                on=entry.on,
                do=entry.do,
                where=dict(entry.where),
                params=dict(entry.with_),
                debounce=parse_duration(entry.debounce, field="debounce")
                if entry.debounce
                else None,
                max_attempts=entry.max_attempts,
            )
        )
    return rules


def _field(index: int, key: str, section: str = "rules") -> str:
    return f"{CONFIG_FILE} {section}[{index}].{key}"
