"""The event bus: "conversation X has new events", "the queue changed", presence.

Messages are small JSON objects that say *that* something changed; the data itself is
read from the database (the event log), so a lost or repeated bus message never loses or
repeats a chat message — it only wakes a socket, which then reads what it has not sent.

``LocalBus`` (the embedded default) delivers inside one process. ``RedisBus`` publishes
through Redis pub/sub so that a citizen on one server process and the agent on another
wake each other; every process receives every message and wakes its own sockets.

Publishing never fails the caller: a message Redis refuses wakes this process's own
sockets at once and is re-published, with back-off, once Redis answers again (the data
is already in the database, so a handoff or a message is never lost to a Redis outage).
``BusMonitor`` says whether the bus really carries messages between the processes (see
``/health``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
from collections import defaultdict, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

log = logging.getLogger(__name__)

Handler = Callable[[dict[str, Any]], Awaitable[None]]
PROBE, BEAT = "bus:probe", "bus:beat"
# Topics whose subscribers catch up from the database when woken without a sequence number;
# they are all woken after Redis comes back, since messages may have been missed meanwhile.
RESYNC = ("conv:", "agent:", "queue")
REDIS_FIX = ("start Redis, check DAOBAN_REDIS_URL, and give every server process the same "
             "DAOBAN_REDIS_URL and DAOBAN_REDIS_PREFIX")


def _why(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}".strip()[:200]


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

    def resync(self) -> None:
        """Wake every socket to read what it may have missed (no sequence number)."""
        for topic in list(self._handlers):
            if topic.startswith(RESYNC):
                self.deliver(topic, {"resync": True})

    async def drain(self) -> None:
        while self._tasks:
            await asyncio.wait(set(self._tasks), timeout=5.0)


class LocalBus(_Fanout):
    kind = "in-process"
    problem: str | None = None

    async def publish(self, topic: str, message: dict[str, Any]) -> None:
        self.deliver(topic, message)

    async def start(self) -> None:
        return None

    async def probe(self, within: float = 2.0) -> str | None:
        return None

    async def close(self) -> None:
        await self.drain()


class RedisBus(_Fanout):
    """Redis pub/sub (redis-py asyncio). ``prefix`` keeps deployments (and tests) apart."""

    kind = "Redis pub/sub"

    def __init__(self, url: str, prefix: str = "daoban:", *, backlog: int = 1000) -> None:
        super().__init__()
        import redis.asyncio as aioredis

        self.prefix = prefix
        self._redis = aioredis.Redis.from_url(url, decode_responses=True,
                                              socket_connect_timeout=2.0)
        self._pubsub = self._redis.pubsub()
        self._listener: asyncio.Task[None] | None = None
        self._retry: asyncio.Task[None] | None = None
        self._pending: deque[tuple[str, str]] = deque(maxlen=backlog)  # to re-publish
        self._probes: dict[str, asyncio.Future[None]] = {}
        self.problem: str | None = None  # why the bus does not work now; None: it does

    async def start(self) -> None:
        """Subscribes and checks a round trip. Never raises: an unreachable Redis is
        reported in ``problem`` (and ``/health``) and retried until it answers; the
        one-line start-up refusal is ``redis_problem``'s, before serving."""
        try:
            await self._redis.ping()
            await self._pubsub.psubscribe(self.prefix + "*")
        except Exception as exc:
            self.problem = f"Redis does not answer ({_why(exc)})"
            log.error("event bus: %s; retrying", self.problem)
        self._listener = asyncio.create_task(self._listen())
        if self.problem is None:
            await self.probe()

    async def _listen(self) -> None:
        broken = self.problem is not None
        while True:
            try:
                if broken:
                    await self._pubsub.psubscribe(self.prefix + "*")
                    broken = False
                    self.problem = None
                    log.warning("event bus: Redis answers again; waking every socket")
                    self.resync()
                async for m in self._pubsub.listen():
                    if m.get("type") != "pmessage":
                        continue
                    topic = str(m["channel"])[len(self.prefix):]
                    try:
                        payload = json.loads(m["data"])
                    except (TypeError, ValueError):
                        continue
                    if not isinstance(payload, dict):
                        continue
                    if topic == PROBE:
                        fut = self._probes.pop(str(payload.get("token")), None)
                        if fut is not None and not fut.done():
                            fut.set_result(None)
                    self.deliver(topic, payload)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                # Redis restarted or the connection dropped: resubscribe. Sockets catch up
                # from the event log when woken, so nothing is lost.
                if not broken:
                    self.problem = f"Redis connection lost ({_why(exc)})"
                    log.error("event bus: %s; reconnecting", self.problem)
                broken = True
                with contextlib.suppress(Exception):
                    await self._pubsub.aclose()  # type: ignore[no-untyped-call]
                await asyncio.sleep(1.0)

    async def publish(self, topic: str, message: dict[str, Any]) -> None:
        data = json.dumps(message, ensure_ascii=False)
        if not self._pending:
            try:
                await self._redis.publish(self.prefix + topic, data)
                return
            except Exception as exc:
                self.problem = f"Redis refuses to publish ({_why(exc)})"
                log.error("event bus: %s; re-publishing when it answers", self.problem)
        # This process's sockets are woken now; the others once Redis answers again.
        self.deliver(topic, message)
        self._pending.append((topic, data))
        if self._retry is None or self._retry.done():
            self._retry = asyncio.create_task(self._republish())

    async def _republish(self) -> None:
        delay = 0.2
        while self._pending:
            topic, data = self._pending[0]
            try:
                await self._redis.publish(self.prefix + topic, data)
            except asyncio.CancelledError:
                raise
            except Exception:
                await asyncio.sleep(delay)
                delay = min(5.0, delay * 2)
                continue
            self._pending.popleft()
            delay = 0.2
        log.warning("event bus: Redis publishes again")

    async def probe(self, within: float = 2.0) -> str | None:
        """Publish a probe and wait for it to come back through the subscription; the
        reason it did not (also kept in ``problem``), or None."""
        token = uuid.uuid4().hex
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._probes[token] = fut
        try:
            await self._redis.publish(self.prefix + PROBE, json.dumps({"token": token}))
            await asyncio.wait_for(fut, within)
        except TimeoutError:
            self.problem = (f"a message published to Redis did not come back within "
                            f"{within:g} s (pub/sub not working)")
        except Exception as exc:
            self.problem = f"Redis does not answer ({_why(exc)})"
        else:
            if not self._pending:
                self.problem = None
        finally:
            self._probes.pop(token, None)
        return self.problem

    async def close(self) -> None:
        for task in (self._listener, self._retry):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        with contextlib.suppress(Exception):
            await self._pubsub.aclose()  # type: ignore[no-untyped-call]
        await self._redis.aclose()
        await self.drain()


