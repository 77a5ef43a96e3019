"""Who is signed in: the staff session of the agent console (``POST /agent/login``), shared by
every staff-only route — the console's API and socket, the door-sign statistics.

The session is the HttpOnly cookie ``daoban_agent`` (scripts may send the same token as
``Authorization: Bearer <token>``); the token is never in a response body or a URL. It is
checked against the database on every request, so an expired or idle session or a
disabled account is refused at once.
"""

from __future__ import annotations

from typing import Annotated, Any, Protocol
from urllib.parse import quote

import anyio
from fastapi import Depends, Request

from assistant.agents import Agent

COOKIE = "daoban_agent"
SIGN_IN_PAGE = "/agent"
MAX_NEXT = 500


class StaffRefused(Exception):
    """A staff-only route refused: 401 (not signed in, session expired, account disabled)
    or 403 (signed in, but the role may not)."""

    def __init__(self, status: int, message: str, code: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code


class Sessions(Protocol):
    def authenticate(self, token: str | None) -> Agent | None: ...


def session_token(headers: Any, cookies: dict[str, str]) -> str | None:
    auth = headers.get("authorization", "")
    if auth.lower().startswith("bearer "):
        return str(auth[7:].strip())
    return cookies.get(COOKIE)


def trusted_proxies(settings: Any) -> frozenset[str]:
    return frozenset(a.strip() for a in str(settings.trusted_proxies).split(",") if a.strip())


def client_address(request: Request, trusted: frozenset[str]) -> str:
    """The address a sign-in comes from: behind a trusted proxy, the last address in
    X-Forwarded-For that is not one of the proxies (the ones before it are the client's
    word, and can be forged)."""
    peer = request.client.host if request.client else "?"
    if peer in trusted:
        hops = [h.strip() for h in request.headers.get("x-forwarded-for", "").split(",")]
        for hop in reversed([h for h in hops if h]):
            if hop not in trusted:
                return hop[:100]
    return peer


def secure_cookie(request: Request, trusted: frozenset[str]) -> bool:
    """Secure when the browser speaks HTTPS: directly, or to a TLS proxy in front."""
    return request.url.scheme == "https" or bool(trusted)


def _sessions(app: Any) -> Sessions:
    sessions: Sessions = app.state.desk.agents
    return sessions


async def signed_in(request: Request) -> Agent | None:
    """The signed-in staff member, or None: no session, an unknown or expired one, or a
    disabled account."""
    token = session_token(request.headers, request.cookies)
    return await anyio.to_thread.run_sync(_sessions(request.app).authenticate, token)


async def current_agent(request: Request) -> Agent:
    agent = await signed_in(request)
    if agent is None:
        raise StaffRefused(401, "请先登录，或登录已过期", "unauthorized")
    return agent


async def current_supervisor(request: Request) -> Agent:
    agent = await current_agent(request)
    if not agent.sees_all:
        raise StaffRefused(403, "只有值班长或管理员可以查看", "forbidden")
    return agent


MaybeStaff = Annotated[Agent | None, Depends(signed_in)]
Staff = Annotated[Agent, Depends(current_agent)]
Supervisor = Annotated[Agent, Depends(current_supervisor)]


def safe_next(value: str | None) -> str | None:
    """``value`` if it is a path on this site, else None. The sign-in page goes there after
    signing in: anything else would make it an open redirect to a look-alike site."""
    if not value or len(value) > MAX_NEXT:
        return None
    # "//evil.com" is another host; browsers read "\" as "/" and drop tabs and newlines, so
    # "/\evil.com" and "/\t/evil.com" are too. A scheme ("https:", "javascript:") never
    # starts with "/".
    if not value.startswith("/") or value.startswith("//"):
        return None
    if any(c == "\\" or c.isspace() or ord(c) < 0x20 or ord(c) == 0x7F for c in value):
        return None
    return value


def sign_in_url(request: Request) -> str:
    """The console's sign-in page, coming back to this page afterwards."""
    here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return f"{SIGN_IN_PAGE}?next={quote(here, safe='/')}"
