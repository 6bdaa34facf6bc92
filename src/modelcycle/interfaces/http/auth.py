"""Bearer tokens and roles: who is calling, and the workspace that acts in their name.

Tokens are those of ``modelcycle tokens`` (store/tokens.py), checked against an in-memory
snapshot re-read at most every ``refresh_seconds`` (a revoked token stops working within that
time, on every worker). Unlike the scoring server, the management API has no open mode: with no
token at all, every route but ``/health`` answers 401.

Each write is audited with the token's name as the actor: the request's facades come from
``Workspace.as_actor(name)``, one cached view per name, sharing the database connections; no
process-wide setting changes.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated

from anyio import to_thread
from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from modelcycle.errors import Forbidden, Unauthorized
from modelcycle.store.tokens import ROLES, TokenCheck, TokenStore, role_at_least
from modelcycle.workspace import Workspace

__all__ = ["Admin", "Caller", "Operator", "Reader", "Scorer", "TokenGate", "require"]

_bearer = HTTPBearer(auto_error=False, description="A token from `modelcycle tokens create`.")


@dataclass(frozen=True, slots=True)
class Caller:
    """The token behind a request and the workspace acting as its name."""

    token_id: str
    name: str
    role: str
    ws: Workspace


class TokenGate:
    """Checks Authorization headers; hands out one workspace view per token name."""

    def __init__(self, ws: Workspace, *, refresh_seconds: float = 2.0) -> None:
        self._ws = ws
        self._refresh = refresh_seconds
        self._lock = threading.Lock()
        self._check: TokenCheck | None = None
        self._read_at = 0.0
        self._refreshing = False
        self._views: dict[str, Workspace] = {}

    def _snapshot(self) -> TokenCheck:
        now = time.monotonic()
        with self._lock:
            if self._check is None or now - self._read_at > self._refresh:
                self._check = TokenStore(self._ws.metadata, self._ws.actor).snapshot()
                self._read_at = now
            return self._check

    def forget(self) -> None:
        """Re-read the tokens on the next request (after this process created or revoked one)."""
        with self._lock:
            self._check = None

    async def caller_async(self, authorization: str | None, needed: str) -> Caller:
        """:meth:`caller` on the event loop. Only the first request waits for the tokens to be
        read; after that a due refresh runs in a thread of its own while requests go on with
        the snapshot they have, so no request pays for the database read (a revoked token
        stops working within ``refresh_seconds`` plus one read; one revoked in this process
        at once, see :meth:`forget`)."""
        check = self._check
        if check is None or self._refresh <= 0:
            check = await to_thread.run_sync(self._snapshot)
        elif time.monotonic() - self._read_at > self._refresh:
            try:
                caller = self._authorise(check, authorization, needed)
            except Unauthorized:
                # Perhaps a token made a moment ago by another process: read before refusing
                # (at most once per refresh period, since the read resets the clock).
                return self._authorise(await to_thread.run_sync(self._snapshot), authorization,
                                       needed)  # fmt: skip
            self._refresh_in_background()
            return caller
        return self._authorise(check, authorization, needed)

    def _refresh_in_background(self) -> None:
        with self._lock:
            if self._refreshing:
                return
            self._refreshing = True
        threading.Thread(target=self._refresh_now, name="token-refresh", daemon=True).start()

    def _refresh_now(self) -> None:
        try:
            fresh = TokenStore(self._ws.metadata, self._ws.actor).snapshot()
        except Exception:  # the database may be away: keep the last snapshot, retry when due
            fresh = None
        with self._lock:
            if fresh is not None:
                self._check, self._read_at = fresh, time.monotonic()
            self._refreshing = False

    def caller(self, authorization: str | None, needed: str) -> Caller:
        return self._authorise(self._snapshot(), authorization, needed)

    def _authorise(self, check: TokenCheck, authorization: str | None, needed: str) -> Caller:
        if not check.enabled:
            raise Unauthorized(
                "this workspace has no API token yet; create one with "
                "`modelcycle tokens create NAME --role admin`"
            )
        token_id, role = check.authenticate(authorization)
        if not role_at_least(role, needed):
            raise Forbidden(f"token {token_id} has role {role!r}; this needs {needed!r} or higher")
        name = check.name_of(token_id)
        with self._lock:
            view = self._views.get(name)
            if view is None:
                view = self._views[name] = self._ws.as_actor(name)
        return Caller(token_id, name, role, view)


def require(role: str) -> Callable[..., Awaitable[Caller]]:
    """A dependency: the caller, if their token's role reaches ``role`` (else 401/403)."""
    if role not in ROLES:
        raise ValueError(role)

    async def dependency(
        request: Request,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    ) -> Caller:
        gate: TokenGate = request.app.state.gate
        header = f"Bearer {credentials.credentials}" if credentials is not None else None
        return await gate.caller_async(header, role)

    return dependency


Reader = Annotated[Caller, Depends(require("reader"))]
Scorer = Annotated[Caller, Depends(require("scorer"))]
Operator = Annotated[Caller, Depends(require("operator"))]
Admin = Annotated[Caller, Depends(require("admin"))]
