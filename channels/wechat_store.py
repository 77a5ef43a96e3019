"""Who a WeChat conversation belongs to, and the short memory of messages in flight.

The conversation id is a hash of the openid (the assistant and its logs never see an
openid); sending a 客服消息 later needs the openid back, so it is kept here, in one small
table of the conversation database.
"""

from __future__ import annotations

import hashlib
import time
from collections import OrderedDict
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Generic, TypeVar

from sqlalchemy import Column, DateTime, Engine, MetaData, String, Table, insert, select
from sqlalchemy.exc import IntegrityError

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
