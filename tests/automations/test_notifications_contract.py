"""The contract every notification channel in ``CHANNELS`` passes, against real receivers."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from _receivers import free_port, smtp_server, webhook_receiver

from modelcycle.automations.channels import CHANNELS, DeliveryFailed, Message, make_channel
from modelcycle.automations.notify_config import NotificationConfig, load_notification_config

SECRET = "contract-secret"


@pytest.fixture(autouse=True)
def _secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MC_CONTRACT_SECRET", SECRET)


def _config(kind: str, port: int) -> NotificationConfig:
    url = f"http://127.0.0.1:{port}/hook"
    channel: dict[str, Any] = {
        "webhook": {"webhook": url, "secret_env": "MC_CONTRACT_SECRET"},
        "slack": {"slack": url},
        "email": {"email": ["oncall@example.com"]},
        "dispatch": {
            "dispatch": "github", "repository": "acme/credit", "token_env": "MC_CONTRACT_SECRET",
            "api_url": f"http://127.0.0.1:{port}",
        },
    }[kind]  # fmt: skip
    return load_notification_config(
        {
            "notify": [{"name": "c", "events": ["drift.detected"], **channel}],
            "smtp": {
                "host": "127.0.0.1",
                "port": port,
                "starttls": False,
                "from": "mc@example.com",
            },
            "notifications": {"timeout_seconds": 2},
        }
    )


@contextmanager
def _live(kind: str) -> Iterator[tuple[NotificationConfig, Callable[[], list[str]]]]:
    """A running receiver for ``kind`` and a function listing what it received as text."""
    if kind == "email":
        with smtp_server() as box:
            yield _config(kind, box.port), lambda: [str(m["Subject"]) for m in box.messages]
    else:
        with webhook_receiver(SECRET) as hook:
            port = int(hook.url.rsplit(":", 1)[1].split("/")[0])
            yield _config(kind, port), lambda: [s.body.decode() for s in hook.seen]


MESSAGE = Message(
    id="d" * 32, event="drift.detected", subject="model:credit/2", at="2026-12-01T00:00:00.000000Z",
    actor="tester", payload={"model": "credit/2", "share_drifted": 0.5},
    links={"model": "http://console.example/models/credit"},
)  # fmt: skip


@pytest.mark.parametrize("kind", sorted(CHANNELS))
def test_channel_contract(kind: str) -> None:
    # The table key is the channel's kind, and the config's key selects it.
    dead = _config(kind, free_port())
    channel = make_channel(dead.entries[0], dead)
    assert type(channel) is CHANNELS[kind]
    assert channel.kind == kind
    # Building it connected to nothing; an unreachable receiver is a DeliveryFailed, promptly.
    started = time.monotonic()
    with pytest.raises(DeliveryFailed):
        channel.send(MESSAGE)
    assert time.monotonic() - started < 2.5
    # A live receiver gets exactly one message naming the event; send returns a receipt.
    with _live(kind) as (config, inbox):
        receipt = make_channel(config.entries[0], config).send(MESSAGE)
        received = inbox()
    assert isinstance(receipt, str)
    assert receipt
    assert len(received) == 1
    assert "drift.detected" in received[0]
