"""Slack channel: an incoming-webhook POST with a readable text and a link."""

from __future__ import annotations

import json

from modelcycle.automations.channels.base import Channel, Message
from modelcycle.automations.channels.webhook import post_json

__all__ = ["SlackChannel", "slack_text"]


def slack_text(message: Message) -> str:
    """``*drift.detected* model:credit/2 (by ...)`` plus the first link, in Slack's markup."""
    details = ", ".join(
        f"{k}={v}" for k, v in message.payload.items() if isinstance(v, str | int | float | bool)
    )
    text = f"*{message.event}* `{message.subject}` by {message.actor} at {message.at[:19]}Z"
    if details:
        text += f"\n{details[:500]}"
    for label, url in message.links.items():
        text += f"\n<{url}|{label}>"
    return text


class SlackChannel(Channel):
    kind = "slack"

    def send(self, message: Message) -> str:
        assert self.entry.slack is not None
        body = json.dumps({"text": slack_text(message)}).encode("utf-8")
        headers = {"Content-Type": "application/json", "User-Agent": "modelcycle-slack"}
        return post_json(self.entry.slack, body, headers, self.timeout)
