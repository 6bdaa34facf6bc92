"""Webhook channel: a signed JSON POST (the GitHub/MLflow webhook signature scheme).

Headers: ``Content-Type: application/json``, ``X-Modelcycle-Event``, ``X-Modelcycle-Delivery``
(the message id, the same on every retry) and ``X-Modelcycle-Signature: sha256=<hex>``, the
HMAC-SHA256 of the exact body bytes with the secret from ``secret_env``. Standard library only
(urllib): the HTTP client of the test extras is not a runtime dependency.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import urllib.error
import urllib.request
from typing import Any

from modelcycle.automations.channels.base import Channel, DeliveryFailed, Message

__all__ = ["WebhookChannel", "post_json", "sign"]


def sign(secret: str, body: bytes) -> str:
    """The ``X-Modelcycle-Signature`` value for ``body``."""
    return "sha256=" + hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    # A redirected POST would be re-sent as a GET without its body: treat 3xx as a failure.
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


_OPENER = urllib.request.build_opener(_NoRedirect)


def post_json(url: str, body: bytes, headers: dict[str, str], timeout: float) -> str:
    """POST ``body``; the receipt on a 2xx answer, else :class:`DeliveryFailed`."""
    # The config only admits http(s) URLs (notify_config), so no file: or custom scheme.
    request = urllib.request.Request(url, data=body, method="POST", headers=headers)  # noqa: S310
    try:
        with _OPENER.open(request, timeout=timeout) as answer:
            answer.read(65536)
            return f"HTTP {answer.status}"
    except urllib.error.HTTPError as exc:
        raise DeliveryFailed(f"the receiver answered HTTP {exc.code}") from None
    except urllib.error.URLError as exc:
        raise DeliveryFailed(f"cannot reach the receiver: {exc.reason}") from None
    except (TimeoutError, ConnectionError, OSError) as exc:
        # http.client raises RemoteDisconnected (a ConnectionError) when the peer hangs up.
        kind = "no answer within the timeout" if isinstance(exc, TimeoutError) else str(exc)
        raise DeliveryFailed(f"the receiver failed: {kind or type(exc).__name__}") from None


class WebhookChannel(Channel):
    kind = "webhook"

    def send(self, message: Message) -> str:
        assert self.entry.webhook is not None
        assert self.entry.secret_env is not None
        secret = os.environ.get(self.entry.secret_env, "")
        if not secret:
            raise DeliveryFailed(f"the environment variable {self.entry.secret_env} is not set")
        body = json.dumps(message.as_dict(), sort_keys=True, separators=(",", ":")).encode()
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "modelcycle-webhook",
            "X-Modelcycle-Event": message.event,
            "X-Modelcycle-Delivery": message.id,
            "X-Modelcycle-Signature": sign(secret, body),
        }
        return post_json(self.entry.webhook, body, headers, self.timeout)
