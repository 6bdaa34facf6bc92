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
from typing import Any

from modelcycle.entities import AuditEvent
from modelcycle.errors import InvalidInput
from modelcycle.names import validate_name

__all__ = ["KNOWN_EVENTS", "Rule", "load_rules", "parse_duration"]

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

_RULE_KEYS = frozenset({"name", "on", "where", "do", "with", "debounce", "max_attempts"})
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


def load_rules(config: Mapping[str, Any], actions: Iterable[str]) -> list[Rule]:
    """Every ``[[rules]]`` entry, checked; the first problem names the rule and field."""
    raw = config.get("rules", [])
    if not isinstance(raw, list):
        raise InvalidInput("must be an array of tables ([[rules]])", field="rules")
    known_actions = set(actions)
    rules: list[Rule] = []
    seen: set[str] = set()
    for i, entry in enumerate(raw):
        where = f"rules[{i}]"
        if not isinstance(entry, dict):
            raise InvalidInput("must be a table", field=where)
        unknown = sorted(
            set(entry) - {"name", "on", "where", "do", "with", "debounce", "max_attempts"}
        )
        if unknown:
            raise InvalidInput(f"unknown key {unknown[0]!r}", field=where)
        name = validate_name(str(entry.get("name", "")), field=f"{where}.name")
        if name in seen:
            raise InvalidInput(f"two rules are named {name!r}", field=f"{where}.name")
        seen.add(name)
        on = str(entry.get("on", ""))
        if on not in KNOWN_EVENTS:
            raise InvalidInput(
                f"{on!r} is not an event; expected one of {', '.join(sorted(KNOWN_EVENTS))}",
                field=f"{where}.on",
            )
        do = str(entry.get("do", ""))
        if do not in known_actions:
            raise InvalidInput(
                f"{do!r} is not an action; expected one of {', '.join(sorted(known_actions))}",
                field=f"{where}.do",
            )
        filters = entry.get("where", {})
        params = entry.get("with", {})
        for key, value in (("where", filters), ("with", params)):
            if not isinstance(value, dict):
                raise InvalidInput("must be a table", field=f"{where}.{key}")
        debounce = entry.get("debounce")
        attempts = entry.get("max_attempts", 3)
        if not isinstance(attempts, int) or not 1 <= attempts <= 20:
            raise InvalidInput("must be an integer from 1 to 20", field=f"{where}.max_attempts")
        rules.append(
            Rule(
                name=name,
                on=on,
                do=do,
                where=dict(filters),
                params=dict(params),
                debounce=parse_duration(debounce, field=f"{where}.debounce") if debounce else None,
                max_attempts=attempts,
            )
        )
    return rules
