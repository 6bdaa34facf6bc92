"""A real uvicorn serving the management API on 127.0.0.1, and clients with each role's token.

A module of its own (not conftest.py) so ``import`` never picks another folder's conftest.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import httpx

from _servers import serve_app
from modelcycle import Workspace
from modelcycle.interfaces.http import ApiSettings, create_app
from modelcycle.store.tokens import ROLES, TokenStore


@dataclass
class Api:
    ws: Workspace
    url: str
    tokens: dict[str, str] = field(default_factory=dict)  # role -> token text
    names: dict[str, str] = field(default_factory=dict)  # role -> token name

    def client(self, role: str | None = "admin", token: str | None = None) -> httpx.Client:
        token = token or (self.tokens[role] if role else None)
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.url + "/api/v1", headers=headers, timeout=60)


@contextmanager
def serve(ws: Workspace, settings: ApiSettings | None = None) -> Iterator[Api]:
    """The API over ``ws`` on a free port, with one token per role (named ``ROLE-bot``)."""
    api = Api(ws, "")
    store = TokenStore(ws.metadata, ws.actor)
    for role in ROLES:
        _, text = store.create(f"{role}-bot", role)
        api.tokens[role] = text
        api.names[role] = f"{role}-bot"
    app = create_app(ws, settings or ApiSettings(events_poll_seconds=0.05))
    with serve_app(app, what="the API server") as url:
        api.url = url
        yield api
