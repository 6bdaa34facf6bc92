"""Real receivers on 127.0.0.1 for notification tests: an HTTP webhook receiver that checks
the HMAC signature and can be told to fail, hang or hang up, and an SMTP server (aiosmtpd)."""

from __future__ import annotations

import hashlib
import hmac
import http.server
import json
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Seen:
    """One request as the receiver saw it."""

    headers: dict[str, str]
    body: bytes
    signature_ok: bool
    answer: str

    @property
    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Receiver:
    """Answers each request by the next behaviour in ``plan`` ("ok" once it runs out):
    ``500``, ``hang`` (says nothing for ``hang_seconds``), ``close`` (hangs up), ``ok``."""

    secret: str
    plan: list[str] = field(default_factory=list)
    hang_seconds: float = 2.0
    seen: list[Seen] = field(default_factory=list)
    url: str = ""

    @property
    def accepted(self) -> list[str]:
        """Delivery ids answered 2xx with a valid signature."""
        return [s.headers.get("X-Modelcycle-Delivery", "") for s in self.seen
                if s.answer == "ok" and s.signature_ok]  # fmt: skip


@contextmanager
def webhook_receiver(secret: str, plan: list[str] | None = None) -> Iterator[Receiver]:
    receiver = Receiver(secret, list(plan or []))
    lock = threading.Lock()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            expected = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
            given = self.headers.get("X-Modelcycle-Signature", "")
            with lock:
                answer = receiver.plan.pop(0) if receiver.plan else "ok"
                receiver.seen.append(
                    Seen(dict(self.headers), body, hmac.compare_digest(expected, given), answer)
                )
            if answer == "hang":
                time.sleep(receiver.hang_seconds)
                self.close_connection = True
                return
            if answer == "close":
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)
                return
            status = 200 if answer == "ok" else int(answer)
            self.send_response(status)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    receiver.url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()


@dataclass
class Mailbox:
    messages: list[Any] = field(default_factory=list)
    port: int = 0


@contextmanager
def smtp_server() -> Iterator[Mailbox]:
    """aiosmtpd's Controller on a free port of 127.0.0.1."""
    from email import message_from_bytes

    from aiosmtpd.controller import Controller

    box = Mailbox()

    class Handler:
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
            box.messages.append(message_from_bytes(envelope.content))
            return "250 OK"

    with socket.socket() as probe:  # the Controller checks readiness on its port: no port 0
        probe.bind(("127.0.0.1", 0))
        box.port = probe.getsockname()[1]
    controller = Controller(Handler(), hostname="127.0.0.1", port=box.port)
    controller.start()
    try:
        yield box
    finally:
        controller.stop()


def free_port() -> int:
    """A port nothing listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
