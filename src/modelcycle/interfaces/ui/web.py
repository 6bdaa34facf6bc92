"""What every console page shares: who is signed in, CSRF, templates, and pagination.

Sign-in keeps the API token itself in an HttpOnly, SameSite=Strict cookie (no server-side
session table: any worker of ``modelcycle server`` can check it, and revoking the token signs
the browser out). Every form carries a CSRF field: an HMAC of the token text, which a page on
another site cannot compute because it cannot read the cookie. ``Authorization: Bearer`` is
accepted too (for scripts and link checkers); such requests need no CSRF field because
browsers never send that header on their own.
"""

from __future__ import annotations

import hashlib
import hmac
import math
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.routing import APIRoute
from jinja2 import Environment, FileSystemLoader, select_autoescape

from modelcycle.errors import Forbidden, ModelcycleError, Unauthorized, http_status_for
from modelcycle.interfaces.http.auth import Caller, TokenGate
from modelcycle.store.tokens import role_at_least

__all__ = [
    "COOKIE",
    "ConsoleRoute",
    "Page",
    "SignInNeeded",
    "Viewer",
    "check_csrf",
    "counted_page",
    "csrf_for",
    "link_with",
    "page_number",
    "paginate",
    "render",
    "viewer",
]

COOKIE = "mc_console"
HERE = Path(__file__).parent
TEMPLATES = Environment(
    loader=FileSystemLoader(str(HERE / "templates")),
    autoescape=select_autoescape(["html"]),
    trim_blocks=True,
    lstrip_blocks=True,
)


class SignInNeeded(Exception):
    """A browser without a valid session asked for a page: send it to the sign-in form."""

    def __init__(self, next_url: str) -> None:
        super().__init__(next_url)
        self.next_url = next_url


@dataclass(frozen=True, slots=True)
class Viewer:
    """The signed-in caller, what their role may do, and the CSRF token for their forms."""

    caller: Caller
    csrf: str
    by_cookie: bool

    @property
    def role(self) -> str:
        return self.caller.role

    def can(self, role: str) -> bool:
        return role_at_least(self.caller.role, role)


class ConsoleRoute(APIRoute):
    """A console route: errors become an HTML page with the error's status (not problem
    JSON), and a browser without a session is sent to the sign-in form."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def handle(request: Request) -> Response:
            try:
                return await handler(request)
            except SignInNeeded as exc:
                return sign_in_redirect(exc.next_url)
            except ModelcycleError as exc:
                status = http_status_for(exc)
                page = "error.html"
                return render(request, page, None, http_status=status, code=status, error=exc)

        return handle


def csrf_for(token: str) -> str:
    return hmac.new(token.encode(), b"modelcycle-console-csrf", hashlib.sha256).hexdigest()[:32]


def viewer(request: Request, role: str = "reader") -> Viewer:
    """The caller of a console request (bearer header first, then the session cookie)."""
    gate: TokenGate = request.app.state.gate
    header = request.headers.get("authorization")
    if header:
        # A script's bad token is an error (401/403 problem), not a redirect to a form.
        caller = gate.caller(header, role)
        return Viewer(caller, "", by_cookie=False)
    token = request.cookies.get(COOKIE)
    if not token:
        raise SignInNeeded(_here(request))
    try:
        caller = gate.caller(f"Bearer {token}", "reader")
    except Unauthorized:
        raise SignInNeeded(_here(request)) from None
    if not role_at_least(caller.role, role):
        raise Forbidden(f"token {caller.token_id} has role {caller.role!r}; this needs {role!r}")
    return Viewer(caller, csrf_for(token), by_cookie=True)


async def check_csrf(request: Request, who: Viewer) -> dict[str, str]:
    """The submitted form, after checking its CSRF field (cookie sessions only)."""
    form = await request.form()
    fields = {k: v for k, v in form.items() if isinstance(v, str)}
    if who.by_cookie and not hmac.compare_digest(fields.get("csrf", ""), who.csrf):
        raise Forbidden("the form's CSRF token is missing or wrong; reload the page and retry")
    return fields


def _here(request: Request) -> str:
    url = request.url.path
    if request.url.query:
        url += "?" + request.url.query
    return url


def render(
    request: Request, template: str, who: Viewer | None, *, http_status: int = 200, **context: Any
) -> HTMLResponse:
    html = TEMPLATES.get_template(template).render(
        request=request, who=who, path=request.url.path, **context
    )
    return HTMLResponse(html, status_code=http_status)


def redirect(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)


def sign_in_redirect(next_url: str) -> RedirectResponse:
    return redirect("/signin?next=" + quote(next_url, safe=""))


@dataclass(frozen=True, slots=True)
class Page:
    """One page of a list: its items and the links to the pages around it. A page cut at a
    key (audit events: before/after an event number) has no count: ``total`` is -1."""

    items: Sequence[Any]
    number: int
    pages: int
    total: int
    prev_url: str | None
    next_url: str | None


def page_number(request: Request, total: int, per_page: int, param: str = "page") -> int:
    """The page the query string asks for, within 1..pages (a bad number means page 1)."""
    pages = max(1, math.ceil(total / per_page))
    try:
        number = int(request.query_params.get(param, "1"))
    except ValueError:
        number = 1
    return min(max(1, number), pages)


def link_with(request: Request, **changes: str | None) -> str:
    """This page's URL with some query parameters changed (None removes one)."""
    query = dict(request.query_params)
    for key, value in changes.items():
        if value is None:
            query.pop(key, None)
        else:
            query[key] = value
    return request.url.path + ("?" + urlencode(query) if query else "")


def counted_page(
    request: Request,
    items: Sequence[Any],
    total: int,
    number: int,
    per_page: int = 25,
    param: str = "page",
) -> Page:
    """Page ``number`` of ``total`` items, already cut (by the database) to ``items``."""
    pages = max(1, math.ceil(total / per_page))
    return Page(
        items=items,
        number=number,
        pages=pages,
        total=total,
        prev_url=link_with(request, **{param: str(number - 1)}) if number > 1 else None,
        next_url=link_with(request, **{param: str(number + 1)}) if number < pages else None,
    )


def paginate(
    request: Request, items: Sequence[Any], per_page: int = 25, param: str = "page"
) -> Page:
    """Slice ``items`` to the page the query string asks for (links keep the other filters).
    For short lists only: long ones (runs, audit events) are cut by the database."""
    number = page_number(request, len(items), per_page, param)
    start = (number - 1) * per_page
    window = items[start : start + per_page]
    return counted_page(request, window, len(items), number, per_page, param)