def make_bus(redis_url: str | None, prefix: str = "daoban:") -> LocalBus | RedisBus:
    return RedisBus(redis_url, prefix) if redis_url else LocalBus()


def redis_problem(url: str, timeout: float = 2.0) -> str | None:
    """The start-up check (blocking): why Redis at ``url`` cannot carry the bus, in one
    line without the URL's password, or None."""
    import redis

    client = redis.Redis.from_url(url, socket_connect_timeout=timeout, socket_timeout=timeout)
    try:
        client.ping()
    except Exception as exc:
        return f"Redis does not answer ({_why(exc)})"
    finally:
        client.close()
    return None


# --- is the bus carrying messages between the processes? --------------------------------


@dataclass(frozen=True)
class Peer:
    """Another live server process on the same database (the desk's lease table)."""

    id: str
    label: str
    started_at: datetime


class BusMonitor:
    """Every process publishes a beat each ``every`` seconds and listens for the others'.
    A live process on the same database whose beats do not arrive is on another Redis (or
    prefix), or on none: citizens and agents on the two would never reach each other."""

    def __init__(self, bus: LocalBus | RedisBus, process_id: str, every: float) -> None:
        self.bus = bus
        self.process_id = process_id
        self.every = every
        self.started = time.monotonic()
        self.heard: dict[str, float] = {}  # process id → when its last beat arrived
        self.missing: list[str] = []  # labels of live processes not heard from

    async def on_beat(self, message: dict[str, Any]) -> None:
        self.heard[str(message.get("process"))] = time.monotonic()

    async def beat(self, peers: list[Peer]) -> None:
        """Publish this process's beat and compare the live processes with those heard."""
        await self.bus.publish(BEAT, {"process": self.process_id})
        if isinstance(self.bus, RedisBus) and (self.bus.problem or self.bus._pending):
            await self.bus.probe()
        now, window = time.monotonic(), 3 * self.every
        wall = datetime.now(UTC)
        self.missing = [
            p.label for p in peers
            if p.id != self.process_id and (wall - p.started_at).total_seconds() > window
            and now - self.started > window and now - self.heard.get(p.id, -1e9) > window]

    def state(self) -> tuple[bool, str, str | None]:
        """(works, detail, fix) for ``/health``."""
        if self.bus.problem:
            return False, f"{self.bus.kind}: {self.bus.problem}", REDIS_FIX
        if self.missing:
            names = ", ".join(self.missing[:5])
            return (False, f"{self.bus.kind}: no bus messages from the server process(es) "
                           f"{names} using the same database (another Redis or prefix, or "
                           f"no DAOBAN_REDIS_URL there): their citizens and agents cannot "
                           f"reach this process's", REDIS_FIX)
        return True, f"{self.bus.kind}: messages go round", None

    async def run(self, peers: Callable[[], Awaitable[list[Peer]]]) -> None:
        while True:
            try:
                await self.beat(await peers())
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("event bus check failed")
            await asyncio.sleep(self.every)
