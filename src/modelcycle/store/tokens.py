"""API tokens: created and revoked through the audited write path, stored as a hash only.

A token reads ``mc_<token_id>_<secret>``: ``token_id`` (12 hex characters) is public and names
the token in listings and the audit log; ``secret`` is 32 random bytes (URL-safe base64). The
database keeps ``sha256(token)`` only, and the token is shown once, when it is created.

Why sha256 and not a slow password hash (scrypt, argon2): a slow hash protects *guessable*
secrets, which people choose. These secrets are 256 random bits: nobody can enumerate them,
however fast each guess is, so a slow hash would add no protection, only a few milliseconds to
every request the server checks. Comparisons use :func:`hmac.compare_digest`.

Roles are ordered ``reader < scorer < operator < admin``; a token may do what its role and
every lower role may do. This module sits in the store (not in scoring) so that every HTTP
face (the scoring server now, the management API later) checks tokens the same way.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass

from sqlalchemy import insert, select, update

from modelcycle.audit import utc_timestamp
from modelcycle.errors import Conflict, Forbidden, InvalidInput, NotFound, Unauthorized
from modelcycle.names import validate_name
from modelcycle.store import tables
from modelcycle.store.metadata import MetadataStore

__all__ = [
    "ROLES",
    "ApiToken",
    "TokenCheck",
    "TokenStore",
    "hash_token",
    "role_at_least",
]

ROLES = ("reader", "scorer", "operator", "admin")
_PREFIX = "mc_"


@dataclass(frozen=True, slots=True)
class ApiToken:
    """A token as listed (never its secret)."""

    token_id: str
    name: str
    role: str
    created_at: str
    created_by: str
    revoked_at: str | None

    @property
    def active(self) -> bool:
        return self.revoked_at is None


def hash_token(token: str) -> str:
    """sha256 (hex) of the whole token text."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def role_at_least(role: str, needed: str) -> bool:
    """Whether ``role`` may do what ``needed`` may (roles are ordered, see :data:`ROLES`)."""
    return ROLES.index(role) >= ROLES.index(needed)


def _check_role(role: str) -> str:
    if role not in ROLES:
        raise InvalidInput(
            f"{role!r} is not a role; expected one of {', '.join(ROLES)}", field="role"
        )
    return role


class TokenCheck:
    """An in-memory snapshot of the active tokens, for checking requests without the database.

    Built by :meth:`TokenStore.snapshot`; the scoring server builds one at start and again on
    ``/admin/reload``. When no token is active, :attr:`enabled` is false and every request is
    let through (a workspace without tokens is open, as on a laptop).
    """

    def __init__(self, tokens: dict[str, tuple[str, str, str]]) -> None:
        # token_id -> (sha256 hex, role, name)
        self._tokens = dict(tokens)

    @property
    def enabled(self) -> bool:
        return bool(self._tokens)

    def __len__(self) -> int:
        return len(self._tokens)

    def authenticate(self, authorization: str | None) -> tuple[str, str]:
        """``(token_id, role)`` for an ``Authorization: Bearer ...`` header; else Unauthorized."""
        if not authorization:
            raise Unauthorized("this server needs a token: send Authorization: Bearer TOKEN")
        scheme, _, token = authorization.strip().partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise Unauthorized("expected Authorization: Bearer TOKEN")
        token_id = _token_id_of(token)
        known = self._tokens.get(token_id) if token_id else None
        if (
            token_id is None
            or known is None
            or not hmac.compare_digest(known[0], hash_token(token))
        ):
            raise Unauthorized("unknown or revoked token")
        return token_id, known[1]

    def name_of(self, token_id: str) -> str:
        """The name of an active token (the actor of what it does); NotFound if unknown."""
        known = self._tokens.get(token_id)
        if known is None:
            raise NotFound(f"no active token {token_id!r}")
        return known[2]

    def authorize(self, authorization: str | None, needed: str) -> tuple[str, str]:
        """:meth:`authenticate`, then Forbidden unless the token's role reaches ``needed``."""
        token_id, role = self.authenticate(authorization)
        if not role_at_least(role, needed):
            raise Forbidden(f"token {token_id} has role {role!r}; this needs {needed!r} or higher")
        return token_id, role


def _token_id_of(token: str) -> str | None:
    if not token.startswith(_PREFIX):
        return None
    token_id, sep, _ = token[len(_PREFIX) :].partition("_")
    return token_id if sep and len(token_id) == 12 else None


class TokenStore:
    """Create, list, revoke API tokens; every change is audited (``token.created``/``revoked``)."""

    def __init__(self, metadata: MetadataStore, actor: str) -> None:
        self._meta = metadata
        self._actor = actor

    def create(self, name: str, role: str) -> tuple[ApiToken, str]:
        """A new token: its record and the token text (shown once; only its hash is stored)."""
        validate_name(name, field="name")
        _check_role(role)
        token_id = secrets.token_hex(6)
        secret = base64.urlsafe_b64encode(secrets.token_bytes(32)).decode("ascii").rstrip("=")
        token = f"{_PREFIX}{token_id}_{secret}"
        now = utc_timestamp()
        t = tables.api_tokens
        with self._meta.write(
            actor=self._actor,
            action="token.created",
            subject=f"token:{token_id}",
            payload={"name": name, "role": role},
        ) as tx:
            tx.conn.execute(
                insert(t).values(
                    token_id=token_id,
                    name=name,
                    role=role,
                    token_hash=hash_token(token),
                    created_at=now,
                    created_by=self._actor,
                    revoked_at=None,
                )
            )
        return ApiToken(token_id, name, role, now, self._actor, None), token

    def list(self, *, include_revoked: bool = True) -> list[ApiToken]:
        t = tables.api_tokens
        query = select(t).order_by(t.c.created_at, t.c.token_id)
        if not include_revoked:
            query = query.where(t.c.revoked_at.is_(None))
        with self._meta.read() as conn:
            rows = conn.execute(query).all()
        return [
            ApiToken(r.token_id, r.name, r.role, r.created_at, r.created_by, r.revoked_at)
            for r in rows
        ]

    def revoke(self, token_id: str) -> ApiToken:
        """Revoke a token; servers stop accepting it at their next start or ``/admin/reload``."""
        t = tables.api_tokens
        now = utc_timestamp()
        with self._meta.write(
            actor=self._actor, action="token.revoked", subject=f"token:{token_id}"
        ) as tx:
            row = tx.conn.execute(select(t).where(t.c.token_id == token_id)).first()
            if row is None:
                raise NotFound(f"no token {token_id!r}; see `modelcycle tokens list`")
            if row.revoked_at is not None:
                raise Conflict(f"token {token_id} was already revoked at {row.revoked_at}")
            tx.payload.update({"name": row.name, "role": row.role})
            tx.conn.execute(update(t).where(t.c.token_id == token_id).values(revoked_at=now))
        return ApiToken(row.token_id, row.name, row.role, row.created_at, row.created_by, now)

    def snapshot(self) -> TokenCheck:
        """The active tokens, to check requests against (see :class:`TokenCheck`)."""
        t = tables.api_tokens
        with self._meta.read() as conn:
            rows = conn.execute(
                select(t.c.token_id, t.c.token_hash, t.c.role, t.c.name).where(
                    t.c.revoked_at.is_(None)
                )
            ).all()
        return TokenCheck({r.token_id: (r.token_hash, r.role, r.name) for r in rows})
