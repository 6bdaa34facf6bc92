"""What every notification channel is: a message in, one delivery attempt out.

A channel is built from its ``[[notify]]`` entry (and the ``[smtp]``/``[notifications]``
settings) without I/O; :meth:`Channel.send` makes exactly one attempt and either returns a short
receipt or raises :class:`DeliveryFailed`. Retrying, backoff and dead letters are the job
queue's business, not the channel's, so every channel gets them the same way.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar

from modelcycle.automations.notify_config import NotificationConfig, NotifyEntry
from modelcycle.errors import NotReady

__all__ = ["Channel", "DeliveryFailed", "Message"]


class DeliveryFailed(NotReady):
    """The receiver did not take the message (refused, failed, timed out, unreachable)."""


@dataclass(frozen=True)
class Message:
    """One notification: the same ``id`` on every attempt, so receivers can de-duplicate."""

    id: str
    event: str
    subject: str
    at: str
    actor: str
    payload: dict[str, Any] = field(default_factory=dict)
    links: dict[str, str] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Message:
        head = {k: str(data[k]) for k in ("id", "event", "subject", "at", "actor")}
        return cls(
            **head, payload=dict(data.get("payload") or {}), links=dict(data.get("links") or {})
        )

    def headline(self) -> str:
        """One readable line: what happened, to what, by whom."""
        return f"{self.event}: {self.subject} (by {self.actor} at {self.at[:19]}Z)"


class Channel(ABC):
    """A way to tell people. Subclasses set :attr:`kind` and implement :meth:`send`."""

    kind: ClassVar[str]

    def __init__(self, entry: NotifyEntry, config: NotificationConfig) -> None:
        self.entry = entry
        self.config = config
        self.timeout = config.settings.timeout_seconds

    @abstractmethod
    def send(self, message: Message) -> str:
        """One attempt; a short receipt (``HTTP 200``) or :class:`DeliveryFailed`."""
