"""The event bus: "conversation X has new events", "the queue changed", presence.

Messages are small JSON objects that say *that* something changed; the data itself is
read from the database (the event log), so a lost or repeated bus message never loses or
repeats a chat message — it only wakes a socket, which then reads what it has not sent.

``LocalBus`` (the embedded default) delivers inside one process. ``RedisBus`` publishes
through Redis pub/sub so that a citizen on one server process and the agent on another
wake each other; every process receives every message and wakes its own sockets.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections import defaultdict
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

log = logging.getLogger(__name__)

Handler = Callable[[dict[str, Any]], Awaitable[None]]


class EventBus(Protocol):
    def subscribe(self, topic: str, handler: Handler) -> Callable[[], None]:
        """Call ``handler`` for every message on ``topic`` (in this process); returns the
        function that unsubscribes."""
        ...

    async def publish(self, topic: str, message: dict[str, Any]) -> None: ...


class _Fanout:
    """Local subscribers; each message runs the handlers as tasks so a slow socket never
    delays the publisher or the other sockets."""

    def __init__(self) -> None:
        self._handlers: dict[str, set[Handler]] = defaultdict(set)
        self._tasks: set[asyncio.Task[None]] = set()

    def subscribe(self, topic: str, handler: Handler) -> Callable[[], None]:
        self._handlers[topic].add(handler)

        def unsubscribe() -> None:
            hs = self._handlers.get(topic)
            if hs is not None:
                hs.discard(handler)
                if not hs:
                    del self._handlers[topic]

        return unsubscribe

    def deliver(self, topic: str, message: dict[str, Any]) -> None:
        for h in list(self._handlers.get(topic, ())):
            task = asyncio.create_task(self._run(h, topic, message))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    @staticmethod
    async def _run(h: Handler, topic: str, message: dict[str, Any]) -> None:
        try:
            await h(message)
        except Exception:
            log.exception("bus handler for %s failed", topic)

    async def drain(self) -> None:
        while self._tasks:
            await asyncio.wait(set(self._tasks), timeout=5.0)


class LocalBus(_Fanout):
    async def publish(self, topic: str, message: dict[str, Any]) -> None:
        self.deliver(topic, message)

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        await self.drain()


class RedisBus(_Fanout):
    """Redis pub/sub (redis-py asyncio). ``prefix`` keeps deployments (and tests) apart."""

    def __init__(self, url: str, prefix: str = "daoban:") -> None:
        super().__init__()
        import redis.asyncio as aioredis

        self.prefix = prefix
        self._redis = aioredis.Redis.from_url(url, decode_responses=True)
        self._pubsub = self._redis.pubsub()
        self._listener: asyncio.Task[None] | None = None

    async def start(self) -> None:
        # Fails loudly at start-up when Redis is configured but unreachable.
        await self._redis.ping()
        await self._pubsub.psubscribe(self.prefix + "*")
        self._listener = asyncio.create_task(self._listen())

    async def _listen(self) -> None:
        while True:
            try:
                async for m in self._pubsub.listen():
                    if m.get("type") != "pmessage":
                        continue
                    topic = str(m["channel"])[len(self.prefix):]
                    try:
                        payload = json.loads(m["data"])
                    except (TypeError, ValueError):
                        continue
                    if isinstance(payload, dict):
                        self.deliver(topic, payload)
            except asyncio.CancelledError:
                raise
            except Exception:
                # Redis restarted or the connection dropped: resubscribe. Sockets catch up
                # from the event log on their next wake-up, so nothing is lost.
                log.exception("redis bus listener failed; reconnecting")
                await asyncio.sleep(1.0)
                with contextlib.suppress(Exception):
                    await self._pubsub.psubscribe(self.prefix + "*")

    async def publish(self, topic: str, message: dict[str, Any]) -> None:
        await self._redis.publish(self.prefix + topic, json.dumps(message, ensure_ascii=False))

    async def close(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listener
        with contextlib.suppress(Exception):
            await self._pubsub.aclose()  # type: ignore[no-untyped-call]
        await self._redis.aclose()
        await self.drain()


def make_bus(redis_url: str | None, prefix: str = "daoban:") -> LocalBus | RedisBus:
    return RedisBus(redis_url, prefix) if redis_url else LocalBus()
