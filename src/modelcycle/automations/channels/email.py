"""E-mail channel: one message over SMTP (STARTTLS when ``[smtp] starttls``), the event in
the subject line."""

from __future__ import annotations

import json
import os
import smtplib
import ssl
from email.message import EmailMessage

from modelcycle.automations.channels.base import Channel, DeliveryFailed, Message

__all__ = ["EmailChannel"]


class EmailChannel(Channel):
    kind = "email"

    def send(self, message: Message) -> str:
        smtp = self.config.smtp
        assert smtp is not None
        assert self.entry.email is not None
        mail = EmailMessage()
        mail["Subject"] = f"[modelcycle] {message.event}: {message.subject}"
        mail["From"] = smtp.from_
        mail["To"] = ", ".join(self.entry.email)
        mail["X-Modelcycle-Delivery"] = message.id
        links = "".join(f"\n{label}: {url}" for label, url in message.links.items())
        mail.set_content(
            f"{message.headline()}\n{links}\n\n"
            + json.dumps(message.payload, indent=2, sort_keys=True, default=str)
            + f"\n\ndelivery {message.id}\n"
        )
        try:
            with smtplib.SMTP(smtp.host, smtp.port, timeout=self.timeout) as conn:
                if smtp.starttls:
                    conn.starttls(context=ssl.create_default_context())
                if smtp.user:
                    password = os.environ.get(smtp.password_env or "", "")
                    conn.login(smtp.user, password)
                refused = conn.send_message(mail)
        except (smtplib.SMTPException, OSError) as exc:
            raise DeliveryFailed(f"SMTP {smtp.host}:{smtp.port}: {exc}") from None
        if refused:
            raise DeliveryFailed(f"SMTP refused {', '.join(sorted(refused))}")
        return f"SMTP {smtp.host}:{smtp.port} accepted {len(self.entry.email)} recipient(s)"
