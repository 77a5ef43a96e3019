"""Who a WeChat conversation belongs to, and the short memory of messages in flight.

The conversation id is a hash of the openid (the assistant and its logs never see an
openid); sending a 客服消息 later needs the openid back, so it is kept here, in one small
table of the conversation database.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Generic, Protocol, TypeVar

from sqlalchemy import Column, DateTime, Engine, MetaData, String, Table, insert, select
from sqlalchemy.exc import IntegrityError

log = logging.getLogger(__name__)
_meta = MetaData()
wechat_users = Table(
    "wechat_users",
    _meta,
    Column("conversation_id", String(160), primary_key=True),
    Column("openid", String(128), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)


def conversation_id(openid: str) -> str:
    return "wx:" + hashlib.sha256(openid.encode()).hexdigest()[:40]


class SqlWeChatUsers:
    """Synchronous (called from a worker thread), like the conversation store."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._known: set[str] = set()

    def create_table(self) -> None:
        # One table with no history to migrate; checkfirst keeps this idempotent.
        wechat_users.create(self.engine, checkfirst=True)

    def remember(self, openid: str) -> str:
        cid = conversation_id(openid)
        if cid in self._known:
            return cid
        try:
            with self.engine.begin() as c:
                c.execute(insert(wechat_users).values(
                    conversation_id=cid, openid=openid, created_at=datetime.now(UTC)))
        except IntegrityError:
            pass  # already known from an earlier run
        if len(self._known) > 100_000:
            self._known.clear()  # only saves a write; the table is the memory
        self._known.add(cid)
        return cid

    def openid(self, cid: str) -> str | None:
        with self.engine.connect() as c:
            found = c.execute(
                select(wechat_users.c.openid).where(wechat_users.c.conversation_id == cid)
            ).scalar()
        return None if found is None else str(found)


V = TypeVar("V")


class TtlCache(Generic[V]):
    """Entries live ``ttl`` seconds; at most ``size`` of them (oldest dropped first)."""

    def __init__(self, ttl: float, size: int = 10_000,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl = ttl
        self.size = size
        self.clock = clock
        self._items: OrderedDict[str, tuple[float, V]] = OrderedDict()

    def get(self, key: str) -> V | None:
        self._expire()
        hit = self._items.get(key)
        return None if hit is None else hit[1]

    def put(self, key: str, value: V) -> None:
        self._items[key] = (self.clock() + self.ttl, value)
        self._items.move_to_end(key)
        while len(self._items) > self.size:
            self._items.popitem(last=False)

    def _expire(self) -> None:
        now = self.clock()
        while self._items:
            key, (expires, _) = next(iter(self._items.items()))
            if expires > now:
                break
            del self._items[key]

    def __len__(self) -> int:
        return len(self._items)


class Nonces(Protocol):
    async def first(self, key: str, digest: str, ttl: float) -> bool: ...
    async def close(self) -> None: ...


class MemoryNonces:
    """The (timestamp, nonce) pairs seen in the replay window, in one process.

    ``first`` is True for a new pair, and for WeChat's own retry of it (same body digest);
    False for the pair with another body: a replayed signature carrying new content.
    Bounded: past ``size`` the oldest pairs go (only signed requests get this far)."""

    def __init__(self, size: int = 100_000, clock: Callable[[], float] = time.monotonic) -> None:
        self.size = size
        self.clock = clock
        self._seen: dict[float, TtlCache[str]] = {}

    async def first(self, key: str, digest: str, ttl: float) -> bool:
        cache = self._seen.setdefault(ttl, TtlCache(ttl, self.size, self.clock))
        known = cache.get(key)
        if known is None:
            cache.put(key, digest)
            return True
        return known == digest

    async def close(self) -> None:
        self._seen.clear()


class RedisNonces:
    """The same memory shared by every server process (``SET NX EX``)."""

    def __init__(self, url: str, prefix: str) -> None:
        import redis.asyncio as aioredis

        self.prefix = prefix + "wechat:nonce:"
        self._redis = aioredis.Redis.from_url(url, decode_responses=True)
        self._fallback = MemoryNonces()

    async def first(self, key: str, digest: str, ttl: float) -> bool:
        from redis.exceptions import RedisError

        name = self.prefix + key
        try:
            if await self._redis.set(name, digest, nx=True, ex=max(1, int(ttl + 0.999))):
                return True
            return bool(await self._redis.get(name) == digest)
        except RedisError:
            # Redis away: this process's memory still stops replays that reach it.
            log.warning("WeChat nonces: Redis unavailable, remembering in this process")
            return await self._fallback.first(key, digest, ttl)

    async def close(self) -> None:
        await self._redis.aclose()


def make_nonces(redis_url: str | None, prefix: str) -> MemoryNonces | RedisNonces:
    return RedisNonces(redis_url, prefix) if redis_url else MemoryNonces()
