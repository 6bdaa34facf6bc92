"""Sign in with an API token (kept in an HttpOnly, SameSite=Strict cookie) and sign out."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse

from modelcycle.errors import Unauthorized
from modelcycle.interfaces.http.auth import TokenGate
from modelcycle.interfaces.ui.web import COOKIE, ConsoleRoute, check_csrf, redirect, render, viewer

__all__ = ["router"]

router = APIRouter(route_class=ConsoleRoute)


def _safe_next(url: str | None) -> str:
    # Only a path on this site: never an absolute URL (no open redirect after sign-in).
    if not url or not url.startswith("/") or url.startswith("//") or "\\" in url:
        return "/"
    return url


@router.get("/signin")
def sign_in_form(request: Request, next: str | None = None) -> HTMLResponse:
    return render(request, "signin.html", None, next=_safe_next(next), error=None)


@router.post("/signin", response_model=None)
def sign_in(
    request: Request,
    token: Annotated[str, Form(max_length=500)] = "",
    next: Annotated[str, Form(max_length=2000)] = "/",
) -> HTMLResponse | RedirectResponse:
    gate: TokenGate = request.app.state.gate
    target = _safe_next(next)
    try:
        gate.caller(f"Bearer {token.strip()}", "reader")
    except Unauthorized as exc:
        return render(request, "signin.html", None, http_status=401, next=target, error=str(exc))
    response = redirect(target)
    response.set_cookie(
        COOKIE,
        token.strip(),
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        path="/",
    )
    return response


@router.post("/signout")
async def sign_out(request: Request) -> RedirectResponse:
    who = viewer(request)
    await check_csrf(request, who)
    response = redirect("/signin")
    response.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict")
    return response
