"""What ``modelcycle.toml`` says about notifications: ``[[notify]]``, ``[smtp]``,
``[notifications]`` and ``[audit] verify_every``, each section one pydantic model.

    [[notify]]
    name = "oncall"
    events = ["drift.detected", "deployment.*", "job.dead", "audit.verify_failed"]
    models = ["credit"]                       # optional: only events about these models
    webhook = "https://hooks.example.com/modelcycle"
    secret_env = "MODELCYCLE_WEBHOOK_SECRET"  # the variable holding the signing secret

    [[notify]]                                # or: start the CI's deployment pipeline
    name = "deploy-pipeline"
    events = ["model.promoted"]
    dispatch = "github"                       # github | gitlab | azure
    repository = "acme/credit-model"          # OWNER/REPO | project id or path | ORG/PROJECT/ID
    token_env = "GITHUB_DISPATCH_TOKEN"

The public event names are a stable vocabulary over the audit actions (:data:`PUBLIC_EVENTS`):
most are the audit action itself; ``job.dead`` is the audit's ``job.failed`` (the job gave up)
and ``audit.verify_failed`` comes from the scheduled verification, not from the log (a broken
chain refuses new events). Every problem is one :class:`InvalidInput` naming the key
(``notify[0].webhook``) and what was expected: CLI exit 2, no traceback.
"""

from __future__ import annotations

import fnmatch
import os
import re
from collections.abc import Mapping
from datetime import timedelta
from typing import Any, Literal

