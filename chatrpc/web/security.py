"""The browser's rules: the token cookie, Origin checks and the security headers.

The token lives in an HttpOnly, SameSite=Strict cookie (Secure under TLS): page
scripts never read it, and other sites' pages cannot send it. The WebSocket
upgrade and every POST must come from the app's own origin or one of
``--web-origin``; a request without an Origin header (a script, curl) is not a
browser's and passes, since it cannot carry a browser's cookie without its
owner's consent. Every response carries a strict Content-Security-Policy: no
inline script, no framing.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable

from aiohttp import web

from ..errors import ChatError, Code

COOKIE = "chatrpc_token"
#: A long-lived cookie: the token is valid until Logout, like the terminal client's.
COOKIE_MAX_AGE = 400 * 24 * 3600

CSP = "; ".join(
    (
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "manifest-src 'self'",
        "worker-src 'self'",
        "frame-ancestors 'none'",
        "base-uri 'none'",
        "form-action 'self'",
    )
)

HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
}


_ORIGIN = re.compile(r"https?://[^/\s?#]+")


def parse_origins(text: str) -> frozenset[str]:
    """The ``--web-origin`` allow-list: comma-separated origins (``scheme://host[:port]``).

    Raises:
        ChatError: INVALID_ARGUMENT for an entry that is no origin (it would never match).
    """
    origins = [o.strip().rstrip("/").lower() for o in text.split(",") if o.strip()]
    for origin in origins:
        if not _ORIGIN.fullmatch(origin):
            raise ChatError(
                Code.INVALID_ARGUMENT,
                f"--web-origin {origin!r} is not an origin like https://chat.example.com",
            )
    return frozenset(origins)


def origin_allowed(request: web.Request, allowed: frozenset[str]) -> bool:
    """Whether the request's Origin (if any) is the app's own or an allowed one."""
    origin = request.headers.get("Origin")
    if origin is None:
        return True
    origin = origin.rstrip("/").lower()
    return origin == f"{request.scheme}://{request.host}".lower() or origin in allowed


def token_of(request: web.Request) -> str:
    """The caller's token: ``Authorization: Bearer`` (scripts) or the cookie (the page)."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return request.cookies.get(COOKIE, "")


def set_token(response: web.StreamResponse, token: str, *, secure: bool) -> None:
    response.set_cookie(
        COOKIE,
        token,
        max_age=COOKIE_MAX_AGE,
        path="/",
        httponly=True,
        samesite="Strict",
        secure=secure,
    )


def clear_token(response: web.StreamResponse, *, secure: bool) -> None:
    response.del_cookie(COOKIE, path="/", secure=secure, httponly=True, samesite="Strict")


@web.middleware
async def headers(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Adds the security headers to every response, errors included."""
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        exc.headers.update(HEADERS)
        raise
    if not response.prepared:  # a WebSocket is prepared already (its headers were sent)
        response.headers.update(HEADERS)
    return response
