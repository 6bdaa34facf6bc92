"""Notification channels: a small base class and the table ``[[notify]]`` keys select from.

A new channel is a :class:`Channel` subclass with ``kind`` and ``send``, one row in
:data:`CHANNELS`, its key in the config model, and it must pass tests/automations'
channel contract suite.
"""

from __future__ import annotations

from modelcycle.automations.channels.base import Channel, DeliveryFailed, Message
from modelcycle.automations.channels.dispatch import DispatchChannel
from modelcycle.automations.channels.email import EmailChannel
from modelcycle.automations.channels.slack import SlackChannel, slack_text
from modelcycle.automations.channels.webhook import WebhookChannel, sign
from modelcycle.automations.notify_config import NotificationConfig, NotifyEntry

__all__ = ["CHANNELS", "Channel", "DeliveryFailed", "Message", "make_channel", "sign", "slack_text"]

CHANNELS: dict[str, type[Channel]] = {
    "webhook": WebhookChannel,
    "slack": SlackChannel,
    "email": EmailChannel,
    "dispatch": DispatchChannel,
}


def make_channel(entry: NotifyEntry, config: NotificationConfig) -> Channel:
    """The channel ``entry`` names (built, not connected)."""
    return CHANNELS[entry.channel](entry, config)
