"""Limits enforced while reading, and the security headers every response carries.

Both are plain ASGI middleware: the body limit counts bytes as they arrive (a chunked
body has no Content-Length to check), so an oversized request is refused after at most
``limit`` bytes were buffered, before any route runs.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

TOO_LARGE = json.dumps({"error": "请求内容太大", "code": "body_too_large"},
                       ensure_ascii=False).encode()


class BodyLimit:
    """Reads the whole request body (at most ``limit`` bytes) before the app sees it."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", ()):
            if name == b"content-length" and (not value.isdigit() or int(value) > self.limit):
                await _too_large(send)
                return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away mid-body
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.limit:
                await _too_large(send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": b"".join(chunks), "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


async def _too_large(send: Send) -> None:
    await send({"type": "http.response.start", "status": 413, "headers": [
        (b"content-type", b"application/json"), (b"content-length", str(len(TOO_LARGE)).encode()),
        (b"connection", b"close"), *_BASE]})
    await send({"type": "http.response.body", "body": TOO_LARGE})


# Our pages load only their own scripts and styles (inline styles: the small error pages),
# talk only to their own origin (the websocket included) and embed nothing.
CSP = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
       "img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; "
       "form-action 'self'")
_BASE = [(b"x-content-type-options", b"nosniff"), (b"referrer-policy", b"no-referrer")]


def chat_page(path: str) -> bool:
    return path == "/" or path.startswith("/d/")


class SecurityHeaders:
    """CSP (frame-ancestors: the configured embedding sites for the chat page, nobody for
    the rest), nosniff and no-referrer on every HTTP response."""

    def __init__(self, app: ASGIApp, frame_ancestors: str = "*") -> None:
        self.app = app
        others = [(b"content-security-policy", f"{CSP}; frame-ancestors 'none'".encode()),
                  (b"x-frame-options", b"DENY"), *_BASE]
        # "*" leaves frame-ancestors out: CSP's "*" would still refuse a page embedded from
        # a file: or sandboxed origin, which the widget must allow when any site may embed.
        chat_csp = CSP if frame_ancestors.strip() == "*" else \
            f"{CSP}; frame-ancestors {frame_ancestors.strip()}"
        self.chat = [(b"content-security-policy", chat_csp.encode()), *_BASE]
        self.others = others

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        extra = self.chat if chat_page(scope["path"]) else self.others

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                present = {k.lower() for k, _ in message.get("headers", ())}
                message["headers"] = [*message.get("headers", ()),
                                      *_missing(extra, present)]
            await send(message)

        await self.app(scope, receive, with_headers)


def _missing(headers: Iterable[tuple[bytes, bytes]],
             present: set[bytes]) -> list[tuple[bytes, bytes]]:
    return [(k, v) for k, v in headers if k not in present]


class AddressSlots:
    """Concurrent connections per client address (one process): ``take`` refuses past
    ``limit``; every successful ``take`` is followed by one ``give``."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._used: Counter[str] = Counter()

    def take(self, address: str) -> bool:
        if self._used[address] >= self.limit:
            return False
        self._used[address] += 1
        return True

    def give(self, address: str) -> None:
        self._used[address] -= 1
        if self._used[address] <= 0:
            del self._used[address]