from pydantic import (
    Field,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from modelcycle.automations.rules import parse_duration
from modelcycle.errors import InvalidInput
from modelcycle.names import validate_name
from modelcycle.settings import CONFIG_FILE, SectionModel, section_error

__all__ = [
    "CHANNEL_KEYS",
    "PUBLIC_EVENTS",
    "AuditSchedule",
    "NotificationConfig",
    "NotificationSettings",
    "NotifyEntry",
    "SmtpSettings",
    "load_notification_config",
    "public_event",
]

# Audit action -> public event name. Only these reach [[notify]] entries; the queue's own
# bookkeeping (job.queued, job.started, rules.dispatched ...) never does.
PUBLIC_EVENTS: dict[str, str] = {
    "dataset.version_created": "dataset.version_created",
    "run.finished": "run.finished",
    "run.failed": "run.failed",
    "model.version_registered": "model.version_registered",
    "model.version_archived": "model.version_archived",
    "model.alias_moved": "model.alias_moved",
    "model.alias_deleted": "model.alias_deleted",
    "model.promoted": "model.promoted",
    "model.promotion_refused": "model.promotion_refused",
    "promotion.requested": "promotion.requested",
    "promotion.approved": "promotion.approved",
    "promotion.rejected": "promotion.rejected",
    "promotion.expired": "promotion.expired",
    "promotion.cancelled": "promotion.cancelled",
    "deployment.succeeded": "deployment.succeeded",
    "deployment.failed": "deployment.failed",
    "deployment.rolled_back": "deployment.rolled_back",
    "deployment.rolled_back_on_demand": "deployment.rolled_back_on_demand",
    "deployment.watch_passed": "deployment.watch_passed",
    "deployment.stopped": "deployment.stopped",
    "deployment.applied": "deployment.applied",
    "deployment.manifests_written": "deployment.manifests_written",
    "drift.detected": "drift.detected",
    "performance.degraded": "performance.degraded",
    "job.failed": "job.dead",  # the audit's job.failed is a job that gave up: dead
    "job.cycle_cut": "job.cycle_cut",
    "audit.acknowledged": "audit.acknowledged",
    "audit.note": "audit.note",
    "token.created": "token.created",
    "token.revoked": "token.revoked",
}
# Raised by the scheduled verification itself (the chain then refuses new events).
VERIFY_FAILED = "audit.verify_failed"
# `modelcycle notify test` sends this one; no pattern needs to name it.
TEST_EVENT = "notify.test"
KNOWN_PUBLIC = frozenset({*PUBLIC_EVENTS.values(), VERIFY_FAILED})
CHANNEL_KEYS = ("webhook", "slack", "email", "dispatch")
# The CI providers a `dispatch` entry can start a pipeline on, and the shape of `repository`.
DISPATCH_REPOSITORY: dict[str, tuple[re.Pattern[str], str]] = {
    "github": (re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$"), "OWNER/REPO"),
    "gitlab": (re.compile(r"^(\d+|[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)+)$"), "a project id or path"),
    "azure": (re.compile(r"^[^/\s]+/[^/\s][^/]*/\d+$"), "ORG/PROJECT/PIPELINE_ID"),
}
_DISPATCH_ONLY = ("repository", "token_env", "ref", "api_url")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_EMAIL = re.compile(r"^[^@\s<>]+@[^@\s<>]+$")


def public_event(action: str, payload: Mapping[str, Any]) -> str | None:
    """The public name of an audit event, or None when notifications never see it."""
    name = PUBLIC_EVENTS.get(action)
    if name == "job.dead" and payload.get("kind") == "notify":
        # A dead delivery is in `notify log`; notifying about it could loop between channels.
        return None
    return name


def _http_url(value: str) -> str:
    if not re.match(r"^https?://[^\s/]+", value):
        raise ValueError(f"an http:// or https:// URL, got {value!r}")
    return value


def _env_var(value: str) -> str:
    if not _ENV_NAME.match(value):
        raise ValueError(f"an environment variable name, got {value!r}")
    if not os.environ.get(value):
        raise ValueError(f"the environment variable {value} to be set (it holds the secret)")
    return value


def _duration(value: Any) -> timedelta:
    if isinstance(value, timedelta):  # from the SDK rather than the file
        return value
    if not isinstance(value, str):
        raise ValueError(f"a duration such as 30s, 15m, 6h, 1d, got {value!r}")
    try:
        return parse_duration(value, field="")
    except InvalidInput:
        raise ValueError(f"a duration such as 30s, 15m, 6h, 1d, got {value!r}") from None


class NotifyEntry(SectionModel):
    """One ``[[notify]]`` entry: which events, about which models, to which one channel."""

    name: str
    events: list[str] = Field(min_length=1)
    models: list[str] = Field(default_factory=list)
    webhook: str | None = None
    secret_env: str | None = None
    slack: str | None = None
    email: list[str] | None = None
    dispatch: str | None = None
    # validate_default: a dispatch entry without these keys is named by the missing key.
    repository: str | None = Field(default=None, validate_default=True)
    token_env: str | None = Field(default=None, validate_default=True)
    ref: str | None = None
    api_url: str | None = None

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        try:
            return validate_name(value)
        except InvalidInput:
            raise ValueError(
                f"a name of 1-128 letters, digits, '.', '_' or '-', got {value!r}"
            ) from None

    @field_validator("events")
    @classmethod
    def _events(cls, value: list[str]) -> list[str]:
        for pattern in value:
            if not any(fnmatch.fnmatchcase(e, pattern) for e in KNOWN_PUBLIC):
                raise ValueError(
                    f"event patterns that match a public event; {pattern!r} matches none of "
                    f"{', '.join(sorted(KNOWN_PUBLIC))}"
                )
        return value

    @field_validator("webhook", "slack")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        return None if value is None else _http_url(value)

    @field_validator("secret_env")
    @classmethod
    def _secret(cls, value: str | None) -> str | None:
        return None if value is None else _env_var(value)

    @field_validator("dispatch")
    @classmethod
    def _dispatch(cls, value: str | None) -> str | None:
        if value is not None and value not in DISPATCH_REPOSITORY:
            raise ValueError(f"one of {', '.join(DISPATCH_REPOSITORY)}, got {value!r}")
        return value

    @field_validator(*_DISPATCH_ONLY)
    @classmethod
    def _dispatch_keys(cls, value: str | None, info: ValidationInfo) -> str | None:
        if "dispatch" not in info.data:  # `dispatch` itself was refused: that error comes first
            return value
        provider = info.data["dispatch"]
        key = info.field_name
        if provider is None:
            if value is not None:
                raise ValueError(f"{key} only with dispatch (a CI provider's dispatch API)")
            return value
        if value is None:
            if key == "repository":
                raise ValueError(
                    f"the {provider} {DISPATCH_REPOSITORY[provider][1]} to dispatch to"
                )
            if key == "token_env":
                raise ValueError("the environment variable holding the provider's token")
            return value
        if key == "repository" and not DISPATCH_REPOSITORY[provider][0].match(value):
            raise ValueError(f"{DISPATCH_REPOSITORY[provider][1]} for {provider}, got {value!r}")
        if key == "token_env":
            return _env_var(value)
        if key == "api_url":
            return _http_url(value).rstrip("/")
        if key == "ref":
            if provider == "github":
                raise ValueError("no ref with github (repository_dispatch runs the default branch)")
            if not value.strip() or any(c.isspace() for c in value):
                raise ValueError(f"a branch name, got {value!r}")
        return value

    @field_validator("email")
    @classmethod
    def _email(cls, value: list[str] | None) -> list[str] | None:
        for address in value or []:
            if not _EMAIL.match(address):
                raise ValueError(f"e-mail addresses, got {address!r}")
        if value is not None and not value:
            raise ValueError("at least one e-mail address")
        return value

    @model_validator(mode="after")
    def _one_channel(self) -> NotifyEntry:
        chosen = [k for k in CHANNEL_KEYS if getattr(self, k) is not None]
        if len(chosen) != 1:
            raise ValueError(
                f"exactly one channel key of {', '.join(CHANNEL_KEYS)}; found "
                f"{', '.join(chosen) or 'none'}"
            )
        if self.webhook is not None and self.secret_env is None:
            raise ValueError("secret_env with a webhook (the variable holding the signing secret)")
        if self.webhook is None and self.secret_env is not None:
            raise ValueError("secret_env only with webhook (it signs webhook bodies)")
        return self

    @property
    def channel(self) -> Literal["webhook", "slack", "email", "dispatch"]:
        if self.webhook is not None:
            return "webhook"
        if self.dispatch is not None:
            return "dispatch"
        return "slack" if self.slack is not None else "email"

    def wants(self, event: str, model: str | None) -> bool:
        """Whether this entry is told about ``event`` (about ``model``, if any)."""
        if not any(fnmatch.fnmatchcase(event, p) for p in self.events):
            return False
        if not self.models:
            return True
        return model is not None and any(fnmatch.fnmatchcase(model, p) for p in self.models)


class SmtpSettings(SectionModel):
    """``[smtp]``: the mail server e-mail channels send through."""

    host: str
    port: int = Field(default=587, ge=1, le=65535)
    starttls: bool = True
    user: str | None = None
    password_env: str | None = None
    from_: str = Field(alias="from")

    @field_validator("password_env")
    @classmethod
    def _password(cls, value: str | None) -> str | None:
        return None if value is None else _env_var(value)


class NotificationSettings(SectionModel):
    """``[notifications]``: delivery tuning (the defaults suit production)."""

    retry_base_seconds: float = Field(default=10.0, gt=0)  # first retry after about this long
    retry_max_seconds: float = Field(default=3600.0, gt=0)  # no wait between attempts is longer
    give_up_after: timedelta = timedelta(hours=24)  # then the delivery is dead
    timeout_seconds: float = Field(default=10.0, gt=0, le=300)  # per attempt
    base_url: str | None = None  # the server/console URL put into messages as links

    @field_validator("give_up_after", mode="before")
    @classmethod
    def _window(cls, value: Any) -> timedelta:
        return _duration(value)

    @field_validator("base_url")
    @classmethod
    def _base(cls, value: str | None) -> str | None:
        return None if value is None else _http_url(value).rstrip("/")


class AuditSchedule(SectionModel):
    """The ``verify_every`` key of ``[audit]`` (other keys there belong to others)."""

    model_config = SectionModel.model_config | {"extra": "ignore"}

    verify_every: timedelta | None = None

    @field_validator("verify_every", mode="before")
    @classmethod
    def _every(cls, value: Any) -> timedelta:
        every = _duration(value)
        if every < timedelta(minutes=1):
            raise ValueError(f"at least 1m, got {value!r}")
        return every


class NotificationConfig(SectionModel):
    """Everything notifications read from ``modelcycle.toml``, validated once."""

    entries: list[NotifyEntry] = Field(default_factory=list)
    smtp: SmtpSettings | None = None
    settings: NotificationSettings = Field(default_factory=NotificationSettings)
    verify_every: timedelta | None = None

    def entry(self, name: str) -> NotifyEntry:
        for e in self.entries:
            if e.name == name:
                return e
        known = ", ".join(e.name for e in self.entries) or "none configured"
        raise InvalidInput(f"no [[notify]] entry named {name!r} ({known})", field="notify")


def _section(config: Mapping[str, Any], name: str, model: Any, default: Any) -> Any:
    raw = config.get(name, default)
    try:
        return TypeAdapter(model).validate_python(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        if first["type"] != "value_error":
            fields = getattr(getattr(model, "__args__", (model,))[0], "model_fields", {})
            raise section_error(exc, name, list(fields)) from None
        path = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in first["loc"])
        reason = str(first.get("ctx", {}).get("error", first["msg"]))
        raise InvalidInput(f"expected {reason}", field=f"{CONFIG_FILE} {name}{path}") from None


def load_notification_config(config: Mapping[str, Any]) -> NotificationConfig:
    """``[[notify]]``, ``[smtp]``, ``[notifications]`` and ``[audit] verify_every``, checked;
    the first problem raises :class:`InvalidInput` naming the key."""
    entries: list[NotifyEntry] = _section(config, "notify", list[NotifyEntry], [])
    seen: set[str] = set()
    for i, e in enumerate(entries):
        if e.name in seen:
            raise InvalidInput(
                f"two entries are named {e.name!r}", field=f"{CONFIG_FILE} notify[{i}].name"
            )
        seen.add(e.name)
    smtp = _section(config, "smtp", SmtpSettings | None, None)
    if smtp is None:
        for i, e in enumerate(entries):
            if e.email is not None:
                raise InvalidInput(
                    "needs an [smtp] section (host, port, starttls, user, password_env, from)",
                    field=f"{CONFIG_FILE} notify[{i}].email",
                )
    audit = _section(config, "audit", AuditSchedule, {})
    return NotificationConfig(
        entries=entries,
        smtp=smtp,
        settings=_section(config, "notifications", NotificationSettings, {}),
        verify_every=audit.verify_every,
    )
