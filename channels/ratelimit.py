"""Rate limits on the citizen-facing entry points, checked before any work is done.

Token buckets per client address and per conversation: conversation creation, REST and
webhook messages, web chat connections (each carries one hello) and 转人工 requests. Shared
by every server process through Redis when ``DAOBAN_REDIS_URL`` is set, per process
otherwise. Over a limit: ``429`` JSON on HTTP; on the web chat socket a polite error frame
(the message is not processed).
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections import OrderedDict
from typing import Any, Protocol

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from channels.settings import Settings

log = logging.getLogger(__name__)
_MESSAGES = re.compile(r"^/api/v1/conversations/([^/]{1,200})/messages$")
WEBHOOK = "/webhooks/rest/webhook"
TOO_MANY = "请求太频繁，请稍后再试"
TOO_MANY_HUMAN = "转人工的请求太多了，请稍后再试；急事请拨打 12345。"
_HUMAN = ("人工", "/human")
PEEK = 16 * 1024  # bytes of a message body looked at for a 转人工 request


class Buckets(Protocol):
    async def take(self, key: str, per_minute: float) -> bool: ...


class MemoryBuckets:
    """Token buckets in this process: ``per_minute`` tokens a minute, as many at once."""

    def __init__(self, size: int = 100_000) -> None:
        self.size = size
        self._b: OrderedDict[str, tuple[float, float]] = OrderedDict()

    async def take(self, key: str, per_minute: float) -> bool:
        now = time.monotonic()
        tokens, last = self._b.pop(key, (per_minute, now))
        tokens = min(per_minute, tokens + (now - last) * per_minute / 60.0)
        ok = tokens >= 1.0
        self._b[key] = (tokens - 1.0 if ok else tokens, now)
        while len(self._b) > self.size:
            self._b.popitem(last=False)  # the longest unused: a full bucket anyway
        return ok


_LUA = """
local burst = tonumber(ARGV[1]); local now = tonumber(ARGV[2])
local v = redis.call('HMGET', KEYS[1], 't', 'ts')
local tokens = tonumber(v[1]) or burst
local ts = tonumber(v[2]) or now
tokens = math.min(burst, tokens + math.max(0, now - ts) * burst / 60.0)
local ok = 0
if tokens >= 1 then tokens = tokens - 1; ok = 1 end
redis.call('HSET', KEYS[1], 't', tostring(tokens), 'ts', tostring(now))
redis.call('EXPIRE', KEYS[1], 61)
return ok
"""


class RedisBuckets:
    """The same buckets in Redis, updated atomically by one script: every process shares them."""

    def __init__(self, url: str, prefix: str) -> None:
        import redis.asyncio as aioredis

        self.prefix = prefix + "limit:"
        self._redis = aioredis.Redis.from_url(url, decode_responses=True)
        self._script = self._redis.register_script(_LUA)
        self._fallback = MemoryBuckets()

    async def take(self, key: str, per_minute: float) -> bool:
        from redis.exceptions import RedisError

        try:
            ok = await self._script(keys=[self.prefix + key], args=[per_minute, time.time()])
        except RedisError:
            # Redis away: each process limits on its own rather than failing every request.
            log.warning("rate limits: Redis unavailable, counting in this process")
            return await self._fallback.take(key, per_minute)
        return bool(int(ok))

    async def close(self) -> None:
        await self._redis.aclose()


def _address(scope: Scope, trusted: frozenset[str]) -> str:
    peer = str((scope.get("client") or ("?",))[0])
    if peer in trusted:
        for name, value in scope.get("headers", ()):
            if name == b"x-forwarded-for":
                hops = [str(h).strip() for h in value.decode("latin-1").split(",") if h.strip()]
                for hop in reversed(hops):
                    if hop not in trusted:
                        return hop[:100]
    return str(peer)


def asks_for_human(text: str) -> bool:
    return any(w in text for w in _HUMAN)


class RateLimits:
    """ASGI middleware; sits inside the body limit, so a body it reads is already bounded."""

    def __init__(self, app: ASGIApp, settings: Settings, buckets: Buckets | None = None) -> None:
        self.app = app
        self.s = settings
        self.trusted = frozenset(
            a.strip() for a in settings.trusted_proxies.split(",") if a.strip())
        self.buckets: Buckets = buckets or (
            RedisBuckets(settings.redis_url, settings.redis_prefix) if settings.redis_url
            else MemoryBuckets())

    async def _ok(self, *keys: tuple[str, float]) -> bool:
        for key, per_minute in keys:
            if per_minute > 0 and not await self.buckets.take(key, per_minute):
                return False
        return True

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket" and scope.get("path") == "/ws/chat":
            await self._socket(scope, receive, send)
            return
        if scope["type"] != "http" or scope.get("method") != "POST":
            await self.app(scope, receive, send)
            return
        path, ip, s = scope.get("path", ""), _address(scope, self.trusted), self.s
        if path == "/api/v1/conversations":
            if not await self._ok((f"new:{ip}", s.limit_new_conversations)):
                await _refuse(send)
                return
        elif path == WEBHOOK or _MESSAGES.match(path):
            body, receive = await _peek(receive)
            try:
                data = json.loads(body) if body else {}
            except (ValueError, RecursionError):
                data = {}
            data = data if isinstance(data, dict) else {}
            m = _MESSAGES.match(path)
            cid = m.group(1) if m else "rasa:" + str(data.get("sender", ""))[:200]
            text = str(data.get("text" if m else "message", ""))
            keys = [(f"msg:{ip}", s.limit_messages), (f"conv:{cid}", s.limit_conversation_messages)]
            if asks_for_human(text):
                keys.append((f"human:{ip}", s.limit_human_requests))
            if not await self._ok(*keys):
                await _refuse(send, TOO_MANY_HUMAN if asks_for_human(text) else TOO_MANY)
                return
        await self.app(scope, receive, send)

    async def _socket(self, scope: Scope, receive: Receive, send: Send) -> None:
        ip, s = _address(scope, self.trusted), self.s
        if not await self._ok((f"hello:{ip}", s.limit_chat_connections)):
            first = await receive()  # websocket.connect
            if first["type"] == "websocket.connect":
                await send({"type": "websocket.accept"})
                await send({"type": "websocket.send", "text": json.dumps(
                    {"type": "error", "code": "rate_limited", "message": TOO_MANY},
                    ensure_ascii=False)})
                await send({"type": "websocket.close", "code": 1013})  # try again later
            return

        async def limited_receive() -> Message:
            while True:
                message = await receive()
                raw = message.get("text") if message["type"] == "websocket.receive" else None
                frame = _frame(raw) if raw and len(raw) <= PEEK else {}
                said = frame.get("text") if frame.get("type") == "message" else None
                if not isinstance(said, str) or not asks_for_human(said) or await self._ok(
                        (f"human:{ip}", s.limit_human_requests)):
                    return message
                # Dropped: the page is told, politely, and may ask again later.
                await send({"type": "websocket.send", "text": json.dumps(
                    {"type": "error", "code": "rate_limited", "message": TOO_MANY_HUMAN,
                     "client_id": frame.get("client_id")}, ensure_ascii=False)})

        await self.app(scope, limited_receive, send)


def _frame(text: str) -> dict[str, Any]:
    try:
        frame = json.loads(text)
    except (ValueError, RecursionError):  # deeply nested JSON is the app's to refuse
        return {}
    return frame if isinstance(frame, dict) else {}


async def _peek(receive: Receive) -> tuple[bytes, Receive]:
    """Up to ``PEEK`` bytes of the body, and a ``receive`` that replays what was read."""
    read: list[Message] = []
    size = 0
    while size <= PEEK:
        message = await receive()
        read.append(message)
        if message["type"] != "http.request":
            break
        size += len(message.get("body", b""))
        if not message.get("more_body", False):
            break
    body = b"".join(m.get("body", b"") for m in read if m["type"] == "http.request")

    async def replay() -> Message:
        return read.pop(0) if read else await receive()

    return (body if size <= PEEK else b""), replay


async def _refuse(send: Send, message: str = TOO_MANY) -> None:
    body = json.dumps({"error": message, "code": "rate_limited"}, ensure_ascii=False).encode()
    await send({"type": "http.response.start", "status": 429, "headers": [
        (b"content-type", b"application/json"), (b"retry-after", b"60"),
        (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
